"""The REST routes the simulator serves: template, auth, bucket, major parameter, handler.

Templates are spelled exactly as Discord's OpenAPI document spells them (``{webhook_id}`` is
the application id for interaction webhooks, ``{webhook_token}`` the interaction token), so
the router that dispatches a request is also what finds its schema, and what
``sim.calls`` records.

``auth`` says who may call: ``bot`` (``Authorization: Bot <token>``), ``user`` (the bot, or a
Bearer token from OAuth2), ``webhook`` (nobody: the token in the path is the credential) and
``callback`` (likewise, for the interaction callback). ``major`` names the path parameter a
bucket is counted per (``webhook`` = webhook id and token). ``rules`` adds the documented
whole-body checks of :mod:`~dfj_sandbox.discord_sim.limits` to the spec's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal

from dfj_sandbox.discord_sim.limits import command_errors, message_errors
from dfj_sandbox.discord_sim.messages import CREATE_FLAGS, EDIT_FLAGS, WEBHOOK_FLAGS
from dfj_sandbox.discord_sim.openapi import FieldError
from dfj_sandbox.discord_sim.rest import Handler
from dfj_sandbox.discord_sim.rest_channels import (
    create_dm,
    create_message,
    edit_channel_message,
    get_channel,
    get_channel_message,
    start_thread,
    start_thread_from_message,
)
from dfj_sandbox.discord_sim.rest_commands import list_commands, overwrite_commands
from dfj_sandbox.discord_sim.rest_users import get_authorization, get_me
from dfj_sandbox.discord_sim.rest_webhooks import (
    create_followup,
    delete_webhook_message,
    edit_webhook_message,
    get_webhook_message,
    interaction_callback,
)

__all__ = ["ROUTES", "Auth", "Major", "Route", "Router"]

Auth = Literal["bot", "user", "webhook", "callback"]
Major = Literal["channel_id", "guild_id", "webhook"] | None
Rules = Callable[[Any], list[FieldError]]


@dataclass(frozen=True, kw_only=True)
class Route:
    """One served operation."""

    method: str
    template: str
    handler: Handler
    auth: Auth
    bucket: str | None
    major: Major
    rules: Rules | None = None

    @property
    def key(self) -> str:
        """``METHOD template``, as ``sim.fail_next`` names routes."""
        return f"{self.method} {self.template}"


_CHANNEL: Final = "/channels/{channel_id}"
_MESSAGES: Final = _CHANNEL + "/messages"
_WEBHOOK: Final = "/webhooks/{webhook_id}/{webhook_token}"
_ORIGINAL: Final = _WEBHOOK + "/messages/@original"
_WEBHOOK_MESSAGE: Final = _WEBHOOK + "/messages/{message_id}"
_COMMANDS: Final = "/applications/{application_id}/commands"
_GUILD_COMMANDS: Final = "/applications/{application_id}/guilds/{guild_id}/commands"

_create_rules = partial(message_errors, flags_allowed=CREATE_FLAGS)
_edit_rules = partial(message_errors, flags_allowed=EDIT_FLAGS)
_webhook_rules = partial(message_errors, flags_allowed=WEBHOOK_FLAGS)


def _callback_rules(body: Any) -> list[FieldError]:
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(body, Mapping) or body.get("type") not in (4, 7):
        return []
    return [
        FieldError(path=("data", *e.path), code=e.code, message=e.message)
        for e in message_errors(data, flags_allowed=WEBHOOK_FLAGS)
    ]


def _route(  # noqa: PLR0917 - one table row per call reads best positionally
    method: str,
    template: str,
    handler: Handler,
    auth: Auth,
    bucket: str | None,
    major: Major,
    rules: Rules | None = None,
) -> Route:
    return Route(
        method=method,
        template=template,
        handler=handler,
        auth=auth,
        bucket=bucket,
        major=major,
        rules=rules,
    )


ROUTES: Final[tuple[Route, ...]] = (
    _route(
        "POST", _MESSAGES, create_message, "bot", "messages.create", "channel_id", _create_rules
    ),
    _route(
        "PATCH",
        _MESSAGES + "/{message_id}",
        edit_channel_message,
        "bot",
        "messages.edit",
        "channel_id",
        _edit_rules,
    ),
    _route(
        "GET", _MESSAGES + "/{message_id}", get_channel_message, "bot", "channel.get", "channel_id"
    ),
    _route("GET", _CHANNEL, get_channel, "bot", "channel.get", "channel_id"),
    _route(
        "POST",
        _MESSAGES + "/{message_id}/threads",
        start_thread_from_message,
        "bot",
        "threads.create",
        "channel_id",
    ),
    _route("POST", _CHANNEL + "/threads", start_thread, "bot", "threads.create", "channel_id"),
    _route("POST", "/users/@me/channels", create_dm, "bot", "dm.create", None),
    _route("GET", "/users/@me", get_me, "user", "users.me", None),
    _route("GET", "/oauth2/@me", get_authorization, "user", "users.me", None),
    _route("POST", _WEBHOOK, create_followup, "webhook", "webhook", "webhook", _webhook_rules),
    _route("GET", _ORIGINAL, get_webhook_message, "webhook", "webhook", "webhook"),
    _route(
        "PATCH", _ORIGINAL, edit_webhook_message, "webhook", "webhook", "webhook", _webhook_rules
    ),
    _route("DELETE", _ORIGINAL, delete_webhook_message, "webhook", "webhook", "webhook"),
    _route("GET", _WEBHOOK_MESSAGE, get_webhook_message, "webhook", "webhook", "webhook"),
    _route(
        "PATCH",
        _WEBHOOK_MESSAGE,
        edit_webhook_message,
        "webhook",
        "webhook",
        "webhook",
        _webhook_rules,
    ),
    _route("DELETE", _WEBHOOK_MESSAGE, delete_webhook_message, "webhook", "webhook", "webhook"),
    _route(
        "POST",
        "/interactions/{interaction_id}/{interaction_token}/callback",
        interaction_callback,
        "callback",
        None,
        None,
        _callback_rules,
    ),
    _route("PUT", _COMMANDS, overwrite_commands, "bot", "commands.overwrite", None, command_errors),
    _route("GET", _COMMANDS, list_commands, "bot", "commands.list", None),
    _route(
        "PUT",
        _GUILD_COMMANDS,
        overwrite_commands,
        "bot",
        "commands.overwrite",
        "guild_id",
        command_errors,
    ),
    _route("GET", _GUILD_COMMANDS, list_commands, "bot", "commands.list", "guild_id"),
)
"""Every route served."""


def _pattern(template: str) -> re.Pattern[str]:
    parts = []
    for segment in template.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "$")


class Router:
    """Finds the route of ``METHOD path``; literal segments beat parameters."""

    def __init__(self, routes: tuple[Route, ...] = ROUTES) -> None:
        templates = sorted(
            {r.template for r in routes},
            key=lambda t: tuple(1 if s.startswith("{") else 0 for s in t.strip("/").split("/")),
        )
        self._patterns = [(t, _pattern(t)) for t in templates]
        self._routes = {(r.method, r.template): r for r in routes}
        self.keys = frozenset(r.key for r in routes)
        self.templates = frozenset(templates)

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """The route and path parameters; ``(None, {}, known)`` when nothing serves it.

        ``known`` tells a path served with other methods (405) from an unknown one (404).
        """
        known = False
        for template, pattern in self._patterns:
            found = pattern.match(path)
            if found is None:
                continue
            route = self._routes.get((method.upper(), template))
            if route is not None:
                return route, found.groupdict(), True
            known = True
        return None, {}, known
