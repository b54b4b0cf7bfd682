"""The app's answer to an interaction, and what it does on Discord's side.

Which callback types fit which interaction (``interactions/receiving-and-responding``): a PING
takes only PONG (1); autocomplete only its result (8); ``DEFERRED_UPDATE_MESSAGE`` (6) and
``UPDATE_MESSAGE`` (7) only a component click or a modal opened from a component; a modal (9)
never answers a PING or a modal submit. A deferred answer (5) may carry only the ``EPHEMERAL``
flag.

What an accepted answer does: 4 posts the original response message; 5 posts a "thinking…"
placeholder (``LOADING``, ephemeral if asked) that the first edit of ``@original`` fills; 6
makes the component's message the one ``@original`` edits; 7 edits that message at once; 8
and 9 leave no original message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from dfj_sandbox.discord_sim.ledger import InteractionLedger, InteractionRecord
from dfj_sandbox.discord_sim.messages import (
    EPHEMERAL,
    LOADING,
    WEBHOOK_FLAGS,
    edit_message,
    new_message,
)
from dfj_sandbox.discord_sim.openapi import FieldError
from dfj_sandbox.discord_sim.world import World

__all__ = ["ALLOWED_CALLBACKS", "apply_callback", "callback_errors"]

PING: Final = 1
APPLICATION_COMMAND: Final = 2
MESSAGE_COMPONENT: Final = 3
AUTOCOMPLETE: Final = 4
MODAL_SUBMIT: Final = 5

ALLOWED_CALLBACKS: Final[Mapping[int, frozenset[int]]] = {
    PING: frozenset({1}),
    APPLICATION_COMMAND: frozenset({4, 5, 9, 10, 12}),
    MESSAGE_COMPONENT: frozenset({4, 5, 6, 7, 9, 10, 12}),
    AUTOCOMPLETE: frozenset({8}),
    MODAL_SUBMIT: frozenset({4, 5, 6, 7, 10, 12}),
}
"""Per interaction type, the callback types Discord accepts."""


def callback_errors(record: InteractionRecord, response: Any) -> list[FieldError]:
    """How an answer breaks the rules for its interaction (beyond the spec's schema)."""
    if not isinstance(response, Mapping) or not isinstance(response.get("type"), int):
        return []
    kind = response["type"]
    allowed = ALLOWED_CALLBACKS.get(record.type)
    errors: list[FieldError] = []
    if allowed is not None and kind not in allowed:
        errors.append(
            FieldError(
                path=("type",),
                code="INTERACTION_RESPONSE_TYPE_INVALID",
                message=f"Interaction callback type {kind} is not valid for interaction"
                f" type {record.type}",
            )
        )
    if kind in (6, 7) and record.source_message_id is None:
        errors.append(
            FieldError(
                path=("type",),
                code="INTERACTION_RESPONSE_TYPE_INVALID",
                message="There is no message to update",
            )
        )
    data = response.get("data")
    if kind == 5 and isinstance(data, Mapping) and (int(data.get("flags") or 0) & ~EPHEMERAL):
        errors.append(
            FieldError(
                path=("data", "flags"),
                code="MESSAGE_FLAGS_INVALID",
                message="A deferred response may only be ephemeral.",
            )
        )
    return errors


def _response_type(record: InteractionRecord) -> int:
    if record.type == APPLICATION_COMMAND:
        return 20 if record.command_type in (None, 1) else 23
    return 0


def apply_callback(
    world: World,
    ledger: InteractionLedger,
    record: InteractionRecord,
    response: Mapping[str, Any],
) -> InteractionRecord:
    """Record the answer and make its effect (see the module docstring)."""
    kind = int(response["type"])
    raw = response.get("data")
    data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    original: str | None = None
    channel_id = record.channel_id or ""
    if kind == 4:
        message = new_message(
            world,
            data,
            channel_id=channel_id,
            author_id=world.application.id,
            flags_allowed=WEBHOOK_FLAGS,
            type=_response_type(record),
            webhook=True,
            interaction_id=record.id,
        )
        original = world.add_message(message).id
    elif kind == 5:
        placeholder = new_message(
            world,
            {},
            channel_id=channel_id,
            author_id=world.application.id,
            flags_allowed=0,
            type=_response_type(record),
            webhook=True,
            interaction_id=record.id,
            extra_flags=LOADING | (int(data.get("flags") or 0) & EPHEMERAL),
        )
        original = world.add_message(placeholder).id
    elif kind in (6, 7) and record.source_message_id is not None:
        source = world.message(record.source_message_id)
        original = record.source_message_id
        if kind == 7 and source is not None:
            edit_message(world, source, data, flags_allowed=WEBHOOK_FLAGS & ~EPHEMERAL)
    return ledger.update(
        record,
        response_type=kind,
        responded_at=world.clock.now(),
        original_message_id=original,
    )
