"""The JQL match cache: keyed by the issue's state, short-lived, bounded."""

from __future__ import annotations

import pytest

from dfj_common.clock import ManualClock
from dfj_jira_worker.notify.jql_cache import JqlKey, JqlMatchCache, JqlOutcome


def key(jql: str = "project = ABC", updated: str = "t1", issue: str = "1") -> JqlKey:
    return JqlKey("site", issue, updated, jql)


def test_an_outcome_lives_for_the_ttl_only() -> None:
    """Read back within the TTL; gone once the monotonic clock passes it."""
    clock = ManualClock()
    cache = JqlMatchCache(clock, ttl=30)
    cache.put(key(), JqlOutcome.MATCHED)
    clock.advance(29.9)
    assert cache.get(key()) is JqlOutcome.MATCHED
    clock.advance(0.1)
    assert cache.get(key()) is None
    assert len(cache) == 0


def test_every_part_of_the_key_counts() -> None:
    """Another JQL, issue, tenant or issue state is another entry."""
    cache = JqlMatchCache(ManualClock())
    cache.put(key(), JqlOutcome.NOT_MATCHED)
    assert cache.get(key()) is JqlOutcome.NOT_MATCHED
    assert cache.get(key(jql="project = XYZ")) is None
    assert cache.get(key(updated="t2")) is None
    assert cache.get(key(issue="2")) is None
    assert cache.get(JqlKey("other", "1", "t1", "project = ABC")) is None


def test_the_least_recently_used_entry_goes_first() -> None:
    """At the bound, a put drops the entry read longest ago."""
    cache = JqlMatchCache(ManualClock(), max_entries=2)
    cache.put(key("a"), JqlOutcome.MATCHED)
    cache.put(key("b"), JqlOutcome.ERROR)
    assert cache.get(key("a")) is JqlOutcome.MATCHED  # "b" is now the oldest
    cache.put(key("c"), JqlOutcome.NOT_MATCHED)
    assert len(cache) == 2
    assert cache.get(key("b")) is None
    assert cache.get(key("a")) is JqlOutcome.MATCHED
    assert cache.get(key("c")) is JqlOutcome.NOT_MATCHED


@pytest.mark.parametrize(("ttl", "size"), [(0, 10), (-1, 10), (30, 0)])
def test_nonsense_bounds_are_refused(ttl: float, size: int) -> None:
    """A cache that could hold nothing, or forever, is a configuration mistake."""
    with pytest.raises(ValueError, match="ttl"):
        JqlMatchCache(ManualClock(), ttl=ttl, max_entries=size)
