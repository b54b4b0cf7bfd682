"""Everything the simulated Discord knows: the application, users, guilds, channels, messages.

The REST handlers and the test builders share this one object. Messages are kept per channel
in the order Discord accepted them (an edit replaces a message in place, it does not move
it), with an index of ``enforce_nonce`` nonces so a retried create returns the message it
already made. Ephemeral interaction messages are kept with the channel too, flagged, so tests
can see what the user was shown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from dfj_common.clock import Clock
from dfj_sandbox.discord_sim.guild import Guild
from dfj_sandbox.discord_sim.ids import SnowflakeMinter
from dfj_sandbox.discord_sim.model import (
    DM,
    PRIVATE_THREAD,
    Application,
    Channel,
    Message,
    User,
)
from dfj_sandbox.discord_sim.permissions import (
    ALL_PERMISSIONS,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    MANAGE_THREADS,
)

__all__ = ["World"]


class World:
    """The simulated Discord's state."""

    def __init__(self, *, application: Application, clock: Clock, ids: SnowflakeMinter) -> None:
        self.application = application
        self.clock = clock
        self.ids = ids
        self.users: dict[str, User] = {application.id: application.bot_user}
        self.guilds: dict[str, Guild] = {}
        self.channels: dict[str, Channel] = {}
        self._messages: dict[str, Message] = {}
        self._order: dict[str, list[str]] = {}
        self._dms: dict[str, str] = {}
        self._nonces: dict[tuple[str, str, str], tuple[str, float]] = {}
        self.global_commands: Sequence[Mapping[str, Any]] = ()
        self.guild_commands: dict[str, Sequence[Mapping[str, Any]]] = {}

    # --- users ----------------------------------------------------------------------------

    def add_user(
        self,
        user_id: str | None = None,
        *,
        username: str | None = None,
        global_name: str | None = None,
        accepts_dms: bool = True,
    ) -> User:
        """A new user (``username`` defaults to ``user<n>``)."""
        new_id = user_id or self.ids.next()
        if new_id in self.users:
            raise ValueError(f"user {new_id} exists")
        user = User(
            id=new_id,
            username=username or f"user{len(self.users)}",
            global_name=global_name,
            accepts_dms=accepts_dms,
        )
        self.users[user.id] = user
        return user

    @property
    def bot(self) -> User:
        """The bot user."""
        return self.users[self.application.id]

    # --- guilds ---------------------------------------------------------------------------

    def add_guild(
        self,
        name: str,
        *,
        guild_id: str | None = None,
        owner_id: str | None = None,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        bot_permissions: int | None = DEFAULT_BOT_PERMISSIONS,
        general: bool = True,
    ) -> Guild:
        """A guild with an owner, the bot (unless ``bot_permissions`` is None) and ``#general``."""
        new_id = guild_id or self.ids.next()
        if new_id in self.guilds:
            raise ValueError(f"guild {new_id} exists")
        owner = self.users.get(owner_id) if owner_id else None
        if owner is None:
            owner = self.add_user(owner_id, username=f"{name.lower().replace(' ', '_')}_owner")
        guild = Guild(
            self,
            id=new_id,
            name=name,
            owner_id=owner.id,
            everyone_permissions=everyone_permissions,
        )
        self.guilds[guild.id] = guild
        guild.add_member(owner.id)
        if bot_permissions is not None:
            role = guild.add_role(self.application.name, bot_permissions, managed=True)
            guild.add_member(self.application.id, roles=[role.id])
        if general:
            guild.add_channel("general")
        return guild

    def guild_of(self, channel: Channel) -> Guild | None:
        """The guild a channel belongs to (None for DMs)."""
        return self.guilds.get(channel.guild_id) if channel.guild_id else None

    # --- channels -------------------------------------------------------------------------

    def store_channel(self, channel: Channel) -> Channel:
        """Add or replace a channel record."""
        self.channels[channel.id] = channel
        self._order.setdefault(channel.id, [])
        return channel

    def replace_channel(self, channel: Channel, **changes: Any) -> Channel:
        """Store ``channel`` with ``changes`` applied."""
        return self.store_channel(replace(self.channels[channel.id], **changes))

    def permissions(self, user_id: str, channel: Channel) -> int:
        """What ``user_id`` may do in ``channel`` (DM recipients may do everything there)."""
        if channel.type == DM:
            return ALL_PERMISSIONS if user_id in channel.recipients else 0
        guild = self.guild_of(channel)
        if guild is None:
            return 0
        bits = guild.permissions_in(user_id, channel.id)
        private = channel.type == PRIVATE_THREAD and user_id not in channel.thread_members
        if private and not bits & MANAGE_THREADS:
            return 0
        return bits

    def open_dm(self, user: User) -> Channel:
        """The bot's DM channel with ``user`` (created once, then reused)."""
        existing = self._dms.get(user.id)
        if existing is not None:
            return self.channels[existing]
        channel = Channel(
            id=self.ids.next(),
            type=DM,
            recipients=(user.id, self.application.id),
            created_at=self.clock.now(),
        )
        self._dms[user.id] = channel.id
        return self.store_channel(channel)

    def dm_channel(self, user_id: str) -> Channel | None:
        """The DM channel with a user, if one was opened."""
        channel_id = self._dms.get(user_id)
        return None if channel_id is None else self.channels[channel_id]

    def shares_guild_with_bot(self, user_id: str) -> bool:
        """Whether the user and the bot are members of a common guild."""
        return any(
            g.member(user_id) is not None and g.member(self.application.id) is not None
            for g in self.guilds.values()
        )

    # --- messages -------------------------------------------------------------------------

    def add_message(self, message: Message) -> Message:
        """Store a new message at the end of its channel and count it on the channel."""
        self._messages[message.id] = message
        self._order.setdefault(message.channel_id, []).append(message.id)
        channel = self.channels.get(message.channel_id)
        if channel is not None:
            self.replace_channel(
                channel, last_message_id=message.id, message_count=channel.message_count + 1
            )
        return message

    def replace_message(self, message: Message, **changes: Any) -> Message:
        """Store ``message`` with ``changes`` applied (its place in the channel is kept)."""
        new = replace(self._messages[message.id], **changes)
        self._messages[new.id] = new
        return new

    def delete_message(self, message: Message) -> None:
        """Forget a message."""
        self._messages.pop(message.id, None)
        order = self._order.get(message.channel_id, [])
        if message.id in order:
            order.remove(message.id)

    def message(self, message_id: str) -> Message | None:
        """The message with this id, if any."""
        return self._messages.get(message_id)

    def messages(self, channel_id: str) -> list[Message]:
        """A channel's messages, oldest first."""
        return [self._messages[m] for m in self._order.get(channel_id, ())]

    def all_messages(self) -> Iterable[Message]:
        """Every message of every channel."""
        return self._messages.values()

    # --- nonces ---------------------------------------------------------------------------

    def nonce_hit(
        self, channel_id: str, author_id: str, nonce: str | int, *, window: float
    ) -> Message | None:
        """The message ``author_id`` already made with ``nonce`` in the last ``window`` s."""
        found = self._nonces.get((channel_id, author_id, str(nonce)))
        if found is None:
            return None
        message_id, at = found
        if self.clock.now() - at > window:
            return None
        return self._messages.get(message_id)

    def remember_nonce(self, message: Message) -> None:
        """Index a message created with ``enforce_nonce``."""
        if message.nonce is not None:
            key = (message.channel_id, message.author_id, str(message.nonce))
            self._nonces[key] = (message.id, self.clock.now())

    def nonce_counts(self, channel_id: str | None = None) -> Counter[str]:
        """How many stored messages carry each nonce.

        Keyed by the nonce (as a string) for one channel, or by ``"<channel id>:<nonce>"``
        across every channel.
        """
        counts: Counter[str] = Counter()
        for message in self._messages.values():
            if message.nonce is None:
                continue
            if channel_id is None:
                counts[f"{message.channel_id}:{message.nonce}"] += 1
            elif message.channel_id == channel_id:
                counts[str(message.nonce)] += 1
        return counts
