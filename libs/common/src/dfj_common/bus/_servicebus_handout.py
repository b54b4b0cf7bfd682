"""Demand-driven hand-out between session loops and ``Receiver.receive`` callers (no SDK).

A session queue is consumed by a pool of loops, each holding at most one Service Bus session
and at most one unsettled message of it (or, for a receiver with ``session_batch``, one
unsettled run of consecutive messages). A loop fetches a message only against a *permit*, and
permits exist only while ``receive`` callers are waiting for more than is already ready or
being fetched. So nothing is received (and locked) that nobody asked for, except what was in
flight when a caller gave up waiting; that waits in ``ready`` for the next caller.

Ordering within a session is the loop's business (it fetches the next message of its session
only after the previous one was settled); this class only counts demand and passes items on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Handout"]

T = TypeVar("T")


class Handout(Generic[T]):
    """Counts demand, hands out permits to fetch, and passes fetched items to waiting takers."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._ready: deque[T] = deque()
        self._requested = 0  # what take() callers now waiting still want, in total
        self._reserved = 0  # permits held by loops that are fetching
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ready(self) -> int:
        return len(self._ready)

    @property
    def reserved(self) -> int:
        return self._reserved

    @property
    def unmet(self) -> int:
        """Demand not covered by ready items or fetches under way."""
        return self._requested - self._reserved - len(self._ready)

    async def take(self, max_items: int, within: float) -> list[T]:
        """Up to ``max_items`` ready items, waiting at most ``within`` seconds for the first one."""
        if max_items < 1:
            return []
        async with self._cond:
            if not self._ready and not self._closed and within > 0:
                self._requested += max_items
                self._cond.notify_all()
                try:
                    async with asyncio.timeout(within):
                        await self._cond.wait_for(lambda: bool(self._ready) or self._closed)
                except TimeoutError:
                    pass
                finally:
                    self._requested -= max_items
            count = min(max_items, len(self._ready))
            return [self._ready.popleft() for _ in range(count)]

    async def wait_for_demand(self, within: float | None = None) -> bool:
        """Wait, reserving nothing, until someone wants more; False if closed or timed out."""
        async with self._cond:
            try:
                async with asyncio.timeout(within):
                    await self._cond.wait_for(lambda: self._closed or self.unmet > 0)
            except TimeoutError:
                return False
            return not self._closed

    async def acquire(self, within: float | None = None) -> bool:
        """Reserve one unit of demand to fetch against; False if closed or ``within`` passed."""
        async with self._cond:
            try:
                async with asyncio.timeout(within):
                    await self._cond.wait_for(lambda: self._closed or self.unmet > 0)
            except TimeoutError:
                return False
            if self._closed:
                return False
            self._reserved += 1
            return True

    async def acquire_more(self, most: int) -> int:
        """Reserve up to ``most`` more units of demand that are unmet now, without waiting.

        A session loop that holds a permit uses it to fetch a run of its session at once.
        """
        async with self._cond:
            if self._closed or most < 1:
                return 0
            count = max(min(most, self.unmet), 0)
            self._reserved += count
            return count

    async def offer(self, item: T) -> bool:
        """Hand in what a permit fetched; False (keep it, and release it) if closed."""
        async with self._cond:
            self._reserved = max(self._reserved - 1, 0)
            if self._closed:
                return False
            self._ready.append(item)
            self._cond.notify_all()
            return True

    async def give_back(self) -> None:
        """Return a permit that fetched nothing."""
        async with self._cond:
            self._reserved = max(self._reserved - 1, 0)
            self._cond.notify_all()

    async def close(self) -> list[T]:
        """Stop; wake everyone; return the items that were ready but not taken."""
        async with self._cond:
            self._closed = True
            left = list(self._ready)
            self._ready.clear()
            self._cond.notify_all()
            return left
