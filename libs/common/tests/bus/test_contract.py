"""The bus contract (``dfj_common.bus.base``), proved on every backend by the same test bodies.

The ``case`` fixture (conftest.py) gives the backend, its queues and the waits that suit it.
Timings are asserted only where the contract is about time (locks, retries, schedules), as
bounds derived from the queue's lock duration or the delay asked for, less ``case.slack``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import random
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from dfj_common.bus import MAX_DELIVERY_REASON, Delivery, OutgoingMessage, QueueStats
from dfj_common.bus.local import LocalBus
from dfj_common.envelope import Envelope
from dfj_common.errors import BusError, LockLost, MalformedMessage

if TYPE_CHECKING:
    from libs.common.tests.bus.conftest import BusCase


def msg(mid: str, body: bytes | None = None, *, session: str | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        body=body if body is not None else mid.encode(), message_id=mid, session_id=session
    )


def seq_msg(session: str, seq: int, case: BusCase) -> OutgoingMessage:
    body = json.dumps({"session": session, "seq": seq}).encode()
    return OutgoingMessage(body=body, message_id=case.uid(f"{seq}"), session_id=session)


def seq_of(delivery: Delivery) -> tuple[str, int]:
    obj: dict[str, Any] = json.loads(delivery.body)
    return obj["session"], obj["seq"]


async def stats_of(case: BusCase, queue: str) -> QueueStats:
    (found,) = [s for s in await case.bus.stats() if s.queue == queue]
    return found


# -- publish, receive, complete ------------------------------------------------------------------


async def test_roundtrip_keeps_body_properties_and_ids(case: BusCase) -> None:
    """A published message arrives once, with its exact body, properties and message id."""
    body = bytes(range(256)) + "ünïcødé ✓".encode()
    props = {"type": "test.roundtrip", "tenant": "sïte-1", "empty": ""}
    mid = case.uid()
    before = time.time()
    await case.bus.publish(
        case.plain_queue, OutgoingMessage(body=body, message_id=mid, properties=props)
    )
    receiver = case.receiver(case.plain_queue)
    d = await case.receive_one(receiver)
    assert d.queue == case.plain_queue
    assert d.message_id == mid
    assert d.body == body
    assert dict(d.properties) == props
    assert d.session_id is None
    assert d.delivery_count == 1
    assert d.max_deliveries == case.max_deliveries(case.plain_queue)
    assert d.deliveries_left == d.max_deliveries - 1
    assert before - 5 <= d.enqueued_at <= time.time() + 5
    await d.complete()
    assert d.settled


async def test_envelope_roundtrip_on_session_queue_keeps_session_id(case: BusCase) -> None:
    """publish_envelope keeps the CloudEvent intact; its id and session key become the ids."""
    envelope = Envelope(
        id=case.uid("evt"),
        source="/test/contract",
        type="jira.issue.updated",
        data={"issue": {"id": "10001", "summary": "ünïcødé"}, "n": [1, 2.5, None, True]},
        time=datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC),
        subject="10001",
        tenant="client-key-1",
        session_key=case.uid("client-key-1:10001"),
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        extensions={"custom": "kept"},
    )
    await case.bus.publish_envelope(case.session_queue, envelope)
    d = await case.receive_one(case.receiver(case.session_queue))
    assert d.message_id == envelope.id
    assert d.session_id == envelope.session_key
    assert d.properties.get("type") == envelope.type
    assert Envelope.decode(d.body) == envelope
    await d.complete()


async def test_completed_message_never_comes_back(case: BusCase) -> None:
    """A completed message is not redelivered, not even after its lock would have expired."""
    mid = case.uid()
    await case.bus.publish(case.plain_queue, msg(mid))
    receiver = case.receiver(case.plain_queue)
    d = await case.receive_one(receiver)
    await d.complete()
    other = case.receiver(case.plain_queue)
    await asyncio.gather(
        case.expect_nothing(receiver, within=case.lock(case.plain_queue) + case.quiet),
        case.expect_nothing(other, within=case.lock(case.plain_queue) + case.quiet),
    )
    assert mid not in {dl.message_id for dl in await case.bus.dead_letters(case.plain_queue)}


async def test_delivery_settles_only_once(case: BusCase) -> None:
    """Settling a delivery twice is a programming error; renewing a settled one is LockLost."""
    await case.bus.publish(case.plain_queue, msg(case.uid()))
    d = await case.receive_one(case.receiver(case.plain_queue))
    await d.complete()
    with pytest.raises(RuntimeError):
        await d.complete()
    with pytest.raises(RuntimeError):
        await d.dead_letter("again")
    with pytest.raises(LockLost):
        await d.renew_lock()


# -- peek-lock -----------------------------------------------------------------------------------


async def test_locked_message_is_invisible_until_lock_expires(case: BusCase) -> None:
    """Another receiver gets a held message only once its lock expired, with delivery_count 2."""
    lock = case.lock(case.plain_queue)
    mid = case.uid()
    await case.bus.publish(case.plain_queue, msg(mid, b"payload"))
    first = await case.receive_one(case.receiver(case.plain_queue))
    held_at = time.monotonic()
    second_receiver = case.receiver(case.plain_queue)
    second = await case.receive_one(second_receiver, within=lock + case.settle)
    waited = time.monotonic() - held_at
    assert waited >= lock - case.slack, f"redelivered after {waited:.2f}s, lock is {lock}s"
    assert (second.message_id, second.body, second.delivery_count) == (mid, b"payload", 2)
    assert first.delivery_count == 1
    await second.complete()


async def test_renew_lock_keeps_message_invisible_past_lock_duration(case: BusCase) -> None:
    """renew_lock extends the lock, so nobody else gets the message while it is renewed."""
    lock = case.lock(case.plain_queue)
    await case.bus.publish(case.plain_queue, msg(case.uid()))
    d = await case.receive_one(case.receiver(case.plain_queue))
    other = case.receiver(case.plain_queue)

    async def keep_renewing() -> None:
        end = time.monotonic() + 2.2 * lock
        while time.monotonic() < end:
            await asyncio.sleep(lock / 4)
            await d.renew_lock()

    await asyncio.gather(keep_renewing(), case.expect_nothing(other, within=2 * lock))
    await d.complete()  # still ours: no LockLost
    await case.expect_nothing(other)


async def test_settling_after_lock_was_taken_raises_lock_lost(case: BusCase) -> None:
    """Once an expired lock went to another receiver, every settlement by the first is LockLost."""
    lock = case.lock(case.plain_queue)
    ids = [case.uid(f"{i}") for i in range(5)]
    await case.bus.publish_batch(case.plain_queue, [msg(i) for i in ids])
    stale = await case.receive_n(case.receiver(case.plain_queue), 5, batch=5)
    fresh = await case.receive_n(
        case.receiver(case.plain_queue), 5, batch=5, within=lock + case.settle
    )
    assert sorted(d.message_id for d in fresh) == sorted(ids)
    assert {d.delivery_count for d in fresh} == {2}
    by_id = {d.message_id: d for d in stale}
    settlements: list[Callable[[], Awaitable[None]]] = [
        by_id[ids[0]].complete,
        lambda: by_id[ids[1]].retry(0.0, reason="late"),
        lambda: by_id[ids[2]].dead_letter("late", "should not stick"),
        by_id[ids[3]].release,
        by_id[ids[4]].renew_lock,
    ]
    for settle in settlements:
        with pytest.raises(LockLost):
            await settle()
    for d in fresh:
        await d.complete()  # the new holder is unaffected
    dead = {dl.message_id for dl in await case.bus.dead_letters(case.plain_queue)}
    assert not dead & set(ids)
    await case.expect_nothing(case.receiver(case.plain_queue))


# -- retry and release ----------------------------------------------------------------------------


async def test_retry_redelivers_after_delay_with_incremented_count(case: BusCase) -> None:
    """retry(delay) hands the message out again no earlier than delay, delivery_count + 1."""
    delay = case.short_delay
    mid = case.uid()
    await case.bus.publish(case.plain_queue, msg(mid, b"again"))
    receiver = case.receiver(case.plain_queue)
    d = await case.receive_one(receiver)
    started = time.monotonic()
    await d.retry(delay, reason="transient")
    again = await case.receive_one(receiver, within=delay + case.settle)
    waited = time.monotonic() - started
    assert waited >= delay - case.slack, f"redelivered after {waited:.2f}s, delay was {delay}s"
    assert (again.message_id, again.body, again.delivery_count) == (mid, b"again", 2)
    assert again.deliveries_left == again.max_deliveries - 2
    await again.complete()


async def test_retry_on_plain_queue_does_not_hold_back_other_messages(case: BusCase) -> None:
    """While one message waits out its retry delay, the next one is delivered at once."""
    first, second = case.uid("a"), case.uid("b")
    await case.bus.publish_batch(case.plain_queue, [msg(first), msg(second)])
    receiver = case.receiver(case.plain_queue)
    d = await case.receive_one(receiver)
    assert d.message_id == first
    await d.retry(case.short_delay + case.quiet)
    started = time.monotonic()
    nxt = await case.receive_one(receiver)
    assert nxt.message_id == second
    assert time.monotonic() - started < case.short_delay
    await nxt.complete()
    back = await case.receive_one(receiver, within=case.short_delay + case.settle)
    assert (back.message_id, back.delivery_count) == (first, 2)
    await back.complete()


async def test_release_makes_message_available_at_once(case: BusCase) -> None:
    """release() hands the message back immediately, long before its lock would expire."""
    lock = case.lock(case.plain_queue)
    mid = case.uid()
    await case.bus.publish(case.plain_queue, msg(mid))
    d = await case.receive_one(case.receiver(case.plain_queue))
    other = case.receiver(case.plain_queue)
    started = time.monotonic()
    await d.release()
    again = await case.receive_one(other, within=lock / 2)
    assert time.monotonic() - started < lock / 2
    assert (again.message_id, again.delivery_count) == (mid, 2)
    await again.complete()


# -- dead letters --------------------------------------------------------------------------------


async def test_repeated_retry_dead_letters_after_max_deliveries(case: BusCase) -> None:
    """A message retried on each of its max_deliveries receipts is dead-lettered with the reason."""
    queue = case.plain_queue
    maximum = case.max_deliveries(queue)
    mid = case.uid()
    await case.bus.publish(queue, msg(mid, b"poison"))
    receiver = case.receiver(queue)
    for n in range(1, maximum + 1):
        d = await case.receive_one(receiver)
        assert (d.message_id, d.delivery_count) == (mid, n)
        await d.retry(0.0, reason=f"attempt {n} failed")
    await case.expect_nothing(receiver)
    (dead,) = [dl for dl in await case.bus.dead_letters(queue) if dl.message_id == mid]
    assert dead.reason == MAX_DELIVERY_REASON
    assert dead.delivery_count == maximum
    assert dead.body == b"poison"
    # a replayed message starts afresh: it has all its deliveries again
    assert await case.bus.replay(queue, message_ids=[mid]) == 1
    again = await case.receive_one(receiver)
    assert (again.message_id, again.delivery_count) == (mid, 1)
    assert again.deliveries_left == maximum - 1
    await again.complete()
    assert mid not in {dl.message_id for dl in await case.bus.dead_letters(queue)}


async def test_unsettled_message_dead_letters_after_max_deliveries(case: BusCase) -> None:
    """A message whose lock expires max_deliveries times is dead-lettered, never delivered again."""
    queue = case.plain_queue
    lock, maximum = case.lock(queue), case.max_deliveries(queue)
    if lock * maximum > 30:
        pytest.skip(f"{maximum} lock expiries of {lock:.0f}s take too long here")
    mid = case.uid()
    await case.bus.publish(queue, msg(mid))
    receiver = case.receiver(queue)
    for n in range(1, maximum + 1):
        d = await case.receive_one(receiver, within=lock + case.settle)
        assert (d.message_id, d.delivery_count) == (mid, n)  # and let the lock lapse
    await case.expect_nothing(receiver, within=lock + case.quiet)
    (dead,) = [dl for dl in await case.bus.dead_letters(queue) if dl.message_id == mid]
    assert dead.reason == MAX_DELIVERY_REASON
    assert dead.delivery_count == maximum
    await case.expect_nothing(receiver)


async def test_explicit_dead_letter_keeps_reason_and_description(case: BusCase) -> None:
    """dead_letter(reason, description) lists the message with both, and with its own fields."""
    queue = case.session_queue
    session, mid = case.uid("s"), case.uid()
    props = {"type": "test.dead"}
    await case.bus.publish(
        queue,
        OutgoingMessage(body=b"\x00bad", message_id=mid, session_id=session, properties=props),
    )
    d = await case.receive_one(case.receiver(queue))
    before = time.time()
    await d.dead_letter("HandlerRejected", "the issue no longer exists")
    (dead,) = [dl for dl in await case.bus.dead_letters(queue) if dl.message_id == mid]
    assert (dead.reason, dead.description) == ("HandlerRejected", "the issue no longer exists")
    assert (dead.queue, dead.session_id, dead.body) == (queue, session, b"\x00bad")
    assert dict(dead.properties) == props
    assert dead.delivery_count == 1
    assert dead.dead_lettered_at is None or before - 5 <= dead.dead_lettered_at <= time.time() + 5
    await case.expect_nothing(case.receiver(queue))


async def test_dead_letters_lists_oldest_first_and_honours_limit(case: BusCase) -> None:
    """dead_letters() lists dead-lettered messages in queue order, at most ``limit`` of them."""
    queue = case.plain_queue
    ids = [case.uid(f"{i}") for i in range(3)]
    await case.bus.publish_batch(queue, [msg(i) for i in ids])
    receiver = case.receiver(queue)
    for d in await case.receive_n(receiver, 3):
        await d.dead_letter("Listed")
    listed = [dl for dl in await case.bus.dead_letters(queue) if dl.message_id in ids]
    assert [dl.message_id for dl in listed] == ids
    assert [dl.sequence for dl in listed] == sorted(dl.sequence for dl in listed)
    assert len(await case.bus.dead_letters(queue, limit=1)) == 1


async def test_replay_all_moves_dead_letters_back_with_fresh_count(case: BusCase) -> None:
    """replay() returns every dead letter of the queue to it, countable, completable, count 1."""
    queue = case.plain_queue
    ids = {case.uid(f"{i}") for i in range(3)}
    await case.bus.publish_batch(queue, [msg(i) for i in sorted(ids)])
    receiver = case.receiver(queue)
    for d in await case.receive_n(receiver, 3):
        await d.retry(0.0)
    for d in await case.receive_n(receiver, 3):
        await d.dead_letter("Broken", "for replay")
    assert await case.bus.replay(queue) == 3
    assert not await case.bus.dead_letters(queue)
    replayed = await case.receive_n(receiver, 3)
    assert {d.message_id for d in replayed} == ids
    assert {d.delivery_count for d in replayed} == {1}
    for d in replayed:
        await d.complete()
    await case.expect_nothing(receiver)
    assert await case.bus.replay(queue) == 0


async def test_replay_by_ids_moves_only_those(case: BusCase) -> None:
    """replay(message_ids=...) moves back exactly the named dead letters."""
    queue = case.plain_queue
    a, b, c = case.uid("a"), case.uid("b"), case.uid("c")
    await case.bus.publish_batch(queue, [msg(a), msg(b), msg(c)])
    receiver = case.receiver(queue)
    for d in await case.receive_n(receiver, 3):
        await d.dead_letter("Broken")
    assert await case.bus.replay(queue, message_ids=[]) == 0
    assert await case.bus.replay(queue, message_ids=[a, c, case.uid("unknown")]) == 2
    left = [
        dl.message_id for dl in await case.bus.dead_letters(queue) if dl.message_id in {a, b, c}
    ]
    assert left == [b]
    replayed = await case.receive_n(receiver, 2)
    assert sorted(d.message_id for d in replayed) == sorted([a, c])
    assert {d.delivery_count for d in replayed} == {1}
    for d in replayed:
        await d.complete()
    await case.expect_nothing(receiver)


# -- duplicate suppression -----------------------------------------------------------------------


async def test_duplicate_message_id_is_delivered_once(case: BusCase) -> None:
    """A message id published again within the window is dropped, even after completion."""
    queue = case.plain_queue
    mid = case.uid()
    await case.bus.publish(queue, msg(mid, b"first"))
    await case.bus.publish(queue, msg(mid, b"second"))
    await case.bus.publish_batch(queue, [msg(mid, b"third")])
    receiver = case.receiver(queue)
    d = await case.receive_one(receiver)
    assert (d.message_id, d.body) == (mid, b"first")
    await d.complete()
    await case.bus.publish(queue, msg(mid, b"after completion"))
    await case.expect_nothing(receiver)


async def test_duplicates_within_one_batch_are_delivered_once(case: BusCase) -> None:
    """A batch that repeats a message id delivers it once and the other ids normally."""
    queue = case.plain_queue
    a, b = case.uid("a"), case.uid("b")
    await case.bus.publish_batch(queue, [msg(a, b"a1"), msg(b), msg(a, b"a2")])
    receiver = case.receiver(queue)
    got = await case.receive_n(receiver, 2)
    assert [(d.message_id, d.body) for d in got] == [(a, b"a1"), (b, b.encode())]
    for d in got:
        await d.complete()
    await case.expect_nothing(receiver)


async def test_distinct_ids_are_all_delivered_and_dedupe_is_per_queue(case: BusCase) -> None:
    """Different ids are both delivered; the same id on another queue is not a duplicate."""
    a, b = case.uid("a"), case.uid("b")
    await case.bus.publish(case.plain_queue, msg(a))
    await case.bus.publish(case.plain_queue, msg(b))
    await case.bus.publish(case.session_queue, msg(a, session=case.uid("s")))
    plain = await case.receive_n(case.receiver(case.plain_queue), 2)
    assert sorted(d.message_id for d in plain) == sorted([a, b])
    ordered = await case.receive_one(case.receiver(case.session_queue))
    assert ordered.message_id == a
    for d in [*plain, ordered]:
        await d.complete()


# -- scheduled messages --------------------------------------------------------------------------


async def test_scheduled_message_is_invisible_until_its_time(case: BusCase) -> None:
    """schedule(at=...) keeps the message out of reach until ``at``, then delivers it."""
    queue = case.plain_queue
    mid = case.uid()
    at = time.time() + case.short_delay
    await case.bus.schedule(queue, msg(mid, b"later"), at=at)
    receiver = case.receiver(queue)
    await case.expect_nothing(receiver, within=max(at - time.time() - 2 * case.slack, 0.0))
    d = await case.receive_one(receiver, within=case.settle)
    assert time.time() >= at - case.slack
    assert (d.message_id, d.body, d.delivery_count) == (mid, b"later", 1)
    await d.complete()


async def test_scheduled_message_does_not_block_its_session(case: BusCase) -> None:
    """A message scheduled for later does not hold back its session's messages published now."""
    queue, session = case.session_queue, case.uid("s")
    later, now = case.uid("later"), case.uid("now")
    at = time.time() + case.short_delay + case.quiet
    await case.bus.schedule(queue, msg(later, session=session), at=at)
    await case.bus.publish(queue, msg(now, session=session))
    receiver = case.receiver(queue)
    d = await case.receive_one(receiver, within=case.short_delay)
    assert d.message_id == now
    assert time.time() < at, "the message published now waited for the scheduled one"
    await d.complete()
    d = await case.receive_one(receiver, within=at - time.time() + case.settle)
    assert d.message_id == later
    await d.complete()


