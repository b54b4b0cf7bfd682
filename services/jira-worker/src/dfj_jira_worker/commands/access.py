"""The Discord-side gates in front of Jira: role rules per capability, then the user's link.

Jira decides what a user may do in Jira (every call runs as their linked account); a guild may
add a second, Discord-side gate per capability (``view``, ``create``, ``act``, ``manage``) by
naming the roles allowed to use it (``RoleRules``):

- a rule is set → the member needs one of its roles (Manage Server still may ``manage``, so
  a guild can never lock its admins out of its own settings);
- no rule → ``manage`` is for members with Manage Server (or Administrator, which implies
  it); every other capability is open to any member.

A request that calls Jira then needs the user's link on the site (``UserLinks``); without one
the answer asks them to link (the ``link:start`` button, handled by the linker).
"""

from __future__ import annotations

from dataclasses import dataclass

from dfj_common.storage import RoleRules, UserLink, UserLinks
from dfj_jira_worker.commands.requests import Capability, Invocation

__all__ = ["AccessCheck"]


@dataclass(frozen=True, kw_only=True, slots=True)
class AccessCheck:
    """Answers "may this member use this capability here?" and "who are they in Jira?"."""

    role_rules: RoleRules
    links: UserLinks

    async def allows(self, invocation: Invocation, capability: Capability) -> bool:
        """Whether the guild's rules let the member use ``capability``."""
        if invocation.guild_id is None:
            return False
        if capability is Capability.MANAGE and invocation.may_manage_guild:
            return True
        roles = await self.role_rules.get(invocation.guild_id, capability.value)
        if roles is None:
            return capability is not Capability.MANAGE
        return not set(roles).isdisjoint(invocation.roles)

    async def link_of(self, client_key: str, discord_user_id: str) -> UserLink | None:
        """The Jira account a Discord user linked on this site, if any."""
        return await self.links.get_by_discord_user(client_key, discord_user_id)
