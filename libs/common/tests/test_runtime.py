"""The worker runtime settles every message by what its handler did, and drains cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from dfj_common.bus import MAX_DELIVERY_REASON, OutgoingMessage, QueueSpec
from dfj_common.bus.local import LocalBus
from dfj_common.envelope import Envelope
from dfj_common.errors import PermanentError, RateLimited, TransientError
from dfj_common.retry import ExponentialBackOff
from dfj_common.runtime import NO_HANDLER, HandlerContext, HandlerTable, Worker

PLAIN = QueueSpec(name="work", sessions=False, max_deliveries=3, lock_duration=1.5)
ORDERED = QueueSpec(name="ordered", sessions=True, max_deliveries=3, lock_duration=1.5)
TOPO = {PLAIN.name: PLAIN, ORDERED.name: ORDERED}
FAST = ExponentialBackOff(base=0.05, maximum=0.2, jitter=0)


@pytest.fixture(name="bus")
async def _bus(tmp_path: Path) -> AsyncIterator[LocalBus]:
    bus = await LocalBus.open(tmp_path / "bus.sqlite", topology=TOPO, poll_interval=0.05)
    yield bus
    await bus.close()


def event(n: int, *, kind: str = "test.event", session: str | None = None) -> OutgoingMessage:
    env = Envelope(id=f"evt-{n}", source="tests", type=kind, data={"n": n}, session_key=session)
    return OutgoingMessage.from_envelope(env)


async def run_until(worker: Worker, done: Callable[[], bool], limit: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.ensure_future(worker.run(stop))
    try:
        async with asyncio.timeout(limit):
            while not done():  # noqa: ASYNC110 - polls the worker's counters, not an event
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task


async def test_success_completes(bus: LocalBus) -> None:
    """A handler that returns completes its message; it never comes back."""
    seen: list[int] = []

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        seen.append(env.data["n"])

    worker = Worker(bus, PLAIN, {"test.event": handle}, backoff=FAST)
    for n in range(5):
        await bus.publish("work", event(n))
    await run_until(worker, lambda: worker.stats.completed == 5)
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert (await bus.receiver("work").receive(10, timeout=0.2)) == []


async def test_transient_error_retries_then_succeeds(bus: LocalBus) -> None:
    """A transient failure is redelivered after back-off with a higher delivery count."""
    counts: list[int] = []

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        counts.append(ctx.delivery_count)
        if ctx.delivery_count < 2:
            raise TransientError("Jira answered 503")

    worker = Worker(bus, PLAIN, {"test.event": handle}, backoff=FAST)
    await bus.publish("work", event(1))
    await run_until(worker, lambda: worker.stats.completed == 1)
    assert counts == [1, 2]
    assert worker.stats.retried == 1


async def test_rate_limited_waits_retry_after(bus: LocalBus) -> None:
    """RateLimited is retried no sooner than the peer's retry_after."""
    times: list[float] = []
    loop = asyncio.get_running_loop()

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        times.append(loop.time())
        if len(times) == 1:
            raise RateLimited("429", retry_after=0.4)

    worker = Worker(bus, PLAIN, {"test.event": handle}, backoff=FAST)
    await bus.publish("work", event(1))
    await run_until(worker, lambda: worker.stats.completed == 1)
    assert times[1] - times[0] >= 0.39


async def test_a_long_rate_limit_is_waited_out_on_the_last_delivery(bus: LocalBus) -> None:
    """A peer throttling for longer than the queue's deliveries of Retry-After: the retries
    through the bus use up the deliveries, then the last one waits in-process, not dead."""
    calls: list[int] = []

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        calls.append(ctx.delivery_count)
        if len(calls) <= 6:  # PLAIN allows 3 deliveries
            raise RateLimited("429", retry_after=0.05)

    worker = Worker(bus, PLAIN, {"test.event": handle}, backoff=FAST)
    await bus.publish("work", event(1))
    await run_until(worker, lambda: worker.stats.completed == 1)
    assert worker.stats.dead_lettered == 0
    assert calls == [1, 2, 3, 3, 3, 3, 3], "the last delivery is held, not retried on the bus"


