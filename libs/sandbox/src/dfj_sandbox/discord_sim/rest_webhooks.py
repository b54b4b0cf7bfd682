"""Interaction webhooks (``/webhooks/{application.id}/{token}``) and the callback endpoint.

By the time a handler here runs, the server has found the interaction the token belongs to
and checked that its webhook exists (see :mod:`~dfj_sandbox.discord_sim.ledger`).

- ``POST`` (follow-up): a new webhook message in the interaction's channel, ``EPHEMERAL``
  allowed, always answered with the message (follow-ups behave as ``wait=true``). Discord's
  deprecated quirk is kept: a follow-up while a deferred response (5) is still "thinking…"
  edits that response instead of posting.
- ``GET|PATCH|DELETE …/messages/@original``: the original response (404 10008 when the
  answer left none — a modal, an autocomplete result).
- ``GET|PATCH|DELETE …/messages/{message_id}``: the original or one of its follow-ups.
- ``POST /interactions/{id}/{token}/callback``: the initial response when the app did not
  answer inline: within 3 s of the interaction (10062 after), once (40060), 204 — or 200 with
  the Interaction Callback Response when ``with_response`` is true.
"""

from __future__ import annotations

from dfj_sandbox.discord_sim.callbacks import apply_callback, callback_errors
from dfj_sandbox.discord_sim.errors import (
    ALREADY_ACKNOWLEDGED,
    EMPTY_MESSAGE,
    UNKNOWN_INTERACTION,
    UNKNOWN_MESSAGE,
    Refusal,
    Reply,
    form_error,
)
from dfj_sandbox.discord_sim.ledger import InteractionRecord
from dfj_sandbox.discord_sim.limits import is_empty_message
from dfj_sandbox.discord_sim.messages import (
    EPHEMERAL,
    LOADING,
    WEBHOOK_FLAGS,
    edit_message,
    edited,
    is_empty,
    new_message,
)
from dfj_sandbox.discord_sim.model import Message
from dfj_sandbox.discord_sim.render import message_json
from dfj_sandbox.discord_sim.rest import RestRequest, refuse

__all__ = [
    "create_followup",
    "delete_webhook_message",
    "edit_webhook_message",
    "get_webhook_message",
    "interaction_callback",
]


def _interaction(req: RestRequest) -> InteractionRecord:
    record = req.interaction
    assert record is not None, "the server resolves the interaction of a webhook route"
    return record


def _reply(req: RestRequest, message: Message) -> Reply:
    author = req.world.users[message.author_id]
    return Reply(status=200, body=message_json(message, author=author))


def _target(req: RestRequest) -> Message:
    record = _interaction(req)
    wanted = req.path_params.get("message_id")
    if wanted is None:
        message_id = record.original_message_id
    elif wanted in (record.original_message_id, *record.followup_ids):
        message_id = wanted
    else:
        message_id = None
    message = req.world.message(message_id) if message_id else None
    if message is None:
        raise refuse(404, UNKNOWN_MESSAGE)
    return message


def create_followup(req: RestRequest) -> Reply:
    """Create Followup Message."""
    world = req.world
    record = _interaction(req)
    body = req.json
    if is_empty_message(body):
        raise refuse(400, EMPTY_MESSAGE)
    original = world.message(record.original_message_id) if record.original_message_id else None
    if original is not None and original.loading:
        changes = {k: v for k, v in body.items() if k != "flags"}
        return _reply(req, edit_message(world, original, changes, flags_allowed=0))
    message = world.add_message(
        new_message(
            world,
            body,
            channel_id=record.channel_id or "",
            author_id=world.application.id,
            flags_allowed=WEBHOOK_FLAGS,
            webhook=True,
            interaction_id=record.id,
        )
    )
    req.ledger.update(record, followup_ids=(*record.followup_ids, message.id))
    return _reply(req, message)


def get_webhook_message(req: RestRequest) -> Reply:
    """Get Original Interaction Response / Get Followup Message."""
    return _reply(req, _target(req))


def edit_webhook_message(req: RestRequest) -> Reply:
    """Edit Original Interaction Response / Edit Followup Message."""
    world = req.world
    message = _target(req)
    allowed = WEBHOOK_FLAGS & ~EPHEMERAL
    if is_empty(edited(world, message, req.json, flags_allowed=allowed)):
        raise refuse(400, EMPTY_MESSAGE)
    return _reply(req, edit_message(world, message, req.json, flags_allowed=allowed))


def delete_webhook_message(req: RestRequest) -> Reply:
    """Delete Original Interaction Response / Delete Followup Message."""
    record = _interaction(req)
    message = _target(req)
    req.world.delete_message(message)
    if message.id == record.original_message_id:
        req.ledger.update(record, original_message_id=None)
    else:
        req.ledger.update(
            record, followup_ids=tuple(m for m in record.followup_ids if m != message.id)
        )
    return Reply(status=204)


def interaction_callback(req: RestRequest) -> Reply:
    """Create Interaction Response."""
    world = req.world
    record = req.ledger.get(req.param("interaction_id"))
    token_ok = record is not None and record.token == req.param("interaction_token")
    if record is None or not token_ok:
        raise refuse(404, UNKNOWN_INTERACTION)
    if record.acknowledged:
        raise refuse(400, ALREADY_ACKNOWLEDGED)
    if record.late or world.clock.now() - record.issued_at > req.options.callback_deadline:
        raise refuse(404, UNKNOWN_INTERACTION)
    problems = callback_errors(record, req.body)
    if problems:
        raise Refusal(form_error(problems))
    record = apply_callback(world, req.ledger, record, req.json)
    if not req.flag("with_response"):
        return Reply(status=204)
    original = world.message(record.original_message_id) if record.original_message_id else None
    interaction: dict[str, object] = {"id": record.id, "type": record.type}
    body: dict[str, object] = {"interaction": interaction}
    if original is not None:
        interaction.update(
            response_message_id=original.id,
            response_message_loading=bool(original.flags & LOADING),
            response_message_ephemeral=original.ephemeral,
        )
        if record.response_type in (4, 7):
            author = world.users[original.author_id]
            body["resource"] = {
                "type": record.response_type,
                "message": message_json(original, author=author),
            }
    return Reply(status=200, body=body)