# -- sessions ------------------------------------------------------------------------------------


async def test_sessions_are_fifo(case: BusCase) -> None:
    """Each session's messages are delivered in publish order, sessions interleaved or not."""
    queue = case.session_queue
    sessions = [case.uid(f"s{i}") for i in range(3)]
    for seq in range(5):
        for s in sessions:
            await case.bus.publish(queue, seq_msg(s, seq, case))
    receiver = case.receiver(queue)
    seen: dict[str, list[int]] = defaultdict(list)
    for _ in range(15):
        d = await case.receive_one(receiver)
        session, seq = seq_of(d)
        assert d.session_id == session
        seen[session].append(seq)
        await d.complete()
    assert seen == {s: [0, 1, 2, 3, 4] for s in sessions}
    await case.expect_nothing(receiver)


async def test_session_message_waits_while_head_is_in_flight(case: BusCase) -> None:
    """While a session's first message is held, its second goes to nobody, not even the holder."""
    queue, session = case.session_queue, case.uid("s")
    await case.bus.publish_batch(queue, [seq_msg(session, 0, case), seq_msg(session, 1, case)])
    holder, other = case.receiver(queue), case.receiver(queue)
    head = await case.receive_one(holder)
    assert seq_of(head) == (session, 0)
    await asyncio.gather(case.expect_nothing(holder), case.expect_nothing(other))
    await head.complete()
    nxt = await case.receive_one(other)
    assert seq_of(nxt) == (session, 1)
    await nxt.complete()


