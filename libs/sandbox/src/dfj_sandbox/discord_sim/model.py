"""The records a simulated Discord is made of: users, roles, members, channels, messages.

Every record is a frozen dataclass; the world replaces a record when it changes (an edit, a
new thread, a role added), so what a test holds never changes under its feet. JSON held inside
a record (embeds, components, command definitions) is never mutated after it is stored and
is copied on the way out.

Channel types are Discord's: ``0`` guild text, ``1`` DM, ``5`` announcement, ``11`` public
thread, ``12`` private thread. Message types: ``0`` default, ``20`` a chat-input command's
response, ``23`` a context-menu command's response.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from dfj_sandbox.discord_signing import DiscordSigner
from dfj_sandbox.discord_sim.permissions import Overwrite

__all__ = [
    "ANNOUNCEMENT",
    "DM",
    "GUILD_TEXT",
    "PRIVATE_THREAD",
    "PUBLIC_THREAD",
    "THREAD_TYPES",
    "Application",
    "Channel",
    "Member",
    "Message",
    "Role",
    "User",
]

GUILD_TEXT: Final = 0
DM: Final = 1
ANNOUNCEMENT: Final = 5
PUBLIC_THREAD: Final = 11
PRIVATE_THREAD: Final = 12
THREAD_TYPES: Final = frozenset({10, PUBLIC_THREAD, PRIVATE_THREAD})


@dataclass(frozen=True, kw_only=True)
class User:
    """A Discord user (or the bot user)."""

    id: str
    username: str
    global_name: str | None = None
    avatar: str | None = None
    bot: bool = False
    accepts_dms: bool = True
    """False: the user closed DMs, so the bot's DM posts fail with 50007."""

    def as_json(self) -> dict[str, Any]:
        """The public user object (``UserResponse``)."""
        body: dict[str, Any] = {
            "id": self.id,
            "username": self.username,
            "avatar": self.avatar,
            "discriminator": "0000" if self.bot else "0",
            "public_flags": 0,
            "flags": 0,
            "global_name": self.global_name,
            "primary_guild": None,
        }
        if self.bot:
            body["bot"] = True
        return body

    def as_private_json(self) -> dict[str, Any]:
        """``/users/@me`` for this user with ``identify`` (``UserPIIResponse``, no email)."""
        body = self.as_json()
        body.update(mfa_enabled=False, locale="en-US", premium_type=0)
        return body


@dataclass(frozen=True, kw_only=True)
class Role:
    """A guild role; the ``@everyone`` role's id is the guild's id."""

    id: str
    name: str
    permissions: int
    position: int = 0
    managed: bool = False


@dataclass(frozen=True, kw_only=True)
class Member:
    """A user's membership of a guild."""

    user_id: str
    roles: tuple[str, ...] = ()
    nick: str | None = None
    joined_at: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Channel:
    """A guild channel, a thread or a DM."""

    id: str
    type: int
    name: str | None = None
    guild_id: str | None = None
    parent_id: str | None = None
    position: int = 0
    topic: str | None = None
    nsfw: bool = False
    overwrites: tuple[Overwrite, ...] = ()
    recipients: tuple[str, ...] = ()
    owner_id: str | None = None
    created_at: float = 0.0
    archived: bool = False
    locked: bool = False
    invitable: bool = True
    auto_archive_duration: int = 4320
    last_message_id: str | None = None
    message_count: int = 0
    thread_members: tuple[str, ...] = ()

    @property
    def is_thread(self) -> bool:
        """Whether this is a thread (its permissions are its parent's)."""
        return self.type in THREAD_TYPES


@dataclass(frozen=True, kw_only=True)
class Message:
    """A message as stored; :mod:`~dfj_sandbox.discord_sim.render` turns it into JSON."""

    id: str
    channel_id: str
    author_id: str
    content: str = ""
    embeds: tuple[Mapping[str, Any], ...] = ()
    components: tuple[Mapping[str, Any], ...] = ()
    flags: int = 0
    nonce: str | int | None = None
    timestamp: float = 0.0
    edited_timestamp: float | None = None
    type: int = 0
    tts: bool = False
    webhook_id: str | None = None
    application_id: str | None = None
    interaction_id: str | None = None
    thread_id: str | None = None
    allowed_mentions: Mapping[str, Any] | None = None

    @property
    def ephemeral(self) -> bool:
        """Whether only the interaction's user sees it (flag ``1 << 6``)."""
        return bool(self.flags & 64)

    @property
    def loading(self) -> bool:
        """Whether this is a deferred response still showing "thinking…" (flag ``1 << 7``)."""
        return bool(self.flags & 128)

    def custom_ids(self) -> dict[str, int]:
        """Each component's ``custom_id`` and component type, depth first."""
        found: dict[str, int] = {}
        stack = list(reversed(self.components))
        while stack:
            node = stack.pop()
            custom_id = node.get("custom_id")
            if isinstance(custom_id, str):
                found[custom_id] = int(node.get("type", 0))
            children = node.get("components")
            if isinstance(children, list):
                stack.extend(reversed(children))
            accessory = node.get("accessory") or node.get("component")
            if isinstance(accessory, Mapping):
                stack.append(accessory)
        return found


@dataclass(frozen=True, kw_only=True)
class Application:
    """The Discord application: its key, its bot, its OAuth2 client."""

    id: str
    name: str
    signer: DiscordSigner = field(repr=False)
    bot_token: str = field(repr=False)
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...]

    @property
    def client_id(self) -> str:
        """The OAuth2 client id (the application id, as on Discord)."""
        return self.id

    @property
    def public_key(self) -> str:
        """The hex Ed25519 public key (``DFJ_DISCORD_PUBLIC_KEY``)."""
        return self.signer.public_key_hex

    @property
    def bot_user(self) -> User:
        """The bot's user (its id is the application id)."""
        return User(id=self.id, username=self.name, bot=True)
