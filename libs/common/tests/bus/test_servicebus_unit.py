"""Unit tests of the Service Bus backend, without a network.

The pure rules (property decoding, delivery counting, ids, retry and replay plans, config
rendering, error mapping, settings) are tested directly. The I/O paths run against a small
in-memory stand-in for the SDK's client, senders and receivers (``FakeBroker``): it keeps
peek-lock, sessions, duplicate detection, scheduling, abandon counting and a dead-letter queue,
and returns properties as bytes the way the SDK does. The contract suite
(``test_contract.py``) proves the same behaviour against a real namespace or the emulator.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import pytest
from azure.servicebus import (
    ServiceBusMessage,
    ServiceBusMessageBatch,
    ServiceBusSessionFilter,
    ServiceBusSubQueue,
)
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessageSizeExceededError,
    OperationTimeoutError,
    ServiceBusAuthorizationError,
    ServiceBusConnectionError,
    ServiceBusServerBusyError,
    SessionLockLostError,
)

from dfj_common.bus import MAX_DELIVERY_REASON, TOPOLOGY, Delivery, OutgoingMessage, QueueSpec
from dfj_common.bus._servicebus_codec import (
    ATTEMPT_PROP,
    ENQUEUED_PROP,
    LINEAGE_PROP,
    MAX_ID_LENGTH,
    ORIGINAL_ID_PROP,
    RETRY_PROP,
    DeadLetterInstead,
    RetryCopy,
    body_bytes,
    connection_settings,
    decode_properties,
    derive_id,
    effective_delivery_count,
    enqueued_epoch,
    is_emulator_connection,
    iso_duration,
    original_id,
    plan_replay,
    plan_retry,
    user_properties,
)
from dfj_common.bus._servicebus_handout import Handout
from dfj_common.bus.servicebus import (
    ServiceBusBus,
    ServiceBusDelivery,
    bicep_queue_properties,
    emulator_config,
    translate_error,
)
from dfj_common.bus.topology import Topology
from dfj_common.clock import ManualClock
from dfj_common.config import Secret, Settings
from dfj_common.errors import BusError, ConfigError, LockLost, TransientError

EMULATOR: Final = (
    "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
)
AZURE: Final = (
    "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;"
    "SharedAccessKey=c2VjcmV0LWtleS12YWx1ZQ=="
)
ORDERED: Final = "ordered"
PLAIN: Final = "plain"
TEST_TOPOLOGY: Final[Topology] = MappingProxyType(
    {
        ORDERED: QueueSpec(name=ORDERED, sessions=True, max_deliveries=3, lock_duration=30.0),
        PLAIN: QueueSpec(name=PLAIN, sessions=False, max_deliveries=3, lock_duration=30.0),
    }
)
START: Final = 1_700_000_000.0


# =============================================================================================
# The fake SDK edge
# =============================================================================================


def _to_datetime(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


@dataclass(eq=False)
class Stored:
    """A message at rest in the fake broker."""

    seq: int
    message_id: str | None
    session_id: str | None
    body: bytes
    props: dict[str | bytes, Any] | None
    content_type: str | None
    subject: str | None
    enqueued: float
    visible_at: float
    failed: int = 0  # the AMQP header's delivery count: previous unsuccessful deliveries
    owner: FakeReceiver | None = None
    token: int = 0
    locked_until: float = 0.0
    dl_reason: str | None = None
    dl_description: str | None = None


@dataclass(frozen=True)
class FakeMessage:
    """What ``receive_messages``/``peek_messages`` return (``ServiceBusReceivedMessage``)."""

    message_id: str | None
    session_id: str | None
    body: Any
    application_properties: dict[str | bytes, Any] | None
    content_type: str | None
    subject: str | None
    delivery_count: int | None
    enqueued_time_utc: dt.datetime | None
    sequence_number: int | None
    dead_letter_reason: str | None
    dead_letter_error_description: str | None
    state: int
    stored: Stored
    token: int


@dataclass(eq=False)
class FakeQueue:
    spec: QueueSpec
    messages: list[Stored] = field(default_factory=list)
    dead: list[Stored] = field(default_factory=list)
    seen: dict[str, float] = field(default_factory=dict)
    session_owner: dict[str, FakeReceiver] = field(default_factory=dict)


class FakeBroker:
    """Peek-lock, sessions, dedupe, schedules and a DLQ, in memory, on a manual clock."""

    def __init__(self, topology: Topology, clock: ManualClock, *, batch_bytes: int = 4096) -> None:
        self.clock = clock
        self.queues = {name: FakeQueue(spec) for name, spec in topology.items()}
        self.batch_bytes = batch_bytes
        self.accept_wait = 0.05  # real seconds a NEXT_AVAILABLE_SESSION accept waits at most
        self.log: list[tuple[str, str | None]] = []
        self.sends: list[list[ServiceBusMessage]] = []
        self.fail_peek = False
        self._seq = 0
        self._token = 0

    def now(self) -> float:
        return self.clock.now()

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def next_token(self) -> int:
        self._token += 1
        return self._token

    def enqueue(self, queue: str, message: ServiceBusMessage) -> None:
        q = self.queues[queue]
        now = self.now()
        mid = message.message_id
        if mid is not None and q.spec.duplicate_window > 0:
            seen = q.seen.get(mid)
            if seen is not None and now - seen < q.spec.duplicate_window:
                self.log.append(("duplicate", mid))
                return
            q.seen[mid] = now
        if q.spec.sessions and not message.session_id:
            raise ServiceBusAuthorizationError(message="session queue needs a session id")
        props = message.application_properties
        scheduled = message.scheduled_enqueue_time_utc
        q.messages.append(
            Stored(
                seq=self.next_seq(),
                message_id=mid,
                session_id=message.session_id,
                body=body_bytes(message.body),
                props=_as_wire(props),
                content_type=message.content_type,
                subject=message.subject,
                enqueued=now,
                visible_at=scheduled.timestamp() if scheduled is not None else now,
            )
        )

    def expire(self, q: FakeQueue) -> None:
        now = self.now()
        for m in list(q.messages):
            if m.owner is not None and m.locked_until <= now:
                self.unlock(q, m, failed=True)

    def unlock(self, q: FakeQueue, m: Stored, *, failed: bool) -> None:
        m.owner = None
        m.token = 0
        if failed:
            m.failed += 1
            if m.failed >= q.spec.max_deliveries:
                self.dead_letter(q, m, MAX_DELIVERY_REASON, "broker: too many deliveries")

    def dead_letter(self, q: FakeQueue, m: Stored, reason: str | None, desc: str | None) -> None:
        q.messages.remove(m)
        m.owner = None
        m.dl_reason, m.dl_description = reason, desc
        props = dict(m.props or {})
        props[b"DeadLetterReason"] = (reason or "").encode()
        props[b"DeadLetterErrorDescription"] = (desc or "").encode()
        m.props = props
        q.dead.append(m)

    def view(self, m: Stored, *, token: int = 0) -> FakeMessage:
        return FakeMessage(
            message_id=m.message_id,
            session_id=m.session_id,
            body=[m.body],  # the SDK yields data sections
            application_properties=dict(m.props) if m.props else None,
            content_type=m.content_type,
            subject=m.subject,
            delivery_count=m.failed,
            enqueued_time_utc=_to_datetime(m.enqueued),
            sequence_number=m.seq,
            dead_letter_reason=m.dl_reason,
            dead_letter_error_description=m.dl_description,
            state=2 if m.visible_at > self.now() else 0,
            stored=m,
            token=token,
        )

    def available(self, q: FakeQueue, session: str | None) -> list[Stored]:
        now = self.now()
        return sorted(
            (
                m
                for m in q.messages
                if m.owner is None
                and m.visible_at <= now
                and (session is None or m.session_id == session)
            ),
            key=lambda m: m.seq,
        )

    def locked_in_session(self, queue: str, session: str) -> int:
        q = self.queues[queue]
        return sum(1 for m in q.messages if m.session_id == session and m.owner is not None)

    def pending(self, queue: str) -> list[Stored]:
        return sorted(self.queues[queue].messages, key=lambda m: m.seq)


def _as_wire(props: dict[str | bytes, Any] | None) -> dict[str | bytes, Any] | None:
    """The SDK's receive gotcha: keys and string values come back as bytes, empty as None."""
    if not props:
        return None
    return {
        (k.encode() if isinstance(k, str) else k): (v.encode() if isinstance(v, str) else v)
        for k, v in props.items()
    }


