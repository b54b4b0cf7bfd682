"""Discord's permission bits and how a member's permissions in a channel are computed.

Discord (``topics/permissions``) computes what a member may do in a channel in two steps:

1. **Base permissions** in the guild: the ``@everyone`` role's bits OR the bits of every role
   the member has. The owner and any member holding ``ADMINISTRATOR`` get everything.
2. **Channel overwrites**, in this order: the ``@everyone`` overwrite (its id is the guild
   id), then the member's roles' overwrites taken together (all their denies, then all their
   allows), then the member's own overwrite. Each step clears its ``deny`` bits and sets its
   ``allow`` bits. Threads have no overwrites of their own: they use their parent's.

Two implicit rules follow: without ``VIEW_CHANNEL`` a member has no permission at all in the
channel, and without ``SEND_MESSAGES`` the permissions that only make sense when sending
(``SEND_TTS_MESSAGES``, ``MENTION_EVERYONE``, ``EMBED_LINKS``, ``ATTACH_FILES``) are dropped.
Bitsets travel as decimal strings on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ADD_REACTIONS",
    "ADMINISTRATOR",
    "ALL_PERMISSIONS",
    "ATTACH_FILES",
    "CREATE_PRIVATE_THREADS",
    "CREATE_PUBLIC_THREADS",
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "EMBED_LINKS",
    "MANAGE_CHANNELS",
    "MANAGE_GUILD",
    "MANAGE_MESSAGES",
    "MANAGE_ROLES",
    "MANAGE_THREADS",
    "MENTION_EVERYONE",
    "READ_MESSAGE_HISTORY",
    "SEND_MESSAGES",
    "SEND_MESSAGES_IN_THREADS",
    "SEND_TTS_MESSAGES",
    "USE_APPLICATION_COMMANDS",
    "USE_EXTERNAL_EMOJIS",
    "VIEW_CHANNEL",
    "Overwrite",
    "apply_overwrites",
    "base_permissions",
]

CREATE_INSTANT_INVITE: Final = 1 << 0
KICK_MEMBERS: Final = 1 << 1
BAN_MEMBERS: Final = 1 << 2
ADMINISTRATOR: Final = 1 << 3
MANAGE_CHANNELS: Final = 1 << 4
MANAGE_GUILD: Final = 1 << 5
ADD_REACTIONS: Final = 1 << 6
VIEW_CHANNEL: Final = 1 << 10
SEND_MESSAGES: Final = 1 << 11
SEND_TTS_MESSAGES: Final = 1 << 12
MANAGE_MESSAGES: Final = 1 << 13
EMBED_LINKS: Final = 1 << 14
ATTACH_FILES: Final = 1 << 15
READ_MESSAGE_HISTORY: Final = 1 << 16
MENTION_EVERYONE: Final = 1 << 17
USE_EXTERNAL_EMOJIS: Final = 1 << 18
MANAGE_ROLES: Final = 1 << 28
USE_APPLICATION_COMMANDS: Final = 1 << 31
MANAGE_THREADS: Final = 1 << 34
CREATE_PUBLIC_THREADS: Final = 1 << 35
CREATE_PRIVATE_THREADS: Final = 1 << 36
SEND_MESSAGES_IN_THREADS: Final = 1 << 38

ALL_PERMISSIONS: Final = (1 << 51) - 1
"""Every bit Discord defines today (and a few it does not); what owners and admins hold."""

DEFAULT_EVERYONE_PERMISSIONS: Final = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | ADD_REACTIONS
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | CREATE_PRIVATE_THREADS
    | SEND_MESSAGES_IN_THREADS
)
"""What ``@everyone`` may do in a new guild (a sensible subset of Discord's default)."""

DEFAULT_BOT_PERMISSIONS: Final = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | READ_MESSAGE_HISTORY
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
)
"""The bot role's bits: the install link's minimal integer, 309237730304."""

_NEEDS_SEND: Final = SEND_TTS_MESSAGES | MENTION_EVERYONE | EMBED_LINKS | ATTACH_FILES


@dataclass(frozen=True, kw_only=True)
class Overwrite:
    """A channel's permission overwrite for a role (``type`` 0) or a member (``type`` 1)."""

    id: str
    type: int
    allow: int = 0
    deny: int = 0

    def as_json(self) -> dict[str, object]:
        """Discord's wire shape (bitsets as strings)."""
        return {"id": self.id, "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


def base_permissions(
    *, everyone: int, role_permissions: Iterable[int], is_owner: bool = False
) -> int:
    """A member's guild-wide permissions (step 1 of the module docstring)."""
    if is_owner:
        return ALL_PERMISSIONS
    bits = everyone
    for role_bits in role_permissions:
        bits |= role_bits
    if bits & ADMINISTRATOR:
        return ALL_PERMISSIONS
    return bits


def apply_overwrites(
    base: int,
    *,
    guild_id: str,
    member_id: str,
    member_roles: Iterable[str],
    overwrites: Iterable[Overwrite],
) -> int:
    """``base`` after a channel's overwrites and the implicit rules (step 2)."""
    if base & ADMINISTRATOR:
        return ALL_PERMISSIONS
    by_id = {overwrite.id: overwrite for overwrite in overwrites}
    bits = base
    everyone = by_id.get(guild_id)
    if everyone is not None:
        bits = (bits & ~everyone.deny) | everyone.allow
    roles = set(member_roles)
    allow = deny = 0
    for overwrite in by_id.values():
        if overwrite.type == 0 and overwrite.id in roles and overwrite.id != guild_id:
            allow |= overwrite.allow
            deny |= overwrite.deny
    bits = (bits & ~deny) | allow
    own = by_id.get(member_id)
    if own is not None and own.type == 1:
        bits = (bits & ~own.deny) | own.allow
    if not bits & VIEW_CHANNEL:
        return 0
    if not bits & SEND_MESSAGES:
        bits &= ~_NEEDS_SEND
    return bits
