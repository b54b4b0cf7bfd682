"""Making and editing messages from request bodies, as every route that posts does.

Create Message, follow-ups and interaction responses all turn a body (``content``,
``embeds``, ``components``, ``flags``, ``nonce``, ``tts``, ``allowed_mentions``) into a stored
message; edits change only the fields the body names (``null`` clears one) and stamp
``edited_timestamp``. A deferred response's ``LOADING`` flag is cleared by its first edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from dfj_sandbox.discord_sim.model import Message
from dfj_sandbox.discord_sim.render import normalise_components, normalise_embeds
from dfj_sandbox.discord_sim.world import World

__all__ = [
    "CREATE_FLAGS",
    "EDIT_FLAGS",
    "EPHEMERAL",
    "HAS_THREAD",
    "LOADING",
    "WEBHOOK_FLAGS",
    "edit_message",
    "edited",
    "is_empty",
    "new_message",
]

_EDITABLE: Final = (
    "content",
    "embeds",
    "components",
    "allowed_mentions",
    "flags",
    "edited_timestamp",
)

SUPPRESS_EMBEDS: Final = 1 << 2
HAS_THREAD: Final = 1 << 5
EPHEMERAL: Final = 1 << 6
LOADING: Final = 1 << 7
SUPPRESS_NOTIFICATIONS: Final = 1 << 12
IS_VOICE_MESSAGE: Final = 1 << 13
IS_COMPONENTS_V2: Final = 1 << 15

CREATE_FLAGS: Final = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_VOICE_MESSAGE | IS_COMPONENTS_V2
"""The flags Create Message accepts."""
EDIT_FLAGS: Final = SUPPRESS_EMBEDS | IS_COMPONENTS_V2
"""The flags an edit may set."""
WEBHOOK_FLAGS: Final = CREATE_FLAGS | EPHEMERAL
"""The flags follow-ups and interaction responses accept."""


def new_message(
    world: World,
    body: Mapping[str, Any],
    *,
    channel_id: str,
    author_id: str,
    flags_allowed: int,
    type: int = 0,
    webhook: bool = False,
    interaction_id: str | None = None,
    extra_flags: int = 0,
) -> Message:
    """A new message from ``body`` (not stored yet)."""
    application_id = world.application.id
    return Message(
        id=world.ids.next(),
        channel_id=channel_id,
        author_id=author_id,
        content=str(body.get("content") or ""),
        embeds=normalise_embeds(body.get("embeds") or ()),
        components=normalise_components(body.get("components") or ()),
        flags=(int(body.get("flags") or 0) & flags_allowed) | extra_flags,
        nonce=body.get("nonce"),
        timestamp=world.clock.now(),
        type=type,
        tts=bool(body.get("tts")),
        webhook_id=application_id if webhook else None,
        application_id=application_id if webhook else None,
        interaction_id=interaction_id,
        allowed_mentions=body.get("allowed_mentions"),
    )


def edited(
    world: World, message: Message, body: Mapping[str, Any], *, flags_allowed: int
) -> Message:
    """``message`` with the fields ``body`` names replaced (not stored)."""
    changes: dict[str, Any] = {"edited_timestamp": world.clock.now()}
    if "content" in body:
        changes["content"] = str(body["content"] or "")
    if "embeds" in body:
        changes["embeds"] = normalise_embeds(body["embeds"] or ())
    if "components" in body:
        changes["components"] = normalise_components(body["components"] or ())
    if "allowed_mentions" in body:
        changes["allowed_mentions"] = body["allowed_mentions"]
    flags = message.flags & ~LOADING
    if body.get("flags") is not None:
        kept = message.flags & ~flags_allowed & ~LOADING
        flags = kept | (int(body["flags"]) & flags_allowed) | (message.flags & IS_COMPONENTS_V2)
    changes["flags"] = flags
    return replace(message, **changes)


def edit_message(
    world: World, message: Message, body: Mapping[str, Any], *, flags_allowed: int
) -> Message:
    """``message`` with the fields ``body`` names replaced, stored."""
    new = edited(world, message, body, flags_allowed=flags_allowed)
    return world.replace_message(message, **{f: getattr(new, f) for f in _EDITABLE})


def is_empty(message: Message) -> bool:
    """Whether a message has nothing left to show."""
    return not (message.content or message.embeds or message.components)
