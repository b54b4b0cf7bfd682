"""Fixtures of the bus contract suite: one ``case`` per backend, same test bodies for each.

- ``local`` always runs: a fresh bus file in ``tmp_path`` with a test topology whose locks are
  short and whose ``max_deliveries`` is small, so lock expiry and dead-lettering take seconds.
  Its ``poll_interval`` is deliberately long (2 s): a receiver must be woken by publishes and
  must find due messages (expired locks, retries, schedules) by itself, not by polling.
- ``servicebus`` runs only when ``DFJ_TEST_SERVICEBUS_CONNECTION`` is set (a namespace or the
  emulator provisioned from ``TOPOLOGY``). It uses the real queue names, so it drains them first,
  and its waits follow the real lock durations.

Tests speak to the bus only through :class:`BusCase` and the :class:`~dfj_common.bus.Bus`
interface; every message and session id is unique per test, so leftovers on a real broker
cannot be mistaken for a test's own messages.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

import pytest

from dfj_common.bus import (
    JIRA_COMMANDS,
    JIRA_EVENTS,
    TOPOLOGY,
    Bus,
    Delivery,
    QueueSpec,
    Receiver,
    Topology,
)
from dfj_common.bus.local import LocalBus

SERVICEBUS_ENV: Final = "DFJ_TEST_SERVICEBUS_CONNECTION"

SESSION_QUEUE: Final = "ordered"
PLAIN_QUEUE: Final = "plain"
LOCAL_POLL_INTERVAL: Final = 2.0

LOCAL_TOPOLOGY: Final[Topology] = MappingProxyType(
    {
        SESSION_QUEUE: QueueSpec(
            name=SESSION_QUEUE,
            sessions=True,
            max_deliveries=3,
            lock_duration=1.0,
            duplicate_window=60.0,
        ),
        PLAIN_QUEUE: QueueSpec(
            name=PLAIN_QUEUE,
            sessions=False,
            max_deliveries=3,
            lock_duration=1.0,
            duplicate_window=60.0,
        ),
    }
)


@dataclass(kw_only=True)
class BusCase:
    """One backend under test, with the waits that suit it and small receiving helpers."""

    backend: str
    bus: Bus
    topology: Topology
    session_queue: str
    plain_queue: str
    settle: float
    """Upper bound for something that must arrive (a real broker needs more than a file)."""
    quiet: float
    """How long to watch for something that must not arrive."""
    short_delay: float
    """A retry or schedule delay long enough to measure, short enough to wait for."""
    slack: float
    """How much earlier than a lock expiry, retry or schedule something may show: clock
    granularity here, clock skew against a remote broker."""
    exact_stats: bool
    """Whether ``stats()`` is exact and immediate and tells locked from active messages."""
    new_bus: Callable[[], Awaitable[Bus]]
    """Another connection to the same bus (for close/resource tests)."""
    _receivers: list[Receiver] = field(default_factory=list)

    def spec(self, queue: str) -> QueueSpec:
        return self.topology[queue]

    def lock(self, queue: str) -> float:
        return self.spec(queue).lock_duration

    def max_deliveries(self, queue: str) -> int:
        return self.spec(queue).max_deliveries

    def uid(self, label: str = "m") -> str:
        """A message or session id no other test (or earlier run on a real broker) uses."""
        return f"{label}-{uuid.uuid4().hex}"

    def receiver(self, queue: str, *, session_batch: int = 1) -> Receiver:
        """A receiver that the fixture closes at teardown."""
        receiver = self.bus.receiver(queue, session_batch=session_batch)
        self._receivers.append(receiver)
        return receiver

    async def receive_n(
        self, receiver: Receiver, count: int, *, within: float | None = None, batch: int = 1
    ) -> list[Delivery]:
        """Exactly ``count`` deliveries, received ``batch`` at a time; fails if they do not come."""
        limit = self.settle if within is None else within
        deadline = time.monotonic() + limit
        got: list[Delivery] = []
        while len(got) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            got.extend(await receiver.receive(min(batch, count - len(got)), timeout=remaining))
        assert len(got) == count, f"expected {count} deliveries within {limit:.1f}s, got {got!r}"
        return got

    async def receive_one(self, receiver: Receiver, *, within: float | None = None) -> Delivery:
        """One delivery; fails if none comes ``within`` seconds (default ``settle``)."""
        return (await self.receive_n(receiver, 1, within=within))[0]

    async def expect_nothing(
        self, receiver: Receiver, *, within: float | None = None, max_messages: int = 10
    ) -> None:
        """Fails if anything is delivered ``within`` seconds (default ``quiet``)."""
        limit = self.quiet if within is None else within
        got = await receiver.receive(max_messages, timeout=limit)
        details = [(d.message_id, d.session_id, d.delivery_count) for d in got]
        assert not got, f"expected nothing within {limit:.1f}s, got {details}"

    async def close_receivers(self) -> None:
        for receiver in self._receivers:
            await receiver.close()
        self._receivers.clear()


def _backend_params() -> Sequence[object]:
    return [
        pytest.param("local", id="local"),
        pytest.param(
            "servicebus",
            id="servicebus",
            marks=[
                pytest.mark.azure,
                pytest.mark.skipif(
                    not os.environ.get(SERVICEBUS_ENV), reason=f"{SERVICEBUS_ENV} not set"
                ),
            ],
        ),
    ]


async def _open_servicebus(connection: str) -> Bus:
    # Imported by name so this suite type-checks and runs (locally) without the Azure backend.
    module = importlib.import_module("dfj_common.bus.servicebus")
    bus: Bus = module.ServiceBusBus(connection_string=connection)
    return bus


async def _drain(bus: Bus, queues: Sequence[str], quiet: float) -> None:
    """Empty the queues of a real broker: replay leftover dead letters, complete everything."""
    for queue in queues:
        await bus.replay(queue)
        receiver = bus.receiver(queue)
        try:
            while got := await receiver.receive(50, timeout=quiet):
                await asyncio.gather(*(d.complete() for d in got))
        finally:
            await receiver.close()


@pytest.fixture(params=_backend_params())
async def case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BusCase]:
    """The bus under test, fresh (local) or drained (Service Bus); closed at teardown."""
    backend: str = request.param
    if backend == "local":
        path = tmp_path / "bus.sqlite3"

        async def open_local() -> Bus:
            return await LocalBus.open(
                path, topology=LOCAL_TOPOLOGY, poll_interval=LOCAL_POLL_INTERVAL
            )

        bus_case = BusCase(
            backend=backend,
            bus=await open_local(),
            topology=LOCAL_TOPOLOGY,
            session_queue=SESSION_QUEUE,
            plain_queue=PLAIN_QUEUE,
            settle=5.0,
            quiet=0.3,
            short_delay=0.6,
            slack=0.05,
            exact_stats=True,
            new_bus=open_local,
        )
    else:
        connection = os.environ[SERVICEBUS_ENV]

        async def open_servicebus() -> Bus:
            return await _open_servicebus(connection)

        bus_case = BusCase(
            backend=backend,
            bus=await open_servicebus(),
            topology=TOPOLOGY,
            session_queue=JIRA_EVENTS,
            plain_queue=JIRA_COMMANDS,
            settle=60.0,
            quiet=3.0,
            short_delay=4.0,
            slack=1.0,
            exact_stats=False,
            new_bus=open_servicebus,
        )
    try:
        if backend == "servicebus":
            await _drain(bus_case.bus, [bus_case.session_queue, bus_case.plain_queue], 5.0)
        yield bus_case
    finally:
        await bus_case.close_receivers()
        await bus_case.bus.close()
