"""Interaction bodies built from the simulated world, as Discord would send them.

:class:`~dfj_sandbox.discord_signing.InteractionFactory` knows the shapes; this module fills
them with the model: the guild, the channel (partial, as Discord sends it), the member with
their roles and their computed permissions in that channel, the bot's ``app_permissions``
there, and the real message a button or a context-menu command is used on. Every body gets a
fresh snowflake and a fresh token from the simulator, so two interactions never share a
token however still the clock stands. In a DM the body carries ``user`` instead of
``member``, and no guild.

A click names a ``custom_id`` that must be on the message, and its component type comes from
the message, so a test cannot click a button the app never sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from dfj_sandbox.discord_signing import InteractionFactory
from dfj_sandbox.discord_sim.ids import interaction_token, iso_timestamp
from dfj_sandbox.discord_sim.model import Channel, Message
from dfj_sandbox.discord_sim.render import message_json
from dfj_sandbox.discord_sim.world import World

__all__ = ["InteractionBuilder"]


class InteractionBuilder:
    """``sim.interactions``: bodies of slash commands, clicks, modal submits, menu commands."""

    def __init__(self, world: World) -> None:
        self._world = world

    def _channel(self, channel_id: str) -> Channel:
        channel = self._world.channels.get(channel_id)
        if channel is None:
            raise KeyError(f"no channel {channel_id}")
        return channel

    def _factory(self, channel: Channel, user_id: str) -> InteractionFactory:
        world = self._world
        user = world.users[user_id]
        guild = world.guild_of(channel)
        roles: tuple[str, ...] = ()
        permissions = 0
        if guild is not None:
            member = guild.member(user_id)
            if member is None:
                raise KeyError(f"user {user_id} is not a member of guild {guild.id}")
            roles = member.roles
            permissions = world.permissions(user_id, channel)
        return InteractionFactory(
            application_id=world.application.id,
            guild_id=None if guild is None else guild.id,
            channel_id=channel.id,
            user_id=user.id,
            username=user.username,
            roles=roles,
            permissions=str(permissions),
            clock=world.clock.now,
        )

    def _finish(self, body: dict[str, Any], channel: Channel, user_id: str) -> dict[str, Any]:
        world = self._world
        interaction_id = world.ids.next()
        body["id"] = interaction_id
        body["token"] = interaction_token(interaction_id)
        partial: dict[str, Any] = {"id": channel.id, "type": channel.type}
        if channel.name is not None:
            partial["name"] = channel.name
        if channel.guild_id is not None:
            partial["guild_id"] = channel.guild_id
        if channel.parent_id is not None:
            partial["parent_id"] = channel.parent_id
        body["channel"] = partial
        body["app_permissions"] = str(world.permissions(world.application.id, channel))
        user = world.users[user_id].as_json()
        guild = world.guild_of(channel)
        if guild is not None:
            member = guild.member(user_id)
            assert member is not None
            body["member"].update(
                user=user,
                nick=member.nick,
                joined_at=iso_timestamp(member.joined_at),
            )
        else:
            body["user"] = user
        return body

    def ping(self) -> dict[str, Any]:
        """A PING (type 1)."""
        world = self._world
        interaction_id = world.ids.next()
        return {
            "id": interaction_id,
            "application_id": world.application.id,
            "type": 1,
            "token": interaction_token(interaction_id),
            "version": 1,
        }

    def slash(
        self,
        channel_id: str,
        user_id: str,
        name: str = "jira",
        *,
        subcommand: str | None = None,
        group: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A chat-input command by ``user_id`` in ``channel_id``."""
        channel = self._channel(channel_id)
        factory = self._factory(channel, user_id)
        body = factory.slash(name, subcommand=subcommand, group=group, options=options)
        return self._finish(body, channel, user_id)

    def autocomplete(
        self,
        channel_id: str,
        user_id: str,
        *,
        options: Mapping[str, Any],
        focused: str,
        name: str = "jira",
        subcommand: str | None = "create",
    ) -> dict[str, Any]:
        """An autocomplete interaction while ``focused`` is being typed."""
        channel = self._channel(channel_id)
        factory = self._factory(channel, user_id)
        body = factory.autocomplete(
            subcommand=subcommand, options=options, focused=focused, name=name
        )
        return self._finish(body, channel, user_id)

    def message_command(
        self, message: Message | str, user_id: str, *, name: str = "Create issue from message"
    ) -> dict[str, Any]:
        """A message context-menu command on a stored message (resolved in full)."""
        target = self._message(message)
        channel = self._channel(target.channel_id)
        factory = self._factory(channel, user_id)
        body = factory.message_command(name, content=target.content, message_id=target.id)
        resolved = message_json(target, author=self._world.users[target.author_id])
        body["data"]["resolved"] = {"messages": {target.id: resolved}}
        return self._finish(body, channel, user_id)

    def click(
        self,
        message: Message | str,
        user_id: str,
        custom_id: str,
        *,
        values: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """A click on a component of a stored message (a select with ``values``)."""
        target = self._message(message)
        kinds = target.custom_ids()
        if custom_id not in kinds:
            raise KeyError(f"message {target.id} has no component {custom_id!r}")
        channel = self._channel(target.channel_id)
        factory = self._factory(channel, user_id)
        body = factory.component(
            custom_id, component_type=kinds[custom_id], values=values, message_id=target.id
        )
        body["message"] = message_json(target, author=self._world.users[target.author_id])
        return self._finish(body, channel, user_id)

    def modal_submit(
        self,
        channel_id: str,
        user_id: str,
        custom_id: str,
        fields: Mapping[str, str | Sequence[str]],
        *,
        shape: Literal["label", "action_row"] = "label",
        message: Message | str | None = None,
    ) -> dict[str, Any]:
        """A modal submit (``message`` when the modal was opened from a component)."""
        channel = self._channel(channel_id)
        factory = self._factory(channel, user_id)
        source = None if message is None else self._message(message)
        body = factory.modal_submit(
            custom_id, fields, shape=shape, message_id=None if source is None else source.id
        )
        if source is not None:
            body["message"] = message_json(source, author=self._world.users[source.author_id])
        return self._finish(body, channel, user_id)

    def _message(self, message: Message | str) -> Message:
        message_id = message if isinstance(message, str) else message.id
        found = self._world.message(message_id)
        if found is None:
            raise KeyError(f"no message {message_id}")
        return found