async def test_receive_many_gives_at_most_one_message_per_session(case: BusCase) -> None:
    """A batch receive on a session queue never hands out two messages of one session."""
    queue, session = case.session_queue, case.uid("s")
    await case.bus.publish_batch(queue, [seq_msg(session, i, case) for i in range(3)])
    receiver = case.receiver(queue)
    handled: list[int] = []
    while len(handled) < 3:
        got = await receiver.receive(3, timeout=case.settle)
        assert len(got) == 1, [seq_of(d) for d in got]
        handled.append(seq_of(got[0])[1])
        await got[0].complete()
    assert handled == [0, 1, 2]


async def test_different_sessions_proceed_in_parallel(case: BusCase) -> None:
    """A held session does not stop another receiver from taking another session."""
    queue = case.session_queue
    one, two = case.uid("one"), case.uid("two")
    await case.bus.publish_batch(
        queue, [seq_msg(one, 0, case), seq_msg(one, 1, case), seq_msg(two, 0, case)]
    )
    first = await case.receive_one(case.receiver(queue))
    second = await case.receive_one(case.receiver(queue))
    assert {seq_of(first), seq_of(second)} == {(one, 0), (two, 0)}
    for d in (first, second):
        await d.complete()
    last = await case.receive_one(case.receiver(queue))
    assert seq_of(last) == (one, 1)
    await last.complete()


