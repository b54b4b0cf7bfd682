"""The local bus across processes: one bus file shared by this test and consumer subprocesses.

The subprocesses run ``consumer_proc.py`` with ``sys.executable`` and report what they do as
JSON lines in a file per process; ``time.monotonic()`` is one clock for every process on the
machine, so handling intervals of different processes can be compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import pytest

from dfj_common.bus import OutgoingMessage, QueueSpec
from dfj_common.bus.local import LocalBus

pytestmark = [pytest.mark.crossprocess, pytest.mark.slow]

CONSUMER = Path(__file__).with_name("consumer_proc.py")
STARTUP = 15.0  # generous bound for a Python process to start and open the bus


@dataclass
class Proc:
    """A subprocess running consumer_proc.py, with its events file and its output log."""

    name: str
    popen: subprocess.Popen[bytes]
    events_path: Path
    log_path: Path
    log: TextIO

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The complete event lines written so far (a line being written is left for later)."""
        if not self.events_path.exists():
            return []
        lines = self.events_path.read_text(encoding="utf-8").split("\n")[:-1]
        found = [json.loads(line) for line in lines]
        return [e for e in found if kind is None or e["event"] == kind]

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def wait_events(
        self, kind: str, count: int = 1, *, within: float = STARTUP
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` events of ``kind`` were written; fail if the process dies first."""
        deadline = time.monotonic() + within
        while True:
            found = self.events(kind)
            if len(found) >= count:
                return found
            code = self.popen.poll()
            if code is not None and len(self.events(kind)) < count:
                pytest.fail(
                    f"{self.name} exited with {code} before {count} {kind!r}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name}: no {count} {kind!r} within {within}s:\n{self.output()}")
            await asyncio.sleep(0.02)

    async def exit_code(self, *, within: float = 10.0) -> int:
        deadline = time.monotonic() + within
        while (code := self.popen.poll()) is None:
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name} still running after {within}s:\n{self.output()}")
            await asyncio.sleep(0.02)
        return code


Spawn = Callable[..., Proc]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Starts consumer_proc.py subprocesses; every one still alive is killed at teardown."""
    started: list[Proc] = []
    counter = itertools.count()

    def start(mode: str, bus_path: Path, spec: QueueSpec, *options: str) -> Proc:
        name = f"{mode}-{next(counter)}"
        events_path, log_path = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.log"
        log = log_path.open("w", encoding="utf-8")
        command = [
            sys.executable,
            str(CONSUMER),
            mode,
            "--bus",
            str(bus_path),
            "--spec",
            json.dumps(asdict(spec)),
            "--events",
            str(events_path),
            *options,
        ]
        popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        proc = Proc(name, popen, events_path, log_path, log)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            if proc.popen.poll() is None:
                proc.popen.kill()
            proc.popen.wait(timeout=10)
            proc.log.close()


@contextlib.asynccontextmanager
async def shared_bus(
    path: Path, spec: QueueSpec, *, poll_interval: float = 0.5
) -> AsyncIterator[LocalBus]:
    """This process's connection to the bus file the subprocesses open too."""
    bus = await LocalBus.open(path, topology={spec.name: spec}, poll_interval=poll_interval)
    try:
        yield bus
    finally:
        await bus.close()


async def queue_counts(bus: LocalBus, queue: str) -> tuple[int, int, int, int]:
    (s,) = [s for s in await bus.stats() if s.queue == queue]
    return s.active, s.scheduled, s.locked, s.dead_lettered


@pytest.mark.parametrize("sessions", [False, True], ids=["plain", "session"])
async def test_killed_consumer_loses_nothing(sessions: bool, tmp_path: Path, spawn: Spawn) -> None:
    """A SIGKILLed holder's messages go to the next consumer after the lock, delivery_count 2."""
    spec = QueueSpec(name="work", sessions=sessions, lock_duration=1.5, max_deliveries=5)
    bus_path = tmp_path / "bus.sqlite3"
    async with shared_bus(bus_path, spec) as bus:
        if sessions:  # the holder takes the session's head; its successor must wait for it
            messages = [
                OutgoingMessage(body=b"s0", message_id="s0", session_id="S"),
                OutgoingMessage(body=b"s1", message_id="s1", session_id="S"),
            ]
            held_count = 1
        else:
            messages = [
                OutgoingMessage(body=f"m{i}".encode(), message_id=f"m{i}") for i in range(3)
            ]
            held_count = 3
        await bus.publish_batch(spec.name, messages)

        holder = spawn("hold", bus_path, spec, "--count", str(held_count))
        holding = await holder.wait_events("holding", held_count)
        assert {e["delivery_count"] for e in holding} == {1}
        held_at = max(e["t"] for e in holding)
        os.kill(holder.popen.pid, signal.SIGKILL)
        assert await holder.exit_code() == -signal.SIGKILL
        assert await queue_counts(bus, spec.name) == (len(messages) - held_count, 0, held_count, 0)

        taker = spawn("take", bus_path, spec, "--count", str(len(messages)))
        took = await taker.wait_events("took", len(messages), within=STARTUP + spec.lock_duration)
        await taker.wait_events("completed", len(messages))
        assert await taker.exit_code() == 0

        held_ids = {e["message_id"] for e in holding}
        for event in took:
            expected_count = 2 if event["message_id"] in held_ids else 1
            assert event["delivery_count"] == expected_count, event
            if event["message_id"] in held_ids:
                assert event["t"] >= held_at + spec.lock_duration - 0.2, (
                    "taken before the lock ran out"
                )
        if sessions:
            assert [e["message_id"] for e in took] == ["s0", "s1"]
        else:
            assert sorted(e["message_id"] for e in took) == ["m0", "m1", "m2"]
        assert await queue_counts(bus, spec.name) == (0, 0, 0, 0)


async def test_competing_consumers_keep_sessions_ordered_and_exclusive(
    tmp_path: Path, spawn: Spawn
) -> None:
    """Two consumer processes share 20x50 session messages: each once, in order, never at once."""
    spec = QueueSpec(name="ordered", sessions=True, lock_duration=10.0, max_deliveries=5)
    sessions, per_session = [f"session-{i:02}" for i in range(20)], 50
    total = len(sessions) * per_session
    bus_path, stop = tmp_path / "bus.sqlite3", tmp_path / "stop"
    async with shared_bus(bus_path, spec) as bus:
        options = ("--batch", "4", "--stop", str(stop), "--max-sleep", "0.002")
        consumers = [spawn("consume", bus_path, spec, *options) for _ in range(2)]
        for consumer in consumers:
            await consumer.wait_events("ready")
        # A random interleaving (each session's own order kept), published in batches of 20:
        # neighbours in the queue are often of one session, which tempts a careless claim.
        order = [s for s in sessions for _ in range(per_session)]
        random.Random(20).shuffle(order)
        next_seq: Counter[str] = Counter()
        outgoing = []
        for s in order:
            body = json.dumps({"session": s, "seq": next_seq[s]}).encode()
            outgoing.append(
                OutgoingMessage(body=body, message_id=f"{s}-{next_seq[s]}", session_id=s)
            )
            next_seq[s] += 1
        for i in range(0, total, 20):
            await bus.publish_batch(spec.name, outgoing[i : i + 20])
        deadline = time.monotonic() + 20.0
        while sum(len(c.events("handled")) for c in consumers) < total:
            if time.monotonic() > deadline or any(c.popen.poll() is not None for c in consumers):
                break
            await asyncio.sleep(0.05)
        stop.touch()
        for consumer in consumers:
            assert await consumer.exit_code() == 0, consumer.output()
        handled = [e for c in consumers for e in c.events("handled")]
        lost = [e for c in consumers for e in c.events("lost")]
        assert await queue_counts(bus, spec.name) == (0, 0, 0, 0)

    assert not lost, f"locks lost: {lost[:5]}"
    times = Counter((e["session"], e["seq"]) for e in handled)
    assert set(times) == {(s, q) for s in sessions for q in range(per_session)}, "lost messages"
    assert [k for k, n in times.items() if n > 1] == [], "handled more than once"
    assert {e["delivery_count"] for e in handled} == {1}
    per_pid = Counter(e["pid"] for e in handled)
    assert len(per_pid) == 2 and min(per_pid.values()) >= 10, f"work split {dict(per_pid)}"
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in handled:
        by_session[e["session"]].append(e)
    switches = 0
    for s, mine in by_session.items():
        mine.sort(key=lambda e: e["start"])
        assert [e["seq"] for e in mine] == list(range(per_session)), f"{s} out of order"
        for earlier, later in itertools.pairwise(mine):
            assert earlier["end"] <= later["start"], f"{s} handled at once: {earlier} {later}"
            switches += earlier["pid"] != later["pid"]
    assert switches > 0, "no session ever moved between the processes"


async def test_messages_published_by_another_process_all_arrive(
    tmp_path: Path, spawn: Spawn
) -> None:
    """Many concurrent publishes from another process all reach a waiting consumer here."""
    spec = QueueSpec(name="inbox", sessions=False, lock_duration=10.0, max_deliveries=5)
    count = 400
    bus_path = tmp_path / "bus.sqlite3"
    # Polling alone (once a minute) could not deliver in time: the publisher must wake us.
    async with shared_bus(bus_path, spec, poll_interval=60.0) as bus:
        receiver = bus.receiver(spec.name)
        assert await receiver.receive(1, timeout=0.0) == []  # registered as a listener
        publisher = spawn(
            "publish", bus_path, spec, "--count", str(count), "--waves", "8", "--prefix", "p"
        )
        received: Counter[str] = Counter()
        deadline = time.monotonic() + STARTUP + 10.0
        while sum(received.values()) < count and time.monotonic() < deadline:
            got = await receiver.receive(100, timeout=max(deadline - time.monotonic(), 0.0))
            received.update(d.message_id for d in got)
            await asyncio.gather(*(d.complete() for d in got))
        await publisher.wait_events("done")
        assert await publisher.exit_code() == 0
        assert set(received) == {f"p-{i}" for i in range(count)}
        assert max(received.values()) == 1
        assert await queue_counts(bus, spec.name) == (0, 0, 0, 0)
