"""Discord's REST rate limits, kept the way Discord keeps them (``topics/rate-limits``).

**Per-route buckets.** Each route belongs to a bucket; several routes may share one (here:
both thread-creation routes, and every interaction-webhook route). A bucket is counted
separately for each *major parameter* value — the channel, the guild, or the webhook id with
its token — and for each caller. A bucket's window opens with its first request and lasts
``window`` seconds; within it ``limit`` requests pass. Every answer carries where the bucket
stands::

    X-RateLimit-Limit: 5            X-RateLimit-Remaining: 4
    X-RateLimit-Reset: 1700000005.000 (epoch)   X-RateLimit-Reset-After: 5.000
    X-RateLimit-Bucket: <opaque hash of the bucket, the same for every major parameter>

A request past the limit is answered 429 with ``X-RateLimit-Scope: user``, ``Retry-After``
(whole seconds, rounded up) and ``{"message": "You are being rate limited.", "retry_after":
<float>, "global": false}``. A client that obeys ``Remaining`` and ``Reset-After`` never sees
one: it learns each bucket from its first answer.

**Global.** At most 50 requests per second per bot token on bot routes (a fixed window opened
by the first request); interaction webhooks and callbacks are exempt. Past it: 429 with
``X-RateLimit-Global: true``, ``X-RateLimit-Scope: global`` and ``"global": true``.

**Invalid requests.** Answers 401, 403 and 429 (except 429s of scope ``shared``) are counted;
10,000 within 10 minutes bring a temporary ban, answered like Cloudflare: 429 with a
non-JSON body and no ``Via`` header.

Per-route numbers are deliberately undocumented by Discord; :data:`DEFAULT_BUCKETS` are
plausible values, and :class:`RateLimits` lets a test or benchmark set others, or lift every
limit. All timing is on the injected clock (``monotonic`` for windows, ``now`` for ``Reset``).
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final, Literal

from dfj_common.clock import Clock

__all__ = [
    "DEFAULT_BUCKETS",
    "BucketSpec",
    "BucketState",
    "RateLimiter",
    "RateLimits",
    "Rejection",
    "Scope",
    "bucket_hash",
]

Scope = Literal["user", "global", "shared"]


@dataclass(frozen=True, kw_only=True)
class BucketSpec:
    """``limit`` requests per ``window`` seconds."""

    limit: int
    window: float


DEFAULT_BUCKETS: Final[Mapping[str, BucketSpec]] = MappingProxyType(
    {
        "messages.create": BucketSpec(limit=5, window=5.0),
        "messages.edit": BucketSpec(limit=5, window=5.0),
        "channel.get": BucketSpec(limit=5, window=1.0),
        "threads.create": BucketSpec(limit=10, window=10.0),
        "dm.create": BucketSpec(limit=10, window=10.0),
        "webhook": BucketSpec(limit=5, window=2.0),
        "commands.overwrite": BucketSpec(limit=5, window=20.0),
        "commands.list": BucketSpec(limit=5, window=5.0),
        "users.me": BucketSpec(limit=5, window=5.0),
    }
)
"""The buckets routes belong to (names are ours; Discord only shows their hashes)."""


@dataclass(frozen=True, kw_only=True)
class RateLimits:
    """How the simulator limits; ``RateLimits.lifted()`` for benchmarks of our own speed."""

    enabled: bool = True
    buckets: Mapping[str, BucketSpec] = field(default_factory=lambda: DEFAULT_BUCKETS)
    global_limit: int = 50
    global_window: float = 1.0
    invalid_limit: int = 10_000
    invalid_window: float = 600.0
    ban_seconds: float = 3600.0

    @classmethod
    def lifted(cls) -> RateLimits:
        """No limit at all (the headers still come, from an unlimited bucket)."""
        return cls(enabled=False)

    def with_bucket(self, name: str, limit: int, window: float) -> RateLimits:
        """These limits with one bucket changed."""
        buckets = dict(self.buckets)
        buckets[name] = BucketSpec(limit=limit, window=window)
        return replace(self, buckets=MappingProxyType(buckets))


def bucket_hash(name: str) -> str:
    """The opaque ``X-RateLimit-Bucket`` value of a bucket."""
    return hashlib.blake2b(name.encode(), digest_size=16, person=b"dfj-sandbox").hexdigest()


@dataclass(frozen=True, kw_only=True)
class BucketState:
    """Where one bucket stands after counting a request (the headers' numbers)."""

    bucket: str
    limit: int
    remaining: int
    reset_at: float
    reset_after: float

    def headers(self) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers of an answer."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": f"{self.reset_at:.3f}",
            "X-RateLimit-Reset-After": f"{self.reset_after:.3f}",
            "X-RateLimit-Bucket": self.bucket,
        }