async def test_a_rate_limit_beyond_the_hold_budget_still_dead_letters(bus: LocalBus) -> None:
    """The hold is bounded: a peer that never lets up ends in the dead-letter queue."""

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        raise RateLimited("429", retry_after=0.05)

    worker = Worker(bus, PLAIN, {"test.event": handle}, backoff=FAST, rate_limit_hold=0.2)
    await bus.publish("work", event(1))
    await run_until(worker, lambda: worker.stats.dead_lettered == 1)
    [dead] = await bus.dead_letters("work")
    assert dead.delivery_count == 3 and "429" in dead.description


async def test_permanent_error_dead_letters_with_reason(bus: LocalBus) -> None:
    """A permanent failure is dead-lettered at once with the error's reason and text."""

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        raise PermanentError("project ABC does not exist", reason="ProjectNotFound")

    worker = Worker(bus, PLAIN, {"test.event": handle}, backoff=FAST)
    await bus.publish("work", event(1))
    await run_until(worker, lambda: worker.stats.dead_lettered == 1)
    [dead] = await bus.dead_letters("work")
    assert dead.reason == "ProjectNotFound"
    assert "ABC" in dead.description
    assert dead.delivery_count == 1


async def test_crashing_handler_dead_letters_after_max_deliveries(bus: LocalBus) -> None:
    """An unexpected exception is retried until max deliveries, then dead-lettered."""
    calls: list[int] = []

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        calls.append(ctx.delivery_count)
        raise KeyError("bug")

    worker = Worker(bus, PLAIN, {"test.event": handle}, backoff=FAST)
    await bus.publish("work", event(1))
    await run_until(worker, lambda: worker.stats.dead_lettered == 1)
    assert calls == [1, 2, 3]
    [dead] = await bus.dead_letters("work")
    assert dead.reason == MAX_DELIVERY_REASON
    assert "KeyError" in dead.description


async def test_malformed_and_unknown_messages_do_not_stop_the_worker(bus: LocalBus) -> None:
    """Garbage and unknown types are dead-lettered with reasons; good messages still flow."""
    seen: list[int] = []

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        seen.append(env.data["n"])

    worker = Worker(bus, PLAIN, {"test.event": handle}, backoff=FAST)
    await bus.publish("work", OutgoingMessage(body=b"{not json", message_id="garbage"))
    await bus.publish("work", OutgoingMessage(body=b'{"specversion":"0.3"}', message_id="old"))
    await bus.publish("work", event(2, kind="no.such.type"))
    await bus.publish("work", event(3))
    await run_until(worker, lambda: worker.stats.completed == 1 and worker.stats.dead_lettered == 3)
    reasons = {d.message_id: d.reason for d in await bus.dead_letters("work")}
    assert reasons == {
        "garbage": "EnvelopeNotJson",
        "old": "EnvelopeSpecVersion",
        "evt-2": NO_HANDLER,
    }
    assert seen == [3]


async def test_long_handler_keeps_its_lock(bus: LocalBus) -> None:
    """A handler running past the lock duration is not redelivered: the lock is renewed."""
    calls: list[int] = []

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        calls.append(ctx.delivery_count)
        await asyncio.sleep(PLAIN.lock_duration * 2.2)

    worker = Worker(bus, PLAIN, {"test.event": handle}, backoff=FAST, concurrency=4)
    await bus.publish("work", event(1))
    await run_until(worker, lambda: worker.stats.completed == 1)
    assert calls == [1]
    assert worker.stats.lock_lost == 0


async def test_concurrency_is_bounded(bus: LocalBus) -> None:
    """No more than ``concurrency`` handlers run at once."""
    running = 0
    peak = 0

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    worker = Worker(bus, PLAIN, {"test.event": handle}, backoff=FAST, concurrency=3)
    await bus.publish_batch("work", [event(n) for n in range(12)])
    await run_until(worker, lambda: worker.stats.completed == 12)
    assert peak == 3


async def test_session_order_is_kept_under_concurrency(bus: LocalBus) -> None:
    """On a session queue, each session's messages are handled one at a time, in order."""
    handled: dict[str, list[int]] = {}
    active: set[str] = set()
    overlaps = 0

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        nonlocal overlaps
        key = str(env.session_key)
        if key in active:
            overlaps += 1
        active.add(key)
        await asyncio.sleep(0.002)
        handled.setdefault(key, []).append(env.data["n"])
        active.discard(key)

    worker = Worker(bus, ORDERED, {"test.event": handle}, backoff=FAST, concurrency=8)
    for n in range(60):
        await bus.publish("ordered", event(n, session=f"s{n % 4}"))
    await run_until(worker, lambda: worker.stats.completed == 60)
    assert overlaps == 0
    for key, ns in handled.items():
        assert ns == sorted(ns), key
        assert len(ns) == 15


