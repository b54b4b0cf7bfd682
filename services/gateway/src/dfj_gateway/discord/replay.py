"""Bounded in-memory TTL caches: the interaction-id replay guard, and short answer caches.

A validly signed interaction can be captured and sent again while its timestamp is still fresh.
The gateway remembers each accepted interaction id for longer than the freshness window can
admit it (both sides of "now") and at least the 15-minute life of an interaction token, and
refuses a second sight. Memory is bounded: past ``max_entries`` the oldest id is forgotten
first, which weakens nothing the bus does not also catch — every published message's id is
derived from the interaction id, so the bus drops a duplicate within its window anyway. The
cache is per process (each replica has its own); that is the price of a gateway that never
writes, and the bus-level dedupe is what holds across replicas.

Entries all share one TTL, so insertion order is expiry order and expired entries are purged
from the front in O(1) amortised time. Time is the injected clock's ``monotonic()``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, Generic, TypeVar

from dfj_common.clock import Clock

__all__ = ["TOKEN_LIFETIME", "ReplayGuard", "TtlCache"]

V = TypeVar("V")

TOKEN_LIFETIME: Final = 15 * 60.0  # an interaction token's life, in seconds


class TtlCache(Generic[V]):
    """At most ``max_entries`` values, each kept ``ttl`` seconds after it was put."""

    def __init__(self, *, ttl: float, max_entries: int, clock: Clock) -> None:
        if ttl <= 0 or max_entries < 1:
            raise ValueError("a cache needs a positive ttl and room for one entry")
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        self._purge(self._clock.monotonic())
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def get(self, key: str) -> V | None:
        """The live value under ``key``, or None."""
        self._purge(self._clock.monotonic())
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def put(self, key: str, value: V) -> None:
        """Store ``value`` under ``key`` for the TTL (from now), evicting the oldest if full."""
        now = self._clock.monotonic()
        self._purge(now)
        self._entries.pop(key, None)
        self._insert(now, key, value)

    def add(self, key: str, value: V) -> bool:
        """Store ``value`` under ``key`` unless a live value is there; True if it was stored."""
        now = self._clock.monotonic()
        self._purge(now)
        if key in self._entries:
            return False
        self._insert(now, key, value)
        return True

    def _insert(self, now: float, key: str, value: V) -> None:
        # ``key`` is absent: make room (oldest first), then it is the newest entry.
        while len(self._entries) >= self._max:
            self._entries.popitem(last=False)
        self._entries[key] = (now + self._ttl, value)

    def discard(self, key: str) -> None:
        """Forget ``key``."""
        self._entries.pop(key, None)

    def _purge(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, (expires, _) = next(iter(entries.items()))
            if expires > now:
                return
            del entries[key]


class ReplayGuard:
    """Remembers interaction ids; the second sight of one within the TTL is a replay."""

    def __init__(self, *, window: float | None, max_entries: int, clock: Clock) -> None:
        ttl = max(TOKEN_LIFETIME, 2 * window) if window is not None else TOKEN_LIFETIME
        self._seen: TtlCache[bool] = TtlCache(ttl=ttl, max_entries=max_entries, clock=clock)

    def first_sight(self, interaction_id: str) -> bool:
        """Record ``interaction_id``; False when it was already recorded (a replay)."""
        return self._seen.add(interaction_id, True)

    def forget(self, interaction_id: str) -> None:
        """Drop a record (the request was not answered as accepted after all)."""
        self._seen.discard(interaction_id)

    def __len__(self) -> int:
        return len(self._seen)
