"""Snowflakes, tokens and timestamps the way Discord mints them, from the injected clock.

A snowflake is ``(ms since 2015-01-01) << 22 | worker/process bits | 12-bit sequence``; the
simulator uses the sequence alone. Ids must be unique and increasing even when a manual clock
stands still, so when more than 4,096 ids are asked for within one millisecond the minter
borrows the next millisecond (ids then run a little ahead of the clock, never backwards).

Secrets are shaped like Discord's so that the test-wide leak guard recognises them if they
ever reach a log: a bot token is ``base64(application id) . 6 chars . 27+ chars``; an
interaction token is URL-safe base64 of ``interaction:<id>:<random>`` (long, no dots).
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from dfj_common.clock import Clock
from dfj_sandbox.discord_signing import DISCORD_EPOCH_MS, snowflake

__all__ = [
    "SnowflakeMinter",
    "bot_token",
    "client_secret",
    "interaction_token",
    "iso_timestamp",
    "snowflake_ms",
]

_SEQUENCE_SIZE = 4096


class SnowflakeMinter:
    """Unique, increasing snowflakes from a clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last_ms = 0
        self._sequence = 0

    def next(self) -> str:
        """A fresh snowflake."""
        ms = int(self._clock.now() * 1000)
        if ms <= self._last_ms:
            self._sequence += 1
            if self._sequence >= _SEQUENCE_SIZE:
                self._last_ms += 1
                self._sequence = 0
        else:
            self._last_ms = ms
            self._sequence = 0
        return snowflake(self._last_ms, self._sequence)


def snowflake_ms(value: str) -> int:
    """The Unix time in milliseconds a snowflake was minted at."""
    return (int(value) >> 22) + DISCORD_EPOCH_MS


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def bot_token(application_id: str) -> str:
    """A new bot token in Discord's three-part format."""
    head = _b64(application_id.encode("ascii"))
    return f"{head}.{secrets.token_urlsafe(6)[:6]}.{secrets.token_urlsafe(30)[:38]}"


def client_secret() -> str:
    """A new OAuth2 client secret (32 URL-safe characters, like the portal's)."""
    return secrets.token_urlsafe(24)[:32]


def interaction_token(interaction_id: str) -> str:
    """A new interaction token for ``interaction_id``."""
    return _b64(f"interaction:{interaction_id}:{secrets.token_urlsafe(48)}".encode("ascii"))


def iso_timestamp(epoch: float) -> str:
    """Discord's ISO 8601 form: ``2026-01-01T00:00:00.000000+00:00``."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="microseconds")