async def test_retried_session_head_blocks_its_session_until_redelivered(case: BusCase) -> None:
    """A retried head is redelivered before its successors, which wait for it meanwhile."""
    queue, session = case.session_queue, case.uid("s")
    await case.bus.publish_batch(queue, [seq_msg(session, i, case) for i in range(3)])
    receiver, other = case.receiver(queue), case.receiver(queue)
    head = await case.receive_one(receiver)
    assert seq_of(head) == (session, 0)
    started = time.monotonic()
    await head.retry(case.short_delay)
    await asyncio.gather(
        case.expect_nothing(receiver, within=case.short_delay - 2 * case.slack),
        case.expect_nothing(other, within=case.short_delay - 2 * case.slack),
    )
    again = await case.receive_one(other, within=case.settle)
    assert time.monotonic() - started >= case.short_delay - case.slack
    assert (seq_of(again), again.delivery_count) == ((session, 0), 2)
    await again.complete()
    for seq in (1, 2):
        d = await case.receive_one(receiver)
        assert (seq_of(d), d.delivery_count) == ((session, seq), 1)
        await d.complete()


async def test_competing_receivers_keep_session_order_and_exclusivity(case: BusCase) -> None:
    """Two receivers draining many sessions keep each FIFO and never hold one twice at once."""
    queue = case.session_queue
    sessions = [case.uid(f"s{i}") for i in range(4)]
    total = 10 * len(sessions)
    rng = random.Random(7)
    order = [s for s in sessions for _ in range(10)]
    rng.shuffle(order)  # neighbours are often of one session: a careless claim takes both
    await case.bus.publish_batch(
        queue, [seq_msg(s, order[:i].count(s), case) for i, s in enumerate(order)]
    )
    handled: list[tuple[str, int, int, float, float]] = []

    async def work(worker: int) -> None:
        receiver = case.receiver(queue)
        deadline = time.monotonic() + case.settle + total * 0.1
        while len(handled) < total and time.monotonic() < deadline:
            got = await receiver.receive(2, timeout=case.quiet)
            start = time.monotonic()  # in flight from here until settled
            for d in got:
                await asyncio.sleep(rng.uniform(0, 0.01))
                session, seq = seq_of(d)
                handled.append((session, seq, worker, start, time.monotonic()))
                await d.complete()

    await asyncio.gather(work(0), work(1))
    assert sorted((s, q) for s, q, *_ in handled) == sorted(
        (s, q) for s in sessions for q in range(10)
    )
    assert {w for _, _, w, _, _ in handled} == {0, 1}
    for s in sessions:
        mine = sorted((h for h in handled if h[0] == s), key=lambda h: h[3])
        assert [h[1] for h in mine] == list(range(10))
        for earlier, later in itertools.pairwise(mine):
            assert earlier[4] <= later[3], f"session {s} handled concurrently: {earlier} {later}"


