"""The bounded TTL cache under the replay guard: expiry in insertion order, eviction, add."""

from __future__ import annotations

import pytest

from dfj_common.clock import ManualClock
from dfj_gateway.discord.replay import ReplayGuard, TtlCache


def test_add_stores_once_until_the_entry_expires() -> None:
    clock = ManualClock()
    cache: TtlCache[int] = TtlCache(ttl=10.0, max_entries=100, clock=clock)
    assert cache.add("a", 1)
    assert not cache.add("a", 2)
    assert cache.get("a") == 1
    clock.advance(10.5)
    assert cache.get("a") is None
    assert cache.add("a", 3)
    assert cache.get("a") == 3


def test_the_oldest_entry_makes_room_when_full() -> None:
    clock = ManualClock()
    cache: TtlCache[int] = TtlCache(ttl=10.0, max_entries=2, clock=clock)
    assert cache.add("a", 1) and cache.add("b", 2) and cache.add("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, 2, 3)
    cache.put("b", 4)  # put renews: "b" is now the newest
    cache.put("d", 5)
    assert (cache.get("b"), cache.get("c"), cache.get("d")) == (4, None, 5)
    assert len(cache) == 2


def test_expiry_purges_from_the_front_only_what_is_due() -> None:
    clock = ManualClock()
    cache: TtlCache[int] = TtlCache(ttl=10.0, max_entries=100, clock=clock)
    cache.add("a", 1)
    clock.advance(5.0)
    cache.add("b", 2)
    clock.advance(5.5)
    assert len(cache) == 1 and "b" in cache and "a" not in cache
    cache.discard("b")
    assert len(cache) == 0


def test_replay_guard_refuses_a_second_sight_until_forgotten() -> None:
    guard = ReplayGuard(window=300.0, max_entries=10, clock=ManualClock())
    assert guard.first_sight("1")
    assert not guard.first_sight("1")
    guard.forget("1")
    assert guard.first_sight("1")
    assert len(guard) == 1


@pytest.mark.parametrize(("ttl", "entries"), [(0.0, 1), (1.0, 0)])
def test_a_cache_needs_a_ttl_and_room(ttl: float, entries: int) -> None:
    with pytest.raises(ValueError):
        TtlCache(ttl=ttl, max_entries=entries, clock=ManualClock())
