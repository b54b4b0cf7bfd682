"""Discord REST for the discord-worker: one client per process, kept within Discord's limits.

:class:`DiscordClient` makes the calls delivery needs (messages, edits, threads, DMs,
interaction responses and follow-ups) and any other route through ``request``; the
:class:`RateLimiter` behind it keeps per-route buckets, the global 50 requests per second and
the invalid-request budget *before* sending. Failures are the classes of :mod:`.errors`,
which the worker runtime settles (``DiscordError`` → dead-letter with Discord's code,
``DiscordRateLimited`` → retry after ``retry_after``, ``DiscordUnavailable`` → retry with
back-off).
"""

from __future__ import annotations

from dfj_discord_worker.discord.client import DiscordClient, JsonObject, Upload, user_agent
from dfj_discord_worker.discord.errors import (
    DiscordBadRequest,
    DiscordError,
    DiscordForbidden,
    DiscordNotFound,
    DiscordRateLimited,
    DiscordUnauthorized,
    DiscordUnavailable,
)
from dfj_discord_worker.discord.headers import RateLimitInfo, parse_rate_limit
from dfj_discord_worker.discord.limiter import LimiterPolicy, LimiterStats, Permit, RateLimiter
from dfj_discord_worker.discord.routes import Route, RouteTemplate

__all__ = [
    "DiscordBadRequest",
    "DiscordClient",
    "DiscordError",
    "DiscordForbidden",
    "DiscordNotFound",
    "DiscordRateLimited",
    "DiscordUnauthorized",
    "DiscordUnavailable",
    "JsonObject",
    "LimiterPolicy",
    "LimiterStats",
    "Permit",
    "RateLimitInfo",
    "RateLimiter",
    "Route",
    "RouteTemplate",
    "Upload",
    "parse_rate_limit",
    "user_agent",
]