class RecordingBatch(ServiceBusMessageBatch):
    """A real SDK batch (real size accounting) that remembers what it holds."""

    def __init__(self, max_size_in_bytes: int) -> None:
        super().__init__(max_size_in_bytes=max_size_in_bytes)
        self.added: list[ServiceBusMessage] = []

    def add_message(self, message: Any) -> None:
        super().add_message(message)
        self.added.append(message)


class FakeSender:
    def __init__(self, broker: FakeBroker, queue: str) -> None:
        self.broker = broker
        self.queue = queue
        self.closed = False
        self.in_use = 0

    async def send_messages(
        self,
        message: ServiceBusMessage | list[ServiceBusMessage] | ServiceBusMessageBatch,
        *,
        timeout: float | None = None,
    ) -> None:
        if self.closed:
            raise ValueError("The handler has already been shutdown.")
        self.in_use += 1
        try:
            assert self.in_use == 1, "two coroutines used one sender at once"
            await asyncio.sleep(0)
            if isinstance(message, RecordingBatch):
                batch = list(message.added)
            elif isinstance(message, ServiceBusMessage):
                batch = [message]
            else:
                assert isinstance(message, list)
                batch = message
            self.broker.sends.append(batch)
            for m in batch:
                self.broker.enqueue(self.queue, m)
        finally:
            self.in_use -= 1

    async def create_message_batch(
        self, max_size_in_bytes: int | None = None
    ) -> ServiceBusMessageBatch:
        return RecordingBatch(max_size_in_bytes or self.broker.batch_bytes)

    async def close(self) -> None:
        self.closed = True


class FakeSession:
    def __init__(self, receiver: FakeReceiver, session_id: str, locked_until: float) -> None:
        self._receiver = receiver
        self._session_id = session_id
        self.until = locked_until
        self.renewals = 0

    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def locked_until_utc(self) -> dt.datetime | None:
        return _to_datetime(self.until)

    async def renew_lock(self, *, timeout: float | None = None) -> dt.datetime:
        broker = self._receiver.broker
        if self._receiver.closed or self.until <= broker.now():
            raise SessionLockLostError()
        self.until = broker.now() + self._receiver.q.spec.lock_duration
        self.renewals += 1
        return _to_datetime(self.until)


class FakeReceiver:
    """``ServiceBusReceiver`` over the fake broker: plain, session or dead-letter."""

    def __init__(
        self,
        broker: FakeBroker,
        queue: str,
        *,
        session_id: Any = None,
        sub_queue: Any = None,
        max_wait_time: float | None = None,
    ) -> None:
        self.broker = broker
        self.q = broker.queues[queue]
        self.dead = sub_queue is not None
        self.wants_session = session_id is not None
        assert session_id in (None, ServiceBusSessionFilter.NEXT_AVAILABLE), "only next-available"
        assert not (self.dead and self.wants_session), "a DLQ is read without a session"
        assert self.q.spec.sessions == self.wants_session or self.dead, "wrong receiver kind"
        self.max_wait_time = max_wait_time
        self._session: FakeSession | None = None
        self.opened = False
        self.closed = False
        self.renewed = 0

    # -- lifecycle

    async def __aenter__(self) -> FakeReceiver:
        if self.closed:
            raise ValueError("The handler has already been shutdown.")
        if self.wants_session:
            wait = min(self.max_wait_time or 60.0, self.broker.accept_wait)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while True:
                self.broker.expire(self.q)
                for m in self.broker.available(self.q, None):
                    sid = m.session_id
                    assert sid is not None
                    if sid not in self.q.session_owner:
                        self.q.session_owner[sid] = self
                        until = self.broker.now() + self.q.spec.lock_duration
                        self._session = FakeSession(self, sid, until)
                        self.opened = True
                        return self
                if loop.time() >= deadline:
                    raise OperationTimeoutError(message="no session available")
                await asyncio.sleep(0.005)
        self.opened = True
        return self

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._session is not None:
            sid = self._session.session_id
            if self.q.session_owner.get(sid) is self:
                del self.q.session_owner[sid]
            for m in list(self.q.messages):
                if m.owner is self:
                    self.broker.unlock(self.q, m, failed=True)

    def is_closed(self) -> bool:
        return self.closed

    @property
    def session(self) -> FakeSession:
        assert self._session is not None, "not a session receiver"
        return self._session

    # -- receiving

    def _entries(self) -> list[Stored]:
        return self.q.dead if self.dead else self.q.messages

    async def receive_messages(
        self, max_message_count: int | None = 1, max_wait_time: float | None = None
    ) -> Sequence[Any]:
        if self.closed:
            raise ValueError("The handler has already been shutdown.")
        assert max_wait_time is None or max_wait_time > 0, "the SDK refuses a zero wait"
        count = max_message_count or 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (max_wait_time or 60.0)
        while True:
            if self.is_closed():
                return []  # a closed link claims nothing
            if not self.dead:
                self.broker.expire(self.q)
            if self.dead:
                got = [m for m in self.q.dead if m.owner is None][:count]
            else:
                sid = self._session.session_id if self._session is not None else None
                got = self.broker.available(self.q, sid)[:count]
            if got or loop.time() >= deadline:
                break
            await asyncio.sleep(0.005)
        out = []
        for m in got:
            m.owner = self
            m.token = self.broker.next_token()
            m.locked_until = self.broker.now() + self.q.spec.lock_duration
            out.append(self.broker.view(m, token=m.token))
        return out

    async def peek_messages(
        self, max_message_count: int = 1, *, sequence_number: int = 0, timeout: float | None = None
    ) -> Sequence[Any]:
        if self.closed:
            raise ValueError("The handler has already been shutdown.")
        if self.broker.fail_peek:
            raise ServiceBusConnectionError(message="peek failed")
        assert not self.q.spec.sessions or self.dead, "a session queue's entity needs a session"
        start = max(sequence_number, 1)
        entries = sorted((m for m in self._entries() if m.seq >= start), key=lambda m: m.seq)
        return [self.broker.view(m) for m in entries[:max_message_count]]

    # -- settling

    def _held(self, message: FakeMessage) -> Stored:
        if self.closed:
            raise ValueError("The handler has already been shutdown.")
        m = message.stored
        if not self.dead:
            self.broker.expire(self.q)
        if m not in self._entries() or m.owner is not self or m.token != message.token:
            if self._session is not None:
                raise SessionLockLostError()
            raise MessageLockLostError()
        return m

    async def complete_message(self, message: Any) -> None:
        m = self._held(message)
        self._entries().remove(m)
        self.broker.log.append(("complete", m.message_id))

    async def abandon_message(self, message: Any) -> None:
        m = self._held(message)
        self.broker.log.append(("abandon", m.message_id))
        if self.dead:
            m.owner = None
        else:
            self.broker.unlock(self.q, m, failed=True)

    async def dead_letter_message(
        self, message: Any, reason: str | None = None, error_description: str | None = None
    ) -> None:
        m = self._held(message)
        self.broker.log.append(("dead_letter", m.message_id))
        self.broker.dead_letter(self.q, m, reason, error_description)

    async def renew_message_lock(
        self, message: Any, *, timeout: float | None = None
    ) -> dt.datetime:
        if self._session is not None:
            raise TypeError("renew the session lock instead")
        m = self._held(message)
        m.locked_until = self.broker.now() + self.q.spec.lock_duration
        self.renewed += 1
        return _to_datetime(m.locked_until)


