"""Application commands: bulk overwrite and list, global and per guild.

``PUT /applications/{application.id}/commands`` replaces the whole global list (``PUT
…/guilds/{guild.id}/commands`` a guild's) and answers the stored commands. As on Discord, a
command that keeps its type and name keeps its id (and gets a new ``version``);
``default_member_permissions`` is returned as a string bitset or null; context-menu commands
have an empty ``description``; global commands default to ``integration_types: [0]`` and
``contexts: [0, 1, 2]``. The stored definitions are what ``sim.commands()`` shows a test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dfj_sandbox.discord_sim.errors import MISSING_ACCESS, UNKNOWN_GUILD, Reply
from dfj_sandbox.discord_sim.render import strip_nulls
from dfj_sandbox.discord_sim.rest import RestRequest, refuse

__all__ = ["list_commands", "overwrite_commands"]


def _check_application(req: RestRequest) -> None:
    if req.param("application_id") != req.world.application.id:
        raise refuse(403, MISSING_ACCESS)


def _guild_id(req: RestRequest) -> str | None:
    guild_id = req.path_params.get("guild_id")
    if guild_id is None:
        return None
    guild = req.world.guilds.get(guild_id)
    if guild is None:
        raise refuse(404, UNKNOWN_GUILD)
    if guild.member(req.world.application.id) is None:
        raise refuse(403, MISSING_ACCESS)
    return guild_id


def _stored(
    req: RestRequest,
    definition: Mapping[str, Any],
    existing: Mapping[tuple[int, str], Mapping[str, Any]],
    guild_id: str | None,
) -> dict[str, Any]:
    world = req.world
    clean = strip_nulls(definition)
    kind = int(clean.get("type") or 1)
    name = str(clean["name"])
    old = existing.get((kind, name))
    command_id = str(clean.get("id") or (old["id"] if old else world.ids.next()))
    permissions = clean.get("default_member_permissions")
    stored: dict[str, Any] = {
        "id": command_id,
        "application_id": world.application.id,
        "version": world.ids.next(),
        "type": kind,
        "name": name,
        "description": str(clean.get("description") or "") if kind == 1 else "",
        "default_member_permissions": None if permissions is None else str(permissions),
        "nsfw": bool(clean.get("nsfw", False)),
    }
    for key in ("name_localizations", "description_localizations", "options"):
        if key in clean:
            stored[key] = clean[key]
    if guild_id is not None:
        stored["guild_id"] = guild_id
        stored["integration_types"] = [0]
        stored["contexts"] = None
    else:
        stored["integration_types"] = list(clean.get("integration_types") or [0])
        stored["contexts"] = list(clean.get("contexts") or [0, 1, 2])
    return stored


def overwrite_commands(req: RestRequest) -> Reply:
    """Bulk Overwrite (Global or Guild) Application Commands."""
    _check_application(req)
    guild_id = _guild_id(req)
    world = req.world
    current = world.global_commands if guild_id is None else world.guild_commands.get(guild_id, ())
    existing = {(int(c["type"]), str(c["name"])): c for c in current}
    definitions = req.body if isinstance(req.body, list) else []
    stored = tuple(
        _stored(req, d, existing, guild_id) for d in definitions if isinstance(d, Mapping)
    )
    if guild_id is None:
        world.global_commands = stored
    else:
        world.guild_commands[guild_id] = stored
    return Reply(status=200, body=[dict(c) for c in stored])


def list_commands(req: RestRequest) -> Reply:
    """Get (Global or Guild) Application Commands."""
    _check_application(req)
    guild_id = _guild_id(req)
    world = req.world
    found = world.global_commands if guild_id is None else world.guild_commands.get(guild_id, ())
    return Reply(status=200, body=[dict(c) for c in found])
