"""The Discord-side gates in front of Jira: role rules per capability, then the user's link.

Jira decides what a user may do in Jira (every call runs as their linked account); a guild may
add a second, Discord-side gate per capability (``view``, ``create``, ``act``, ``manage``) by
naming the roles allowed to use it (``RoleRules``):

- a role rule is set → the member needs one of its roles (Manage Server still may
  ``manage``, so a guild can never lock its admins out of its own settings);
- an access mode is set (``FeatureAccess``, by the linker's ``/jira permissions``) → ``all``:
  any member; ``linked``: members linked on the site (an unlinked one is asked to link);
- neither → ``manage`` is for members with Manage Server (or Administrator, which implies
  it); every other capability is open to any member (and calling Jira needs a link anyway).

A request that calls Jira then needs the user's link on the site (``UserLinks``); without one
the answer asks them to link (the ``link:start`` button, handled by the linker).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from dfj_common.storage import AccessMode, FeatureAccess, RoleRules, UserLink, UserLinks
from dfj_jira_worker.commands.requests import Capability, Invocation

__all__ = ["AccessCheck", "Verdict"]


class Verdict(Enum):
    """The gate's answer: go on, refuse, or ask the member to link first."""

    ALLOWED = "allowed"
    FORBIDDEN = "forbidden"
    LINK_FIRST = "link-first"


@dataclass(frozen=True, kw_only=True, slots=True)
class AccessCheck:
    """Answers "may this member use this capability here?" and "who are they in Jira?"."""

    role_rules: RoleRules
    links: UserLinks
    access: FeatureAccess | None = None

    async def allows(self, invocation: Invocation, capability: Capability) -> bool:
        """Whether the guild's role rules let the member use ``capability`` (modes aside)."""
        if invocation.guild_id is None:
            return False
        if capability is Capability.MANAGE and invocation.may_manage_guild:
            return True
        roles = await self.role_rules.get(invocation.guild_id, capability.value)
        if roles is None:
            return capability is not Capability.MANAGE
        return not set(roles).isdisjoint(invocation.roles)

    async def verdict(
        self, invocation: Invocation, capability: Capability, client_key: str
    ) -> Verdict:
        """The whole gate: role rules, then the access mode, then the defaults."""
        guild = invocation.guild_id
        if guild is None:
            return Verdict.FORBIDDEN
        if capability is Capability.MANAGE and invocation.may_manage_guild:
            return Verdict.ALLOWED
        if await self.role_rules.get(guild, capability.value) is not None:
            allowed = await self.allows(invocation, capability)
            return Verdict.ALLOWED if allowed else Verdict.FORBIDDEN
        mode = await self.access.get(guild, capability.value) if self.access else None
        if mode is AccessMode.ALL:
            return Verdict.ALLOWED
        if mode is AccessMode.LINKED:
            linked = await self.link_of(client_key, invocation.user_id) is not None
            return Verdict.ALLOWED if linked else Verdict.LINK_FIRST
        return Verdict.ALLOWED if capability is not Capability.MANAGE else Verdict.FORBIDDEN

    async def link_of(self, client_key: str, discord_user_id: str) -> UserLink | None:
        """The Jira account a Discord user linked on this site, if any."""
        return await self.links.get_by_discord_user(client_key, discord_user_id)
