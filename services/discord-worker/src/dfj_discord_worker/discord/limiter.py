"""Discord's REST rate limits, kept *before* sending so bursts go out at the ceiling.

Theory (``topics/rate-limits``; how discord.py, hikari and @discordjs/rest do it is summed up
in ``shared/reference/discord.md`` §5.3):

**Buckets.** Discord does not publish per-route limits; every answer says which bucket the
route belongs to (``X-RateLimit-Bucket``, an opaque hash) and where it stands (``Limit``,
``Remaining``, ``Reset-After``). Several routes may share one hash, and each hash is counted
separately per *major parameter* (channel, guild, webhook id + token). So a bucket here is
keyed ``(hash, major)`` once the route's hash is known, and ``(method + template, major)``
before that. When the first answer of a route reveals its hash, the provisional bucket is
renamed — or, when another route already holds ``(hash, major)``, retired into it, and the
requests queued on it move over.

**Serialised per bucket.** One request per bucket is in flight at a time, in FIFO order: the
next one starts only after the previous answer updated ``Remaining`` and ``Reset-After``, so
concurrency can never overrun a window, and an unknown bucket lets exactly one request
through to learn its headers. When ``Remaining`` is 0 the head of the queue sleeps until
the reset (plus a small margin for latency); so after the first answer of a bucket no
request should be refused. Routes whose answers carry no bucket are serialised too, which
costs little: Discord's own windows are seconds, our round trips milliseconds.

**Global.** Bot routes share 50 requests per second per bot. This is kept proactively with a
sliding log of the last 50 sends (stricter than any fixed window of the same size).
Interaction webhooks are exempt (``bot=False``). A 429 with ``global`` blocks every bot
route for its ``retry_after``.

**429s.** The body's ``retry_after`` (else ``Retry-After``) blocks the bucket — or, when
global, all bot routes — for that long; the request is then re-queued at the *front* of its
bucket so order is kept. ``X-RateLimit-Scope: shared`` means the resource is busy for
everyone: the wait is honoured, but it is not our fault and is not counted. A 429 that is not
JSON comes from Discord's edge: a temporary ban, which blocks every route.

**Invalid requests.** Discord bans an IP for a while after 10,000 answers of 401, 403 or 429
(except shared) within 10 minutes. They are counted in a sliding window; past
``invalid_slow_at`` every request is spaced out, more the nearer the count gets to
``invalid_stop_at`` (half the ban by default), and at ``invalid_stop_at`` requests wait until
old entries age out — long before the ban.

**No long holds.** A wait longer than ``max_wait`` raises :class:`DiscordRateLimited` with
the wait as ``retry_after`` instead of sleeping, so the bus message goes back to the queue
rather than holding its lock.

Everything runs on an injected :class:`~dfj_common.clock.Clock` (``monotonic``) and an
injected async ``sleep``, so tests advance a ``ManualClock`` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import structlog

from dfj_common.clock import Clock
from dfj_discord_worker.discord.errors import DiscordRateLimited
from dfj_discord_worker.discord.headers import RateLimitInfo
from dfj_discord_worker.discord.routes import Route

__all__ = ["LimiterPolicy", "LimiterStats", "Permit", "RateLimiter", "Sleep"]

LOGGER_NAME: Final = "dfj.discord_worker.limiter"
_log: Final = structlog.get_logger(LOGGER_NAME)
_stdlib: Final = logging.getLogger(LOGGER_NAME)

Sleep = Callable[[float], Awaitable[None]]
BucketKey = tuple[str, str]  # (bucket hash, or "METHOD template" until it is known; major)


@dataclass(frozen=True, kw_only=True)
class LimiterPolicy:
    """The limiter's numbers; the defaults follow Discord's documented limits."""

    global_per_second: int = 50
    global_window: float = 1.0
    reset_margin: float = 0.05  # added to every reset and retry_after: latency, clock steps
    max_wait: float = 30.0  # longer waits raise DiscordRateLimited instead
    default_retry_after: float = 1.0  # a 429 that names no wait at all
    invalid_window: float = 600.0
    invalid_slow_at: int = 1_000
    invalid_stop_at: int = 5_000
    invalid_max_delay: float = 1.0  # spacing just below invalid_stop_at
    idle_bucket_seconds: float = 300.0
    max_buckets: int = 4_096  # past this, idle buckets are forgotten

    def __post_init__(self) -> None:
        if self.global_per_second < 1 or self.global_window <= 0:
            raise ValueError("the global limit needs at least one request per positive window")
        if self.reset_margin < 0 or self.max_wait <= 0 or self.default_retry_after <= 0:
            raise ValueError("margins and waits must be positive")
        if not 0 < self.invalid_slow_at < self.invalid_stop_at:
            raise ValueError("need 0 < invalid_slow_at < invalid_stop_at")
        if self.invalid_window <= 0 or self.invalid_max_delay < 0:
            raise ValueError("the invalid-request window must be positive")
        if self.max_buckets < 1:
            raise ValueError("max_buckets must be at least 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class LimiterStats:
    """Counters since the limiter was made (``invalid_in_window``: the last 10 minutes)."""

    requests: int
    rate_limited: int
    global_rate_limited: int
    shared_rate_limited: int
    invalid_in_window: int
    buckets: int


@dataclass(frozen=True, slots=True)
class Permit:
    """The right to send one request; hand it back with ``complete`` or ``release``."""

    id: int
    route: Route
    bot: bool


class _Bucket:
    """One rate-limit bucket: what Discord last said, and the FIFO queue in front of it."""

    __slots__ = (
        "busy",
        "key",
        "last_used",
        "limit",
        "remaining",
        "reset_at",
        "retired_into",
        "waiters",
    )

    def __init__(self, key: BucketKey, now: float) -> None:
        self.key = key
        self.limit: int | None = None
        self.remaining: int | None = None  # None: not known (no answer yet, or no headers)
        self.reset_at = now
        self.busy = False
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.retired_into: _Bucket | None = None
        self.last_used = now

    def wait(self, now: float) -> float:
        """Seconds until this bucket has a request to spare (0 when it has one now)."""
        if self.remaining is not None and self.remaining <= 0 and now < self.reset_at:
            return self.reset_at - now
        return 0.0


class RateLimiter:
    """Per-bucket, global and invalid-request limits for one bot (see the module docstring)."""

    def __init__(self, *, clock: Clock, sleep: Sleep, policy: LimiterPolicy | None = None) -> None:
        self._clock = clock
        self._sleep = sleep
        self._policy = policy or LimiterPolicy()
        self._hashes: dict[str, str] = {}  # route key → bucket hash
        self._buckets: dict[BucketKey, _Bucket] = {}
        self._outstanding: dict[int, _Bucket] = {}
        self._ids = itertools.count(1)
        self._global_sends: deque[float] = deque()
        self._global_lock = asyncio.Lock()
        self._global_blocked_until = float("-inf")
        self._global_waiting = 0
        self._banned_until = float("-inf")
        self._invalid: deque[float] = deque()
        self._paced_until = float("-inf")
        self._slowing = False
        self._requests = 0
        self._rate_limited = 0
        self._global_rate_limited = 0
        self._shared_rate_limited = 0

    @property
    def policy(self) -> LimiterPolicy:
        return self._policy

    # -- acquiring ---------------------------------------------------------------------------

    async def acquire(self, route: Route, *, bot: bool, front: bool = False) -> Permit:
        """Wait until ``route`` may be sent; ``front`` re-queues a retried request first.

        Raises :class:`DiscordRateLimited` when the wait would exceed ``max_wait``.
        """
        bucket = self._resolve(route)
        while True:
            await self._enter(bucket, front=front)
            if bucket.retired_into is None:
                break
            self._leave(bucket)  # merged into another bucket while we queued: go there
            bucket = self._resolve(route)
        return await self._admit(bucket, route, bot=bot)

    async def requeue(self, permit: Permit, *, status: int, info: RateLimitInfo) -> Permit:
        """Learn from a 429 and wait to send again *without* giving up the bucket's turn.

        Nobody queued behind the request can overtake it, so per-bucket order holds across
        the retry. Raises :class:`DiscordRateLimited` (the turn then passes on) when the
        wait would exceed ``max_wait``.
        """
        bucket = self._outstanding.pop(permit.id)
        self._apply(permit, bucket, status=status, info=info)
        if bucket.retired_into is not None:  # merged while in flight: queue first over there
            self._leave(bucket)
            return await self.acquire(permit.route, bot=permit.bot, front=True)
        return await self._admit(bucket, permit.route, bot=permit.bot)

    async def _admit(self, bucket: _Bucket, route: Route, *, bot: bool) -> Permit:
        """Holding the bucket's turn, wait for its budget, the IP's and the global one."""
        try:
            await self._wait_bucket(bucket, route)
            await self._wait_invalid_budget(route)
            if bot:  # last, so the send it records is the send that happens
                await self._wait_global(route)
        except BaseException:
            self._leave(bucket)
            raise
        if bucket.remaining is not None:
            bucket.remaining -= 1
        bucket.last_used = self._clock.monotonic()
        self._requests += 1
        permit = Permit(next(self._ids), route, bot)
        self._outstanding[permit.id] = bucket
        return permit

    def expected_wait(self, route: Route, *, bot: bool) -> float:
        """Seconds before ``route`` could be sent if asked now (ignoring requests queued)."""
        now = self._clock.monotonic()
        waits = [0.0, self._banned_until - now, self._invalid_stop_wait(now)]
        bucket = self._buckets.get(self._key(route))
        if bucket is not None:
            waits.append(bucket.wait(now))
        if bot:
            waits.append(self._global_wait(now))
        return max(waits)

    def headroom(self, route: Route) -> int | None:
        """Requests ``route``'s bucket may still take in its current window, less those queued
        for it (one in flight was counted when it was let through); ``None`` while the bucket
        is not known yet."""
        now = self._clock.monotonic()
        bucket = self._buckets.get(self._key(route))
        if bucket is None or bucket.remaining is None:
            return None
        left = bucket.limit or 0 if now >= bucket.reset_at else bucket.remaining
        return max(left - len(bucket.waiters), 0)

    async def _enter(self, bucket: _Bucket, *, front: bool) -> None:
        """Take the bucket's turn, queueing FIFO (``front``: ahead of everyone waiting)."""
        if not bucket.busy and not bucket.waiters:
            bucket.busy = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if front:
            bucket.waiters.appendleft(waiter)
        else:
            bucket.waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._leave(bucket)  # the turn was handed to us as we were cancelled: pass it on
            else:
                bucket.waiters.remove(waiter)
            raise

    def _leave(self, bucket: _Bucket) -> None:
        """Hand the turn to the next live waiter, or free the bucket."""
        while bucket.waiters:
            waiter = bucket.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        bucket.busy = False

    async def _wait_bucket(self, bucket: _Bucket, route: Route) -> None:
        while True:
            now = self._clock.monotonic()
            wait = bucket.wait(now)
            if wait <= 0:
                break
            self._cap(wait, route, scope="bucket")
            await self._sleep(wait)
        if bucket.remaining is not None and bucket.remaining <= 0:
            bucket.remaining = bucket.limit  # the window is over: refilled (None if unknown)

    def global_headroom(self) -> int:
        """Bot requests the global limit still lets through in its current window, less those
        already waiting for it (0 while a global 429 blocks every route)."""
        now = self._clock.monotonic()
        if self._global_blocked_until > now:
            return 0
        self._global_wait(now)  # forgets the sends that left the window
        used = len(self._global_sends) + self._global_waiting
        return max(self._policy.global_per_second - used, 0)

    def _global_wait(self, now: float) -> float:
        window = self._policy.global_window + self._policy.reset_margin
        sends = self._global_sends
        while sends and sends[0] <= now - window:
            sends.popleft()
        wait = self._global_blocked_until - now
        if len(sends) >= self._policy.global_per_second:
            wait = max(wait, sends[0] + window - now)
        return max(wait, 0.0)

    async def _wait_global(self, route: Route) -> None:
        # One admission at a time, FIFO (asyncio.Lock is fair), so sleepers do not stampede.
        self._global_waiting += 1
        try:
            async with self._global_lock:
                while True:
                    now = self._clock.monotonic()
                    wait = self._global_wait(now)
                    if wait <= 0:
                        self._global_sends.append(now)
                        return
                    self._cap(wait, route, scope="global")
                    await self._sleep(wait)
        finally:
            self._global_waiting -= 1

    def _prune_invalid(self, now: float) -> None:
        horizon = now - self._policy.invalid_window
        while self._invalid and self._invalid[0] <= horizon:
            self._invalid.popleft()

    def _invalid_stop_wait(self, now: float) -> float:
        self._prune_invalid(now)
        excess = len(self._invalid) - self._policy.invalid_stop_at
        if excess < 0:
            return 0.0
        # Once the oldest ``excess + 1`` entries age out, the count is below the stop mark.
        return max(self._invalid[excess] + self._policy.invalid_window - now, 0.0)

    async def _wait_invalid_budget(self, route: Route) -> None:
        policy = self._policy
        while True:
            now = self._clock.monotonic()
            wait = max(self._banned_until - now, self._invalid_stop_wait(now))
            if wait > 0:
                self._cap(wait, route, scope="invalid")
                await self._sleep(wait)
                continue
            count = len(self._invalid)
            if count < policy.invalid_slow_at:
                if self._slowing:
                    self._slowing = False
                    _log.info("invalid requests back under the slow-down mark", count=count)
                return
            if not self._slowing:
                self._slowing = True
                _log.warning(
                    "many invalid requests: slowing down",
                    count=count,
                    window_seconds=policy.invalid_window,
                )
            span = policy.invalid_stop_at - policy.invalid_slow_at
            spacing = policy.invalid_max_delay * (count - policy.invalid_slow_at + 1) / span
            slot = max(now, self._paced_until)
            delay = slot - now
            if delay > 0:
                self._cap(delay, route, scope="invalid")
            self._paced_until = slot + spacing
            if delay > 0:
                await self._sleep(delay)
            return

    def _cap(self, wait: float, route: Route, *, scope: str) -> None:
        if wait > self._policy.max_wait:
            raise DiscordRateLimited(
                f"{route.key} would wait {wait:.1f}s for the {scope} rate limit",
                retry_after=wait,
                scope="local",
                is_global=scope == "global",
            )

    # -- answers -----------------------------------------------------------------------------

    def complete(self, permit: Permit, *, status: int, info: RateLimitInfo) -> None:
        """Learn from an answer (headers, 429s, invalid statuses) and free the bucket."""
        bucket = self._outstanding.pop(permit.id)
        self._apply(permit, bucket, status=status, info=info)
        self._leave(bucket)

    def _apply(self, permit: Permit, bucket: _Bucket, *, status: int, info: RateLimitInfo) -> None:
        now = self._clock.monotonic()
        if status in (401, 403) or (status == 429 and info.scope != "shared"):
            self._invalid.append(now)
        target = bucket
        if info.bucket is not None:
            target = self._learn(permit.route, bucket, info.bucket, now)
        if info.limit is not None:
            target.limit = info.limit
        if status == 429:
            self._on_429(permit, target, info, now)
        elif info.has_bucket:
            assert info.remaining is not None and info.reset_after is not None
            reset_at = now + info.reset_after + self._policy.reset_margin
            if target is bucket or target.remaining is None:
                target.remaining = info.remaining
                target.reset_at = reset_at
            else:  # a bucket we merged into: both answers describe it, trust the tighter
                target.remaining = min(target.remaining, info.remaining)
                target.reset_at = max(target.reset_at, reset_at)
        target.last_used = now
        bucket.last_used = now

    def release(self, permit: Permit) -> None:
        """Give the turn back without an answer (time-out, connection error).

        The request may still have reached Discord, so its share of ``Remaining`` stays
        spent; the next answer says where the bucket really stands.
        """
        bucket = self._outstanding.pop(permit.id)
        self._leave(bucket)

    def _on_429(self, permit: Permit, target: _Bucket, info: RateLimitInfo, now: float) -> None:
        policy = self._policy
        retry_after = info.retry_after
        if retry_after is None:
            retry_after = policy.default_retry_after
        until = now + retry_after + policy.reset_margin
        self._rate_limited += 1
        if info.edge_ban:
            self._banned_until = max(self._banned_until, until)
        elif info.is_global:
            self._global_rate_limited += 1
            self._global_blocked_until = max(self._global_blocked_until, until)
        else:
            if info.scope == "shared":
                self._shared_rate_limited += 1
            target.remaining = 0
            target.reset_at = max(target.reset_at, until)
        _log.info(
            "discord rate limited",
            route=permit.route.key,
            bucket=info.bucket,
            scope=info.scope,
            is_global=info.is_global,
            edge_ban=info.edge_ban,
            retry_after=retry_after,
            sub_limit=bool(info.remaining),
        )

    # -- buckets -----------------------------------------------------------------------------

    def _key(self, route: Route) -> BucketKey:
        return (self._hashes.get(route.key, route.key), route.major)

    def _resolve(self, route: Route) -> _Bucket:
        key = self._key(route)
        bucket = self._buckets.get(key)
        if bucket is None:
            now = self._clock.monotonic()
            if len(self._buckets) >= self._policy.max_buckets:
                self._forget_idle(now)
            bucket = _Bucket(key, now)
            self._buckets[key] = bucket
        return bucket

    def _learn(self, route: Route, bucket: _Bucket, bucket_hash: str, now: float) -> _Bucket:
        """Record ``route``'s hash; return the bucket the answer describes."""
        previous = self._hashes.get(route.key)
        if previous != bucket_hash:
            if previous is not None and _stdlib.isEnabledFor(logging.DEBUG):
                _log.debug("bucket hash changed", route=route.key, was=previous, now=bucket_hash)
            self._hashes[route.key] = bucket_hash
        key: BucketKey = (bucket_hash, route.major)
        if bucket.key == key:
            return bucket
        provisional = bucket.key == (route.key, route.major)
        existing = self._buckets.get(key)
        if existing is None:
            if not provisional:  # the route moved to another hash: a fresh bucket for it
                existing = _Bucket(key, now)
                self._buckets[key] = existing
                return existing
            self._drop(bucket)
            bucket.key = key
            self._buckets[key] = bucket
            return bucket
        if provisional:
            self._drop(bucket)
            bucket.retired_into = existing
        return existing

    def _drop(self, bucket: _Bucket) -> None:
        if self._buckets.get(bucket.key) is bucket:
            del self._buckets[bucket.key]

    def _forget_idle(self, now: float) -> None:
        horizon = now - self._policy.idle_bucket_seconds
        for key, bucket in list(self._buckets.items()):
            if (
                not bucket.busy
                and not bucket.waiters
                and bucket.last_used < horizon
                and now >= bucket.reset_at
            ):
                del self._buckets[key]

    # -- reporting ---------------------------------------------------------------------------

    def stats(self) -> LimiterStats:
        """A snapshot of the counters (for health pages and benchmarks)."""
        self._prune_invalid(self._clock.monotonic())
        return LimiterStats(
            requests=self._requests,
            rate_limited=self._rate_limited,
            global_rate_limited=self._global_rate_limited,
            shared_rate_limited=self._shared_rate_limited,
            invalid_in_window=len(self._invalid),
            buckets=len(self._buckets),
        )
