"""``dfj discord …``: set up the Discord application (a ``dfj.cli`` plugin, see ``dfj_common.cli``).

    dfj discord register-commands [--guild ID]   bulk-overwrite the app's commands
    dfj discord invite-url [--guild ID]          the bot's install link

``register-commands`` sends :func:`~dfj_discord_worker.command_definitions.definitions` with
``PUT /applications/{application_id}/commands`` — a bulk overwrite: Discord keeps exactly
these commands, adds the new ones, deletes the ones not listed and keeps the ids (and
permission settings) of those that stay. With ``--guild`` it overwrites that server's command
list instead; guild commands change at once, which suits a test server. The bot token
authenticates and never reaches the output; a refusal names what to fix.

``invite-url`` prints the ``bot applications.commands`` install link with the permission
integer of :mod:`~dfj_discord_worker.permissions`; ``--guild`` preselects a server.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, Final, TextIO
from urllib.parse import urlencode

from dfj_common.cli import Subcommands
from dfj_common.config import Settings
from dfj_common.errors import ConfigError, DfjError
from dfj_discord_worker.command_definitions import definitions
from dfj_discord_worker.discord import (
    DiscordBadRequest,
    DiscordClient,
    DiscordError,
    DiscordForbidden,
    DiscordNotFound,
    DiscordRateLimited,
    DiscordUnauthorized,
    DiscordUnavailable,
    Route,
)
from dfj_discord_worker.discord.routes import (
    BULK_OVERWRITE_GLOBAL_COMMANDS,
    BULK_OVERWRITE_GUILD_COMMANDS,
)
from dfj_discord_worker.permissions import BOT_PERMISSIONS

__all__ = ["RegistrationFailed", "command_body", "install_url", "register"]

SCOPES: Final = ("bot", "applications.commands")
_GLOBAL_ONLY: Final = ("integration_types", "contexts")
_KINDS: Final = {1: "slash command", 2: "user menu", 3: "message menu"}


class RegistrationFailed(DfjError):
    """Discord refused the commands, or could not be reached; the message says what to do."""


def register(subcommands: Subcommands) -> None:
    """The ``dfj.cli`` entry point: add ``dfj discord`` and its commands."""
    discord = subcommands.add_parser("discord", help="Discord application tools")
    sub = discord.add_subparsers(dest="discord_command", required=True)
    commands = sub.add_parser(
        "register-commands",
        help="bulk-overwrite the application's commands (global, or one server's)",
    )
    commands.add_argument(
        "--guild", metavar="GUILD_ID", type=_snowflake, help="only this server (instant)"
    )
    commands.set_defaults(handler=register_commands)
    invite = sub.add_parser("invite-url", help="print the bot's install link")
    invite.add_argument(
        "--guild", metavar="GUILD_ID", type=_snowflake, help="preselect this server"
    )
    invite.set_defaults(handler=invite_url)


def _snowflake(text: str) -> str:
    value = text.strip()
    if not value.isascii() or not value.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a Discord id (digits only)")
    return value


def _application_id(settings: Settings) -> str:
    settings.require("discord_application_id")
    app_id = str(settings.discord_application_id).strip()
    if not app_id.isascii() or not app_id.isdigit():
        raise ConfigError("DFJ_DISCORD_APPLICATION_ID must be the application's numeric id")
    return app_id


def command_body(guild_id: str | None) -> list[dict[str, Any]]:
    """The bulk-overwrite body: the one definition, less the global-only fields for a guild.

    ``integration_types`` and ``contexts`` apply to global commands only
    (``interactions/application-commands``); a guild's commands exist in that guild alone.
    """
    body = definitions()
    if guild_id is None:
        return body
    return [{k: v for k, v in command.items() if k not in _GLOBAL_ONLY} for command in body]


async def register_commands(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """``dfj discord register-commands``: overwrite the commands, print what Discord kept."""
    app_id = _application_id(settings)
    settings.require("discord_bot_token")
    guild_id: str | None = args.guild
    route: Route
    if guild_id is None:
        route = BULK_OVERWRITE_GLOBAL_COMMANDS.compile(application_id=app_id)
    else:
        route = BULK_OVERWRITE_GUILD_COMMANDS.compile(application_id=app_id, guild_id=guild_id)
    async with DiscordClient.from_settings(settings) as client:
        try:
            stored = await client.send(route, json=command_body(guild_id))
        except DiscordError as exc:
            raise RegistrationFailed(_refusal(exc, app_id, guild_id)) from None
        except (DiscordUnavailable, DiscordRateLimited) as exc:
            # A lost answer may still have been applied; a bulk overwrite is safe to repeat.
            raise RegistrationFailed(f"{exc}; run it again later") from None
    if not isinstance(stored, list):
        raise RegistrationFailed("Discord's answer is not a list of commands")
    where = "globally" if guild_id is None else f"in guild {guild_id}"
    out.write(f"registered {len(stored)} command(s) {where} for application {app_id}:\n")
    out.writelines(f"  {_describe(command)}\n" for command in stored)
    return 0


def _describe(command: Mapping[str, Any]) -> str:
    kind = _KINDS.get(int(command.get("type") or 1), "command")
    name = str(command.get("name"))
    if kind == "slash command":
        subs = [o for o in command.get("options") or () if o.get("type") == 1]
        return f"/{name} ({kind}, {len(subs)} subcommands)" if subs else f"/{name} ({kind})"
    return f"{name} ({kind})"


def _refusal(exc: DiscordError, app_id: str, guild_id: str | None) -> str:
    """What the operator should hear about a refusal (never the token, never the URL)."""
    if isinstance(exc, DiscordUnauthorized):
        return "the bot token was refused (401 Unauthorized): check DFJ_DISCORD_BOT_TOKEN"
    if isinstance(exc, DiscordForbidden):
        text = (
            f"Discord denied access (403) to application {app_id}'s commands: check that "
            "DFJ_DISCORD_APPLICATION_ID is the bot's application"
        )
        if guild_id is not None:
            text += f" and that the app is installed in guild {guild_id}"
        return text
    if isinstance(exc, DiscordNotFound):
        what = f"guild {guild_id}" if guild_id is not None else f"application {app_id}"
        return f"Discord does not know {what} (404)"
    if isinstance(exc, DiscordBadRequest):
        return f"Discord refused the command definitions: {exc}"
    return f"Discord refused the commands: {exc}"


def install_url(
    settings: Settings, *, guild_id: str | None = None, permissions: int = BOT_PERMISSIONS
) -> str:
    """``{web}/oauth2/authorize?client_id=…&scope=bot+applications.commands&permissions=…``."""
    query: list[tuple[str, str]] = [
        ("client_id", _application_id(settings)),
        ("scope", " ".join(SCOPES)),
        ("permissions", str(int(permissions))),
    ]
    if guild_id is not None:
        query += [("guild_id", guild_id), ("disable_guild_select", "true")]
    return f"{settings.discord_web_url.rstrip('/')}/oauth2/authorize?{urlencode(query)}"


async def invite_url(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """``dfj discord invite-url``: print the install link (needs the application id only)."""
    out.write(install_url(settings, guild_id=args.guild) + "\n")
    return 0