class FakeClient:
    """``ServiceBusClient`` handing out fake senders and receivers."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.senders: list[FakeSender] = []
        self.receivers: list[FakeReceiver] = []
        self.closed = False

    def get_queue_sender(self, queue_name: str) -> FakeSender:
        sender = FakeSender(self.broker, queue_name)
        self.senders.append(sender)
        return sender

    def get_queue_receiver(
        self,
        queue_name: str,
        *,
        session_id: str | ServiceBusSessionFilter | None = None,
        sub_queue: ServiceBusSubQueue | str | None = None,
        max_wait_time: float | None = None,
        prefetch_count: int = 0,
    ) -> FakeReceiver:
        assert prefetch_count == 0, "prefetch must stay off"
        receiver = FakeReceiver(
            self.broker,
            queue_name,
            session_id=session_id,
            sub_queue=sub_queue,
            max_wait_time=max_wait_time,
        )
        self.receivers.append(receiver)
        return receiver

    def list_queue_sessions(
        self, queue_name: str, *, timeout: float | None = None
    ) -> AsyncIterator[str]:
        async def sessions() -> AsyncIterator[str]:
            seen: list[str] = []
            for m in self.broker.pending(queue_name):
                if m.session_id is not None and m.session_id not in seen:
                    seen.append(m.session_id)
                    yield m.session_id

        return sessions()

    async def close(self) -> None:
        self.closed = True


@dataclass
class Rig:
    bus: ServiceBusBus
    broker: FakeBroker
    client: FakeClient
    clock: ManualClock


MakeRig = Callable[..., Rig]


@pytest.fixture
async def make_rig() -> AsyncIterator[MakeRig]:
    """Build buses over fake brokers; every bus built is closed at teardown."""
    built: list[Rig] = []

    def make(**kwargs: Any) -> Rig:
        clock = ManualClock(START)
        broker = FakeBroker(TEST_TOPOLOGY, clock, batch_bytes=kwargs.pop("batch_bytes", 4096))
        client = FakeClient(broker)
        options: dict[str, Any] = {"session_idle_timeout": 0.2, "replay_wait": 0.05, **kwargs}
        bus = ServiceBusBus(topology=TEST_TOPOLOGY, client=client, clock=clock, **options)
        built.append(Rig(bus, broker, client, clock))
        return built[-1]

    yield make
    for each in built:
        await each.bus.close()


@pytest.fixture
def rig(make_rig: MakeRig) -> Rig:
    """A bus over a fake broker (closed by ``make_rig``)."""
    return make_rig()


def msg(mid: str, *, session: str | None = None, body: bytes | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        body=body if body is not None else mid.encode(),
        message_id=mid,
        session_id=session,
        properties={"type": "test.event", "tenant": "t1"},
    )


async def receive_one(rig: Rig, queue: str, timeout: float = 2.0) -> Delivery:
    receiver = rig.bus.receiver(queue)
    got = await receiver.receive(1, timeout=timeout)
    assert len(got) == 1, f"expected one delivery, got {got}"
    return got[0]


# =============================================================================================
# Pure rules
# =============================================================================================


def test_decode_properties_turns_bytes_keys_and_values_into_str() -> None:
    """The SDK's bytes keys/values (and non-string values) come back as str; None is empty."""
    raw: dict[str | bytes, Any] = {b"type": b"jira.issue", "plain": "x", b"n": 3, b"gone": None}
    assert decode_properties(raw) == {"type": "jira.issue", "plain": "x", "n": "3"}
    assert decode_properties(None) == {}
    assert decode_properties({}) == {}


def test_user_properties_hide_bookkeeping_and_broker_dead_letter_keys() -> None:
    """dfj-* bookkeeping and DeadLetterReason/Description never reach consumers."""
    decoded = {
        "type": "t",
        ORIGINAL_ID_PROP: "a",
        ATTEMPT_PROP: "2",
        RETRY_PROP: "1",
        LINEAGE_PROP: "a.replay3",
        ENQUEUED_PROP: "1.0",
        "DeadLetterReason": "x",
        "DeadLetterErrorDescription": "y",
    }
    assert user_properties(decoded) == {"type": "t"}


def test_body_bytes_joins_data_sections() -> None:
    """Bodies arrive as bytes or as an iterable of data sections."""
    assert body_bytes(b"abc") == b"abc"
    assert body_bytes(iter([b"ab", b"c"])) == b"abc"
    assert body_bytes([bytearray(b"x"), "y"]) == b"xy"
    assert body_bytes(None) == b""
    with pytest.raises(TypeError):
        body_bytes(42)
    with pytest.raises(TypeError):
        body_bytes([1, 2])


def test_effective_delivery_count_adds_earlier_copies_and_this_delivery() -> None:
    """Header count 0 is the first delivery; dfj-attempt carries what earlier copies used."""
    assert effective_delivery_count(0, {}) == 1
    assert effective_delivery_count(None, {}) == 1
    assert effective_delivery_count(2, {}) == 3
    assert effective_delivery_count(1, {ATTEMPT_PROP: "3"}) == 5
    assert effective_delivery_count(0, {ATTEMPT_PROP: "garbage"}) == 1
    assert effective_delivery_count(0, {ATTEMPT_PROP: "-4"}) == 1


def test_original_id_and_enqueued_time_prefer_the_copy_bookkeeping() -> None:
    """A copy reports the producer's id and first enqueue time, not its own."""
    assert original_id("a.r1", {ORIGINAL_ID_PROP: "a"}) == "a"
    assert original_id("a", {}) == "a"
    assert original_id(None, {}) == ""
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert enqueued_epoch(moment, {}) == moment.timestamp()
    assert enqueued_epoch(moment, {ENQUEUED_PROP: "12.5"}) == 12.5
    assert enqueued_epoch(moment, {ENQUEUED_PROP: "nope"}) == moment.timestamp()
    naive = dt.datetime(2026, 1, 1)  # the SDK means UTC
    assert enqueued_epoch(naive, {}) == moment.timestamp()


def test_derive_id_appends_a_suffix_and_stays_within_128_characters() -> None:
    """Short ids get '.suffix'; long ones are hashed down, deterministic and distinct."""
    assert derive_id("evt-1", "r1") == "evt-1.r1"
    long_a = "a" * 120 + "-one"
    long_b = "a" * 120 + "-two"
    derived_a = derive_id(long_a, "replay12345")
    assert len(derived_a) <= MAX_ID_LENGTH
    assert derived_a.endswith(".replay12345")
    assert derived_a == derive_id(long_a, "replay12345")
    assert derived_a != derive_id(long_b, "replay12345")
    assert len(derive_id("x" * 128, "r9")) == MAX_ID_LENGTH


def test_plan_retry_makes_a_scheduled_copy_with_bookkeeping() -> None:
    """Under the limit: a copy with a derived id, the original id and the deliveries used."""
    plan = plan_retry(
        broker_message_id="evt-1",
        properties={"type": "t"},
        delivery_count=1,
        max_deliveries=3,
        delay=5.0,
        now=100.0,
        enqueued_at=90.0,
    )
    assert isinstance(plan, RetryCopy)
    assert plan.message_id == "evt-1.r1"
    assert plan.scheduled_at == 105.0
    assert plan.properties == {
        "type": "t",
        ORIGINAL_ID_PROP: "evt-1",
        ATTEMPT_PROP: "1",
        RETRY_PROP: "1",
        ENQUEUED_PROP: "90.0",
    }


def test_plan_retry_of_a_copy_keeps_the_original_and_counts_on() -> None:
    """A retried copy keeps the producer's id; the ordinal and attempt move forward."""
    copy_props = {"type": "t", ORIGINAL_ID_PROP: "evt-1", ATTEMPT_PROP: "1", RETRY_PROP: "1"}
    count = effective_delivery_count(0, copy_props)
    plan = plan_retry(
        broker_message_id="evt-1.r1",
        properties=copy_props,
        delivery_count=count,
        max_deliveries=5,
        delay=1.0,
        now=0.0,
        enqueued_at=7.0,
    )
    assert isinstance(plan, RetryCopy)
    assert plan.message_id == "evt-1.r2"
    assert plan.properties[ORIGINAL_ID_PROP] == "evt-1"
    assert plan.properties[ATTEMPT_PROP] == "2"
    assert plan.properties[RETRY_PROP] == "2"


def test_plan_retry_after_a_replay_derives_ids_from_the_replay_lineage() -> None:
    """Retries of a replayed message cannot collide with retry ids used before the DLQ."""
    _, replayed = plan_replay(
        broker_message_id="evt-1.r2",
        properties={ORIGINAL_ID_PROP: "evt-1"},
        sequence_number=41,
        enqueued_at=1.0,
    )
    plan = plan_retry(
        broker_message_id="evt-1.replay41",
        properties=replayed,
        delivery_count=1,
        max_deliveries=3,
        delay=1.0,
        now=0.0,
        enqueued_at=1.0,
    )
    assert isinstance(plan, RetryCopy)
    assert plan.message_id == "evt-1.replay41.r1"
    assert plan.properties[LINEAGE_PROP] == "evt-1.replay41"
    assert plan.properties[ORIGINAL_ID_PROP] == "evt-1"


def test_plan_retry_dead_letters_once_deliveries_are_used_up() -> None:
    """At max_deliveries the answer is a dead letter with the standard reason."""
    plan = plan_retry(
        broker_message_id="evt-1",
        properties={},
        delivery_count=3,
        max_deliveries=3,
        delay=5.0,
        now=0.0,
        enqueued_at=0.0,
        reason="TransientError: boom",
    )
    assert isinstance(plan, DeadLetterInstead)
    assert plan.reason == MAX_DELIVERY_REASON
    assert "3 deliveries" in plan.description
    assert "boom" in plan.description