# -- session runs (session_batch) -----------------------------------------------------------------


async def test_session_run_is_handed_out_together_and_in_order(case: BusCase) -> None:
    """With ``session_batch=4`` one receive gives the first four of a session, in order; the
    rest go to nobody until every one of the run is settled."""
    queue, session = case.session_queue, case.uid("s")
    await case.bus.publish_batch(queue, [seq_msg(session, i, case) for i in range(6)])
    holder = case.receiver(queue, session_batch=4)
    other = case.receiver(queue, session_batch=4)
    run = await case.receive_n(holder, 4, batch=10)
    assert [seq_of(d) for d in run] == [(session, i) for i in range(4)]
    for d in run[:3]:
        await d.complete()
    await asyncio.gather(case.expect_nothing(holder), case.expect_nothing(other))
    await run[3].complete()
    rest = await case.receive_n(other, 2, batch=10)
    assert [seq_of(d) for d in rest] == [(session, 4), (session, 5)]
    for d in rest:
        await d.complete()


async def test_session_runs_of_several_sessions_in_one_receive(case: BusCase) -> None:
    """Runs of different sessions come together; each is in order, none exceeds the batch."""
    queue = case.session_queue
    sessions = [case.uid(f"s{i}") for i in range(3)]
    await case.bus.publish_batch(queue, [seq_msg(s, i, case) for i in range(5) for s in sessions])
    receiver = case.receiver(queue, session_batch=3)
    got = await case.receive_n(receiver, 9, batch=20)
    per: dict[str, list[int]] = defaultdict(list)
    for d in got:
        session, seq = seq_of(d)
        per[session].append(seq)
    assert per == {s: [0, 1, 2] for s in sessions}
    for d in got:
        await d.complete()
    tail = await case.receive_n(receiver, 6, batch=20)
    assert sorted(seq_of(d) for d in tail) == sorted((s, i) for s in sessions for i in (3, 4))
    for d in tail:
        await d.complete()


