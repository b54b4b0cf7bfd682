"""A short-lived, per-process read cache for the rows the gateway consults on every request.

Each interaction needs its guild's connection and each webhook its installation. Reading them
from the database each time costs a thread hop and a transaction per request, and the rows
change rarely (connect, disconnect, install, disable). So the gateway keeps what it read for a
few seconds — misses too, more briefly — and concurrent requests for one key share one read.
A change therefore takes effect within the TTL, which is the price of answering in time.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from dfj_common.clock import Clock

__all__ = ["ReadCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ReadCache(Generic[K, V]):
    """Read-through TTL cache with single-flight loads and a bounded size."""

    def __init__(
        self, clock: Clock, *, ttl: float, miss_ttl: float | None = None, max_entries: int = 10_000
    ) -> None:
        self._clock = clock
        self._ttl = ttl
        self._miss_ttl = ttl if miss_ttl is None else miss_ttl
        self._max = max_entries
        self._entries: OrderedDict[K, tuple[float, V | None]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V | None]] = {}

    def peek(self, key: K) -> tuple[bool, V | None]:
        """``(True, value)`` when ``key`` is cached and fresh, without awaiting anything.

        The hot path: a hit needs no coroutine, no timeout and no task switch.
        """
        hit = self._entries.get(key)
        if hit is not None and hit[0] > self._clock.monotonic():
            return True, hit[1]
        return False, None

    async def get(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The cached value for ``key``, or ``load()``'s (errors are not cached)."""
        now = self._clock.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it; nobody else must log it
            raise
        else:
            future.set_result(value)
            ttl = self._ttl if value is not None else self._miss_ttl
            self._entries[key] = (self._clock.monotonic() + ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
            return value
        finally:
            del self._loading[key]

    def invalidate(self, key: K) -> None:
        self._entries.pop(key, None)