async def test_drain_finishes_in_flight_work_within_grace(bus: LocalBus) -> None:
    """On stop, a handler that finishes within the grace period is completed, not released."""
    started = asyncio.Event()

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        started.set()
        await asyncio.sleep(0.3)

    worker = Worker(bus, PLAIN, {"test.event": handle}, backoff=FAST, grace=5)
    await bus.publish("work", event(1))
    stop = asyncio.Event()
    task = asyncio.ensure_future(worker.run(stop))
    await asyncio.wait_for(started.wait(), 5)
    stop.set()
    await task
    assert worker.stats.completed == 1
    assert worker.stats.released == 0


async def test_drain_releases_what_outlives_the_grace(bus: LocalBus) -> None:
    """A handler still running when the grace period ends is cancelled and released at once."""
    started = asyncio.Event()

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        started.set()
        await asyncio.sleep(60)

    worker = Worker(bus, PLAIN, {"test.event": handle}, backoff=FAST, grace=0.2)
    await bus.publish("work", event(1))
    stop = asyncio.Event()
    task = asyncio.ensure_future(worker.run(stop))
    await asyncio.wait_for(started.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert worker.stats.released == 1
    # Released, not left locked: another consumer gets it well before the lock would expire.
    again = await bus.receiver("work").receive(1, timeout=0.5)
    assert [d.message_id for d in again] == ["evt-1"]
    assert again[0].delivery_count == 2


def test_concurrency_must_be_positive(tmp_path: Path) -> None:
    """A worker with no capacity is a configuration error, not a silent no-op."""
    table: HandlerTable = {}
    with pytest.raises(ValueError, match="concurrency"):
        Worker(object(), PLAIN, table, concurrency=0)  # type: ignore[arg-type]


async def test_one_trace_spans_publisher_and_consumer(bus: LocalBus) -> None:
    """A message published inside a span is handled in a child span of the same trace."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from dfj_common.telemetry import setup_telemetry

    exporter = InMemorySpanExporter()
    tel = setup_telemetry(service="t", kind="none", span_exporter=exporter)
    seen: list[str | None] = []

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        seen.append(env.traceparent)

    from dfj_common.telemetry import start_consume_span

    worker = Worker(
        bus,
        PLAIN,
        {"test.event": handle},
        backoff=FAST,
        span_factory=lambda env, queue: start_consume_span(tel, env, queue),
    )
    with tel.tracer.start_as_current_span("inbound request") as root:
        env = Envelope(id="traced", source="tests", type="test.event")
        await bus.publish_envelope("work", env)
    await run_until(worker, lambda: worker.stats.completed == 1)
    tel.force_flush()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    consume = spans["process work"]
    assert seen[0] is not None
    assert consume.context is not None
    assert consume.context.trace_id == root.get_span_context().trace_id
    assert consume.parent is not None
    assert consume.parent.span_id == root.get_span_context().span_id
    tel.shutdown()


# -- runs (session_batch) ------------------------------------------------------------------------


async def test_handler_takes_the_run_behind_it(bus: LocalBus) -> None:
    """With runs of 4, a handler that takes what follows handles 10 messages in 3 calls, in
    order, and every one of them is completed."""
    calls: list[list[int]] = []

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        following = ctx.run.following if ctx.run is not None else ()
        calls.append([env.data["n"], *(e.data["n"] for e in following)])
        if ctx.run is not None:
            ctx.run.take(len(following))

    for n in range(10):
        await bus.publish("ordered", event(n, session="chan"))
    worker = Worker(bus, ORDERED, {"test.event": handle}, backoff=FAST, session_batch=4)
    await run_until(worker, lambda: worker.stats.completed == 10)
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert worker.stats.in_flight == 0
    assert (await bus.receiver("ordered").receive(10, timeout=0.2)) == []


async def test_a_run_not_taken_is_handled_one_by_one_in_order(bus: LocalBus) -> None:
    """A handler that takes nothing still sees each message once, in session order."""
    seen: list[tuple[int, int]] = []

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        seen.append((env.data["n"], len(ctx.run.following) if ctx.run is not None else 0))

    for n in range(6):
        await bus.publish("ordered", event(n, session="chan"))
    worker = Worker(bus, ORDERED, {"test.event": handle}, backoff=FAST, session_batch=3)
    await run_until(worker, lambda: worker.stats.completed == 6)
    assert [n for n, _ in seen] == list(range(6))
    assert [k for _, k in seen] == [2, 1, 0, 2, 1, 0]


async def test_failed_pack_releases_what_it_took_and_keeps_order(bus: LocalBus) -> None:
    """A transient failure while handling a pack retries its first message and releases the
    rest; they come back behind it and nothing is lost or handled out of order."""
    delivered: list[int] = []
    failures = 0

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        nonlocal failures
        pack = [env.data["n"], *(e.data["n"] for e in (ctx.run.following if ctx.run else ()))]
        if ctx.run is not None:
            ctx.run.take(len(ctx.run.following))
        if 2 in pack and failures == 0:
            failures += 1
            raise TransientError("Discord is having a moment")
        delivered.extend(pack)

    for n in range(8):
        await bus.publish("ordered", event(n, session="chan"))
    worker = Worker(bus, ORDERED, {"test.event": handle}, backoff=FAST, session_batch=4)
    await run_until(worker, lambda: worker.stats.completed == 8)
    assert delivered == list(range(8))
    assert worker.stats.retried == 1
    assert worker.stats.released >= 3


async def test_retry_in_the_middle_of_a_run_hands_the_rest_back(bus: LocalBus) -> None:
    """Message 1 of a run [0, 1, 2, 3] is retried: 2 and 3 are released, not handled before
    it, and the session's order holds."""
    order: list[int] = []
    tried = False

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        nonlocal tried
        if env.data["n"] == 1 and not tried:
            tried = True
            raise RateLimited("slow down", retry_after=0.05)
        order.append(env.data["n"])

    for n in range(4):
        await bus.publish("ordered", event(n, session="chan"))
    worker = Worker(bus, ORDERED, {"test.event": handle}, backoff=FAST, session_batch=4)
    await run_until(worker, lambda: worker.stats.completed == 4)
    assert order == [0, 1, 2, 3]


async def test_dead_letter_in_a_run_lets_the_rest_go_on(bus: LocalBus) -> None:
    """A permanent failure dead-letters that one message; the run carries on behind it."""
    order: list[int] = []

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        if env.data["n"] == 1:
            raise PermanentError("no such channel")
        order.append(env.data["n"])

    for n in range(4):
        await bus.publish("ordered", event(n, session="chan"))
    worker = Worker(bus, ORDERED, {"test.event": handle}, backoff=FAST, session_batch=4)
    await run_until(worker, lambda: worker.stats.completed == 3)
    assert order == [0, 2, 3]
    assert worker.stats.dead_lettered == 1
    assert worker.stats.released == 0


async def test_run_following_stops_at_a_message_that_does_not_decode(bus: LocalBus) -> None:
    """A handler is never offered a message it could not read; that one is dead-lettered."""
    offered: list[list[int]] = []

    async def handle(env: Envelope, ctx: HandlerContext) -> None:
        following = ctx.run.following if ctx.run is not None else ()
        offered.append([env.data["n"], *(e.data["n"] for e in following)])

    await bus.publish("ordered", event(0, session="chan"))
    await bus.publish("ordered", event(1, session="chan"))
    await bus.publish(
        "ordered", OutgoingMessage(body=b"{not json", message_id="bad", session_id="chan")
    )
    await bus.publish("ordered", event(3, session="chan"))
    worker = Worker(bus, ORDERED, {"test.event": handle}, backoff=FAST, session_batch=4)
    await run_until(worker, lambda: worker.stats.completed == 3 and worker.stats.dead_lettered > 0)
    assert offered[0] == [0, 1]
    assert [o[0] for o in offered] == [0, 1, 3]


def test_session_batch_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="session_batch"):
        Worker(object(), ORDERED, {}, session_batch=0)  # type: ignore[arg-type]
