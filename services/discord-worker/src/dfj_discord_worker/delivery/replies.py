"""Answering interactions: ``discord.interaction.reply`` messages.

The gateway deferred the interaction (Discord's 3 seconds); the answer goes through the
interaction's webhook token, which works for 15 minutes:

- ``followup`` false → edit the deferred response (``@original``); an edit is idempotent, so
  a redelivery just edits again;
- ``followup`` true → a follow-up message (ephemeral when asked). Discord's follow-ups take no
  nonce, so the delivery log marks one ``sent`` once Discord accepted it and a redelivery
  skips it; only a crash between Discord's answer and that record can post a second copy;
- Discord calling a token of a few seconds expired (10015 Unknown Webhook) means it has not
  finished taking the deferred response yet: retried shortly (``RateLimited``);
- the token too old, or Discord calling it expired (10015 Unknown Webhook, 50027 Invalid
  Webhook Token): a public answer falls back to a bot message in the channel (with a nonce),
  a private one is dropped with a log — the user would otherwise see a stranger's answer.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

import structlog

from dfj_common.clock import Clock
from dfj_common.envelope import Envelope
from dfj_common.errors import RateLimited
from dfj_common.runtime import HandlerContext
from dfj_common.storage import Repositories
from dfj_discord_worker.delivery import limits
from dfj_discord_worker.delivery.outbox import BadOutboxMessage, Reply, read_reply
from dfj_discord_worker.delivery.poster import SENT, nonce_for
from dfj_discord_worker.discord import DiscordClient, DiscordError

__all__ = ["TOKEN_LIFE", "Replier"]

_log: Final = structlog.get_logger("dfj.discord_worker.replies")

TOKEN_LIFE: Final = timedelta(minutes=15)
EPHEMERAL: Final = 1 << 6
_MARGIN: Final = 30.0  # seconds: do not start a call the token may not outlive
# "Unknown Webhook" this soon after the interaction means "not acknowledged yet", not expired.
_SETTLING: Final = 10.0
_SETTLING_RETRY: Final = 0.25
UNKNOWN_WEBHOOK: Final = 10015


class Replier:
    """The ``discord.interaction.reply`` handler (see the module docstring)."""

    def __init__(self, *, discord: DiscordClient, repos: Repositories, clock: Clock) -> None:
        self._discord = discord
        self._repos = repos
        self._clock = clock

    async def __call__(self, envelope: Envelope, context: HandlerContext) -> None:
        reply = read_reply(envelope)
        found = limits.problems(reply.message)
        if found:
            raise BadOutboxMessage("the reply breaks Discord's limits: " + "; ".join(found))
        done = await self._repos.delivery_log.get(envelope.id)
        if done is not None and done.status == SENT:
            _log.info("already answered")
            return
        age = self._clock.now() - reply.created_at
        if age > TOKEN_LIFE.total_seconds() - _MARGIN:
            await self._too_late(envelope, reply, age=age)
            return
        try:
            answer = await self._answer(reply)
        except DiscordError as exc:
            if not exc.interaction_expired:
                raise
            if exc.code == UNKNOWN_WEBHOOK and age < _SETTLING:
                # A token seconds old is not expired: Discord has not finished taking the
                # deferred response yet (the worker can be that fast). Ask again shortly.
                raise RateLimited(
                    "interaction not yet acknowledged by Discord", retry_after=_SETTLING_RETRY
                ) from exc
            await self._too_late(envelope, reply, age=age)
            return
        if reply.followup:
            await self._repos.delivery_log.record(
                envelope.id,
                channel_id=reply.channel_id or reply.interaction_id,
                status=SENT,
                discord_message_id=str(answer.get("id", "")) or None,
            )

    async def _answer(self, reply: Reply) -> dict[str, Any]:
        body = dict(reply.message)
        if not reply.followup:
            body.pop("flags", None)  # the deferred response already chose ephemeral or not
            return await self._discord.edit_original_response(
                reply.application_id, reply.token, body, files=reply.files
            )
        if reply.ephemeral:
            body["flags"] = int(body.get("flags", 0)) | EPHEMERAL
        return await self._discord.create_followup(
            reply.application_id, reply.token, body, files=reply.files
        )

    async def _too_late(self, envelope: Envelope, reply: Reply, *, age: float) -> None:
        if reply.ephemeral or reply.channel_id is None:
            _log.warning("interaction token expired; private answer dropped", age=round(age))
            return
        body = {k: v for k, v in reply.message.items() if k in ("content", "embeds", "components")}
        body["allowed_mentions"] = {"parse": []}
        body["nonce"] = nonce_for(envelope.id)
        body["enforce_nonce"] = True
        answer = await self._discord.create_message(reply.channel_id, body)
        await self._repos.delivery_log.record(
            envelope.id,
            channel_id=reply.channel_id,
            status=SENT,
            discord_message_id=str(answer["id"]),
        )
        _log.info("interaction token expired; answered in the channel", age=round(age))
