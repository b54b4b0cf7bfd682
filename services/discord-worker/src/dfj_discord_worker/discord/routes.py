"""Discord REST routes: a path template, its parameters, and the *major parameter*.

Discord limits each route per **major parameter** (``topics/rate-limits``): the channel, the
guild, or the webhook (its id together with its token). Two requests to the same route in
different channels draw from different buckets; two requests in one channel to routes that
share a bucket draw from the same one. A :class:`Route` therefore carries the template
(``POST /channels/{channel_id}/messages``), which names the route for rate limiting and for
logs, and the parameter values that fill it.

Interaction webhooks (``/webhooks/{application_id}/{interaction_token}…``) are webhooks
whose id is the application id and whose token is the interaction token; their major
parameter is both. Tokens are secrets: a parameter whose name ends in ``token`` never shows in
``repr``, in :attr:`Route.major` (only a digest of it does) or in logs (which use
:attr:`Route.template`). Only :attr:`Route.path`, the URL path sent on the wire, contains it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

__all__ = [
    "BULK_OVERWRITE_GLOBAL_COMMANDS",
    "BULK_OVERWRITE_GUILD_COMMANDS",
    "CREATE_DM",
    "CREATE_FOLLOWUP",
    "CREATE_MESSAGE",
    "EDIT_MESSAGE",
    "EDIT_ORIGINAL_RESPONSE",
    "GET_CHANNEL",
    "START_THREAD",
    "START_THREAD_FROM_MESSAGE",
    "Route",
    "RouteTemplate",
    "is_secret_parameter",
]

_PLACEHOLDER: Final = re.compile(r"\{([a-z_]+)\}")
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_WEBHOOK_IDS: Final = ("webhook_id", "application_id", "interaction_id")
_WEBHOOK_TOKENS: Final = ("webhook_token", "interaction_token")
_DIGEST_CHARS: Final = 16

ParamValue = str | int


def is_secret_parameter(name: str) -> bool:
    """Whether a path parameter holds a credential (webhook and interaction tokens)."""
    return name.endswith("token")


def _digest(secret: str) -> str:
    """A stable, non-reversible stand-in for a token, fit for map keys and debug output."""
    return hashlib.sha256(secret.encode()).hexdigest()[:_DIGEST_CHARS]


@dataclass(frozen=True, slots=True)
class Route:
    """One request's route: method, template and the values that fill it."""

    method: str
    template: str
    params: tuple[tuple[str, str], ...] = field(repr=False)

    @classmethod
    def of(
        cls, method: str, template: str, params: Mapping[str, ParamValue] | None = None
    ) -> Route:
        """Check that ``params`` fill exactly the template's placeholders, then build."""
        verb = method.upper()
        if verb not in _METHODS:
            raise ValueError(f"unsupported HTTP method {method!r}")
        if not template.startswith("/"):
            raise ValueError("a route template starts with '/'")
        wanted = _PLACEHOLDER.findall(template)
        given = dict(params or {})
        missing = [name for name in wanted if name not in given]
        extra = sorted(set(given) - set(wanted))
        if missing or extra:
            raise ValueError(f"{verb} {template}: missing parameters {missing}, unexpected {extra}")
        values: list[tuple[str, str]] = []
        for name in wanted:
            value = given[name]
            text = str(value)
            if isinstance(value, bool) or not text:
                raise ValueError(f"{verb} {template}: parameter {name} must be a non-empty id")
            values.append((name, text))
        return cls(verb, template, tuple(values))

    @property
    def key(self) -> str:
        """What Discord limits: method and template (``POST /channels/{channel_id}/messages``)."""
        return f"{self.method} {self.template}"

    @property
    def path(self) -> str:
        """The URL path to send (may contain a token: never log it)."""
        values = dict(self.params)
        return _PLACEHOLDER.sub(lambda m: quote(values[m.group(1)], safe=""), self.template)

    @property
    def has_secret(self) -> bool:
        """Whether :attr:`path` contains a token."""
        return any(is_secret_parameter(name) for name, _ in self.params)

    @property
    def major(self) -> str:
        """The major parameter: ``channel:1``, ``guild:2``, ``webhook:3:<digest>`` or ``""``."""
        values = dict(self.params)
        if "channel_id" in values:
            return "channel:" + values["channel_id"]
        if "guild_id" in values:
            return "guild:" + values["guild_id"]
        ident = next((values[n] for n in _WEBHOOK_IDS if n in values), None)
        if ident is not None:
            token = next((values[n] for n in _WEBHOOK_TOKENS if n in values), None)
            return f"webhook:{ident}" + ("" if token is None else ":" + _digest(token))
        return ""

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class RouteTemplate:
    """A route before its parameters are known; :meth:`compile` fills it."""

    method: str
    template: str

    def compile(self, **params: ParamValue) -> Route:
        """The route with ``params`` filled in."""
        return Route.of(self.method, self.template, params)


CREATE_MESSAGE: Final = RouteTemplate("POST", "/channels/{channel_id}/messages")
EDIT_MESSAGE: Final = RouteTemplate("PATCH", "/channels/{channel_id}/messages/{message_id}")
START_THREAD_FROM_MESSAGE: Final = RouteTemplate(
    "POST", "/channels/{channel_id}/messages/{message_id}/threads"
)
START_THREAD: Final = RouteTemplate("POST", "/channels/{channel_id}/threads")
GET_CHANNEL: Final = RouteTemplate("GET", "/channels/{channel_id}")
CREATE_DM: Final = RouteTemplate("POST", "/users/@me/channels")
EDIT_ORIGINAL_RESPONSE: Final = RouteTemplate(
    "PATCH", "/webhooks/{application_id}/{interaction_token}/messages/@original"
)
CREATE_FOLLOWUP: Final = RouteTemplate("POST", "/webhooks/{application_id}/{interaction_token}")
BULK_OVERWRITE_GLOBAL_COMMANDS: Final = RouteTemplate(
    "PUT", "/applications/{application_id}/commands"
)
BULK_OVERWRITE_GUILD_COMMANDS: Final = RouteTemplate(
    "PUT", "/applications/{application_id}/guilds/{guild_id}/commands"
)
