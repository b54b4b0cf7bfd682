"""What every bus backend provides, and what consumers may rely on.

Semantics (proved for each backend by the contract suite in ``libs/common/tests/bus``):

- at-least-once delivery with peek-lock: a received message is invisible to others until it is
  settled or its lock (``QueueSpec.lock_duration``) expires, and ``renew_lock`` extends it;
- explicit settlement: ``complete``; ``retry`` (scheduled redelivery after a back-off); or
  ``dead_letter`` with a reason; ``release`` hands it back at once (used when draining);
- ``delivery_count`` counts receipts; a message received more than ``max_deliveries`` times is
  dead-lettered with reason ``MaxDeliveryCountExceeded``;
- on session queues, FIFO per ``session_id`` with one consumer per session at a time;
- a receiver made with ``session_batch=N`` may hand out up to N *consecutive* messages of one
  session at once (in sequence order within the returned list), so a consumer can act on a
  run of them together — the discord-worker packs notifications waiting for one channel into
  one post. Nothing later of that session reaches anyone while any of them is unsettled. The
  consumer settles them in order; when it retries or releases one, it releases the later ones
  of the run too, and they come back behind it, in order;
- publishes with a ``message_id`` already seen within ``duplicate_window`` are dropped;
- dead-lettered messages can be listed, shown and replayed.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from dfj_common import telemetry
from dfj_common.envelope import Envelope

__all__ = [
    "MAX_DELIVERY_REASON",
    "Bus",
    "DeadLetter",
    "Delivery",
    "OutgoingMessage",
    "QueueStats",
    "Receiver",
]

MAX_DELIVERY_REASON: Final = "MaxDeliveryCountExceeded"
CLOUDEVENTS_JSON: Final = "application/cloudevents+json"


@dataclass(frozen=True, kw_only=True)
class OutgoingMessage:
    """A message to publish. ``message_id`` is the dedupe key; ``session_id`` the order key."""

    body: bytes
    message_id: str
    session_id: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    content_type: str = CLOUDEVENTS_JSON

    def __post_init__(self) -> None:
        if not self.message_id or len(self.message_id) > 128:
            raise ValueError("message_id must be 1 to 128 characters")
        if self.session_id is not None and not 0 < len(self.session_id) <= 128:
            raise ValueError("session_id must be 1 to 128 characters")

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> OutgoingMessage:
        """The envelope's id becomes the message id and its session key the session id."""
        return cls(
            body=envelope.encode(),
            message_id=envelope.id,
            session_id=envelope.session_key,
            properties={"type": envelope.type},
        )


class Delivery(abc.ABC):
    """A received, locked message; settle it exactly once."""

    queue: str
    message_id: str
    session_id: str | None
    body: bytes
    properties: Mapping[str, str]
    delivery_count: int
    enqueued_at: float
    max_deliveries: int

    def __init__(self) -> None:
        self._settled = False

    @property
    def settled(self) -> bool:
        return self._settled

    def _mark_settled(self) -> None:
        if self._settled:
            raise RuntimeError(f"message {self.message_id} is already settled")
        self._settled = True

    @abc.abstractmethod
    async def complete(self) -> None:
        """Done: remove the message for good."""

    @abc.abstractmethod
    async def retry(self, delay: float, *, reason: str = "") -> None:
        """Redeliver after ``delay`` seconds, or dead-letter if deliveries are used up."""

    @abc.abstractmethod
    async def dead_letter(self, reason: str, description: str = "") -> None:
        """Move to the dead-letter queue, keeping ``reason`` and ``description``."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Unlock at once so another consumer can take it (graceful shutdown)."""

    @abc.abstractmethod
    async def renew_lock(self) -> None:
        """Extend the lock by the queue's lock duration; raises ``LockLost`` if it is gone."""

    @property
    def deliveries_left(self) -> int:
        return max(self.max_deliveries - self.delivery_count, 0)


class Receiver(abc.ABC):
    """Pulls locked messages from one queue."""

    @abc.abstractmethod
    async def receive(self, max_messages: int, *, timeout: float) -> list[Delivery]:
        """Up to ``max_messages``, waiting at most ``timeout`` seconds for the first one."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop receiving and release what was received but not yet handed out."""


@dataclass(frozen=True, kw_only=True)
class DeadLetter:
    """A dead-lettered message as the operator sees it."""

    queue: str
    message_id: str
    session_id: str | None
    body: bytes
    properties: Mapping[str, str]
    delivery_count: int
    reason: str
    description: str
    enqueued_at: float
    dead_lettered_at: float | None
    sequence: int


@dataclass(frozen=True, kw_only=True)
class QueueStats:
    """Counts of one queue, for ``dfj bus stats`` and queue-lag metrics."""

    queue: str
    active: int
    scheduled: int
    locked: int
    dead_lettered: int
    oldest_enqueued_at: float | None


class Bus(abc.ABC):
    """A connection to the bus: publish, receive, and the operator's dead-letter tools."""

    @abc.abstractmethod
    async def publish(self, queue: str, message: OutgoingMessage) -> None:
        """Durably enqueue one message (dropped if its id was seen within the window)."""

    @abc.abstractmethod
    async def publish_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        """Enqueue several messages atomically."""

    @abc.abstractmethod
    async def schedule(self, queue: str, message: OutgoingMessage, *, at: float) -> None:
        """Enqueue a message that becomes visible at epoch second ``at``."""

    @abc.abstractmethod
    def receiver(self, queue: str, *, session_batch: int = 1) -> Receiver:
        """A receiver for ``queue``; close it when done.

        ``session_batch`` > 1 lets a receive on a session queue return runs of up to that
        many consecutive messages of one session (see the module docstring); it is ignored
        on a queue without sessions.
        """

    @abc.abstractmethod
    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead-lettered messages of ``queue``."""

    @abc.abstractmethod
    async def replay(self, queue: str, *, message_ids: Sequence[str] | None = None) -> int:
        """Move dead-lettered messages (all, or those ids) back to the queue; returns the count."""

    @abc.abstractmethod
    async def stats(self) -> list[QueueStats]:
        """Counts for every queue of the topology."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise if the bus cannot be reached (for ``/readyz``)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and background tasks."""

    async def publish_within(self, queue: str, message: OutgoingMessage, timeout: float) -> None:
        """:meth:`publish`, or :class:`TimeoutError` once ``timeout`` seconds have passed.

        For a caller with a deadline of its own (Discord waits 3 seconds for an answer). Here
        the wait is cut short; whether the message went out anyway is unknown. A bus that can
        tell does better: the local bus drops a publish it has not yet written, so its
        ``TimeoutError`` means nothing was published.
        """
        async with asyncio.timeout(timeout):
            await self.publish(queue, message)

    async def publish_envelope(
        self, queue: str, envelope: Envelope, *, timeout: float | None = None
    ) -> None:
        """Publish one CloudEvent with its id and session key (within ``timeout``, if given).

        Unless the envelope already carries trace context, the current span's ``traceparent``
        is stamped on it, so the consumer's span continues this trace.
        """
        if envelope.traceparent is None:
            envelope = telemetry.inject(envelope)
        message = OutgoingMessage.from_envelope(envelope)
        if timeout is None:
            await self.publish(queue, message)
        else:
            await self.publish_within(queue, message, timeout)

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
