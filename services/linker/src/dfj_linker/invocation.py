"""Who asked the linker, where, and how to answer: the common part of a command event.

The gateway routes ``/jira link|unlink|me|connect|disconnect|permissions|privacy`` and the
components of the linker's namespaces here as ``discord.command`` / ``discord.component``
events (``dfj_gateway.discord.interactions``). An event that cannot be answered (no token, no
user) is a ``MalformedMessage`` and is dead-lettered with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from dfj_common.envelope import Envelope
from dfj_common.errors import MalformedMessage

__all__ = ["DISCORD_COMMAND", "DISCORD_COMPONENT", "Invocation", "parse_invocation"]

DISCORD_COMMAND: Final = "discord.command"
DISCORD_COMPONENT: Final = "discord.component"
_SNOWFLAKE: Final = re.compile(r"^[0-9]{1,20}$")
_MAX_TOKEN: Final = 500
_MANAGE_GUILD: Final = 1 << 5
_ADMINISTRATOR: Final = 1 << 3


@dataclass(frozen=True, kw_only=True, slots=True)
class Invocation:
    """A command or click for the linker: ids, the answer's token, the subcommand asked for."""

    event_id: str
    event_type: str
    interaction_id: str
    application_id: str
    token: str = field(repr=False)
    guild_id: str | None
    channel_id: str
    user_id: str
    permissions: int
    created_at: float
    subcommand: str
    options: Mapping[str, Any]

    @property
    def followup(self) -> bool:
        """A click's deferred response is the message the button sits on: answer beside it."""
        return self.event_type == DISCORD_COMPONENT

    @property
    def may_manage_guild(self) -> bool:
        return bool(self.permissions & (_MANAGE_GUILD | _ADMINISTRATOR))


def parse_invocation(envelope: Envelope) -> Invocation:
    """The invocation of a command event; ``MalformedMessage`` when it cannot be answered."""
    if envelope.type not in (DISCORD_COMMAND, DISCORD_COMPONENT):
        raise MalformedMessage(f"{envelope.type!r} is not a command event", reason="CommandEvent")
    data = envelope.data
    token = data.get("token")
    if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN:
        raise MalformedMessage("command event lacks the interaction token", reason="CommandField")
    if envelope.type == DISCORD_COMMAND:
        command = data.get("command")
        if not isinstance(command, Mapping):
            raise MalformedMessage("command event lacks its command", reason="CommandField")
        name = command.get("subcommand") or command.get("group") or command.get("name")
        options = command.get("options")
    else:
        component = data.get("component")
        custom_id = component.get("custom_id") if isinstance(component, Mapping) else None
        if not isinstance(custom_id, str):
            raise MalformedMessage("component event lacks its custom id", reason="CommandField")
        name, _, rest = custom_id.partition(":")
        options = {"action": rest}
    return Invocation(
        event_id=envelope.id,
        event_type=envelope.type,
        interaction_id=_snowflake(data, "interaction_id"),
        application_id=_snowflake(data, "application_id"),
        token=token,
        guild_id=_snowflake(data, "guild_id") if data.get("guild_id") is not None else None,
        channel_id=_snowflake(data, "channel_id"),
        user_id=_snowflake(data, "user_id"),
        permissions=_permissions(data.get("permissions")),
        created_at=envelope.time.timestamp(),
        subcommand=name if isinstance(name, str) else "",
        options=dict(options) if isinstance(options, Mapping) else {},
    )


def _snowflake(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not _SNOWFLAKE.match(value):
        raise MalformedMessage(f"command event lacks a valid {key}", reason="CommandField")
    return value


def _permissions(value: object) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0