def test_plan_replay_restarts_counting_under_a_replay_id() -> None:
    """A replay copy: <original>.replay<seq>, original id kept, attempt counters dropped."""
    replay_id, props = plan_replay(
        broker_message_id="evt-1.r2",
        properties={
            "type": "t",
            ORIGINAL_ID_PROP: "evt-1",
            ATTEMPT_PROP: "3",
            RETRY_PROP: "2",
            "DeadLetterReason": "x",
        },
        sequence_number=77,
        enqueued_at=5.0,
    )
    assert replay_id == "evt-1.replay77"
    assert props == {
        "type": "t",
        ORIGINAL_ID_PROP: "evt-1",
        LINEAGE_PROP: "evt-1.replay77",
        ENQUEUED_PROP: "5.0",
    }
    assert effective_delivery_count(0, props) == 1


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (30, "PT30S"),
        (600, "PT10M"),
        (3600, "PT1H"),
        (90, "PT1M30S"),
        (3661, "PT1H1M1S"),
        (14 * 86400, "P14D"),
        (86400 + 5, "P1DT5S"),
        (0, "PT0S"),
        (0.2, "PT1S"),
        (29.5, "PT30S"),
    ],
)
def test_iso_duration(seconds: float, expected: str) -> None:
    """Whole-second ISO-8601 durations; fractions round up."""
    assert iso_duration(seconds) == expected


def test_iso_duration_refuses_negative_and_infinite() -> None:
    """Only finite, non-negative durations render."""
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            iso_duration(bad)


def test_emulator_config_renders_the_topology_within_the_emulator_schema() -> None:
    """Config.json: fixed namespace, one queue per spec, limits clamped to the schema."""
    config = emulator_config(TOPOLOGY)
    (namespace,) = config["UserConfig"]["Namespaces"]
    assert namespace["Name"] == "sbemulatorns"
    assert namespace["Topics"] == []
    assert config["UserConfig"]["Logging"]["Type"] in {"File", "Console"}
    queues = {q["Name"]: q["Properties"] for q in namespace["Queues"]}
    assert set(queues) == set(TOPOLOGY)
    events = queues["jira-events"]
    assert events["RequiresSession"] is True
    assert queues["jira-commands"]["RequiresSession"] is False
    assert events["LockDuration"] == "PT30S"
    assert events["MaxDeliveryCount"] == 10
    assert events["RequiresDuplicateDetection"] is True
    assert events["DuplicateDetectionHistoryTimeWindow"] == "PT5M"  # 10 min clamped to 5
    assert events["DeadLetteringOnMessageExpiration"] is True
    assert events["DefaultMessageTimeToLive"] == "PT1H"
    assert events["ForwardTo"] == "" and events["ForwardDeadLetteredMessagesTo"] == ""


def test_emulator_config_clamps_odd_specs() -> None:
    """Short locks, big delivery counts and no dedupe still render valid emulator values."""
    odd = MappingProxyType(
        {
            "odd": QueueSpec(
                name="odd",
                sessions=False,
                max_deliveries=50,
                lock_duration=1.0,
                duplicate_window=0,
            ),
            "wide": QueueSpec(name="wide", sessions=True, duplicate_window=2.0),
        }
    )
    (namespace,) = emulator_config(odd)["UserConfig"]["Namespaces"]
    queues = {q["Name"]: q["Properties"] for q in namespace["Queues"]}
    assert queues["odd"]["LockDuration"] == "PT5S"
    assert queues["odd"]["MaxDeliveryCount"] == 10
    assert queues["odd"]["RequiresDuplicateDetection"] is False
    assert queues["wide"]["DuplicateDetectionHistoryTimeWindow"] == "PT5S"


def test_bicep_queue_properties_follow_the_spec() -> None:
    """ARM queue properties: ISO durations, sessions, dedupe with its window."""
    props = bicep_queue_properties(TOPOLOGY["jira-events"])
    assert props["lockDuration"] == "PT30S"
    assert props["maxDeliveryCount"] == 10
    assert props["requiresSession"] is True
    assert props["requiresDuplicateDetection"] is True
    assert props["duplicateDetectionHistoryTimeWindow"] == "PT10M"
    assert props["deadLetteringOnMessageExpiration"] is True
    assert props["enablePartitioning"] is False
    plain = bicep_queue_properties(QueueSpec(name="q", sessions=False, duplicate_window=0))
    assert plain["requiresDuplicateDetection"] is False
    assert "duplicateDetectionHistoryTimeWindow" not in plain
    assert plain["requiresSession"] is False
    short = bicep_queue_properties(QueueSpec(name="q", sessions=False, duplicate_window=5))
    assert short["duplicateDetectionHistoryTimeWindow"] == "PT20S"  # Azure's minimum


def test_connection_string_parsing_and_emulator_detection() -> None:
    """Keys are case-insensitive; only UseDevelopmentEmulator=true means the emulator."""
    assert is_emulator_connection(EMULATOR)
    assert not is_emulator_connection(AZURE)
    assert connection_settings(AZURE)["endpoint"] == "sb://contoso.servicebus.windows.net/"
    with pytest.raises(ValueError):
        connection_settings("SharedAccessKey=abc")
    with pytest.raises(ValueError):
        connection_settings("Endpoint")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (MessageLockLostError(), LockLost),
        (SessionLockLostError(), LockLost),
        (MessageAlreadySettled(action="complete"), LockLost),
        (ServiceBusConnectionError(), TransientError),
        (OperationTimeoutError(), TransientError),
        (ServiceBusServerBusyError(), TransientError),
        (TimeoutError(), TransientError),
        (ServiceBusAuthorizationError(), BusError),
    ],
)
def test_translate_error_maps_sdk_failures(error: Exception, expected: type[Exception]) -> None:
    """Lock losses, transient blips and other SDK failures map onto our error tree."""
    assert isinstance(translate_error(error, "complete"), expected)


def test_translate_error_leaves_foreign_errors_and_maps_shutdown_while_settling() -> None:
    """A ValueError while settling means the receiver is gone; elsewhere it is ours to see."""
    shut = ValueError("The handler has already been shutdown.")
    assert isinstance(translate_error(shut, "complete", settling=True), LockLost)
    assert translate_error(shut, "send") is shut
    boom = RuntimeError("bug")
    assert translate_error(boom, "send") is boom
    too_big = translate_error(MessageSizeExceededError(message="big"), "send")
    assert type(too_big) is ValueError


# =============================================================================================
# Construction and settings
# =============================================================================================


async def test_connection_string_constructor_builds_a_client_offline() -> None:
    """The contract suite's constructor works; the emulator gets a small session pool."""
    bus = ServiceBusBus(connection_string=EMULATOR)
    try:
        assert bus.emulator
        assert bus._max_sessions == 2
    finally:
        await bus.close()
    azure = ServiceBusBus(connection_string=AZURE)
    try:
        assert not azure.emulator
        assert azure._max_sessions == 4
    finally:
        await azure.close()


async def test_from_settings_prefers_the_connection_string() -> None:
    """DFJ_SERVICEBUS_CONNECTION wins over the namespace."""
    settings = Settings(
        bus="servicebus", servicebus_connection=Secret(EMULATOR), servicebus_namespace="x"
    )
    bus = ServiceBusBus.from_settings(settings)
    try:
        assert bus.emulator
        assert bus._owned_credential is None
    finally:
        await bus.close()


async def test_from_settings_with_a_namespace_owns_and_closes_its_credential() -> None:
    """A namespace alone means DefaultAzureCredential, created and closed by the bus."""
    settings = Settings(bus="servicebus", servicebus_namespace="contoso")
    bus = ServiceBusBus.from_settings(settings)
    credential = bus._owned_credential
    assert credential is not None
    assert bus._namespace == "contoso.servicebus.windows.net"
    closed: list[bool] = []
    original_close = credential.close

    async def tracking_close() -> None:
        closed.append(True)
        await original_close()

    credential.close = tracking_close
    await bus.close()
    assert closed == [True]
    assert bus._owned_credential is None


def test_from_settings_without_either_setting_names_both() -> None:
    """No namespace and no connection string: a ConfigError naming both variables."""
    with pytest.raises(ConfigError, match="DFJ_SERVICEBUS_NAMESPACE"):
        ServiceBusBus.from_settings(Settings())


def test_from_settings_with_a_malformed_connection_string_hides_it() -> None:
    """A bad connection string fails as ConfigError without echoing the secret."""
    secret = "Endpoint=sb://x;SharedAccessKeyName=k;TopSecretValue"
    with pytest.raises(ConfigError) as info:
        ServiceBusBus.from_settings(
            Settings(bus="servicebus", servicebus_connection=Secret(secret))
        )
    assert "TopSecretValue" not in str(info.value)


