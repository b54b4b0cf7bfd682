"""The bounded TTL caches (expiry in insertion order, eviction, add) and the replay guard."""

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


def test_replay_guard_forgets_the_oldest_id_first_when_full() -> None:
    guard = ReplayGuard(window=300.0, max_entries=2, clock=ManualClock())
    assert guard.first_sight("a") and guard.first_sight("b") and guard.first_sight("c")
    assert not guard.first_sight("b") and not guard.first_sight("c")
    assert guard.first_sight("a")  # made room for "c", so it is new again (and evicts "b")
    assert guard.first_sight("b")


def test_replay_guard_remembers_for_the_token_life_or_twice_the_window() -> None:
    clock = ManualClock()
    short = ReplayGuard(window=300.0, max_entries=10, clock=clock)
    long = ReplayGuard(window=600.0, max_entries=10, clock=clock)
    assert short.first_sight("1") and long.first_sight("1")
    clock.advance(899.0)
    assert not short.first_sight("1") and not long.first_sight("1")
    clock.advance(1.5)  # past the 15-minute token life
    assert short.first_sight("1")
    assert not long.first_sight("1")
    clock.advance(300.0)  # past twice the window
    assert long.first_sight("1")
    assert len(long) == 1


def test_a_stale_slot_of_a_forgotten_id_never_takes_the_live_one_with_it() -> None:
    clock = ManualClock()
    guard = ReplayGuard(window=300.0, max_entries=3, clock=clock)
    assert guard.first_sight("a")
    guard.forget("a")
    clock.advance(100.0)
    assert guard.first_sight("a")  # seen again: its first slot is stale now
    assert guard.first_sight("b")
    assert guard.first_sight("c")  # full: the stale slot is what makes room
    assert not guard.first_sight("a") and not guard.first_sight("b")
    assert len(guard) == 3
    clock.advance(801.0)  # the stale slot's expiry, had it still been there; a's is 100 s on
    assert not guard.first_sight("a")
    clock.advance(100.0)
    assert guard.first_sight("a")


def test_forgotten_ids_count_against_the_bound() -> None:
    guard = ReplayGuard(window=300.0, max_entries=4, clock=ManualClock())
    for n in range(1_000):
        assert guard.first_sight(str(n))
        guard.forget(str(n))
    assert len(guard._ids) <= 4 and len(guard._times) <= 4
    assert len(guard) == 0


def test_a_replay_guard_needs_room() -> None:
    with pytest.raises(ValueError):
        ReplayGuard(window=300.0, max_entries=0, clock=ManualClock())


@pytest.mark.parametrize(("ttl", "entries"), [(0.0, 1), (1.0, 0)])
def test_a_cache_needs_a_ttl_and_room(ttl: float, entries: int) -> None:
    with pytest.raises(ValueError):
        TtlCache(ttl=ttl, max_entries=entries, clock=ManualClock())
