"""``/jira permissions``: who may use what in a server (Manage Server only).

Per capability — ``view`` (view and search), ``create``, ``act`` (assign, transition, comment,
watch), ``manage`` (subscriptions) — a server chooses *everyone*, *linked users only*, or a
set of roles. Without a choice: linked users only for the first three, Manage Server for
``manage``; and Manage Server may always manage, so a server cannot lock its admins out.
Every Jira call still runs as the member's linked account, so Jira's own permissions hold
whatever is chosen here; these rules are a second, Discord-side gate that the jira-worker reads
on every command (``dfj_jira_worker.commands.access``).

Stored as ``RoleRules`` (the roles) and ``FeatureAccess`` (``all`` or ``linked``): choosing
*everyone* or *linked users* clears the roles; choosing a role adds it to those allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import structlog

from dfj_common.storage import AccessMode, FeatureAccess, GuildConnections, RoleRules
from dfj_linker.invocation import Invocation
from dfj_linker.replies import Replies

__all__ = ["CAPABILITIES", "Permissions"]

_log: Final = structlog.get_logger("dfj.linker.permissions")

CAPABILITIES: Final = {
    "view": "View and search",
    "create": "Create issues",
    "act": "Act on issues",
    "manage": "Manage subscriptions",
}
_SNOWFLAKE: Final = re.compile(r"^[0-9]{1,20}$")
_WHO: Final = ("everyone", "linked", "role")


@dataclass(frozen=True, kw_only=True)
class Permissions:
    """Shows and edits a server's rules."""

    connections: GuildConnections
    role_rules: RoleRules
    access: FeatureAccess
    replies: Replies

    async def handle(self, invocation: Invocation) -> None:
        refusal = await self._refusal(invocation)
        if refusal is not None:
            await self.replies.answer(invocation, {"content": refusal})
            return
        assert invocation.guild_id is not None
        guild = invocation.guild_id
        capability, who, role = (invocation.options.get(k) for k in ("capability", "who", "role"))
        note = ""
        if capability is not None or who is not None:
            problem = _problem(capability, who, role)
            if problem is not None:
                await self.replies.answer(invocation, {"content": problem})
                return
            assert isinstance(capability, str) and isinstance(who, str)
            await self._apply(guild, capability, who, role if isinstance(role, str) else None)
            _log.info("permissions changed", guild_id=guild, capability=capability, who=who)
            note = "Saved.\n"
        await self.replies.answer(
            invocation,
            {"content": note + await self._table(guild), "allowed_mentions": {"parse": []}},
        )

    async def _refusal(self, invocation: Invocation) -> str | None:
        if invocation.guild_id is None:
            return "Run `/jira permissions` in the server."
        if not invocation.may_manage_guild:
            return "Only members with the Manage Server permission can see or change this."
        if await self.connections.get(invocation.guild_id) is None:
            return "This server is not connected to a Jira site yet (`/jira connect`)."
        return None

    async def _apply(self, guild: str, capability: str, who: str, role: str | None) -> None:
        if who == "role":
            assert role is not None
            current = await self.role_rules.get(guild, capability) or ()
            await self.role_rules.put(guild, capability, sorted({*current, role}))
            await self.access.remove(guild, capability)
            return
        await self.role_rules.remove(guild, capability)
        mode = AccessMode.ALL if who == "everyone" else AccessMode.LINKED
        await self.access.put(guild, capability, mode)

    async def _table(self, guild: str) -> str:
        roles = await self.role_rules.for_guild(guild)
        modes = await self.access.for_guild(guild)
        lines = ["Who may use what here (Manage Server may always manage):"]
        for capability, label in CAPABILITIES.items():
            if capability in roles:
                who = "members with " + ", ".join(f"<@&{r}>" for r in roles[capability])
            elif modes.get(capability) is AccessMode.ALL:
                who = "everyone"
            elif modes.get(capability) is AccessMode.LINKED:
                who = "linked users"
            elif capability == "manage":
                who = "Manage Server (default)"
            else:
                who = "linked users (default)"
            lines.append(f"- {label}: {who}")
        return "\n".join(lines)


def _problem(capability: object, who: object, role: object) -> str | None:
    if capability not in CAPABILITIES or who not in _WHO:
        return "Pick both a capability and who may use it."
    if who == "role" and (not isinstance(role, str) or not _SNOWFLAKE.match(role)):
        return "Pick the role too (option `role`)."
    return None