def test_constructor_needs_exactly_one_source() -> None:
    """Connection string, namespace or client: exactly one, and a credential needs a namespace."""
    with pytest.raises(ValueError):
        ServiceBusBus()
    with pytest.raises(ValueError):
        ServiceBusBus(connection_string=EMULATOR, namespace="contoso")
    with pytest.raises(ValueError):
        ServiceBusBus(connection_string=EMULATOR, credential=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ServiceBusBus(connection_string=EMULATOR, receive_batch=0)


async def test_unknown_queue_is_refused(rig: Rig) -> None:
    """Only the topology's queues exist."""
    with pytest.raises(ValueError, match="unknown queue"):
        await rig.bus.publish("nope", msg("a"))
    with pytest.raises(ValueError, match="unknown queue"):
        rig.bus.receiver("nope")


# =============================================================================================
# Hand-out coordination (no SDK)
# =============================================================================================


async def test_handout_gives_permits_only_against_demand() -> None:
    """Nobody waiting means no permit; a waiting taker creates exactly its demand."""
    handout: Handout[str] = Handout()
    assert not await handout.acquire(within=0.01)
    taker = asyncio.create_task(handout.take(2, within=1.0))
    assert await handout.acquire(within=1.0)
    assert await handout.acquire(within=1.0)
    assert not await handout.acquire(within=0.01)  # two wanted, two being fetched
    assert await handout.offer("a")
    assert await taker == ["a"]
    await handout.give_back()
    assert handout.unmet == 0
    assert not await handout.acquire(within=0.01)  # the taker left: no more demand


async def test_handout_keeps_late_items_for_the_next_taker() -> None:
    """What arrives after a taker gave up is ready at once for the next one."""
    handout: Handout[str] = Handout()
    taker = asyncio.create_task(handout.take(1, within=0.05))
    assert await handout.acquire(within=1.0)
    assert await taker == []
    assert await handout.offer("late")
    assert await handout.take(5, within=0.0) == ["late"]


async def test_handout_close_returns_leftovers_and_wakes_everyone() -> None:
    """Closing wakes waiting loops and takers and hands back what was never taken."""
    handout: Handout[str] = Handout()
    waiter = asyncio.create_task(handout.wait_for_demand())
    taker = asyncio.create_task(handout.take(1, within=0.05))
    assert await handout.acquire(within=1.0)
    await taker
    assert await handout.offer("left")
    await asyncio.sleep(0)
    assert await handout.close() == ["left"]
    assert await waiter is False
    assert not await handout.offer("after")
    assert await handout.take(1, within=1.0) == []


# =============================================================================================
# Publishing
# =============================================================================================


async def test_publish_maps_the_message_onto_the_sdk_message(rig: Rig) -> None:
    """Id, session, properties, content type and subject (= type) go out as given."""
    await rig.bus.publish(ORDERED, msg("evt-1", session="site:1"))
    (sent,) = rig.broker.sends[0]
    assert sent.message_id == "evt-1"
    assert sent.session_id == "site:1"
    assert sent.subject == "test.event"
    assert sent.content_type == "application/cloudevents+json"
    assert sent.application_properties == {"type": "test.event", "tenant": "t1"}
    assert sent.scheduled_enqueue_time_utc is None


async def test_publish_enforces_session_ids_like_the_local_bus(rig: Rig) -> None:
    """A session queue needs a session id; a plain queue refuses one."""
    with pytest.raises(ValueError, match="needs a session_id"):
        await rig.bus.publish(ORDERED, msg("a"))
    with pytest.raises(ValueError, match="no sessions"):
        await rig.bus.publish(PLAIN, msg("b", session="s"))
    assert rig.broker.sends == []


async def test_publish_refuses_reserved_properties(rig: Rig) -> None:
    """Producers cannot set the bus's own bookkeeping properties."""
    bad = OutgoingMessage(body=b"x", message_id="a", properties={ORIGINAL_ID_PROP: "z"})
    with pytest.raises(ValueError, match="reserved"):
        await rig.bus.publish(PLAIN, bad)


async def test_duplicates_are_dropped_by_the_broker(rig: Rig) -> None:
    """Dedupe is the broker's: the same id twice is enqueued once."""
    await rig.bus.publish(PLAIN, msg("same"))
    await rig.bus.publish(PLAIN, msg("same"))
    assert [m.message_id for m in rig.broker.pending(PLAIN)] == ["same"]


async def test_publish_batch_splits_when_a_batch_is_full(make_rig: MakeRig) -> None:
    """Messages that do not fit one batch go out in further batches, in order."""
    rig: Rig = make_rig(batch_bytes=700)
    try:
        messages = [msg(f"m{i}", body=b"x" * 150) for i in range(7)]
        await rig.bus.publish_batch(PLAIN, messages)
        assert len(rig.broker.sends) > 1
        sent_ids = [m.message_id for batch in rig.broker.sends for m in batch]
        assert sent_ids == [f"m{i}" for i in range(7)]
        assert [m.message_id for m in rig.broker.pending(PLAIN)] == sent_ids
    finally:
        await rig.bus.close()


async def test_publish_batch_with_an_oversized_message_sends_nothing(make_rig: MakeRig) -> None:
    """A message larger than a whole batch fails the call before anything is sent."""
    rig: Rig = make_rig(batch_bytes=700)
    try:
        messages = [msg("small", body=b"x"), msg("huge", body=b"x" * 2000)]
        with pytest.raises(ValueError):
            await rig.bus.publish_batch(PLAIN, messages)
        assert rig.broker.sends == []
    finally:
        await rig.bus.close()


async def test_concurrent_publishes_never_share_a_sender_at_once(rig: Rig) -> None:
    """One sender per queue, used by one coroutine at a time (the fake asserts it)."""
    await asyncio.gather(*(rig.bus.publish(PLAIN, msg(f"c{i}")) for i in range(20)))
    assert len(rig.broker.pending(PLAIN)) == 20
    assert len([s for s in rig.client.senders if s.queue == PLAIN]) == 1


async def test_schedule_sets_the_enqueue_time(rig: Rig) -> None:
    """schedule() sends with scheduled_enqueue_time_utc; nothing is visible before it."""
    await rig.bus.schedule(PLAIN, msg("later"), at=START + 60)
    (sent,) = rig.broker.sends[0]
    assert sent.scheduled_enqueue_time_utc == dt.datetime.fromtimestamp(START + 60, tz=dt.UTC)
    receiver = rig.bus.receiver(PLAIN)
    assert await receiver.receive(5, timeout=0.05) == []
    rig.clock.advance(61)
    (got,) = await receiver.receive(5, timeout=1.0)
    assert got.message_id == "later"


# =============================================================================================
# Plain queue: receive and settle
# =============================================================================================


async def test_received_delivery_reports_decoded_fields(rig: Rig) -> None:
    """Original id, body, str properties, a 1-based count and enqueue time in epoch seconds."""
    await rig.bus.publish(PLAIN, msg("evt-1"))
    delivery = await receive_one(rig, PLAIN)
    assert isinstance(delivery, ServiceBusDelivery)
    assert delivery.message_id == "evt-1"
    assert delivery.session_id is None
    assert delivery.body == b"evt-1"
    assert delivery.properties == {"type": "test.event", "tenant": "t1"}
    assert delivery.delivery_count == 1
    assert delivery.max_deliveries == 3
    assert delivery.enqueued_at == START
    await delivery.complete()
    assert rig.broker.pending(PLAIN) == []
    with pytest.raises(RuntimeError):
        await delivery.complete()


async def test_receive_respects_max_messages_and_returns_empty_on_timeout(rig: Rig) -> None:
    """Up to max_messages per call; an empty queue answers [] after the timeout."""
    for i in range(5):
        await rig.bus.publish(PLAIN, msg(f"m{i}"))
    receiver = rig.bus.receiver(PLAIN)
    first = await receiver.receive(3, timeout=1.0)
    assert [d.message_id for d in first] == ["m0", "m1", "m2"]
    rest = await receiver.receive(10, timeout=1.0)
    assert [d.message_id for d in rest] == ["m3", "m4"]
    assert await receiver.receive(10, timeout=0) == []
    assert await receiver.receive(0, timeout=1.0) == []


async def test_retry_sends_a_scheduled_copy_and_completes_the_original(rig: Rig) -> None:
    """retry(delay): copy at now+delay with a derived id; consumers still see the original id."""
    await rig.bus.publish(PLAIN, msg("evt-1"))
    receiver = rig.bus.receiver(PLAIN)
    (first,) = await receiver.receive(1, timeout=1.0)
    await first.retry(10.0, reason="TransientError: later")
    assert ("complete", "evt-1") in rig.broker.log
    (copy,) = rig.broker.pending(PLAIN)
    assert copy.message_id == "evt-1.r1"
    assert copy.visible_at == START + 10.0
    assert copy.body == b"evt-1"
    assert await receiver.receive(1, timeout=0.05) == []
    rig.clock.advance(10)
    (second,) = await receiver.receive(1, timeout=1.0)
    assert second.message_id == "evt-1"
    assert second.delivery_count == 2
    assert second.enqueued_at == START
    assert second.properties == {"type": "test.event", "tenant": "t1"}


async def test_retry_dead_letters_when_deliveries_are_used_up(rig: Rig) -> None:
    """The third failure (max_deliveries=3) dead-letters with MaxDeliveryCountExceeded."""
    await rig.bus.publish(PLAIN, msg("evt-1"))
    receiver = rig.bus.receiver(PLAIN)
    for expected in (1, 2, 3):
        (delivery,) = await receiver.receive(1, timeout=1.0)
        assert delivery.delivery_count == expected
        await delivery.retry(1.0, reason="boom")
        rig.clock.advance(1)
    assert rig.broker.pending(PLAIN) == []
    (dead,) = await rig.bus.dead_letters(PLAIN)
    assert dead.reason == MAX_DELIVERY_REASON
    assert dead.message_id == "evt-1"
    assert "boom" in dead.description
    assert dead.properties == {"type": "test.event", "tenant": "t1"}


async def test_retry_without_delay_abandons(rig: Rig) -> None:
    """retry(0) hands the message back at once; the broker counts the delivery."""
    await rig.bus.publish(PLAIN, msg("evt-1"))
    receiver = rig.bus.receiver(PLAIN)
    (first,) = await receiver.receive(1, timeout=1.0)
    await first.retry(0.0)
    assert ("abandon", "evt-1") in rig.broker.log
    (again,) = await receiver.receive(1, timeout=1.0)
    assert again.delivery_count == 2
    assert [m.message_id for m in rig.broker.pending(PLAIN)] == ["evt-1"]


async def test_a_lost_retry_completion_is_deduplicated_on_the_next_retry(rig: Rig) -> None:
    """Copy sent but original's lock lost: the redelivered original's retry copy is a duplicate."""
    await rig.bus.publish(PLAIN, msg("evt-1"))
    receiver = rig.bus.receiver(PLAIN)
    (first,) = await receiver.receive(1, timeout=1.0)
    rig.clock.advance(31)  # the lock expires while the handler works
    with pytest.raises(LockLost):
        await first.retry(100.0)
    (again,) = await receiver.receive(1, timeout=1.0)  # the original, redelivered
    assert again.delivery_count == 2
    await again.retry(100.0)
    assert ("duplicate", "evt-1.r1") in rig.broker.log
    assert [m.message_id for m in rig.broker.pending(PLAIN)] == ["evt-1.r1"]


async def test_release_abandons(rig: Rig) -> None:
    """release() is abandon: redelivered at once."""
    await rig.bus.publish(PLAIN, msg("evt-1"))
    delivery = await receive_one(rig, PLAIN)
    await delivery.release()
    assert rig.broker.log[-1] == ("abandon", "evt-1")


async def test_lock_loss_raises_lock_lost(rig: Rig) -> None:
    """Settling or renewing after the lock expired raises LockLost."""
    await rig.bus.publish(PLAIN, msg("evt-1"))
    receiver = rig.bus.receiver(PLAIN)
    (delivery,) = await receiver.receive(1, timeout=1.0)
    await delivery.renew_lock()
    rig.clock.advance(31)
    with pytest.raises(LockLost):
        await delivery.renew_lock()
    with pytest.raises(LockLost):
        await delivery.complete()
    with pytest.raises(LockLost):
        await delivery.renew_lock()  # settled (in doubt) by now


async def test_renew_lock_extends_a_plain_message_lock(rig: Rig) -> None:
    """renew_lock on a plain queue renews the message lock."""
    await rig.bus.publish(PLAIN, msg("evt-1"))
    receiver = rig.bus.receiver(PLAIN)
    (delivery,) = await receiver.receive(1, timeout=1.0)
    for _ in range(3):
        rig.clock.advance(20)
        await delivery.renew_lock()
    await delivery.complete()
    (sdk_receiver,) = [r for r in rig.client.receivers if r.renewed]
    assert sdk_receiver.renewed == 3


async def test_settling_through_a_closed_receiver_raises_lock_lost(rig: Rig) -> None:
    """After the receiver is closed, the message is not ours to settle."""
    await rig.bus.publish(PLAIN, msg("evt-1"))
    receiver = rig.bus.receiver(PLAIN)
    (delivery,) = await receiver.receive(1, timeout=1.0)
    await receiver.close()
    with pytest.raises(LockLost):
        await delivery.complete()
    with pytest.raises(BusError):
        await receiver.receive(1, timeout=0.1)


async def test_closing_a_plain_receiver_ends_a_pending_receive(rig: Rig) -> None:
    """A receive waiting on an empty queue ends promptly when its receiver is closed."""
    receiver = rig.bus.receiver(PLAIN)
    pending = asyncio.ensure_future(receiver.receive(1, timeout=30.0))
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await receiver.close()
    await rig.bus.publish(PLAIN, msg("after"))
    with pytest.raises(BusError):
        await asyncio.wait_for(pending, 2.0)
    assert loop.time() - started < 1.0
    (stored,) = rig.broker.pending(PLAIN)
    assert stored.owner is None and stored.failed == 0


async def test_exhausted_messages_are_dead_lettered_on_receipt(rig: Rig) -> None:
    """A copy whose effective count passes max_deliveries never reaches a handler."""
    copy = ServiceBusMessage(
        b"x",
        message_id="evt-9.r2",
        application_properties={ORIGINAL_ID_PROP: "evt-9", ATTEMPT_PROP: "3", RETRY_PROP: "2"},
    )
    rig.broker.enqueue(PLAIN, copy)
    receiver = rig.bus.receiver(PLAIN)
    assert await receiver.receive(5, timeout=0.1) == []
    (dead,) = await rig.bus.dead_letters(PLAIN)
    assert dead.message_id == "evt-9"
    assert dead.reason == MAX_DELIVERY_REASON


# =============================================================================================
# Dead letters and replay
# =============================================================================================


async def test_dead_letters_list_reason_description_and_sequence(rig: Rig) -> None:
    """dead_letters() peeks the DLQ: original ids, reason, description, sequence order."""
    for i in range(3):
        await rig.bus.publish(PLAIN, msg(f"d{i}"))
    receiver = rig.bus.receiver(PLAIN)
    for delivery in await receiver.receive(3, timeout=1.0):
        await delivery.dead_letter("Poison", f"bad {delivery.message_id}")
    dead = await rig.bus.dead_letters(PLAIN)
    assert [d.message_id for d in dead] == ["d0", "d1", "d2"]
    assert [d.reason for d in dead] == ["Poison"] * 3
    assert dead[1].description == "bad d1"
    assert dead[0].sequence < dead[1].sequence < dead[2].sequence
    assert dead[0].delivery_count == 1
    assert dead[0].dead_lettered_at is None
    assert dead[0].properties == {"type": "test.event", "tenant": "t1"}
    assert [d.message_id for d in await rig.bus.dead_letters(PLAIN, limit=2)] == ["d0", "d1"]
    assert await rig.bus.dead_letters(PLAIN, limit=0) == []


async def test_dead_letters_page_through_a_long_dead_letter_queue(rig: Rig) -> None:
    """More dead letters than one peek page are all listed, in order."""
    for i in range(300):
        rig.broker.enqueue(PLAIN, ServiceBusMessage(b"x", message_id=f"p{i}"))
    receiver = rig.bus.receiver(PLAIN)
    while got := await receiver.receive(16, timeout=0.05):
        await asyncio.gather(*(d.dead_letter("Poison") for d in got))
    dead = await rig.bus.dead_letters(PLAIN, limit=1000)
    assert [d.message_id for d in dead] == [f"p{i}" for i in range(300)]


async def test_replay_puts_dead_letters_back_under_replay_ids(rig: Rig) -> None:
    """replay(): a copy per dead letter (dedupe-safe id, original id reported), DLQ emptied."""
    for i in range(2):
        await rig.bus.publish(PLAIN, msg(f"r{i}"))
    receiver = rig.bus.receiver(PLAIN)
    for delivery in await receiver.receive(2, timeout=1.0):
        await delivery.dead_letter("Poison")
    sequences = [d.sequence for d in await rig.bus.dead_letters(PLAIN)]
    assert await rig.bus.replay(PLAIN) == 2
    assert await rig.bus.dead_letters(PLAIN) == []
    assert [m.message_id for m in rig.broker.pending(PLAIN)] == [
        f"r0.replay{sequences[0]}",
        f"r1.replay{sequences[1]}",
    ]
    replayed = await receiver.receive(2, timeout=1.0)
    assert [d.message_id for d in replayed] == ["r0", "r1"]
    assert [d.delivery_count for d in replayed] == [1, 1]
    assert replayed[0].properties == {"type": "test.event", "tenant": "t1"}


async def test_replay_of_selected_ids_leaves_the_others(rig: Rig) -> None:
    """Only the named ids are replayed; the rest stay dead-lettered."""
    for i in range(3):
        await rig.bus.publish(PLAIN, msg(f"s{i}"))
    receiver = rig.bus.receiver(PLAIN)
    for delivery in await receiver.receive(3, timeout=1.0):
        await delivery.dead_letter("Poison")
    assert await rig.bus.replay(PLAIN, message_ids=["s1"]) == 1
    assert [d.message_id for d in await rig.bus.dead_letters(PLAIN)] == ["s0", "s2"]
    assert await rig.bus.replay(PLAIN, message_ids=[]) == 0
    assert await rig.bus.replay(PLAIN, message_ids=["nope"]) == 0
    assert len(await rig.bus.dead_letters(PLAIN)) == 2


async def test_replay_keeps_the_session_of_a_session_queue(rig: Rig) -> None:
    """A replayed session message goes back to its session."""
    await rig.bus.publish(ORDERED, msg("o1", session="s1"))
    delivery = await receive_one(rig, ORDERED)
    await delivery.dead_letter("Poison")
    (dead,) = await rig.bus.dead_letters(ORDERED)
    assert dead.session_id == "s1"
    assert await rig.bus.replay(ORDERED) == 1
    (copy,) = rig.broker.pending(ORDERED)
    assert copy.session_id == "s1"
    assert copy.message_id == f"o1.replay{dead.sequence}"


# =============================================================================================
# Session queues
# =============================================================================================


async def test_session_messages_are_handed_out_one_at_a_time_in_order(make_rig: MakeRig) -> None:
    """FIFO per session with several sessions in flight at once, under concurrent handlers."""
    rig: Rig = make_rig(max_sessions=3)
    sessions = ["s1", "s2", "s3"]
    per_session = 5
    for i in range(per_session):
        for s in sessions:
            await rig.bus.publish(ORDERED, msg(f"{s}-{i}", session=s, body=str(i).encode()))
    receiver = rig.bus.receiver(ORDERED)
    seen: dict[str, list[int]] = {s: [] for s in sessions}
    violations: list[str] = []
    in_flight: set[str] = set()
    peak = 0
    rng = random.Random(7)

    async def handle(delivery: Delivery) -> None:
        nonlocal peak
        sid = delivery.session_id
        assert sid is not None
        if rig.broker.locked_in_session(ORDERED, sid) != 1:
            violations.append(f"{delivery.message_id}: another message of {sid} is locked")
        in_flight.add(sid)
        peak = max(peak, len(in_flight))
        seen[sid].append(int(delivery.body))
        await asyncio.sleep(rng.uniform(0, 0.02))
        in_flight.discard(sid)
        await delivery.complete()

    tasks: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(tasks) < per_session * len(sessions) and loop.time() < deadline:
        for delivery in await receiver.receive(16, timeout=0.5):
            tasks.append(asyncio.create_task(handle(delivery)))
    await asyncio.gather(*tasks)
    await receiver.close()
    await rig.bus.close()
    assert violations == []
    assert seen == {s: list(range(per_session)) for s in sessions}
    assert peak >= 2, "sessions should be handled concurrently"
    assert rig.broker.pending(ORDERED) == []


async def test_next_message_of_a_session_waits_for_the_settlement(rig: Rig) -> None:
    """While a session's message is out, nothing else of that session is handed out."""
    await rig.bus.publish(ORDERED, msg("a1", session="a"))
    await rig.bus.publish(ORDERED, msg("a2", session="a"))
    receiver = rig.bus.receiver(ORDERED)
    (first,) = await receiver.receive(5, timeout=1.0)
    assert first.message_id == "a1"
    assert first.session_id == "a"
    assert await receiver.receive(5, timeout=0.3) == []
    await first.complete()
    (second,) = await receiver.receive(5, timeout=1.0)
    assert second.message_id == "a2"
    await second.complete()


async def test_session_receive_returns_deliveries_of_several_sessions(make_rig: MakeRig) -> None:
    """One receive call can return the heads of several sessions."""
    rig: Rig = make_rig(max_sessions=4)
    try:
        for s in ("a", "b", "c"):
            await rig.bus.publish(ORDERED, msg(f"{s}1", session=s))
            await rig.bus.publish(ORDERED, msg(f"{s}2", session=s))
        receiver = rig.bus.receiver(ORDERED)
        got: list[Delivery] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while len(got) < 3 and loop.time() < deadline:
            got.extend(await receiver.receive(10, timeout=0.5))
        assert sorted(d.message_id for d in got) == ["a1", "b1", "c1"]
        assert await receiver.receive(10, timeout=0.2) == []
        await asyncio.gather(*(d.complete() for d in got))
    finally:
        await rig.bus.close()


async def test_session_release_gives_the_session_back_in_order(rig: Rig) -> None:
    """release() on a session message ends that session; it comes back first, counted."""
    await rig.bus.publish(ORDERED, msg("a1", session="a"))
    await rig.bus.publish(ORDERED, msg("a2", session="a"))
    receiver = rig.bus.receiver(ORDERED)
    (first,) = await receiver.receive(1, timeout=1.0)
    await first.release()
    (again,) = await receiver.receive(1, timeout=2.0)
    assert again.message_id == "a1"
    assert again.delivery_count == 2
    session_receivers = [r for r in rig.client.receivers if r.wants_session and r.opened]
    assert session_receivers[0].closed, "the released session was closed"
    await again.complete()


async def test_session_retry_holds_the_session_so_successors_wait(make_rig: MakeRig) -> None:
    """retry(delay) on a session: no copy; the head comes back first, counted, after the delay."""
    rig = make_rig(max_sessions=1)
    for mid in ("a1", "a2"):
        await rig.bus.publish(ORDERED, msg(mid, session="a"))
    await rig.bus.publish(ORDERED, msg("b1", session="b"))
    sends_before = len(rig.broker.sends)
    receiver = rig.bus.receiver(ORDERED)
    (head,) = await receiver.receive(1, timeout=1.0)
    assert head.message_id == "a1"
    loop = asyncio.get_running_loop()
    started = loop.time()
    await head.retry(0.4, reason="later")
    assert head.settled
    # meanwhile: nothing more of session a, but the held session does not block session b
    (other,) = await receiver.receive(5, timeout=1.0)
    assert other.message_id == "b1"
    assert rig.broker.locked_in_session(ORDERED, "a") == 1  # a1 is still ours, held
    await other.complete()
    got: list[Delivery] = []
    while not got and loop.time() - started < 3:
        got = await receiver.receive(5, timeout=0.5)
    (again,) = got
    assert loop.time() - started >= 0.4
    assert (again.message_id, again.delivery_count) == ("a1", 2)
    assert len(rig.broker.sends) == sends_before, "a session retry sends no copy"
    assert ("abandon", "a1") in rig.broker.log
    await again.complete()
    (nxt,) = await receiver.receive(5, timeout=2.0)
    assert (nxt.message_id, nxt.delivery_count) == ("a2", 1)
    await nxt.complete()


async def test_session_batch_hands_out_runs_of_one_session(rig: Rig) -> None:
    """``session_batch=3``: one receive gets three consecutive messages of the session, the
    rest waits until all three are settled, and the next run follows in order."""
    for i in range(5):
        await rig.bus.publish(ORDERED, msg(f"a{i}", session="a"))
    receiver = rig.bus.receiver(ORDERED, session_batch=3)
    first = await receiver.receive(10, timeout=1.0)
    assert [d.message_id for d in first] == ["a0", "a1", "a2"]
    assert rig.broker.locked_in_session(ORDERED, "a") == 3
    await first[0].complete()
    await first[1].complete()
    assert await receiver.receive(10, timeout=0.3) == [], "a2 is still out"
    await first[2].complete()
    second = await receiver.receive(10, timeout=1.0)
    assert [d.message_id for d in second] == ["a3", "a4"]
    for d in second:
        await d.complete()
    assert rig.broker.pending(ORDERED) == []
    await receiver.close()


async def test_session_batch_retry_inside_a_run_holds_the_session_for_the_rest(rig: Rig) -> None:
    """The consumer retries the middle of a run and releases the rest (the contract): the
    session is held for the delay, then the retried message comes back first, counted."""
    for i in range(3):
        await rig.bus.publish(ORDERED, msg(f"a{i}", session="a"))
    receiver = rig.bus.receiver(ORDERED, session_batch=3)
    run = await receiver.receive(10, timeout=1.0)
    assert [d.message_id for d in run] == ["a0", "a1", "a2"]
    loop = asyncio.get_running_loop()
    await run[0].complete()
    started = loop.time()
    await run[1].retry(0.3, reason="later")
    await run[2].release()
    got: list[Delivery] = []
    while not got and loop.time() - started < 3:
        got = await receiver.receive(10, timeout=0.5)
    assert loop.time() - started >= 0.3
    assert [(d.message_id, d.delivery_count) for d in got] == [("a1", 2), ("a2", 2)]
    for d in got:
        await d.complete()
    await receiver.close()


def test_session_batch_must_be_positive(rig: Rig) -> None:
    with pytest.raises(ValueError, match="session_batch"):
        rig.bus.receiver(ORDERED, session_batch=0)


async def test_closing_during_a_session_hold_hands_the_message_back(rig: Rig) -> None:
    """Closing the receiver ends a hold early: the message is abandoned, not left locked."""
    await rig.bus.publish(ORDERED, msg("a1", session="a"))
    receiver = rig.bus.receiver(ORDERED)
    (head,) = await receiver.receive(1, timeout=1.0)
    await head.retry(60.0)
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await receiver.close()
    assert loop.time() - started < 1.0
    assert ("abandon", "a1") in rig.broker.log
    assert rig.broker.locked_in_session(ORDERED, "a") == 0


async def test_session_retry_at_the_limit_dead_letters(rig: Rig) -> None:
    """A session message retried on its last delivery is dead-lettered, not held."""
    copy = ServiceBusMessage(
        b"x", message_id="a1", session_id="a", application_properties={ATTEMPT_PROP: "2"}
    )
    rig.broker.enqueue(ORDERED, copy)
    receiver = rig.bus.receiver(ORDERED)
    (last,) = await receiver.receive(1, timeout=1.0)
    assert last.delivery_count == 3
    await last.retry(10.0, reason="boom")
    (dead,) = await rig.bus.dead_letters(ORDERED)
    assert (dead.message_id, dead.reason) == ("a1", MAX_DELIVERY_REASON)


async def test_session_retry_after_the_session_lock_expired_is_lock_lost(rig: Rig) -> None:
    """A stale session delivery cannot be held: LockLost, and no copy is sent."""
    await rig.bus.publish(ORDERED, msg("a1", session="a"))
    sends_before = len(rig.broker.sends)
    receiver = rig.bus.receiver(ORDERED)
    (head,) = await receiver.receive(1, timeout=1.0)
    rig.clock.advance(31)
    with pytest.raises(LockLost):
        await head.retry(5.0)
    assert len(rig.broker.sends) == sends_before
    (again,) = await receiver.receive(1, timeout=2.0)
    assert (again.message_id, again.delivery_count) == ("a1", 2)
    await again.complete()


async def test_session_renew_lock_renews_the_session(rig: Rig) -> None:
    """renew_lock on a session delivery renews the session lock, not a message lock."""
    await rig.bus.publish(ORDERED, msg("a1", session="a"))
    receiver = rig.bus.receiver(ORDERED)
    (delivery,) = await receiver.receive(1, timeout=1.0)
    await delivery.renew_lock()
    (sdk_receiver,) = [r for r in rig.client.receivers if r.wants_session and r.opened]
    assert sdk_receiver.session.renewals == 1
    assert sdk_receiver.renewed == 0
    rig.clock.advance(31)
    with pytest.raises(LockLost):
        await delivery.renew_lock()


async def test_no_session_available_is_not_an_error(rig: Rig) -> None:
    """Accept timeouts (no session has messages) just mean an empty receive."""
    receiver = rig.bus.receiver(ORDERED)
    assert await receiver.receive(5, timeout=0.3) == []
    await rig.bus.publish(ORDERED, msg("late", session="z"))
    (delivery,) = await receiver.receive(5, timeout=2.0)
    assert delivery.message_id == "late"
    await delivery.complete()


async def test_session_pool_never_exceeds_max_sessions(make_rig: MakeRig) -> None:
    """No more session loops (and so connections) than max_sessions."""
    rig: Rig = make_rig(max_sessions=2)
    try:
        for s in "abcde":
            await rig.bus.publish(ORDERED, msg(f"{s}1", session=s))
        receiver = rig.bus.receiver(ORDERED)
        got: list[Delivery] = []
        for _ in range(5):
            got.extend(await receiver.receive(10, timeout=0.3))
        assert len(got) == 2
        open_sessions = [r for r in rig.client.receivers if r.opened and not r.closed]
        assert len(open_sessions) <= 2
        await asyncio.gather(*(d.complete() for d in got))
    finally:
        await rig.bus.close()


async def test_closing_a_session_receiver_stops_its_loops(rig: Rig) -> None:
    """close() cancels the loops and closes every SDK receiver they opened."""
    await rig.bus.publish(ORDERED, msg("a1", session="a"))
    receiver = rig.bus.receiver(ORDERED)
    (delivery,) = await receiver.receive(1, timeout=1.0)
    await delivery.complete()
    await receiver.close()
    assert all(r.closed for r in rig.client.receivers if r.opened)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("dfj-servicebus")]
    with pytest.raises(BusError):
        await receiver.receive(1, timeout=0.1)