async def test_retried_run_head_brings_the_released_rest_back_behind_it(case: BusCase) -> None:
    """Retry the first of a run and release the others: after the delay all come back, in the
    original order, the first counted twice."""
    queue, session = case.session_queue, case.uid("s")
    await case.bus.publish_batch(queue, [seq_msg(session, i, case) for i in range(3)])
    receiver = case.receiver(queue, session_batch=3)
    run = await case.receive_n(receiver, 3, batch=10)
    started = time.monotonic()
    await run[0].retry(case.short_delay)
    for d in run[1:]:
        await d.release()
    await case.expect_nothing(receiver, within=case.short_delay - 2 * case.slack)
    again = await case.receive_n(receiver, 3, batch=10, within=case.settle + case.short_delay)
    assert time.monotonic() - started >= case.short_delay - case.slack
    assert [seq_of(d) for d in again] == [(session, i) for i in range(3)]
    assert again[0].delivery_count == 2
    for d in again:
        await d.complete()


async def test_competing_run_receivers_keep_session_order_and_exclusivity(case: BusCase) -> None:
    """Two run receivers draining many sessions keep each FIFO, one holder per session."""
    queue = case.session_queue
    sessions = [case.uid(f"s{i}") for i in range(4)]
    per_session = 12
    total = per_session * len(sessions)
    rng = random.Random(11)
    order = [s for s in sessions for _ in range(per_session)]
    rng.shuffle(order)
    await case.bus.publish_batch(
        queue, [seq_msg(s, order[:i].count(s), case) for i, s in enumerate(order)]
    )
    handled: list[tuple[str, int, int]] = []
    holding: dict[str, tuple[int, int]] = {}  # session -> (worker, deliveries unsettled)

    async def work(worker: int) -> None:
        receiver = case.receiver(queue, session_batch=5)
        deadline = time.monotonic() + case.settle + total * 0.1
        while len(handled) < total and time.monotonic() < deadline:
            got = await receiver.receive(10, timeout=case.quiet)
            for d in got:
                session, _ = seq_of(d)
                owner, count = holding.get(session, (worker, 0))
                assert owner == worker, f"{session} held by two receivers at once"
                holding[session] = (worker, count + 1)
            for d in got:
                await asyncio.sleep(rng.uniform(0, 0.005))
                session, seq = seq_of(d)
                handled.append((session, seq, worker))
                owner, count = holding[session]
                if count == 1:
                    del holding[session]  # before settling: the next run may come at once
                else:
                    holding[session] = (owner, count - 1)
                await d.complete()

    await asyncio.gather(work(0), work(1))
    assert len(handled) == total
    for s in sessions:
        assert [q for h, q, _ in handled if h == s] == list(range(per_session))


async def test_session_batch_must_be_positive(case: BusCase) -> None:
    with pytest.raises(ValueError, match="session_batch"):
        case.bus.receiver(case.session_queue, session_batch=0)


async def test_session_queue_rejects_message_without_session_id(case: BusCase) -> None:
    """Publishing to a session queue without a session_id raises ValueError and sends nothing."""
    mid = case.uid()
    with pytest.raises(ValueError, match="session"):
        await case.bus.publish(case.session_queue, msg(mid))
    with pytest.raises(ValueError, match="session"):
        await case.bus.schedule(case.session_queue, msg(case.uid()), at=time.time())
    await case.expect_nothing(case.receiver(case.session_queue))


async def test_plain_queue_rejects_or_delivers_message_with_session_id(case: BusCase) -> None:
    """A session_id on a plain queue raises ValueError (local); never is the message just lost."""
    mid = case.uid()
    receiver = case.receiver(case.plain_queue)
    try:
        await case.bus.publish(case.plain_queue, msg(mid, session=case.uid("s")))
    except ValueError:
        await case.expect_nothing(receiver)
        return
    assert case.backend != "local", "the local bus must refuse a session_id on a plain queue"
    d = await case.receive_one(receiver)
    assert d.message_id == mid
    await d.complete()


# -- batches and stats ---------------------------------------------------------------------------


