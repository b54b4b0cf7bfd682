"""What the linker asks the discord-worker to say: interaction answers and DMs.

Both go to ``discord-outbox`` in the discord-worker's protocol
(``dfj_discord_worker.delivery.outbox``): ``discord.interaction.reply`` edits the deferred
(ephemeral) answer of a command, or follows up a click; ``discord.message.post`` with
``dm_user_id`` writes to a user directly — the only way to reach someone after the OAuth
redirect, which happens in a browser, long after the interaction that started it. Ids are
deterministic, so an answer repeated by a redelivery is dropped by the bus.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from dfj_common.bus import DISCORD_OUTBOX, Bus
from dfj_common.envelope import Envelope, deterministic_id
from dfj_linker.invocation import Invocation

__all__ = ["EPHEMERAL", "SOURCE", "Replies"]

SOURCE: Final = "dfj-linker"
INTERACTION_REPLY: Final = "discord.interaction.reply"
MESSAGE_POST: Final = "discord.message.post"
EPHEMERAL: Final = 1 << 6


class Replies:
    """Publishes the linker's answers."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def answer(
        self,
        invocation: Invocation,
        message: Mapping[str, Any],
        *,
        tenant: str | None = None,
        files: Sequence[Mapping[str, str]] = (),
    ) -> None:
        """The (ephemeral) answer to ``invocation``, with ``files`` (``name``, ``content_type``,
        ``text``) attached."""
        body = dict(message)
        if invocation.followup:
            body["flags"] = EPHEMERAL
        await self._bus.publish_envelope(
            DISCORD_OUTBOX,
            Envelope(
                id=deterministic_id("reply", invocation.event_id),
                source=SOURCE,
                type=INTERACTION_REPLY,
                tenant=tenant,
                session_key=invocation.channel_id,
                data={
                    "application_id": invocation.application_id,
                    "token": invocation.token,
                    "interaction_id": invocation.interaction_id,
                    "channel_id": invocation.channel_id,
                    "guild_id": invocation.guild_id,
                    "message": body,
                    "ephemeral": True,
                    "followup": invocation.followup,
                    "created_at": invocation.created_at,
                    **({"files": [dict(f) for f in files]} if files else {}),
                },
            ),
        )

    async def direct(
        self, *, event_id: str, client_key: str, user_id: str, message: Mapping[str, Any]
    ) -> None:
        """A DM to ``user_id``, once per ``event_id``."""
        await self._bus.publish_envelope(
            DISCORD_OUTBOX,
            Envelope(
                id=deterministic_id("linker-dm", event_id),
                source=SOURCE,
                type=MESSAGE_POST,
                tenant=client_key,
                session_key=f"dm:{user_id}",
                data={"client_key": client_key, "dm_user_id": user_id, "message": dict(message)},
            ),
        )
