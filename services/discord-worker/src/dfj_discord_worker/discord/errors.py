"""What a Discord REST call can fail with, split the way the worker runtime settles messages.

The classes subclass :mod:`dfj_common.errors`, so a delivery handler can let them propagate:

- ``DiscordError`` (a ``PermanentError``) — Discord refused and asking again will not change
  that: dead-letter with ``reason``. It carries Discord's JSON error ``code`` and ``message``
  (``50001 Missing Access``, ``10003 Unknown Channel``, ``50035 Invalid Form Body`` …) and,
  for 50035, the failing fields. Subclasses by status:

  - ``DiscordBadRequest`` — 400 (and 413, 422): the body broke a rule;
  - ``DiscordUnauthorized`` — 401: the bot token is wrong or revoked (an operator problem);
  - ``DiscordForbidden`` — 403: the bot lacks access or a permission in that channel;
  - ``DiscordNotFound`` — 404: the channel, message or (interaction) webhook is gone.

  ``tell_admin`` says whether the person who configured the subscription can fix it (give the
  bot access, pick another channel); ``interaction_expired`` says an interaction token no
  longer works (after 15 minutes), so the caller may fall back to a channel message.
- ``DiscordUnavailable`` (a ``TransientError``) — 5xx, time-outs, connection errors, after the
  client's own retries: the bus redelivers later.
- ``DiscordRateLimited`` (a ``RateLimited``) — waiting for Discord would take longer than the
  client is willing to hold a message (or Discord's edge banned us for a while): retry after
  ``retry_after``.

The exception text (``str(exc)``) goes to logs and dead-letter descriptions, so it names the
status, Discord's code and message, the method and the route *template* — never the URL,
which for interaction webhooks contains the interaction token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from dfj_common.errors import PermanentError, RateLimited, TransientError

__all__ = [
    "ADMIN_CODES",
    "EXPIRED_INTERACTION_CODES",
    "KNOWN_CODES",
    "DiscordBadRequest",
    "DiscordError",
    "DiscordForbidden",
    "DiscordNotFound",
    "DiscordRateLimited",
    "DiscordUnauthorized",
    "DiscordUnavailable",
    "error_for_status",
]

KNOWN_CODES: Final[Mapping[int, str]] = MappingProxyType(
    {
        10003: "UnknownChannel",
        10004: "UnknownGuild",
        10008: "UnknownMessage",
        10013: "UnknownUser",
        10015: "UnknownWebhook",
        10062: "UnknownInteraction",
        20001: "BotsCannotUseEndpoint",
        40001: "Unauthorized",
        40060: "InteractionAlreadyAcknowledged",
        50001: "MissingAccess",
        50006: "EmptyMessage",
        50007: "CannotMessageUser",
        50008: "NonTextChannel",
        50013: "MissingPermissions",
        50024: "WrongChannelType",
        50027: "InvalidWebhookToken",
        50035: "InvalidFormBody",
        50083: "ArchivedThread",
        160004: "ThreadAlreadyCreated",
        160005: "ThreadLocked",
    }
)
"""Discord JSON error codes we name in ``reason`` (others become ``Discord<status>``)."""

ADMIN_CODES: Final = frozenset({10003, 10004, 50001, 50008, 50013, 50024, 160005})
"""Codes the configuring admin can fix: access, permissions, a channel gone or unsuitable."""

EXPIRED_INTERACTION_CODES: Final = frozenset({10015, 10062, 50027})
"""Codes meaning the interaction token (or its webhook) no longer works."""

MAX_MESSAGE: Final = 200
MAX_FIELD_ERRORS: Final = 10


class DiscordError(PermanentError):
    """Discord refused the request for good; ``code``/``discord_message`` say why."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        code: int | None = None,
        discord_message: str | None = None,
        field_errors: tuple[str, ...] = (),
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason or _reason(status, code))
        self.status = status
        self.code = code
        self.discord_message = discord_message
        self.field_errors = field_errors

    @property
    def tell_admin(self) -> bool:
        """Whether the admin who set up the delivery should hear about it (they can fix it)."""
        if self.code is not None:
            return self.code in ADMIN_CODES
        return self.status == 403

    @property
    def interaction_expired(self) -> bool:
        """Whether the interaction token is dead (too late, or the interaction is gone)."""
        return self.code in EXPIRED_INTERACTION_CODES


class DiscordBadRequest(DiscordError):
    """400: the request broke one of Discord's rules (``field_errors`` for 50035)."""


class DiscordUnauthorized(DiscordError):
    """401: Discord did not accept the bot token; an operator must fix the configuration."""


class DiscordForbidden(DiscordError):
    """403: the bot may not do that there (Missing Access, Missing Permissions)."""


class DiscordNotFound(DiscordError):
    """404: the channel, message, user or webhook does not exist (any more)."""


class DiscordUnavailable(TransientError):
    """Discord could not be reached or failed on its side, after the client's retries."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DiscordRateLimited(RateLimited):
    """Waiting for Discord's rate limit would take too long here; retry after ``retry_after``.

    ``scope`` is Discord's ``X-RateLimit-Scope`` when a 429 said it, or ``local`` when our
    own limiter decided; ``banned`` marks a 429 from Discord's edge (not JSON), which means
    the invalid-request limit was exceeded.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        scope: str = "local",
        is_global: bool = False,
        banned: bool = False,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.scope = scope
        self.is_global = is_global
        self.banned = banned


def _reason(status: int | None, code: int | None) -> str:
    if code is not None and code in KNOWN_CODES:
        return "Discord" + KNOWN_CODES[code]
    if status is None:
        return "DiscordError"
    return f"Discord{status}"


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field_errors(errors: Any, path: str = "") -> list[str]:
    """Discord's nested ``errors`` object flattened to ``embeds.0.title: CODE`` lines.

    Only the path and Discord's error *code* are kept: Discord's wording is generic, but a
    path is all a reader needs, and codes never quote what we sent.
    """
    found: list[str] = []
    if not isinstance(errors, Mapping):
        return found
    for key, value in errors.items():
        if key == "_errors" and isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping) and isinstance(item.get("code"), str):
                    found.append(f"{path or '(body)'}: {_clip(item['code'], 60)}")
        else:
            found.extend(_field_errors(value, f"{path}.{key}" if path else str(key)))
        if len(found) >= MAX_FIELD_ERRORS:
            break
    return found[:MAX_FIELD_ERRORS]


def _decode(body: bytes) -> Mapping[str, Any]:
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return decoded if isinstance(decoded, Mapping) else {}


def error_for_status(status: int, *, method: str, route: str, body: bytes) -> DiscordError:
    """The error for a 4xx other than 429 (``route`` is the path *template*)."""
    decoded = _decode(body)
    raw_code = decoded.get("code")
    code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    raw_message = decoded.get("message")
    discord_message = _clip(raw_message) if isinstance(raw_message, str) else None
    fields = tuple(_field_errors(decoded.get("errors")))
    said = " ".join(part for part in (str(code or ""), discord_message or "") if part)
    text = f"Discord answered {status}{f' ({said})' if said else ''} to {method} {route}"
    if fields:
        text += ": " + "; ".join(fields)
    kind: type[DiscordError]
    if status in (400, 413, 422):
        kind = DiscordBadRequest
    elif status == 401:
        kind = DiscordUnauthorized
    elif status == 403:
        kind = DiscordForbidden
    elif status == 404:
        kind = DiscordNotFound
    else:
        kind = DiscordError
    return kind(
        text, status=status, code=code, discord_message=discord_message, field_errors=fields
    )