async def test_publish_batch_is_ordered(case: BusCase) -> None:
    """A batch arrives in its own order, on a plain queue and within a session."""
    ids = [case.uid(f"{i:02}") for i in range(12)]
    await case.bus.publish_batch(case.plain_queue, [msg(i) for i in ids])
    receiver = case.receiver(case.plain_queue)
    got = []
    for _ in ids:
        d = await case.receive_one(receiver)
        got.append(d.message_id)
        await d.complete()
    assert got == ids
    session = case.uid("s")
    await case.bus.publish_batch(case.session_queue, [seq_msg(session, i, case) for i in range(6)])
    ordered = case.receiver(case.session_queue)
    seqs = []
    for _ in range(6):
        d = await case.receive_one(ordered)
        seqs.append(seq_of(d)[1])
        await d.complete()
    assert seqs == list(range(6))


async def test_invalid_batch_publishes_nothing(case: BusCase) -> None:
    """A batch with one bad message is refused whole: none of its messages is enqueued."""
    session = case.uid("s")
    good = [seq_msg(session, i, case) for i in range(3)]
    with pytest.raises(ValueError, match="session"):
        await case.bus.publish_batch(case.session_queue, [*good, msg(case.uid())])
    await case.expect_nothing(case.receiver(case.session_queue))
    # and the good ones were not burnt as duplicates by the failed attempt
    await case.bus.publish_batch(case.session_queue, good)
    receiver = case.receiver(case.session_queue)
    for expected in good:
        got = await case.receive_one(receiver)
        assert got.message_id == expected.message_id
        await got.complete()


async def test_stats_count_active_scheduled_locked_and_dead_lettered(case: BusCase) -> None:
    """stats() tells apart waiting, scheduled, held and dead-lettered messages of a queue."""
    queue = case.plain_queue
    if case.exact_stats:
        empty = await stats_of(case, queue)
        assert (empty.active, empty.scheduled, empty.locked, empty.dead_lettered) == (0, 0, 0, 0)
        assert empty.oldest_enqueued_at is None
    a, b, c, later = case.uid("a"), case.uid("b"), case.uid("c"), case.uid("later")
    published_at = time.time()
    await case.bus.publish_batch(queue, [msg(a), msg(b), msg(c)])
    await case.bus.schedule(queue, msg(later), at=time.time() + case.short_delay + 1)
    receiver = case.receiver(queue)
    held = await case.receive_one(receiver)
    dead = await case.receive_one(receiver)
    assert (held.message_id, dead.message_id) == (a, b)
    await dead.dead_letter("Counted")

    async def settled_stats() -> QueueStats:
        deadline = time.monotonic() + (0 if case.exact_stats else case.settle)
        while True:
            s = await stats_of(case, queue)
            if (s.active + s.locked, s.scheduled, s.dead_lettered) == (2, 1, 1):
                return s
            if time.monotonic() >= deadline:
                return s
            await asyncio.sleep(1.0)

    s = await settled_stats()
    if case.exact_stats:
        assert (s.active, s.scheduled, s.locked, s.dead_lettered) == (1, 1, 1, 1)
        assert s.oldest_enqueued_at is not None
        assert published_at - 5 <= s.oldest_enqueued_at <= time.time() + 5
    else:  # a broker may count held messages as active
        assert (s.active + s.locked, s.scheduled, s.dead_lettered) == (2, 1, 1)
    await held.complete()
    for expected in (c, later):
        d = await case.receive_one(receiver, within=case.short_delay + 1 + case.settle)
        assert d.message_id == expected
        await d.complete()
    if case.exact_stats:
        s = await stats_of(case, queue)
        assert (s.active, s.scheduled, s.locked, s.dead_lettered) == (0, 0, 0, 1)
    assert {st.queue for st in await case.bus.stats()} >= {case.plain_queue, case.session_queue}


async def test_stats_count_a_due_scheduled_message_as_active(case: BusCase) -> None:
    """Once its time has come, a scheduled message counts as active even before anyone receives."""
    queue = case.plain_queue
    mid = case.uid()
    at = time.time() + case.short_delay
    await case.bus.schedule(queue, msg(mid), at=at)
    await asyncio.sleep(max(at - time.time(), 0.0) + 2 * case.slack)
    deadline = time.monotonic() + (0 if case.exact_stats else case.settle)
    while True:
        s = await stats_of(case, queue)
        if (s.active, s.scheduled) == (1, 0) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(1.0)
    assert (s.active, s.scheduled) == (1, 0), s
    if case.exact_stats:
        assert s.oldest_enqueued_at is not None
    d = await case.receive_one(case.receiver(queue))
    assert d.message_id == mid
    await d.complete()


# -- consumers -----------------------------------------------------------------------------------


