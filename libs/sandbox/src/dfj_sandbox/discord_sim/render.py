"""Records to Discord's JSON shapes, and request JSON to what Discord stores.

What Discord answers is shaped by its OpenAPI document's response schemas (``MessageResponse``,
``GuildChannelResponse``, ``ThreadResponse``, ``PrivateChannelResponse``); the test suite
checks every answer against them. On the way in, Discord normalises what it stores: ``null``
means "not set", every component gets a numeric ``id`` (assigned depth first where the
sender gave none), selects get their ``min_values``/``max_values`` defaults, embeds become
``type: "rich"`` and embed fields get ``inline: false``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from dfj_sandbox.discord_sim.ids import iso_timestamp
from dfj_sandbox.discord_sim.model import DM, PRIVATE_THREAD, Channel, Message, User

__all__ = [
    "channel_json",
    "message_json",
    "normalise_components",
    "normalise_embeds",
    "strip_nulls",
]

_SELECTS: Final = frozenset({3, 5, 6, 7, 8})


def strip_nulls(value: Any) -> Any:
    """``value`` without ``null`` members (recursively); Discord treats them as absent."""
    if isinstance(value, Mapping):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(item) for item in value]
    return value


def normalise_embeds(embeds: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    """Embeds as Discord stores them."""
    out: list[Mapping[str, Any]] = []
    for embed in embeds:
        stored = dict(strip_nulls(embed))
        stored["type"] = "rich"
        if "fields" in stored:
            stored["fields"] = [{"inline": False, **field} for field in stored["fields"]]
        out.append(stored)
    return tuple(out)


def normalise_components(components: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    """Components as Discord stores them: ids assigned, select defaults filled in."""
    tree = [strip_nulls(component) for component in components]
    used = {node["id"] for node in _walk(tree) if isinstance(node.get("id"), int)}
    counter = 0
    for node in _walk(tree):
        if not isinstance(node.get("id"), int):
            counter += 1
            while counter in used:
                counter += 1
            node["id"] = counter
        if node.get("type") in _SELECTS:
            node.setdefault("min_values", 1)
            node.setdefault("max_values", 1)
    return tuple(tree)


def _walk(nodes: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for node in nodes:
        yield node
        children = node.get("components")
        if isinstance(children, list):
            yield from _walk(children)
        for key in ("accessory", "component"):
            child = node.get(key)
            if isinstance(child, dict):
                yield from _walk([child])


def message_json(
    message: Message, *, author: User, thread: Channel | None = None
) -> dict[str, Any]:
    """A message as Discord returns it (``MessageResponse``)."""
    body: dict[str, Any] = {
        "id": message.id,
        "channel_id": message.channel_id,
        "type": message.type,
        "content": message.content,
        "author": author.as_json(),
        "mentions": [],
        "mention_roles": [],
        "mention_everyone": False,
        "attachments": [],
        "embeds": [dict(e) for e in message.embeds],
        "components": [dict(c) for c in message.components],
        "timestamp": iso_timestamp(message.timestamp),
        "edited_timestamp": (
            None if message.edited_timestamp is None else iso_timestamp(message.edited_timestamp)
        ),
        "flags": message.flags,
        "pinned": False,
        "tts": message.tts,
    }
    if message.nonce is not None:
        body["nonce"] = message.nonce
    if message.webhook_id is not None:
        body["webhook_id"] = message.webhook_id
    if message.application_id is not None:
        body["application_id"] = message.application_id
    if thread is not None:
        body["thread"] = channel_json(thread)
    return body


def channel_json(
    channel: Channel, *, recipients: Iterable[User] = (), member_of: str | None = None
) -> dict[str, Any]:
    """A channel as Discord returns it; ``member_of`` adds the thread member object."""
    if channel.type == DM:
        return {
            "id": channel.id,
            "type": DM,
            "flags": 0,
            "last_message_id": channel.last_message_id,
            "recipients": [user.as_json() for user in recipients],
        }
    body: dict[str, Any] = {
        "id": channel.id,
        "type": channel.type,
        "guild_id": channel.guild_id,
        "name": channel.name,
        "flags": 0,
        "parent_id": channel.parent_id,
        "last_message_id": channel.last_message_id,
        "rate_limit_per_user": 0,
    }
    if not channel.is_thread:
        body.update(
            position=channel.position,
            topic=channel.topic,
            nsfw=channel.nsfw,
            permission_overwrites=[o.as_json() for o in channel.overwrites],
        )
        return body
    metadata: dict[str, Any] = {
        "archived": channel.archived,
        "archive_timestamp": iso_timestamp(channel.created_at),
        "auto_archive_duration": channel.auto_archive_duration,
        "locked": channel.locked,
        "create_timestamp": iso_timestamp(channel.created_at),
    }
    if channel.type == PRIVATE_THREAD:
        metadata["invitable"] = channel.invitable
    body.update(
        owner_id=channel.owner_id,
        thread_metadata=metadata,
        message_count=channel.message_count,
        total_message_sent=channel.message_count,
        member_count=len(channel.thread_members),
    )
    if member_of is not None:
        body["member"] = {
            "id": channel.id,
            "user_id": member_of,
            "join_timestamp": iso_timestamp(channel.created_at),
            "flags": 0,
        }
    return body
