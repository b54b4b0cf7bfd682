"""The interactions the simulator sent, their tokens, and what became of them.

Discord issues a token with every interaction; the app answers once (inline, or through the
callback endpoint, within 3 seconds) and then uses the token for up to 15 minutes to edit its
original response and send follow-ups through ``/webhooks/{application.id}/{token}``. The
ledger is what makes those webhook calls valid or not:

- a token the simulator never issued is ``401 Invalid Webhook Token`` (50027);
- a token older than 15 minutes on the clock, or whose interaction was never answered in
  time, is ``404 Unknown Webhook`` (10015) — the webhook exists only once the interaction has
  been acknowledged (a deferred answer counts);
- what the original response is depends on how it was answered: a message for types 4 and 5
  (5 starts as a "thinking…" message with the ``LOADING`` flag), the message the component
  is on for types 6 and 7, nothing for modals and autocomplete.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["InteractionLedger", "InteractionRecord"]


@dataclass(frozen=True, kw_only=True)
class InteractionRecord:
    """One interaction the simulator sent."""

    id: str
    token: str = field(repr=False)
    application_id: str
    type: int
    channel_id: str | None
    guild_id: str | None
    user_id: str | None
    issued_at: float
    command_type: int | None = None
    source_message_id: str | None = None
    response_type: int | None = None
    responded_at: float | None = None
    original_message_id: str | None = None
    followup_ids: tuple[str, ...] = ()
    late: bool = False

    @property
    def acknowledged(self) -> bool:
        """Whether the initial response was given in time."""
        return self.response_type is not None and not self.late

    def expired(self, now: float, lifetime: float) -> bool:
        """Whether the token's life (15 minutes by default) is over."""
        return now - self.issued_at > lifetime

    @classmethod
    def from_body(cls, body: Mapping[str, Any], *, issued_at: float) -> InteractionRecord:
        """What a sent interaction body says about itself."""
        member = body.get("member")
        user = member.get("user") if isinstance(member, Mapping) else body.get("user")
        data = body.get("data")
        message = body.get("message")
        return cls(
            id=str(body["id"]),
            token=str(body["token"]),
            application_id=str(body.get("application_id", "")),
            type=int(body["type"]),
            channel_id=_string(body.get("channel_id")),
            guild_id=_string(body.get("guild_id")),
            user_id=_string(user.get("id")) if isinstance(user, Mapping) else None,
            issued_at=issued_at,
            command_type=int(data["type"])
            if isinstance(data, Mapping) and isinstance(data.get("type"), int)
            else None,
            source_message_id=_string(message.get("id")) if isinstance(message, Mapping) else None,
        )


def _string(value: Any) -> str | None:
    return None if value is None else str(value)


class InteractionLedger:
    """Every interaction sent, by id and by token."""

    def __init__(self) -> None:
        self._by_id: dict[str, InteractionRecord] = {}
        self._by_token: dict[str, str] = {}

    def add(self, record: InteractionRecord) -> InteractionRecord:
        """Remember a sent interaction."""
        self._by_id[record.id] = record
        self._by_token[record.token] = record.id
        return record

    def by_token(self, token: str) -> InteractionRecord | None:
        """The interaction a token was issued for."""
        interaction_id = self._by_token.get(token)
        return None if interaction_id is None else self._by_id[interaction_id]

    def get(self, interaction_id: str) -> InteractionRecord | None:
        """The interaction with this id."""
        return self._by_id.get(interaction_id)

    def update(self, record: InteractionRecord, **changes: Any) -> InteractionRecord:
        """Store ``record`` with ``changes``."""
        new = replace(self._by_id[record.id], **changes)
        self._by_id[new.id] = new
        return new

    def __iter__(self) -> Iterator[InteractionRecord]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)