async def test_malformed_message_is_dead_lettered_and_consumer_moves_on(case: BusCase) -> None:
    """A body that is no CloudEvent is dead-lettered with the decoder's reason; then the next."""
    queue = case.plain_queue
    good = Envelope(id=case.uid("good"), source="/test", type="test.ok", data={"k": "v"})
    not_json, wrong_version = case.uid("not-json"), case.uid("v0.3")
    await case.bus.publish_batch(
        queue,
        [
            msg(not_json, b"\xff this is not json"),
            msg(wrong_version, b'{"specversion":"0.3","id":"x","source":"/s","type":"t"}'),
            OutgoingMessage.from_envelope(good),
        ],
    )
    receiver = case.receiver(queue)
    decoded: list[Envelope] = []
    reasons: dict[str, tuple[str, str]] = {}
    for _ in range(3):
        d = await case.receive_one(receiver)
        try:
            envelope = Envelope.decode(d.body)
        except MalformedMessage as exc:
            await d.dead_letter(exc.reason, str(exc))
            reasons[d.message_id] = (exc.reason, str(exc))
            continue
        decoded.append(envelope)
        await d.complete()
    assert decoded == [good]
    assert reasons == {
        not_json: ("EnvelopeNotJson", "envelope is not JSON"),
        wrong_version: ("EnvelopeSpecVersion", "unsupported specversion '0.3'"),
    }
    dead = {
        dl.message_id: (dl.reason, dl.description)
        for dl in await case.bus.dead_letters(queue)
        if dl.message_id in {not_json, wrong_version, good.id}
    }
    assert dead == reasons
    await case.expect_nothing(receiver)


async def test_waiting_receiver_is_woken_by_publish(case: BusCase) -> None:
    """A receiver blocked on an empty queue gets a new message within a second, not a poll later."""
    receiver = case.receiver(case.plain_queue)
    waiting = asyncio.ensure_future(receiver.receive(1, timeout=case.settle))
    await asyncio.sleep(case.quiet)  # it is waiting now
    assert not waiting.done()
    mid = case.uid()
    await case.bus.publish(case.plain_queue, msg(mid))
    published = time.monotonic()
    got = await waiting
    latency = time.monotonic() - published
    assert [d.message_id for d in got] == [mid]
    assert latency < 1.0, f"woken {latency:.2f}s after the publish"
    await got[0].complete()


# -- closing -------------------------------------------------------------------------------------


async def test_closing_receiver_ends_pending_receive_without_claiming(case: BusCase) -> None:
    """Closing a receiver stops a receive in progress; it takes nothing published afterwards."""
    receiver = case.bus.receiver(case.plain_queue)
    waiting = asyncio.ensure_future(receiver.receive(1, timeout=case.settle))
    await asyncio.sleep(case.quiet)
    closed_at = time.monotonic()
    await receiver.close()
    mid = case.uid()
    await case.bus.publish(case.plain_queue, msg(mid))
    try:
        got = await asyncio.wait_for(waiting, case.settle + 1)
    except BusError:
        got = []
    ended = time.monotonic() - closed_at
    assert [d.message_id for d in got] == [], "a closed receiver claimed a message"
    assert ended < 1.0, f"the pending receive ran on for {ended:.2f}s after close"
    d = await case.receive_one(case.receiver(case.plain_queue))
    assert (d.message_id, d.delivery_count) == (mid, 1)
    await d.complete()


def _open_fds(ignore: str) -> list[str]:
    """What this process's descriptors point at, except the bus file (and its -wal, -shm).

    SQLite defers closing a connection's descriptor while another connection of the same
    process holds locks on that file (the fixture's bus does), so those are not leaks.
    """
    targets = []
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):
            target = str(fd.readlink())
            if not (ignore and target.startswith(ignore)):
                targets.append(target)
    return sorted(targets)


async def test_close_releases_resources(case: BusCase) -> None:
    """Closing receivers and the bus (twice, harmlessly) leaves no unclosed resource behind."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
        bus_file = str(case.bus.path) if isinstance(case.bus, LocalBus) else ""
        fds, threads = _open_fds(bus_file), threading.active_count()
        bus = await case.new_bus()
        mid = case.uid()
        await bus.publish(case.plain_queue, msg(mid))
        receiver = bus.receiver(case.plain_queue)
        d = (await receiver.receive(1, timeout=case.settle))[0]
        await d.complete()
        idle = bus.receiver(case.session_queue)
        assert await idle.receive(1, timeout=0.0) == []
        forgotten = bus.receiver(case.plain_queue)  # never closed by hand: the bus closes it
        assert await forgotten.receive(1, timeout=0.0) == []
        await receiver.close()
        await receiver.close()
        await idle.close()
        await bus.close()
        await bus.close()
        del bus, receiver, idle, forgotten, d
        gc.collect()
        await asyncio.sleep(0)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks
    if case.backend == "local":
        assert _open_fds(bus_file) == fds
        assert threading.active_count() == threads


# -- the local backend's own promises ------------------------------------------------------------


async def test_local_receiver_behind_busy_session_does_not_spin(
    case: BusCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local receiver whose session queue holds only blocked messages sleeps, not spins."""
    if case.backend != "local":
        pytest.skip("counts the local bus's claim transactions")
    queue, session = case.session_queue, case.uid("s")
    await case.bus.publish_batch(queue, [seq_msg(session, i, case) for i in range(3)])
    head = await case.receive_one(case.receiver(queue))
    assert isinstance(case.bus, LocalBus)
    claims = 0
    real_claim = case.bus._claim

    def counting_claim(*args: Any) -> list[Delivery]:
        nonlocal claims
        claims += 1
        return list(real_claim(*args))

    monkeypatch.setattr(case.bus, "_claim", counting_claim)
    await case.expect_nothing(case.receiver(queue), within=0.8 * case.lock(queue))
    assert claims <= 5, f"{claims} claim transactions while waiting 0.8 lock durations"
    await head.complete()
