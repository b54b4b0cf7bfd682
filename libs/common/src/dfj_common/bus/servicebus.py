"""The Azure Service Bus backend (``azure-servicebus`` 7.x async), the emulator included.

How it keeps the contract of :mod:`dfj_common.bus.base`:

- **Connection.** A connection string (``ServiceBusClient.from_connection_string``; the
  emulator's ``UseDevelopmentEmulator=true`` turns TLS off) or a namespace with an async
  ``TokenCredential`` (``DefaultAzureCredential`` — managed identity — when none is given; we
  close what we create). The SDK shares no connection between handlers: every sender and
  receiver is one AMQP connection, which matters against the emulator's cap of 10.
- **Publishing.** One sender per queue, each behind an ``asyncio.Lock`` (the SDK is not
  coroutine-safe). ``publish_batch`` packs ``ServiceBusMessageBatch`` objects, starting a new
  one when a message no longer fits; all batches are packed before the first is sent, so an
  oversized message fails the call before anything went out. Each batch is atomic; a split
  batch is not atomic as a whole. Duplicate detection is the broker's (queues are created with
  ``requiresDuplicateDetection``). A session queue needs a ``session_id`` and a non-session
  queue refuses one (``ValueError``), exactly as the local bus does.
- **Receiving.** A plain queue is one peek-lock receiver with ``prefetch_count=0``. A session
  queue is a pool of up to ``max_sessions`` loops; each accepts the next available session
  (``NEXT_AVAILABLE_SESSION``), hands out its messages **one at a time** (or, with
  ``session_batch=N``, runs of up to N fetched in one ``receive_messages``) — the next only
  after everything handed out was settled, so FIFO per session holds while the worker runs
  many deliveries at once — and closes the session after ``session_idle_timeout`` without
  work, or at once after a ``release`` or a failed settlement (so the broker hands the message
  out again, in order). Loops fetch only against demand from ``receive`` callers (see
  ``_servicebus_handout``).
- **Delivery count.** The SDK reports the AMQP header's count of *previous* deliveries; the
  contract's count includes this one, and the deliveries used by earlier retry copies (the
  ``dfj-attempt`` property). A delivery whose effective count exceeds ``max_deliveries`` is
  dead-lettered with ``MaxDeliveryCountExceeded`` when received; the broker's own
  ``MaxDeliveryCount`` does the same for abandons and expired locks of one copy.
- **Retry.** Once deliveries are used up, ``retry`` dead-letters. ``delay <= 0`` abandons.
  Otherwise, on a plain queue it sends a copy scheduled at now + delay (same body, a derived
  id ``<id>.r<n>`` because duplicate detection would drop the original id;
  ``Delivery.message_id`` still reports the original id) and completes the original. On a
  session queue a copy would join the end of its session and let later messages overtake it,
  so the session loop instead *holds the session* for the delay (renewing the session lock),
  then abandons the message and closes the session: the message comes back first, counted,
  and its successors wait, as on the local bus. Held sessions do not count against
  ``max_sessions``. If the process dies during the hold, the message returns when the session
  lock expires (after at most the lock duration, possibly before the delay is over).
- **Settlement errors.** ``MessageLockLostError``/``SessionLockLostError`` (and settling through
  a closed receiver) raise ``LockLost``; connection problems, timeouts and server-busy raise
  ``TransientError``; other SDK errors ``BusError``.
- **Operator tools.** ``dead_letters`` peeks the dead-letter sub-queue (read without a session,
  also for session queues). ``replay`` receives dead letters in peek-lock, sends copies with id
  ``<id>.replay<sequence>`` and completes the dead letter. ``stats`` uses the administration
  client where it works; the emulator has none, and an identity with data roles only may not be
  allowed to use it, so it falls back to bounded peeks — see :meth:`ServiceBusBus.stats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import structlog
from azure.core.exceptions import AzureError
from azure.servicebus import (
    NEXT_AVAILABLE_SESSION,
    ServiceBusMessage,
    ServiceBusMessageBatch,
    ServiceBusMessageState,
    ServiceBusSubQueue,
)
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessageNotFoundError,
    MessageSizeExceededError,
    OperationTimeoutError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
    ServiceBusServerBusyError,
    SessionLockLostError,
)

from dfj_common.bus._servicebus_codec import (
    DEAD_LETTER_DESCRIPTION_LIMIT,
    DEAD_LETTER_REASON_LIMIT,
    LINEAGE_PROP,
    RESERVED_PROPS,
    DeadLetterInstead,
    body_bytes,
    decode_properties,
    effective_delivery_count,
    enqueued_epoch,
    epoch,
    is_emulator_connection,
    iso_duration,
    original_id,
    plan_replay,
    plan_retry,
    user_properties,
    utc,
)
from dfj_common.bus._servicebus_handout import Handout
from dfj_common.bus._servicebus_types import (
    ClientLike,
    ReceivedMessageLike,
    ReceiverLike,
    SenderLike,
)
from dfj_common.bus.base import (
    MAX_DELIVERY_REASON,
    Bus,
    DeadLetter,
    Delivery,
    OutgoingMessage,
    QueueStats,
    Receiver,
)
from dfj_common.bus.topology import TOPOLOGY, QueueSpec, Topology
from dfj_common.clock import Clock, SystemClock
from dfj_common.config import Settings
from dfj_common.errors import BusError, ConfigError, LockLost, TransientError

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.servicebus.aio.management import ServiceBusAdministrationClient

__all__ = [
    "EMULATOR_NAMESPACE",
    "ServiceBusBus",
    "ServiceBusDelivery",
    "bicep_queue_properties",
    "emulator_config",
    "translate_error",
]

_log: Final = structlog.get_logger("dfj.bus.servicebus")

EMULATOR_NAMESPACE: Final = "sbemulatorns"
DEFAULT_MAX_SESSIONS: Final = 4
EMULATOR_MAX_SESSIONS: Final = 2
MIN_WAIT: Final = 0.05  # the SDK refuses a zero wait
RECEIVE_SLICE: Final = 1.0  # a session loop's longest wait for one message while holding demand
LOCK_GRACE: Final = 2.0  # past a session lock's expiry before its loop gives the session up
ERROR_PAUSE: Final = 1.0  # after an unexpected error accepting a session
PEEK_PAGE: Final = 250
STATS_PEEK_LIMIT: Final = 1000
REPLAY_BATCH: Final = 50
REPLAY_WAIT: Final = 2.0
PING_SEQUENCE: Final = 2**62  # peek from far beyond the last message: a round trip, no payload

_ALL_PRIMITIVES = int | float | bytes | bool | str | uuid.UUID
AppProperties = dict[str | bytes, _ALL_PRIMITIVES]
Outcome = Literal["completed", "retried", "held", "dead_lettered", "released", "lost"]
HOLD_CAP_FACTOR: Final = 4  # loops (sessions) a receiver may have, held ones included


# -- errors ------------------------------------------------------------------------------------

_LOCK_ERRORS: Final = (
    MessageLockLostError,
    SessionLockLostError,
    MessageAlreadySettled,
    MessageNotFoundError,
)
_TRANSIENT_ERRORS: Final = (
    ServiceBusConnectionError,
    ServiceBusCommunicationError,
    OperationTimeoutError,
    ServiceBusServerBusyError,
    TimeoutError,
    ConnectionError,
)


def translate_error(exc: Exception, action: str, *, settling: bool = False) -> Exception:
    """Our error for an SDK failure: ``LockLost``, ``TransientError`` or ``BusError``.

    While settling, a ``ValueError`` means the receiver behind the message was shut down
    (``"The handler has already been shutdown"``): the lock is no longer ours either.
    Anything that is not the SDK's (nor a timeout/connection error) is returned unchanged.
    """
    what = f"{action}: {type(exc).__name__}: {exc}"
    if isinstance(exc, _LOCK_ERRORS):
        return LockLost(what)
    if isinstance(exc, MessageSizeExceededError):
        return ValueError(f"{action}: the message is larger than the queue allows")
    if settling and isinstance(exc, ValueError):
        return LockLost(what)
    if isinstance(exc, _TRANSIENT_ERRORS):
        return TransientError(what)
    if isinstance(exc, AzureError):
        return BusError(what)
    return exc


@contextlib.contextmanager
def _sdk_errors(action: str, *, settling: bool = False) -> Iterator[None]:
    try:
        yield
    except (LockLost, BusError, TransientError):
        raise
    except Exception as exc:
        mapped = translate_error(exc, action, settling=settling)
        if mapped is exc:
            raise
        raise mapped from exc


async def _quietly(what: str, operation: Awaitable[object]) -> None:
    try:
        await operation
    except Exception as exc:  # best effort: closing, releasing
        _log.debug("best-effort operation failed", operation=what, error=type(exc).__name__)


# -- deliveries --------------------------------------------------------------------------------


class ServiceBusDelivery(Delivery):
    """A locked message of a Service Bus queue, settled through the receiver it came from."""

    def __init__(
        self,
        bus: ServiceBusBus,
        spec: QueueSpec,
        receiver: ReceiverLike,
        message: ReceivedMessageLike,
        *,
        in_session: bool,
    ) -> None:
        super().__init__()
        self._bus = bus
        self._spec = spec
        self._receiver = receiver
        self._message = message
        self._in_session = in_session
        self._raw_properties = decode_properties(message.application_properties)
        self._on_settled: Callable[[Outcome, float], None] | None = None
        self.queue = spec.name
        self.broker_message_id = message.message_id or ""
        self.message_id = original_id(message.message_id, self._raw_properties)
        self.session_id = message.session_id
        self.body = body_bytes(message.body)
        self.properties = user_properties(self._raw_properties)
        self.delivery_count = effective_delivery_count(message.delivery_count, self._raw_properties)
        self.enqueued_at = enqueued_epoch(message.enqueued_time_utc, self._raw_properties)
        self.max_deliveries = spec.max_deliveries
        self.sequence: int | None = message.sequence_number

    def _finish(self, outcome: Outcome, hold: float = 0.0) -> None:
        callback, self._on_settled = self._on_settled, None
        if callback is not None:
            callback(outcome, hold)

    async def _settle(
        self, outcome: Outcome, action: str, operation: Callable[[], Awaitable[None]]
    ) -> None:
        self._mark_settled()
        ok = False
        try:
            with _sdk_errors(f"{action} {self.queue}/{self.message_id}", settling=True):
                await operation()
            ok = True
        finally:
            # A failed settlement leaves the message (and its session) in doubt: end the
            # session so the broker hands the message out again, in order.
            self._finish(outcome if ok else "lost")

    async def complete(self) -> None:
        await self._settle(
            "completed", "complete", lambda: self._receiver.complete_message(self._message)
        )

    async def dead_letter(self, reason: str, description: str = "") -> None:
        await self._settle(
            "dead_lettered",
            "dead-letter",
            lambda: self._receiver.dead_letter_message(
                self._message,
                reason=reason[:DEAD_LETTER_REASON_LIMIT],
                error_description=description[:DEAD_LETTER_DESCRIPTION_LIMIT],
            ),
        )

    async def release(self) -> None:
        await self._settle(
            "released", "release", lambda: self._receiver.abandon_message(self._message)
        )

    async def retry(self, delay: float, *, reason: str = "") -> None:
        plan = plan_retry(
            broker_message_id=self._message.message_id,
            properties=self._raw_properties,
            delivery_count=self.delivery_count,
            max_deliveries=self.max_deliveries,
            delay=delay,
            now=self._bus.clock.now(),
            enqueued_at=self.enqueued_at,
            reason=reason,
        )
        if isinstance(plan, DeadLetterInstead):
            await self.dead_letter(plan.reason, plan.description)
            return
        if delay <= 0:
            await self._settle(
                "retried", "retry", lambda: self._receiver.abandon_message(self._message)
            )
            return
        if self._in_session:
            # The session loop holds the session for ``delay``, then abandons (see the module).
            self._mark_settled()
            if self._on_settled is None or self._session_lock_expired():
                self._finish("lost")
                raise LockLost(f"retry {self.queue}/{self.message_id}: the session lock is gone")
            self._finish("held", delay)
            return
        copy = ServiceBusMessage(
            self.body,
            message_id=plan.message_id,
            application_properties=_app_properties(plan.properties),
            content_type=self._message.content_type,
            subject=self._message.subject,
            scheduled_enqueue_time_utc=utc(plan.scheduled_at),
        )

        async def send_then_complete() -> None:
            await self._bus._send(self.queue, copy)
            await self._receiver.complete_message(self._message)

        await self._settle("retried", "retry", send_then_complete)

    def _session_lock_expired(self) -> bool:
        until = epoch(self._receiver.session.locked_until_utc)
        return until is not None and until <= self._bus.clock.now()

    async def renew_lock(self) -> None:
        if self.settled:
            raise LockLost(f"message {self.message_id} is already settled")
        with _sdk_errors(f"renew lock {self.queue}/{self.message_id}", settling=True):
            if self._in_session:
                await self._receiver.session.renew_lock()
            else:
                await self._receiver.renew_message_lock(self._message)

    def __repr__(self) -> str:
        return (
            f"ServiceBusDelivery(queue={self.queue!r}, message_id={self.message_id!r}, "
            f"session_id={self.session_id!r}, delivery_count={self.delivery_count})"
        )


def _app_properties(properties: Mapping[str, str]) -> AppProperties:
    return {key: value for key, value in properties.items()}


# -- receivers ---------------------------------------------------------------------------------


class _QueueReceiver(Receiver):
    """A plain (non-session) queue: one peek-lock receiver, prefetch off."""

    def __init__(self, bus: ServiceBusBus, spec: QueueSpec, *, batch: int) -> None:
        self._bus = bus
        self._spec = spec
        self._batch = batch
        self._rx: ReceiverLike | None = None
        self._retired: list[ReceiverLike] = []
        self._lock = asyncio.Lock()
        self._closing = asyncio.Event()
        self._closed = False

    async def _open(self) -> ReceiverLike:
        if self._rx is None:
            rx = self._bus.client.get_queue_receiver(self._spec.name, prefetch_count=0)
            try:
                with _sdk_errors(f"open receiver {self._spec.name}"):
                    await rx.__aenter__()
            except BaseException:
                await _quietly("close receiver", rx.close())
                raise
            self._rx = rx
        return self._rx

    async def receive(self, max_messages: int, *, timeout: float) -> list[Delivery]:
        if self._closed:
            raise BusError("receiver is closed")
        if max_messages < 1:
            return []
        async with self._lock:
            rx = await self._open()
            try:
                with _sdk_errors(f"receive {self._spec.name}"):
                    raw = await self._until_closed(
                        rx.receive_messages(
                            max_message_count=min(max_messages, self._batch),
                            max_wait_time=max(timeout, MIN_WAIT),
                        )
                    )
            except ValueError as exc:
                if self._closed:
                    raise BusError("receiver is closed") from exc
                # The SDK shut this handler down; deliveries from it can no longer settle.
                self._retired.append(rx)
                self._rx = None
                raise TransientError(f"receiver of {self._spec.name} was shut down") from exc
        return await self._bus._admit(self._spec, rx, raw, in_session=False)

    async def _until_closed(self, fetch: Awaitable[Sequence[Any]]) -> Sequence[Any]:
        """``fetch``, unless the receiver is closed first (then the fetch is cancelled)."""
        task = asyncio.ensure_future(fetch)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({task, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if task.cancelled():
            raise BusError("receiver is closed")
        return task.result()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._bus._receivers.discard(self)
        # Let a pending receive see the close and cancel its fetch before the link goes away.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0), self._lock:
                pass
        handlers = [*self._retired, *([self._rx] if self._rx is not None else [])]
        self._rx = None
        self._retired.clear()
        for rx in handlers:
            await _quietly("close receiver", rx.close())


class _SessionReceiver(Receiver):
    """A session queue: a pool of next-available-session loops behind one demand counter."""

    def __init__(
        self,
        bus: ServiceBusBus,
        spec: QueueSpec,
        *,
        batch: int,
        max_sessions: int,
        idle_timeout: float,
        session_batch: int = 1,
    ) -> None:
        self._bus = bus
        self._spec = spec
        self._batch = batch
        self._session_batch = session_batch
        self._max_sessions = max_sessions
        self._idle_timeout = idle_timeout
        self._accept_wait = max(idle_timeout, 1.0)
        self._handout: Handout[ServiceBusDelivery] = Handout()
        self._loops: set[asyncio.Task[None]] = set()
        self._free = 0  # loops without a session (waiting for demand or accepting one)
        self._accepting: set[asyncio.Task[Any]] = set()
        self._holding = 0  # loops holding a session for a retry delay
        self._closing = asyncio.Event()
        self._closed = False

    @property
    def loops(self) -> int:
        return len(self._loops)

    async def receive(self, max_messages: int, *, timeout: float) -> list[Delivery]:
        if self._closed:
            raise BusError("receiver is closed")
        if max_messages < 1:
            return []
        self._grow()
        got = await self._handout.take(min(max_messages, self._batch), max(timeout, 0.0))
        return list(got)

    def _grow(self) -> None:
        """One more loop when every loop holds a session and the pool may grow."""
        working = len(self._loops) - self._holding
        if (
            self._free == 0
            and working < self._max_sessions
            and len(self._loops) < HOLD_CAP_FACTOR * self._max_sessions
        ):
            self._free += 1  # counted at once, so concurrent calls do not over-spawn
            task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"dfj-servicebus-session-{self._spec.name}"
            )
            self._loops.add(task)
            task.add_done_callback(self._loop_done)

    def _loop_done(self, task: asyncio.Task[None]) -> None:
        self._loops.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("session loop died", queue=self._spec.name, error=repr(task.exception()))

    async def _loop(self) -> None:
        free = True  # the spawner counted this loop as free already
        try:
            while not self._closed:
                if not free:
                    self._free += 1
                    free = True
                if not await self._handout.wait_for_demand():
                    return
                rx = await self._accept()
                if rx is None:
                    continue
                self._free -= 1
                free = False
                if self._handout.unmet > 0:
                    self._grow()  # more wanted than this session may give: another acceptor
                try:
                    await self._drain_session(rx)
                finally:
                    await _quietly("close session receiver", rx.close())
        finally:
            if free:
                self._free -= 1

    async def _accept(self) -> ReceiverLike | None:
        rx = self._bus.client.get_queue_receiver(
            self._spec.name,
            session_id=NEXT_AVAILABLE_SESSION,
            max_wait_time=self._accept_wait,
            prefetch_count=0,
        )
        task = asyncio.current_task()
        if task is not None:
            self._accepting.add(task)
        try:
            await rx.__aenter__()
        except OperationTimeoutError:
            await _quietly("close session receiver", rx.close())
            return None  # no session has messages now
        except Exception as exc:  # keep the loop alive; pause, then try again
            await _quietly("close session receiver", rx.close())
            _log.warning("accepting a session failed", queue=self._spec.name, error=repr(exc))
            await asyncio.sleep(ERROR_PAUSE)
            return None
        except BaseException:  # cancelled by close()
            await _quietly("close session receiver", rx.close())
            raise
        finally:
            if task is not None:
                self._accepting.discard(task)
        return rx

    async def _drain_session(self, rx: ReceiverLike) -> None:
        """Hand out the session's messages (one at a time, or runs of up to ``session_batch``)
        until idle, released or lost; the next only after everything handed out was settled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._idle_timeout
        while not self._closed and (remaining := deadline - loop.time()) > 0:
            if not await self._handout.acquire(within=remaining):
                return
            permits = 1
            if self._session_batch > 1:
                permits += await self._handout.acquire_more(self._session_batch - 1)
            try:
                raw = await rx.receive_messages(
                    max_message_count=permits,
                    max_wait_time=max(min(RECEIVE_SLICE, remaining), MIN_WAIT),
                )
            except Exception as exc:  # session lock lost, link gone: next session
                for _ in range(permits):
                    await self._handout.give_back()
                _log.info("session ended", queue=self._spec.name, error=type(exc).__name__)
                return
            for _ in range(permits - len(raw)):
                await self._handout.give_back()
            if not raw:
                continue
            if not await self._hand_out(rx, list(raw)):
                return
            deadline = loop.time() + self._idle_timeout

    async def _hand_out(self, rx: ReceiverLike, messages: list[ReceivedMessageLike]) -> bool:
        """Offer a run of the session's messages (one permit each) and wait for every
        settlement, in order.

        True to go on with the session; False to close it (released, lost, held, closing).
        A retry of one message with a delay holds the session for it; the consumer released
        the later ones of the run (the contract), so they come back behind it.
        """
        offered: list[tuple[ServiceBusDelivery, _Settled]] = []
        go_on = True
        for message in messages:
            delivery = ServiceBusDelivery(self._bus, self._spec, rx, message, in_session=True)
            if delivery.delivery_count > self._spec.max_deliveries:
                await self._handout.give_back()
                go_on = await self._bus._dead_letter_exhausted(delivery) and go_on
                continue
            if not go_on:
                await self._handout.give_back()
                await _quietly("release", delivery.release())
                continue
            settled = _Settled()
            delivery._on_settled = settled.set
            if not await self._handout.offer(delivery):
                await _quietly("release", delivery.release())
                go_on = False
                continue
            offered.append((delivery, settled))
        held: tuple[ServiceBusDelivery, float] | None = None
        for delivery, settled in offered:
            result = await self._wait_settled(delivery, rx, settled)
            if result == "held" and held is None:
                held = (delivery, settled.hold)
            if result in ("held", "released", "lost"):
                go_on = False
        if held is not None:
            await self._hold(held[0], rx, held[1])
        return go_on

    async def _hold(self, delivery: ServiceBusDelivery, rx: ReceiverLike, delay: float) -> None:
        """Keep the session (and so the retried message ahead of its successors) for ``delay``,
        then abandon the message; the caller closes the session so anyone may take it."""
        loop = asyncio.get_running_loop()
        until = loop.time() + delay
        renew_every = max(self._spec.lock_duration / 3, MIN_WAIT)
        self._holding += 1
        if self._handout.unmet > 0:
            self._grow()  # a held session is out of the pool: keep the others served
        try:
            while (remaining := until - loop.time()) > 0 and not self._closed:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, renew_every)):
                        await self._closing.wait()
                if until - loop.time() > 0 and not self._closed:
                    try:
                        await rx.session.renew_lock()
                    except Exception as exc:  # lost: the broker hands the message out again
                        _log.warning(
                            "session lock lost while holding a retry",
                            queue=self._spec.name,
                            error=type(exc).__name__,
                        )
                        return
            try:
                await rx.abandon_message(delivery._message)
            except Exception as exc:  # the lock will lapse instead
                _log.warning(
                    "abandoning a held retry failed",
                    queue=self._spec.name,
                    error=type(exc).__name__,
                )
        finally:
            self._holding -= 1

    async def _wait_settled(
        self, delivery: ServiceBusDelivery, rx: ReceiverLike, settled: _Settled
    ) -> Outcome:
        """Wait for the settlement; give up (``lost``) once the session lock has expired."""
        while True:
            locked_until = epoch(rx.session.locked_until_utc)
            now = self._bus.clock.now()
            if locked_until is not None and now > locked_until + LOCK_GRACE:
                delivery._on_settled = None
                _log.warning(
                    "session lock expired before the message was settled",
                    queue=self._spec.name,
                    message_id=delivery.message_id,
                )
                return "lost"
            wait = (
                locked_until + LOCK_GRACE - now
                if locked_until is not None
                else self._spec.lock_duration
            )
            try:
                async with asyncio.timeout(max(wait, MIN_WAIT)):
                    return await settled.wait()
            except TimeoutError:
                continue

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._bus._receivers.discard(self)
        for delivery in await self._handout.close():
            await _quietly("release", delivery.release())
        # Loops waiting for demand stop at once and loops fetching within a receive slice;
        # a loop still accepting holds no session and is cancelled. A loop whose delivery was
        # handed out and not settled is cancelled after the grace: its session closes, so the
        # late settlement raises LockLost (the worker drains before closing its receiver).
        for task in list(self._accepting):
            task.cancel()
        loops = list(self._loops)
        if loops:
            _, pending = await asyncio.wait(loops, timeout=RECEIVE_SLICE + 0.5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)