# =============================================================================================
# Stats, ping, close
# =============================================================================================


async def test_stats_fall_back_to_peeking_without_the_admin_client(rig: Rig) -> None:
    """Peek counts: active vs scheduled, dead letters, and sessions with messages."""
    await rig.bus.publish(PLAIN, msg("p1"))
    await rig.bus.publish(PLAIN, msg("p2"))
    await rig.bus.schedule(PLAIN, msg("p3"), at=START + 100)
    await rig.bus.publish(ORDERED, msg("o1", session="a"))
    await rig.bus.publish(ORDERED, msg("o2", session="a"))
    await rig.bus.publish(ORDERED, msg("o3", session="b"))
    rig.clock.advance(5)
    delivery = await receive_one(rig, PLAIN)
    await delivery.dead_letter("Poison")
    stats = {s.queue: s for s in await rig.bus.stats()}
    assert set(stats) == {PLAIN, ORDERED}
    plain = stats[PLAIN]
    assert (plain.active, plain.scheduled, plain.dead_lettered, plain.locked) == (1, 1, 1, 0)
    assert plain.oldest_enqueued_at == START
    ordered = stats[ORDERED]
    assert (ordered.active, ordered.dead_lettered) == (2, 0)


async def test_ping_succeeds_then_reports_an_unreachable_bus(rig: Rig) -> None:
    """ping() reuses one receiver; a failure raises TransientError and drops it."""
    await rig.bus.ping()
    await rig.bus.ping()
    assert len(rig.client.receivers) == 1
    rig.broker.fail_peek = True
    with pytest.raises(TransientError, match="unreachable"):
        await rig.bus.ping()
    assert rig.client.receivers[0].closed
    rig.broker.fail_peek = False
    await rig.bus.ping()
    assert len(rig.client.receivers) == 2


async def test_close_closes_senders_receivers_and_the_client(rig: Rig) -> None:
    """close() releases every handler; the bus refuses work afterwards; twice is fine."""
    await rig.bus.publish(PLAIN, msg("a"))
    await rig.bus.publish(ORDERED, msg("b", session="s"))
    plain = rig.bus.receiver(PLAIN)
    ordered = rig.bus.receiver(ORDERED)
    (d1,) = await plain.receive(1, timeout=1.0)
    (d2,) = await ordered.receive(1, timeout=1.0)
    await asyncio.gather(d1.complete(), d2.complete())
    await rig.bus.ping()
    await rig.bus.close()
    await rig.bus.close()
    assert rig.client.closed
    assert all(s.closed for s in rig.client.senders)
    assert all(r.closed for r in rig.client.receivers)
    with pytest.raises(BusError):
        await rig.bus.publish(PLAIN, msg("late"))
    with pytest.raises(BusError):
        rig.bus.receiver(PLAIN)
