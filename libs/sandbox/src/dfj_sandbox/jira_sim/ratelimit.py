"""Jira Cloud's rate limiting, on demand, per site.

Jira answers an over-limit request with 429 (or 503 when it sheds load) and these headers:
``Retry-After`` (seconds), ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``,
``X-RateLimit-Reset`` (an ISO 8601 instant), ``X-RateLimit-NearLimit`` and ``RateLimit-Reason``
naming the limit that was hit (``jira-burst-based``, ``jira-quota-tenant-based``,
``jira-quota-global-based``, ``jira-per-issue-on-write``).

Two ways to trigger it: :meth:`SiteLimiter.throttle` makes the next *n* requests fail (for
tests of back-off), and :meth:`SiteLimiter.limit` sets a steady fixed-window budget measured on
the injected clock (for benchmarks that should meet realistic limits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from dfj_common.clock import Clock

__all__ = ["Rejection", "SiteLimiter"]


@dataclass(frozen=True, kw_only=True)
class Rejection:
    """Why and how one request is refused."""

    status: int
    retry_after: float
    reason: str
    limit: int
    remaining: int
    reset_at: float

    def headers(self) -> dict[str, str]:
        """The headers Jira sends with the refusal."""
        reset = datetime.fromtimestamp(self.reset_at, tz=UTC)
        return {
            "Retry-After": str(max(1, math.ceil(self.retry_after))),
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "X-RateLimit-NearLimit": "true",
            "RateLimit-Reason": self.reason,
        }


@dataclass(frozen=True, kw_only=True)
class _Throttle:
    count: int
    retry_after: float
    status: int
    reason: str
    limit: int


@dataclass(frozen=True, kw_only=True)
class _Budget:
    limit: int
    window: float
    reason: str


class SiteLimiter:
    """The rate limits of one site, checked once per request."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._throttle: _Throttle | None = None
        self._budget: _Budget | None = None
        self._window_start = 0.0
        self._used = 0

    def throttle(
        self,
        count: int = 1,
        *,
        retry_after: float = 5.0,
        status: int = 429,
        reason: str = "jira-burst-based",
        limit: int = 100,
    ) -> None:
        """Refuse the next ``count`` requests with ``status`` (429 or 503).

        ``limit`` is what ``X-RateLimit-Limit`` reports; the refusals do not depend on it.
        """
        if status not in (429, 503):
            raise ValueError("Jira throttles with 429 or 503")
        if count < 0:
            raise ValueError("count must not be negative")
        self._throttle = _Throttle(
            count=count, retry_after=retry_after, status=status, reason=reason, limit=limit
        )

    def limit(
        self, requests: int | None, *, per: float = 1.0, reason: str = "jira-burst-based"
    ) -> None:
        """Allow ``requests`` per ``per`` seconds (fixed windows); None lifts the limit."""
        self._budget = (
            None if requests is None else _Budget(limit=requests, window=per, reason=reason)
        )
        self._window_start = self._clock.monotonic()
        self._used = 0

    def check(self) -> Rejection | None:
        """Count one request; the rejection to answer with, or None to let it through."""
        now = self._clock.now()
        throttle = self._throttle
        if throttle is not None and throttle.count > 0:
            self._throttle = replace(throttle, count=throttle.count - 1)
            return Rejection(
                status=throttle.status,
                retry_after=throttle.retry_after,
                reason=throttle.reason,
                limit=throttle.limit,
                remaining=0,
                reset_at=now + throttle.retry_after,
            )
        budget = self._budget
        if budget is None:
            return None
        mono = self._clock.monotonic()
        if mono - self._window_start >= budget.window:
            elapsed_windows = math.floor((mono - self._window_start) / budget.window)
            self._window_start += elapsed_windows * budget.window
            self._used = 0
        if self._used < budget.limit:
            self._used += 1
            return None
        wait = self._window_start + budget.window - mono
        return Rejection(
            status=429,
            retry_after=wait,
            reason=budget.reason,
            limit=budget.limit,
            remaining=0,
            reset_at=now + wait,
        )