@dataclass(frozen=True, kw_only=True)
class Rejection:
    """A 429: how long to wait, its scope, and the bucket it came from (if any)."""

    retry_after: float
    scope: Scope
    state: BucketState | None = None

    @property
    def is_global(self) -> bool:
        """Whether the global limit was hit."""
        return self.scope == "global"

    def body(self) -> dict[str, object]:
        """Discord's 429 body."""
        message = (
            "The resource is being rate limited."
            if self.scope == "shared"
            else "You are being rate limited."
        )
        return {
            "message": message,
            "retry_after": round(self.retry_after, 3),
            "global": self.is_global,
        }

    def headers(self) -> dict[str, str]:
        """Discord's 429 headers."""
        headers = {} if self.state is None else self.state.headers()
        headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        headers["X-RateLimit-Scope"] = self.scope
        if self.is_global:
            headers["X-RateLimit-Global"] = "true"
        return headers


@dataclass
class _Window:
    """A bucket's open window; mutated in place on every request (the limiter's hot path)."""

    opened: float
    used: int


class RateLimiter:
    """Counts requests against buckets, the global limit, and the invalid-request ban."""

    def __init__(self, clock: Clock, limits: RateLimits | None = None) -> None:
        self._clock = clock
        self.limits = limits or RateLimits()
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self._global: dict[str, _Window] = {}
        self._invalid: deque[float] = deque()
        self._banned_until: float | None = None
        self.invalid_total = 0

    def configure(self, limits: RateLimits) -> None:
        """Use other limits from now on (open windows are forgotten)."""
        self.limits = limits
        self._windows.clear()
        self._global.clear()

    def _open(self, window: _Window | None, length: float, now: float) -> _Window:
        if window is None or now - window.opened >= length:
            return _Window(opened=now, used=0)
        return window

    def take_global(self, identity: str) -> Rejection | None:
        """Count one bot-route request against the global limit."""
        limits = self.limits
        if not limits.enabled:
            return None
        now = self._clock.monotonic()
        window = self._open(self._global.get(identity), limits.global_window, now)
        self._global[identity] = window
        if window.used >= limits.global_limit:
            return Rejection(retry_after=window.opened + limits.global_window - now, scope="global")
        window.used += 1
        return None

    def _snapshot(self, name: str, spec: BucketSpec, window: _Window, now: float) -> BucketState:
        reset_after = max(0.0, window.opened + spec.window - now)
        return BucketState(
            bucket=bucket_hash(name),
            limit=spec.limit,
            remaining=max(0, spec.limit - window.used),
            reset_at=self._clock.now() + reset_after,
            reset_after=reset_after,
        )

    def _unlimited(self, name: str) -> BucketState:
        spec = self.limits.buckets.get(name) or BucketSpec(limit=1, window=1.0)
        return BucketState(
            bucket=bucket_hash(name),
            limit=spec.limit,
            remaining=spec.limit,
            reset_at=self._clock.now() + spec.window,
            reset_after=spec.window,
        )

    def take(self, name: str, identity: str, major: str) -> BucketState | Rejection:
        """Count one request against a bucket: its state, or a user-scope 429."""
        spec = self.limits.buckets.get(name)
        if spec is None or not self.limits.enabled:
            return self._unlimited(name)
        now = self._clock.monotonic()
        key = (name, identity, major)
        window = self._open(self._windows.get(key), spec.window, now)
        self._windows[key] = window
        if window.used >= spec.limit:
            state = self._snapshot(name, spec, window, now)
            return Rejection(retry_after=state.reset_after, scope="user", state=state)
        window.used += 1
        return self._snapshot(name, spec, window, now)

    def peek(self, name: str, identity: str, major: str) -> BucketState:
        """A bucket's state without counting (for injected ``shared`` 429s)."""
        spec = self.limits.buckets.get(name)
        if spec is None or not self.limits.enabled:
            return self._unlimited(name)
        now = self._clock.monotonic()
        window = self._open(self._windows.get((name, identity, major)), spec.window, now)
        return self._snapshot(name, spec, window, now)

    # --- invalid requests ------------------------------------------------------------------

    def note(self, status: int, *, shared: bool = False) -> None:
        """Count an answer if it is an invalid request (401, 403, 429 not ``shared``)."""
        if status not in (401, 403, 429) or (status == 429 and shared):
            return
        self.invalid_total += 1
        now = self._clock.monotonic()
        self._invalid.append(now)
        self._prune(now)
        if self.limits.enabled and len(self._invalid) >= self.limits.invalid_limit:
            self._banned_until = now + self.limits.ban_seconds

    def _prune(self, now: float) -> None:
        while self._invalid and now - self._invalid[0] > self.limits.invalid_window:
            self._invalid.popleft()

    @property
    def invalid_recent(self) -> int:
        """Invalid requests within the current 10-minute window."""
        self._prune(self._clock.monotonic())
        return len(self._invalid)

    def banned_for(self) -> float | None:
        """Seconds left of a ban, or None when not banned."""
        if self._banned_until is None:
            return None
        left = self._banned_until - self._clock.monotonic()
        if left <= 0:
            self._banned_until = None
            self._invalid.clear()
            return None
        return left