class _Settled:
    """How a handed-out delivery was settled, awaited by its session loop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.outcome: Outcome | None = None
        self.hold = 0.0

    def set(self, outcome: Outcome, hold: float = 0.0) -> None:
        self.outcome = outcome
        self.hold = hold
        self._event.set()

    async def wait(self) -> Outcome:
        await self._event.wait()
        assert self.outcome is not None
        return self.outcome


# -- the bus -----------------------------------------------------------------------------------


class ServiceBusBus(Bus):
    """Azure Service Bus (or its emulator) behind the :class:`~dfj_common.bus.Bus` contract.

    Give exactly one of ``connection_string`` (SAS or the emulator's), ``namespace`` (an FQDN,
    or a bare name that gets ``.servicebus.windows.net``; with ``credential``, else a
    ``DefaultAzureCredential`` the bus owns and closes) or ``client`` (anything shaped like
    ``azure.servicebus.aio.ServiceBusClient``; the bus closes it; used by tests).

    ``receive_batch`` caps the deliveries of one ``receive`` call. ``max_sessions`` caps the
    sessions one session-queue receiver holds at once — each is an AMQP connection — and
    defaults to 4 (2 against the emulator, whose namespace allows 10 connections in all).
    ``session_idle_timeout`` is how long a receiver keeps a session with nothing to hand out.
    ``ping_timeout`` bounds :meth:`ping`; ``replay_wait`` is how long :meth:`replay` waits for
    more dead letters before it considers the dead-letter queue drained.
    """

    def __init__(
        self,
        *,
        topology: Topology = TOPOLOGY,
        connection_string: str | None = None,
        namespace: str | None = None,
        credential: AsyncTokenCredential | None = None,
        clock: Clock | None = None,
        receive_batch: int = 16,
        session_idle_timeout: float = 5.0,
        max_sessions: int | None = None,
        ping_timeout: float = 5.0,
        replay_wait: float = REPLAY_WAIT,
        client: ClientLike | None = None,
    ) -> None:
        given = [x for x in (connection_string, namespace, client) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of connection_string, namespace or client")
        if credential is not None and namespace is None:
            raise ValueError("a credential goes with a namespace")
        if receive_batch < 1:
            raise ValueError("receive_batch must be at least 1")
        if session_idle_timeout <= 0:
            raise ValueError("session_idle_timeout must be positive")
        if max_sessions is not None and max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if not topology:
            raise ValueError("the topology has no queues")
        self._topology = topology
        self.clock: Clock = clock or SystemClock()
        self._receive_batch = receive_batch
        self._session_idle_timeout = session_idle_timeout
        self._ping_timeout = ping_timeout
        self._replay_wait = max(replay_wait, MIN_WAIT)
        self._connection_string = connection_string
        self._namespace = _fully_qualified(namespace) if namespace is not None else None
        self._owned_credential: Any = None
        self._credential: Any = credential
        self.emulator = connection_string is not None and is_emulator_connection(connection_string)
        self._max_sessions = max_sessions or (
            EMULATOR_MAX_SESSIONS if self.emulator else DEFAULT_MAX_SESSIONS
        )
        if client is not None:
            self.client: ClientLike = client
        elif connection_string is not None:
            self.client = _client_from_connection_string(connection_string)
        else:
            assert self._namespace is not None
            if self._credential is None:
                from azure.identity.aio import DefaultAzureCredential

                self._owned_credential = DefaultAzureCredential()
                self._credential = self._owned_credential
            self.client = _client_from_namespace(self._namespace, self._credential)
        # The administration client needs HTTPS and manage rights: not the emulator, not fakes.
        self._admin_usable = client is None and not self.emulator
        self._admin: ServiceBusAdministrationClient | None = None
        self._senders: dict[str, tuple[SenderLike, asyncio.Lock]] = {}
        self._receivers: set[Receiver] = set()
        self._ping_rx: ReceiverLike | None = None
        self._ping_lock: asyncio.Lock | None = None
        self._closed = False

    @classmethod
    def from_settings(
        cls, settings: Settings, *, topology: Topology = TOPOLOGY, clock: Clock | None = None
    ) -> ServiceBusBus:
        """From ``DFJ_SERVICEBUS_CONNECTION`` if set, else ``DFJ_SERVICEBUS_NAMESPACE``."""
        connection = (
            settings.servicebus_connection.reveal() if settings.servicebus_connection else ""
        )
        if connection.strip():
            try:
                return cls(topology=topology, connection_string=connection, clock=clock)
            except ValueError as exc:
                # The SDK's message never quotes the string; ours must not either.
                raise ConfigError(
                    "DFJ_SERVICEBUS_CONNECTION is not a valid Service Bus connection string"
                ) from exc
        namespace = (settings.servicebus_namespace or "").strip()
        if namespace:
            return cls(topology=topology, namespace=namespace, clock=clock)
        raise ConfigError(
            "the Service Bus backend needs DFJ_SERVICEBUS_NAMESPACE or DFJ_SERVICEBUS_CONNECTION"
        )

    # -- plumbing ------------------------------------------------------------------------------

    def spec(self, queue: str) -> QueueSpec:
        try:
            return self._topology[queue]
        except KeyError:
            raise ValueError(
                f"unknown queue {queue!r}; known: {', '.join(self._topology)}"
            ) from None

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the bus is closed")

    def _sender(self, queue: str) -> tuple[SenderLike, asyncio.Lock]:
        entry = self._senders.get(queue)
        if entry is None:
            entry = (self.client.get_queue_sender(queue), asyncio.Lock())
            self._senders[queue] = entry
        return entry

    async def _send(self, queue: str, payload: ServiceBusMessage | ServiceBusMessageBatch) -> None:
        self._check_open()
        sender, lock = self._sender(queue)
        async with lock:
            try:
                with _sdk_errors(f"send to {queue}"):
                    await sender.send_messages(payload)
            except ValueError as exc:
                if isinstance(exc.__cause__, MessageSizeExceededError) or isinstance(
                    exc, MessageSizeExceededError
                ):
                    raise
                # "The handler has already been shutdown": start a new sender next time.
                self._senders.pop(queue, None)
                await _quietly("close sender", sender.close())
                raise TransientError(f"the sender of {queue} was shut down") from exc

    def _outgoing(
        self, spec: QueueSpec, message: OutgoingMessage, *, at: float | None = None
    ) -> ServiceBusMessage:
        _check_session(spec, message)
        reserved = RESERVED_PROPS.intersection(message.properties)
        if reserved:
            raise ValueError(f"properties {sorted(reserved)} are reserved by the bus")
        return ServiceBusMessage(
            message.body,
            message_id=message.message_id,
            session_id=message.session_id,
            application_properties=_app_properties(message.properties),
            content_type=message.content_type,
            subject=message.properties.get("type"),
            scheduled_enqueue_time_utc=utc(at) if at is not None else None,
        )

    async def _admit(
        self,
        spec: QueueSpec,
        rx: ReceiverLike,
        raw: Sequence[ReceivedMessageLike],
        *,
        in_session: bool,
    ) -> list[Delivery]:
        """Deliveries for received messages; those over ``max_deliveries`` are dead-lettered."""
        out: list[Delivery] = []
        exhausted: list[ServiceBusDelivery] = []
        for message in raw:
            delivery = ServiceBusDelivery(self, spec, rx, message, in_session=in_session)
            if delivery.delivery_count > spec.max_deliveries:
                exhausted.append(delivery)
            else:
                out.append(delivery)
        if exhausted:
            await asyncio.gather(*(self._dead_letter_exhausted(d) for d in exhausted))
        return out

    async def _dead_letter_exhausted(self, delivery: ServiceBusDelivery) -> bool:
        try:
            await delivery.dead_letter(
                MAX_DELIVERY_REASON,
                f"delivered {delivery.delivery_count - 1} times without being completed",
            )
        except (LockLost, TransientError, BusError) as exc:
            _log.warning(
                "dead-lettering an exhausted message failed",
                queue=delivery.queue,
                message_id=delivery.message_id,
                error=type(exc).__name__,
            )
            return False
        return True

    # -- publishing ----------------------------------------------------------------------------

    async def publish(self, queue: str, message: OutgoingMessage) -> None:
        spec = self.spec(queue)
        await self._send(queue, self._outgoing(spec, message))

    async def publish_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        spec = self.spec(queue)
        outgoing = [self._outgoing(spec, m) for m in messages]
        if not outgoing:
            return
        if len(outgoing) == 1:
            await self._send(queue, outgoing[0])
            return
        self._check_open()
        sender, lock = self._sender(queue)
        batches: list[ServiceBusMessageBatch] = []
        async with lock:
            with _sdk_errors(f"batch for {queue}"):
                batch = await sender.create_message_batch()
                for message in outgoing:
                    try:
                        batch.add_message(message)
                    except MessageSizeExceededError:
                        if len(batch) == 0:
                            raise
                        batches.append(batch)
                        batch = await sender.create_message_batch()
                        batch.add_message(message)  # alone too large: raises, nothing sent
                batches.append(batch)
        for each in batches:
            await self._send(queue, each)

    async def schedule(self, queue: str, message: OutgoingMessage, *, at: float) -> None:
        spec = self.spec(queue)
        await self._send(queue, self._outgoing(spec, message, at=at))

    # -- receiving -----------------------------------------------------------------------------

    def receiver(self, queue: str, *, session_batch: int = 1) -> Receiver:
        if session_batch < 1:
            raise ValueError("session_batch must be at least 1")
        self._check_open()
        spec = self.spec(queue)
        receiver: Receiver
        if spec.sessions:
            receiver = _SessionReceiver(
                self,
                spec,
                batch=self._receive_batch,
                max_sessions=self._max_sessions,
                idle_timeout=self._session_idle_timeout,
                session_batch=session_batch,
            )
        else:
            receiver = _QueueReceiver(self, spec, batch=self._receive_batch)
        self._receivers.add(receiver)
        return receiver

    # -- operator tools ------------------------------------------------------------------------

    def _dead_letter_receiver(self, queue: str) -> ReceiverLike:
        return self.client.get_queue_receiver(
            queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER, prefetch_count=0
        )

    async def _peek_all(self, rx: ReceiverLike, limit: int) -> list[ReceivedMessageLike]:
        """Up to ``limit`` messages, in sequence order, peeked page by page."""
        out: list[ReceivedMessageLike] = []
        next_sequence = 0  # the SDK starts a fresh receiver's browse at the first message
        while len(out) < limit:
            page: Sequence[ReceivedMessageLike] = await rx.peek_messages(
                max_message_count=min(limit - len(out), PEEK_PAGE), sequence_number=next_sequence
            )
            if not page:
                break
            out.extend(page)
            last = max((m.sequence_number or 0) for m in page)
            if last < next_sequence:
                break  # no progress: never loop on a broker that ignores the start
            next_sequence = last + 1
        return out[:limit]

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        spec = self.spec(queue)
        self._check_open()
        if limit < 1:
            return []
        rx = self._dead_letter_receiver(queue)
        try:
            with _sdk_errors(f"peek dead letters of {queue}"):
                await rx.__aenter__()
                peeked = await self._peek_all(rx, limit)
        finally:
            await _quietly("close receiver", rx.close())
        return [_dead_letter_view(spec, m) for m in peeked]

    async def replay(self, queue: str, *, message_ids: Sequence[str] | None = None) -> int:
        spec = self.spec(queue)
        self._check_open()
        wanted = set(message_ids) if message_ids is not None else None
        if wanted is not None and not wanted:
            return 0
        rx = self._dead_letter_receiver(queue)
        held: list[ReceivedMessageLike] = []  # locked, not ours to replay: abandoned at the end
        seen: set[int] = set()
        made: set[str] = set()
        replayed = 0
        try:
            with _sdk_errors(f"replay dead letters of {queue}"):
                await rx.__aenter__()
                while True:
                    batch: Sequence[ReceivedMessageLike] = await rx.receive_messages(
                        max_message_count=REPLAY_BATCH, max_wait_time=self._replay_wait
                    )
                    if not batch:
                        break
                    fresh = False
                    for message in batch:
                        sequence = message.sequence_number or 0
                        props = decode_properties(message.application_properties)
                        if sequence in seen or props.get(LINEAGE_PROP) in made:
                            held.append(message)  # seen before, or a copy we made just now
                            continue
                        seen.add(sequence)
                        fresh = True
                        original = original_id(message.message_id, props)
                        if wanted is not None and original not in wanted:
                            held.append(message)
                            continue
                        copy_id, copy_props = plan_replay(
                            broker_message_id=message.message_id,
                            properties=props,
                            sequence_number=sequence,
                            enqueued_at=enqueued_epoch(message.enqueued_time_utc, props),
                        )
                        if spec.sessions and not message.session_id:
                            _log.warning("dead letter without a session id kept", queue=queue)
                            held.append(message)
                            continue
                        copy = ServiceBusMessage(
                            body_bytes(message.body),
                            message_id=copy_id,
                            session_id=message.session_id if spec.sessions else None,
                            application_properties=_app_properties(copy_props),
                            content_type=message.content_type,
                            subject=message.subject,
                        )
                        await self._send(queue, copy)
                        await rx.complete_message(message)
                        made.add(copy_id)
                        replayed += 1
                    if not fresh:
                        break
        finally:
            if held:
                await asyncio.gather(*(_quietly("abandon", rx.abandon_message(m)) for m in held))
            await _quietly("close receiver", rx.close())
        return replayed

    async def stats(self) -> list[QueueStats]:
        """Counts per queue. ``locked`` is always 0: Service Bus does not report it.

        With the administration client (a namespace and an identity allowed to read entity
        properties): exact active, scheduled and dead-letter counts. Otherwise — the emulator,
        or an identity with data roles only — bounded peeks: up to 1000 messages per queue and
        dead-letter queue are counted (so counts are lower bounds), and a session queue's
        active count is the number of sessions that hold messages (the main entity of a
        session queue cannot be peeked without locking a session).
        """
        self._check_open()
        return [await self._queue_stats(spec) for spec in self._topology.values()]

    async def _queue_stats(self, spec: QueueSpec) -> QueueStats:
        if self._admin_usable:
            try:
                return await self._admin_stats(spec)
            except Exception as exc:  # no admin rights: fall back for good
                self._admin_usable = False
                _log.warning(
                    "queue runtime properties unavailable; counting by peeking",
                    error=type(exc).__name__,
                )
        return await self._peek_stats(spec)

    def _admin_client(self) -> ServiceBusAdministrationClient:
        if self._admin is None:
            from azure.servicebus.aio.management import ServiceBusAdministrationClient

            if self._connection_string is not None:
                self._admin = ServiceBusAdministrationClient.from_connection_string(
                    self._connection_string
                )
            else:
                assert self._namespace is not None
                self._admin = ServiceBusAdministrationClient(self._namespace, self._credential)
        return self._admin

    async def _admin_stats(self, spec: QueueSpec) -> QueueStats:
        props = await self._admin_client().get_queue_runtime_properties(spec.name)
        oldest = None if spec.sessions else await self._oldest_active(spec)
        return QueueStats(
            queue=spec.name,
            active=int(props.active_message_count or 0),
            scheduled=int(props.scheduled_message_count or 0),
            locked=0,
            dead_lettered=int(props.dead_letter_message_count or 0),
            oldest_enqueued_at=oldest,
        )

    async def _oldest_active(self, spec: QueueSpec) -> float | None:
        rx = self.client.get_queue_receiver(spec.name, prefetch_count=0)
        try:
            with _sdk_errors(f"peek {spec.name}"):
                for message in await self._peek_all(rx, 32):
                    if message.state == ServiceBusMessageState.ACTIVE:
                        return epoch(message.enqueued_time_utc)
        except (BusError, TransientError):
            return None
        finally:
            await _quietly("close receiver", rx.close())
        return None

    async def _peek_stats(self, spec: QueueSpec) -> QueueStats:
        active = scheduled = 0
        oldest: float | None = None
        with _sdk_errors(f"stats of {spec.name}"):
            if spec.sessions:
                active = await self._count_sessions(spec)
            else:
                rx = self.client.get_queue_receiver(spec.name, prefetch_count=0)
                try:
                    for message in await self._peek_all(rx, STATS_PEEK_LIMIT):
                        if message.state == ServiceBusMessageState.SCHEDULED:
                            scheduled += 1
                        else:
                            active += 1
                            if oldest is None:
                                oldest = epoch(message.enqueued_time_utc)
                finally:
                    await _quietly("close receiver", rx.close())
            dlq = self._dead_letter_receiver(spec.name)
            try:
                dead = len(await self._peek_all(dlq, STATS_PEEK_LIMIT))
            finally:
                await _quietly("close receiver", dlq.close())
        return QueueStats(
            queue=spec.name,
            active=active,
            scheduled=scheduled,
            locked=0,
            dead_lettered=dead,
            oldest_enqueued_at=oldest,
        )

    async def _count_sessions(self, spec: QueueSpec) -> int:
        count = 0
        try:
            async for _ in self.client.list_queue_sessions(spec.name, timeout=10.0):
                count += 1
                if count >= STATS_PEEK_LIMIT:
                    break
        except Exception as exc:  # the emulator may not list sessions
            _log.info("listing sessions failed", queue=spec.name, error=type(exc).__name__)
        return count

    async def ping(self) -> None:
        """Peek from the first queue's dead-letter queue (a round trip that returns nothing)."""
        self._check_open()
        if self._ping_lock is None:
            self._ping_lock = asyncio.Lock()
        async with self._ping_lock:
            try:
                async with asyncio.timeout(self._ping_timeout):
                    if self._ping_rx is None:
                        rx = self._dead_letter_receiver(next(iter(self._topology)))
                        self._ping_rx = rx
                        await rx.__aenter__()
                    await self._ping_rx.peek_messages(
                        max_message_count=1, sequence_number=PING_SEQUENCE
                    )
            except Exception as exc:
                stale, self._ping_rx = self._ping_rx, None
                if stale is not None:
                    await _quietly("close ping receiver", stale.close())
                raise TransientError(
                    f"Service Bus is unreachable: {type(exc).__name__}: {exc}"
                ) from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for receiver in list(self._receivers):
            await _quietly("close receiver", receiver.close())
        self._receivers.clear()
        senders = [sender for sender, _ in self._senders.values()]
        self._senders.clear()
        for sender in senders:
            await _quietly("close sender", sender.close())
        if self._ping_rx is not None:
            await _quietly("close ping receiver", self._ping_rx.close())
            self._ping_rx = None
        if self._admin is not None:
            await _quietly("close administration client", self._admin.close())
            self._admin = None
        await _quietly("close client", self.client.close())
        if self._owned_credential is not None:
            await _quietly("close credential", self._owned_credential.close())
            self._owned_credential = None


