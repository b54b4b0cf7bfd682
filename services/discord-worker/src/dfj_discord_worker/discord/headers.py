"""Reading Discord's rate-limit headers and 429 bodies into one plain value.

Every answer may carry where its bucket stands (``topics/rate-limits``)::

    X-RateLimit-Limit: 5   X-RateLimit-Remaining: 0   X-RateLimit-Reset-After: 4.2
    X-RateLimit-Reset: 1470173023.123 (epoch)   X-RateLimit-Bucket: <opaque hash>

and a 429 adds ``Retry-After`` (whole seconds), ``X-RateLimit-Global``,
``X-RateLimit-Scope`` (``user``, ``global`` or ``shared``) and a JSON body
``{"message", "retry_after": <float seconds>, "global": <bool>}``. The body's float is the
precise figure, so it wins over the header; ``Reset-After`` is preferred over ``Reset``
because it does not depend on our clock agreeing with Discord's.

A 429 whose body is not JSON (or has no ``retry_after``) comes from Discord's edge
(Cloudflare), not the API: that is the ban for too many invalid requests, and
:attr:`RateLimitInfo.edge_ban` says so. Parsing never raises: a malformed header counts as
absent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["RateLimitInfo", "parse_rate_limit"]

_MAX_SECONDS: Final = 24 * 3600.0  # anything longer is nonsense; clamp instead of sleeping on it


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitInfo:
    """What one answer said about rate limits (``None`` where it said nothing)."""

    bucket: str | None = None
    limit: int | None = None
    remaining: int | None = None
    reset_after: float | None = None  # seconds from when the answer arrived
    retry_after: float | None = None  # only on 429
    is_global: bool = False
    scope: str | None = None
    edge_ban: bool = False

    @property
    def has_bucket(self) -> bool:
        """Whether the answer described its bucket completely enough to pace by."""
        return self.remaining is not None and self.reset_after is not None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _seconds(text: Any) -> float | None:
    if isinstance(text, bool):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return min(value, _MAX_SECONDS)


def _epoch(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _count(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def _body(body: bytes) -> Mapping[str, Any] | None:
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded if isinstance(decoded, Mapping) else None


def parse_rate_limit(
    headers: Mapping[str, str], *, status: int, body: bytes = b"", now: float
) -> RateLimitInfo:
    """The rate-limit facts of one answer; ``now`` (epoch seconds) converts ``Reset``."""
    reset_after = _seconds(_header(headers, "X-RateLimit-Reset-After"))
    if reset_after is None:
        reset_at = _epoch(_header(headers, "X-RateLimit-Reset"))
        if reset_at is not None:
            reset_after = min(max(reset_at - now, 0.0), _MAX_SECONDS)
    scope = _header(headers, "X-RateLimit-Scope")
    info = RateLimitInfo(
        bucket=_header(headers, "X-RateLimit-Bucket"),
        limit=_count(_header(headers, "X-RateLimit-Limit")),
        remaining=_count(_header(headers, "X-RateLimit-Remaining")),
        reset_after=reset_after,
        scope=scope.lower() if scope else None,
        is_global=(_header(headers, "X-RateLimit-Global") or "").lower() == "true",
    )
    if status != 429:
        return info
    decoded = _body(body)
    retry_after = None if decoded is None else _seconds(decoded.get("retry_after"))
    edge_ban = retry_after is None
    if retry_after is None:
        retry_after = _seconds(_header(headers, "Retry-After"))
    if retry_after is None:
        retry_after = reset_after
    is_global = info.is_global or info.scope == "global"
    if decoded is not None and decoded.get("global") is True:
        is_global = True
    return RateLimitInfo(
        bucket=info.bucket,
        limit=info.limit,
        remaining=info.remaining,
        reset_after=info.reset_after,
        retry_after=retry_after,
        is_global=is_global,
        scope=info.scope,
        edge_ban=edge_ban,
    )
