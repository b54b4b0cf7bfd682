"""The worker runtime: consume a queue, dispatch by event type, settle every message explicitly.

Error policy, applied to whatever a handler raises:

==========================  ==============================================================
handler outcome             settlement
==========================  ==============================================================
returns                     ``complete``
``RateLimited``             ``retry`` after the peer's ``retry_after``
``TransientError``          ``retry`` after exponential back-off with jitter
``PermanentError``          ``dead_letter`` with the error's ``reason``
undecodable / no handler    ``dead_letter`` (``MalformedMessage`` reasons, ``NoHandler``)
any other exception         ``retry`` with back-off (a bug may be fixed by a deploy); after
                            ``max_deliveries`` the bus dead-letters it
cancelled by drain          ``release`` so another replica takes it at once
==========================  ==============================================================

**Runs.** A worker made with ``session_batch=N`` on a session queue receives runs of up to N
consecutive messages of one session (see :mod:`dfj_common.bus.base`) and handles each run in
one task, message by message, in order. A handler that can act on several at once — the
discord-worker packs the notifications waiting for one channel into one post — sees the
messages queued behind its own in ``context.run`` and takes some of them with
``run.take(k)``: when it returns, those are completed with it; when it fails, they are
released with the rest of the run. After a message is retried or released, the rest of its
run is released, so they come back behind it in order.

Long handlers keep their lock: one renewal loop per worker extends the lock of every delivery
that has been in flight for a third of the lock duration (one loop, not a task per message, since
most handlers finish long before a renewal is due).
On SIGTERM the worker stops receiving, lets in-flight handlers finish within the grace period,
then cancels and releases the rest — nothing is lost and nothing waits for a lock to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from opentelemetry import metrics

from dfj_common.bus.base import MAX_DELIVERY_REASON, Bus, Delivery
from dfj_common.bus.topology import QueueSpec
from dfj_common.clock import Clock, SystemClock
from dfj_common.envelope import Envelope
from dfj_common.errors import (
    LockLost,
    MalformedMessage,
    PermanentError,
    RateLimited,
    TransientError,
)
from dfj_common.retry import ExponentialBackOff

__all__ = ["Handler", "HandlerContext", "HandlerTable", "Run", "Worker", "WorkerStats"]

_log: Final = structlog.get_logger("dfj.runtime")
NO_HANDLER: Final = "NoHandler"


class Run:
    """The messages of the same session received behind the one being handled.

    ``following`` holds the envelopes that decoded, in order, up to the first that did not
    (a handler cannot take a message it could not read). ``take(k)`` claims the first ``k``
    of them: they are settled together with the handled message.
    """

    __slots__ = ("_taken", "following")

    def __init__(self, following: tuple[Envelope, ...]) -> None:
        self.following = following
        self._taken = 0

    @property
    def taken(self) -> int:
        return self._taken

    def take(self, count: int) -> None:
        if not 0 <= count <= len(self.following):
            raise ValueError(f"can take 0 to {len(self.following)} following messages")
        self._taken = count


@dataclass(frozen=True, kw_only=True)
class HandlerContext:
    """What a handler may know about the delivery it is handling."""

    queue: str
    message_id: str
    delivery_count: int
    max_deliveries: int
    enqueued_at: float
    run: Run | None = None  # the same session's messages behind this one (``session_batch``)

    @property
    def last_attempt(self) -> bool:
        return self.delivery_count >= self.max_deliveries


Handler = Callable[[Envelope, HandlerContext], Awaitable[None]]
HandlerTable = Mapping[str, Handler]
SpanFactory = Callable[[Envelope, str], contextlib.AbstractContextManager[Any]]


@dataclass
class WorkerStats:
    """Counters kept in process, for readiness, tests and the canonical log line."""

    received: int = 0
    completed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    failed: int = 0
    released: int = 0
    lock_lost: int = 0
    in_flight: int = 0
    last_receive_ok: float | None = None
    reasons: dict[str, int] = field(default_factory=dict)


class _Instruments:
    def __init__(self, meter: metrics.Meter, queue: str) -> None:
        self.attrs = {"queue": queue}
        self.processed = meter.create_counter("dfj.messages.processed", description="completed")
        self.failed = meter.create_counter("dfj.messages.failed", description="handler errors")
        self.dead = meter.create_counter("dfj.messages.dead_lettered")
        self.latency = meter.create_histogram("dfj.handler.duration", unit="s")
        self.lag = meter.create_histogram(
            "dfj.queue.lag", unit="s", description="enqueue → receive"
        )


#: How long, in all, a message on its last delivery may wait out rate limits in-process.
RATE_LIMIT_HOLD: Final = 900.0


class Worker:
    """Consumes one queue with bounded concurrency and a handler table keyed by event type."""

    def __init__(
        self,
        bus: Bus,
        spec: QueueSpec,
        handlers: HandlerTable,
        *,
        concurrency: int = 16,
        backoff: ExponentialBackOff | None = None,
        grace: float = 25.0,
        clock: Clock | None = None,
        meter: metrics.Meter | None = None,
        span_factory: SpanFactory | None = None,
        receive_timeout: float = 1.0,
        session_batch: int = 1,
        rate_limit_hold: float = RATE_LIMIT_HOLD,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if session_batch < 1:
            raise ValueError("session_batch must be at least 1")
        self._bus = bus
        self._spec = spec
        self._handlers = dict(handlers)
        self._concurrency = concurrency
        self._backoff = backoff or ExponentialBackOff(base=2.0, maximum=300.0)
        self._grace = grace
        self._clock = clock or SystemClock()
        self._instruments = _Instruments(
            meter or metrics.get_meter_provider().get_meter("dfj.runtime"), spec.name
        )
        self._span_factory = span_factory
        self._receive_timeout = receive_timeout
        self._session_batch = session_batch if spec.sessions else 1
        self._rate_limit_hold = rate_limit_hold
        self._tasks: dict[asyncio.Task[None], list[Delivery]] = {}
        self._renewed: dict[asyncio.Task[None], float] = {}  # when its lock was last extended
        self._lost: set[int] = set()  # id() of in-flight deliveries whose lock is gone
        self.stats = WorkerStats()

    @property
    def queue(self) -> str:
        return self._spec.name

    async def run(self, stop: asyncio.Event) -> None:
        """Receive and handle until ``stop`` is set, then drain."""
        receiver = self._bus.receiver(self._spec.name, session_batch=self._session_batch)
        renewer = asyncio.get_running_loop().create_task(self._renew_locks())
        try:
            while not stop.is_set():
                free = self._concurrency - len(self._tasks)
                if free <= 0:
                    await self._wait_for_slot(stop)
                    continue
                receiving = asyncio.ensure_future(
                    receiver.receive(free * self._session_batch, timeout=self._receive_timeout)
                )
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                try:
                    deliveries = await receiving
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    _log.warning("receive failed", queue=self.queue, error=type(exc).__name__)
                    await _sleep_or_stop(stop, 1.0)
                    continue
                self.stats.last_receive_ok = self._clock.now()
                for run in self._runs(deliveries):
                    self._start(run)
                if stop.is_set():
                    break
        finally:
            await self._drain()
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await receiver.close()

    async def _wait_for_slot(self, stop: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({stopping, *self._tasks}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()

    def _runs(self, deliveries: list[Delivery]) -> list[list[Delivery]]:
        """Group a receive into runs: one per session, in order (each alone without runs)."""
        if self._session_batch == 1:
            return [[d] for d in deliveries]
        runs: dict[str | None, list[Delivery]] = {}
        for delivery in deliveries:
            runs.setdefault(delivery.session_id, []).append(delivery)
        return list(runs.values())

    def _start(self, run: list[Delivery]) -> None:
        now = self._clock.now()
        for delivery in run:
            self.stats.received += 1
            self.stats.in_flight += 1
            self._instruments.lag.record(
                max(now - delivery.enqueued_at, 0.0), self._instruments.attrs
            )
        task = asyncio.get_running_loop().create_task(self._handle_run(run))
        self._tasks[task] = run
        self._renewed[task] = time.monotonic()
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        run = self._tasks.pop(task, None) or []
        self._renewed.pop(task, None)
        self._lost.difference_update(id(d) for d in run)
        self.stats.in_flight -= len(run)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _log.info("draining", queue=self.queue, in_flight=len(self._tasks), grace=self._grace)
        _, pending = await asyncio.wait(set(self._tasks), timeout=self._grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _handle_run(self, run: list[Delivery]) -> None:
        """Handle a run in order; once one is not done with, hand the rest back."""
        index = 0
        try:
            decoded = [_decode(d) for d in run]  # once per run, not once per message handled
            while index < len(run):
                handled, go_on = await self._handle(run, decoded, index)
                index += handled
                if not go_on:  # retried, or not settled: the rest must not overtake it
                    break
        finally:
            rest = [d for d in run[index:] if not d.settled]
            for delivery in rest:
                await self._settle_quietly(delivery.release(), "released")
                self.stats.released += 1

    async def _handle(
        self, run: list[Delivery], decoded: list[Envelope | MalformedMessage], index: int
    ) -> tuple[int, bool]:
        """Handle ``run[index]``: how many messages that settled (itself and those it took),
        and whether the rest of the run may follow (not after a retry or a failed settle)."""
        delivery = run[index]
        # Each task runs in a copy of the receive loop's context, so what is bound here stays
        # with this message and needs no clearing afterwards.
        structlog.contextvars.bind_contextvars(
            queue=self.queue,
            message_id=delivery.message_id,
            delivery_count=delivery.delivery_count,
        )
        started = time.perf_counter()
        try:
            return await self._dispatch(run, decoded, index)
        except asyncio.CancelledError:
            if not delivery.settled:
                await self._settle_quietly(delivery.release(), "released")
                self.stats.released += 1
            raise
        finally:
            self._instruments.latency.record(time.perf_counter() - started, self._instruments.attrs)

    async def _dispatch(
        self, run: list[Delivery], decoded: list[Envelope | MalformedMessage], index: int
    ) -> tuple[int, bool]:
        delivery, envelope = run[index], decoded[index]
        if isinstance(envelope, MalformedMessage):
            return 1, await self._dead_letter(delivery, envelope.reason, str(envelope))
        structlog.contextvars.bind_contextvars(
            event_id=envelope.id, event_type=envelope.type, tenant=envelope.tenant
        )
        handler = self._handlers.get(envelope.type)
        if handler is None:
            reason = f"{self.queue} has no handler for type {envelope.type!r}"
            return 1, await self._dead_letter(delivery, NO_HANDLER, reason)
        following = run[index + 1 :]
        group = Run(_decodable(decoded[index + 1 :])) if following else None
        context = HandlerContext(
            queue=self.queue,
            message_id=delivery.message_id,
            delivery_count=delivery.delivery_count,
            max_deliveries=delivery.max_deliveries,
            enqueued_at=delivery.enqueued_at,
            run=group,
        )
        failed = await self._invoke(handler, envelope, context, delivery)
        if failed is not None:
            return 1, failed
        taken = [delivery, *following[: group.taken if group is not None else 0]]
        for done, delivery_ in enumerate(taken, start=1):
            if not await self._settle_quietly(delivery_.complete(), "completed"):
                return done, False
            self.stats.completed += 1
            self._instruments.processed.add(1, self._instruments.attrs)
        return len(taken), True

    async def _invoke(
        self, handler: Handler, envelope: Envelope, context: HandlerContext, delivery: Delivery
    ) -> bool | None:
        """Run the handler: ``None`` when it succeeded; else settle the failure and say
        whether the run may go on (after a dead-letter) or not (after a retry).

        A rate limit on a message's last delivery is waited out here, up to
        ``rate_limit_hold`` seconds in all: every retry through the bus uses a delivery, so a
        peer throttling us for longer than ``max_deliveries`` of its Retry-After would
        otherwise dead-letter work it only asked us to slow down."""
        held = 0.0
        while True:
            try:
                with self._span(envelope):
                    await handler(envelope, context)
            except asyncio.CancelledError:
                raise
            except PermanentError as exc:
                return await self._dead_letter(delivery, exc.reason, str(exc))
            except RateLimited as exc:
                wait = max(exc.retry_after, 0.0)
                if delivery.deliveries_left <= 0 and held + wait <= self._rate_limit_hold:
                    # The last delivery: a retry on the bus would dead-letter it, though the
                    # peer only asked us to wait. Wait here instead (the lock is renewed).
                    _log.info("rate limited on the last delivery; holding", wait=round(wait, 3))
                    held += wait
                    await asyncio.sleep(wait)
                    continue
                await self._retry(delivery, wait, exc)
                return False
            except TransientError as exc:
                await self._retry(delivery, self._backoff.delay(delivery.delivery_count), exc)
                return False
            except Exception as exc:
                _log.exception("handler crashed", error=type(exc).__name__)
                await self._retry(delivery, self._backoff.delay(delivery.delivery_count), exc)
                return False
            return None

    def _span(self, envelope: Envelope) -> contextlib.AbstractContextManager[object]:
        if self._span_factory is None:
            return contextlib.nullcontext()
        return self._span_factory(envelope, self.queue)

    async def _retry(self, delivery: Delivery, delay: float, exc: BaseException) -> None:
        self.stats.failed += 1
        self._instruments.failed.add(1, self._instruments.attrs)
        reason = f"{type(exc).__name__}: {exc}"[:500]
        if delivery.deliveries_left <= 0:
            await self._dead_letter(delivery, MAX_DELIVERY_REASON, reason)
            return
        _log.warning("handler failed; retrying", delay=round(delay, 3), error=type(exc).__name__)
        if await self._settle_quietly(delivery.retry(delay, reason=reason), "retried"):
            self.stats.retried += 1

    async def _dead_letter(self, delivery: Delivery, reason: str, description: str) -> bool:
        """Dead-letter ``delivery``; whether that was settled (the run may go on)."""
        _log.warning("dead-lettering", reason=reason)
        if not await self._settle_quietly(
            delivery.dead_letter(reason, description), "dead_lettered"
        ):
            return False
        self.stats.dead_lettered += 1
        self.stats.reasons[reason] = self.stats.reasons.get(reason, 0) + 1
        self._instruments.dead.add(1, {**self._instruments.attrs, "reason": reason})
        return True

    async def _settle_quietly(self, settlement: Awaitable[None], outcome: str) -> bool:
        try:
            await settlement
        except LockLost:
            # Another consumer has it now (our lock expired); its outcome counts, not ours.
            self.stats.lock_lost += 1
            _log.warning("lock lost before settling", outcome=outcome)
            return False
        except TransientError:
            _log.warning("settlement failed; the lock will expire", outcome=outcome)
            return False
        _log.debug("settled", outcome=outcome)
        return True

    async def _renew_locks(self) -> None:
        """Renew the lock of each delivery in flight for longer than a third of its duration."""
        period = self._spec.lock_duration / 3
        while True:
            await asyncio.sleep(period / 2)
            now = time.monotonic()
            due = [
                (task, [d for d in run if not d.settled and id(d) not in self._lost])
                for task, run in list(self._tasks.items())
                if now - self._renewed.get(task, now) >= period
            ]
            for task, deliveries in due:
                if not deliveries:
                    continue
                self._renewed[task] = time.monotonic()
                for delivery in deliveries:
                    try:
                        await delivery.renew_lock()
                    except LockLost:
                        self._lost.add(id(delivery))  # renewing it again cannot help
                        _log.warning("lock lost during handling", message_id=delivery.message_id)
                    except Exception as exc:
                        _log.warning("lock renewal failed", error=type(exc).__name__)


def _decode(delivery: Delivery) -> Envelope | MalformedMessage:
    try:
        return Envelope.decode(delivery.body)
    except MalformedMessage as exc:
        return exc


def _decodable(decoded: list[Envelope | MalformedMessage]) -> tuple[Envelope, ...]:
    """The envelopes up to the first that did not decode."""
    envelopes: list[Envelope] = []
    for envelope in decoded:
        if isinstance(envelope, MalformedMessage):
            break
        envelopes.append(envelope)
    return tuple(envelopes)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