def _dead_letter_view(spec: QueueSpec, message: ReceivedMessageLike) -> DeadLetter:
    props = decode_properties(message.application_properties)
    return DeadLetter(
        queue=spec.name,
        message_id=original_id(message.message_id, props),
        session_id=message.session_id,
        body=body_bytes(message.body),
        properties=user_properties(props),
        # A dead letter was received at most max_deliveries times; the broker's count of a
        # message it dead-lettered itself also counts the last, failed, lock expiry.
        delivery_count=min(
            effective_delivery_count(message.delivery_count, props), spec.max_deliveries
        ),
        reason=message.dead_letter_reason or props.get("DeadLetterReason", ""),
        description=message.dead_letter_error_description
        or props.get("DeadLetterErrorDescription", ""),
        enqueued_at=enqueued_epoch(message.enqueued_time_utc, props),
        dead_lettered_at=None,  # Service Bus does not record when a message was dead-lettered
        sequence=message.sequence_number or 0,
    )


def _check_session(spec: QueueSpec, message: OutgoingMessage) -> None:
    if spec.sessions and message.session_id is None:
        raise ValueError(f"queue {spec.name} is ordered by session: the message needs a session_id")
    if not spec.sessions and message.session_id is not None:
        raise ValueError(f"queue {spec.name} has no sessions: drop the message's session_id")


