"""A simulated guild and its builder API: roles, members, channels, overwrites.

``sim.add_guild("Acme")`` returns a :class:`Guild` with its ``@everyone`` role, an owner, the
bot as a member holding a managed bot role (the install link's permissions) and a
``#general`` text channel; tests grow it from there::

    guild = sim.add_guild("Acme")
    admins = guild.add_role("Jira admins", permissions=MANAGE_GUILD)
    alice = guild.add_member(username="alice", roles=[admins.id])
    secret = guild.add_channel("secret", deny_bot=VIEW_CHANNEL)

Records are frozen; the guild (and the world behind it) replaces them when they change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from dfj_sandbox.discord_sim.model import GUILD_TEXT, Channel, Member, Role, User
from dfj_sandbox.discord_sim.permissions import Overwrite, apply_overwrites, base_permissions

if TYPE_CHECKING:
    from dfj_sandbox.discord_sim.world import World

__all__ = ["Guild"]


class Guild:
    """One guild of the simulated Discord."""

    def __init__(
        self,
        world: World,
        *,
        id: str,
        name: str,
        owner_id: str,
        everyone_permissions: int,
    ) -> None:
        self._world = world
        self.id = id
        self.name = name
        self.owner_id = owner_id
        self._roles: dict[str, Role] = {
            id: Role(id=id, name="@everyone", permissions=everyone_permissions)
        }
        self._members: dict[str, Member] = {}
        self.channel_ids: list[str] = []

    def __repr__(self) -> str:
        return f"Guild(id={self.id!r}, name={self.name!r})"

    # --- roles ----------------------------------------------------------------------------

    @property
    def everyone(self) -> Role:
        """The ``@everyone`` role (its id is the guild id)."""
        return self._roles[self.id]

    @property
    def roles(self) -> Mapping[str, Role]:
        """Every role, by id."""
        return dict(self._roles)

    def role(self, role_id: str) -> Role:
        """The role with this id (KeyError if none)."""
        return self._roles[role_id]

    def add_role(
        self, name: str, permissions: int = 0, *, id: str | None = None, managed: bool = False
    ) -> Role:
        """A new role above the existing ones."""
        role = Role(
            id=id or self._world.ids.next(),
            name=name,
            permissions=permissions,
            position=len(self._roles),
            managed=managed,
        )
        self._roles[role.id] = role
        return role

    def set_permissions(self, role_id: str, permissions: int) -> Role:
        """Replace a role's permission bits (``self.id`` for ``@everyone``)."""
        old = self._roles[role_id]
        new = Role(
            id=old.id,
            name=old.name,
            permissions=permissions,
            position=old.position,
            managed=old.managed,
        )
        self._roles[role_id] = new
        return new

    @property
    def bot_role(self) -> Role | None:
        """The bot's managed role, if the bot is in the guild."""
        bot = self._members.get(self._world.application.id)
        if bot is None:
            return None
        for role_id in bot.roles:
            if self._roles[role_id].managed:
                return self._roles[role_id]
        return None

    # --- members --------------------------------------------------------------------------

    @property
    def members(self) -> Mapping[str, Member]:
        """Every member, by user id."""
        return dict(self._members)

    def member(self, user_id: str) -> Member | None:
        """The member with this user id, if any."""
        return self._members.get(user_id)

    def add_member(
        self,
        user_id: str | None = None,
        *,
        username: str | None = None,
        global_name: str | None = None,
        roles: Iterable[str] = (),
        nick: str | None = None,
        accepts_dms: bool = True,
    ) -> Member:
        """A member; the user is created (with ``username``) if the world does not know it."""
        user = self._world.users.get(user_id) if user_id is not None else None
        if user is None:
            user = self._world.add_user(
                user_id,
                username=username,
                global_name=global_name,
                accepts_dms=accepts_dms,
            )
        role_ids = tuple(roles)
        for role_id in role_ids:
            if role_id not in self._roles:
                raise KeyError(f"role {role_id} is not in guild {self.id}")
        member = Member(
            user_id=user.id, roles=role_ids, nick=nick, joined_at=self._world.clock.now()
        )
        self._members[user.id] = member
        return member

    def remove_member(self, user_id: str) -> None:
        """Take a member (or the bot) out of the guild."""
        self._members.pop(user_id, None)

    def set_roles(self, user_id: str, roles: Iterable[str]) -> Member:
        """Replace a member's roles."""
        old = self._members[user_id]
        new = Member(
            user_id=old.user_id, roles=tuple(roles), nick=old.nick, joined_at=old.joined_at
        )
        self._members[user_id] = new
        return new

    def user(self, user_id: str) -> User:
        """The user of a member."""
        return self._world.users[user_id]

    # --- channels -------------------------------------------------------------------------

    def add_channel(
        self,
        name: str = "general",
        *,
        type: int = GUILD_TEXT,
        topic: str | None = None,
        overwrites: Iterable[Overwrite] = (),
        deny_bot: int = 0,
        deny_everyone: int = 0,
        id: str | None = None,
    ) -> Channel:
        """A text (or announcement) channel; ``deny_*`` add overwrites for the common cases."""
        written = list(overwrites)
        bot_role = self.bot_role
        if deny_bot:
            if bot_role is None:
                raise ValueError("the bot is not in this guild")
            written.append(Overwrite(id=bot_role.id, type=0, deny=deny_bot))
        if deny_everyone:
            written.append(Overwrite(id=self.id, type=0, deny=deny_everyone))
        channel = Channel(
            id=id or self._world.ids.next(),
            type=type,
            name=name,
            guild_id=self.id,
            position=len(self.channel_ids),
            topic=topic,
            overwrites=tuple(written),
            created_at=self._world.clock.now(),
        )
        self.channel_ids.append(channel.id)
        self._world.store_channel(channel)
        return channel

    def set_overwrite(
        self,
        channel_id: str,
        target_id: str,
        *,
        allow: int = 0,
        deny: int = 0,
        type: int | None = None,
    ) -> Channel:
        """Set (replace) one overwrite on a channel; ``type`` is inferred from the target."""
        channel = self._world.channels[channel_id]
        kind = type if type is not None else (0 if target_id in self._roles else 1)
        kept = tuple(o for o in channel.overwrites if o.id != target_id)
        return self._world.replace_channel(
            channel, overwrites=(*kept, Overwrite(id=target_id, type=kind, allow=allow, deny=deny))
        )

    @property
    def channels(self) -> list[Channel]:
        """The guild's channels (threads included), in creation order."""
        return [self._world.channels[channel_id] for channel_id in self.channel_ids]

    # --- permissions ----------------------------------------------------------------------

    def base_permissions(self, user_id: str) -> int:
        """A member's guild-wide bits (0 if not a member)."""
        member = self._members.get(user_id)
        if member is None:
            return 0
        return base_permissions(
            everyone=self.everyone.permissions,
            role_permissions=(self._roles[r].permissions for r in member.roles if r in self._roles),
            is_owner=user_id == self.owner_id,
        )

    def permissions_in(self, user_id: str, channel_id: str) -> int:
        """A member's bits in a channel (threads use their parent's overwrites)."""
        member = self._members.get(user_id)
        if member is None:
            return 0
        channel = self._world.channels[channel_id]
        if channel.is_thread and channel.parent_id is not None:
            channel = self._world.channels[channel.parent_id]
        return apply_overwrites(
            self.base_permissions(user_id),
            guild_id=self.id,
            member_id=user_id,
            member_roles=member.roles,
            overwrites=channel.overwrites,
        )
