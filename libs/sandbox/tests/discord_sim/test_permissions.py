"""Discord's permission computation: base permissions, overwrites in order, implicit rules."""

from __future__ import annotations

from dfj_sandbox.discord_sim.permissions import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    EMBED_LINKS,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    Overwrite,
    apply_overwrites,
    base_permissions,
)

GUILD = "100"
ROLE_A = "200"
ROLE_B = "201"
MEMBER = "300"


def _in_channel(base: int, *overwrites: Overwrite, roles: tuple[str, ...] = (ROLE_A,)) -> int:
    return apply_overwrites(
        base, guild_id=GUILD, member_id=MEMBER, member_roles=roles, overwrites=overwrites
    )


def test_base_permissions_combine_roles_and_admin() -> None:
    """@everyone OR the roles; ADMINISTRATOR and ownership give everything."""
    assert base_permissions(everyone=VIEW_CHANNEL, role_permissions=[SEND_MESSAGES]) == (
        VIEW_CHANNEL | SEND_MESSAGES
    )
    assert base_permissions(everyone=0, role_permissions=[ADMINISTRATOR]) == ALL_PERMISSIONS
    assert base_permissions(everyone=0, role_permissions=[], is_owner=True) == ALL_PERMISSIONS


def test_overwrites_apply_everyone_then_roles_then_member() -> None:
    """A role allow beats an @everyone deny; a member deny beats a role allow."""
    base = VIEW_CHANNEL | SEND_MESSAGES
    everyone_deny = Overwrite(id=GUILD, type=0, deny=SEND_MESSAGES)
    role_allow = Overwrite(id=ROLE_A, type=0, allow=SEND_MESSAGES)
    member_deny = Overwrite(id=MEMBER, type=1, deny=SEND_MESSAGES)
    assert not _in_channel(base, everyone_deny) & SEND_MESSAGES
    assert _in_channel(base, everyone_deny, role_allow) & SEND_MESSAGES
    assert not _in_channel(base, everyone_deny, role_allow, member_deny) & SEND_MESSAGES


def test_role_overwrites_are_taken_together() -> None:
    """One role's allow wins over another role's deny (denies first, then allows)."""
    base = VIEW_CHANNEL | SEND_MESSAGES
    deny_b = Overwrite(id=ROLE_B, type=0, deny=SEND_MESSAGES)
    allow_a = Overwrite(id=ROLE_A, type=0, allow=SEND_MESSAGES)
    assert _in_channel(base, deny_b, allow_a, roles=(ROLE_A, ROLE_B)) & SEND_MESSAGES


def test_implicit_rules() -> None:
    """No VIEW_CHANNEL: nothing at all; no SEND_MESSAGES: no EMBED_LINKS either."""
    hidden = Overwrite(id=GUILD, type=0, deny=VIEW_CHANNEL)
    assert _in_channel(VIEW_CHANNEL | SEND_MESSAGES, hidden) == 0
    mute = Overwrite(id=GUILD, type=0, deny=SEND_MESSAGES)
    assert _in_channel(VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS, mute) == VIEW_CHANNEL
    assert _in_channel(ALL_PERMISSIONS, hidden) == ALL_PERMISSIONS