def _fully_qualified(namespace: str) -> str:
    """``contoso`` → ``contoso.servicebus.windows.net``; an FQDN (or URL form) is kept."""
    value = namespace.strip()
    if not value:
        raise ValueError("the Service Bus namespace is empty")
    if "." not in value and "/" not in value and ":" not in value:
        return f"{value}.servicebus.windows.net"
    return value


def _client_from_connection_string(connection_string: str) -> ClientLike:
    return ServiceBusClient.from_connection_string(connection_string)


def _client_from_namespace(namespace: str, credential: AsyncTokenCredential) -> ClientLike:
    return ServiceBusClient(fully_qualified_namespace=namespace, credential=credential)


# -- infrastructure rendering ------------------------------------------------------------------

EMULATOR_MESSAGE_TTL: Final = "PT1H"  # the emulator's maximum
AZURE_MESSAGE_TTL: Final = "P14D"


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def emulator_config(topology: Topology = TOPOLOGY) -> dict[str, Any]:
    """The Service Bus emulator's ``Config.json`` for ``topology``.

    Values are clamped into the emulator's schema (``Config-schema.json``): lock 5 s to 5 min,
    max deliveries 1 to 10, duplicate-detection window 5 s to 5 min (so the topology's 10-minute
    window becomes 5 minutes there), TTL at most 1 h. The namespace name is fixed by the emulator.
    """
    queues = []
    for spec in topology.values():
        dedupe = spec.duplicate_window > 0
        queues.append(
            {
                "Name": spec.name,
                "Properties": {
                    "DeadLetteringOnMessageExpiration": True,
                    "DefaultMessageTimeToLive": EMULATOR_MESSAGE_TTL,
                    "DuplicateDetectionHistoryTimeWindow": iso_duration(
                        _clamp(spec.duplicate_window, 5, 300) if dedupe else 20
                    ),
                    "ForwardDeadLetteredMessagesTo": "",
                    "ForwardTo": "",
                    "LockDuration": iso_duration(_clamp(spec.lock_duration, 5, 300)),
                    "MaxDeliveryCount": int(_clamp(spec.max_deliveries, 1, 10)),
                    "RequiresDuplicateDetection": dedupe,
                    "RequiresSession": spec.sessions,
                },
            }
        )
    return {
        "UserConfig": {
            "Namespaces": [{"Name": EMULATOR_NAMESPACE, "Queues": queues, "Topics": []}],
            "Logging": {"Type": "Console"},
        }
    }


def bicep_queue_properties(spec: QueueSpec) -> dict[str, Any]:
    """``properties`` of a ``Microsoft.ServiceBus/namespaces/queues`` resource for ``spec``.

    ``requiresSession`` and ``requiresDuplicateDetection`` can only be set when a queue is
    created. Lock 5 s to 5 min; duplicate window 20 s to 7 days (Azure's limits).
    """
    props: dict[str, Any] = {
        "lockDuration": iso_duration(_clamp(spec.lock_duration, 5, 300)),
        "maxDeliveryCount": spec.max_deliveries,
        "requiresSession": spec.sessions,
        "requiresDuplicateDetection": spec.duplicate_window > 0,
        "deadLetteringOnMessageExpiration": True,
        "defaultMessageTimeToLive": AZURE_MESSAGE_TTL,
        "enablePartitioning": False,
        "enableBatchedOperations": True,
    }
    if spec.duplicate_window > 0:
        props["duplicateDetectionHistoryTimeWindow"] = iso_duration(
            _clamp(spec.duplicate_window, 20, 7 * 86400)
        )
    return props
