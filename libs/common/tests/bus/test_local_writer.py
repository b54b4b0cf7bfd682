"""The local bus's group commit on the event loop: batching, a locked file, close.

Another process holding the file's write lock is played by a second SQLite connection that
opens ``BEGIN IMMEDIATE`` on the same file, exactly what a worker's commit does.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType

import pytest

from dfj_common.bus import OutgoingMessage, QueueSpec
from dfj_common.bus.local import LocalBus
from dfj_common.clock import ManualClock
from dfj_common.errors import BusError

QUEUE = "plain"
TOPOLOGY = MappingProxyType(
    {QUEUE: QueueSpec(name=QUEUE, sessions=False, max_deliveries=3, lock_duration=5.0)}
)


def message(n: int) -> OutgoingMessage:
    return OutgoingMessage(body=f"body {n}".encode(), message_id=f"m-{n}")


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[LocalBus]:
    opened = await LocalBus.open(tmp_path / "bus.sqlite", topology=TOPOLOGY, lock_patience=1.0)
    yield opened
    await opened.close()


def stored(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])


async def test_concurrent_publishes_share_a_commit_and_are_durable_when_awaited(
    bus: LocalBus,
) -> None:
    commits = 0
    real = bus._run_batch

    def counting(conn: sqlite3.Connection, batch: list) -> list:  # type: ignore[type-arg]
        nonlocal commits
        commits += 1
        return real(conn, batch)

    bus._run_batch = counting  # type: ignore[method-assign]
    await asyncio.gather(*(bus.publish(QUEUE, message(n)) for n in range(200)))
    assert commits == 1
    assert stored(bus.path) == 200  # committed: a second connection sees every row


async def test_a_locked_file_delays_the_commit_without_blocking_the_loop(bus: LocalBus) -> None:
    other = sqlite3.connect(bus.path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        publish = asyncio.ensure_future(bus.publish(QUEUE, message(1)))
        ticks = 0
        for _ in range(20):  # the loop keeps running other work meanwhile
            await asyncio.sleep(0.005)
            ticks += 1
        assert not publish.done()
        assert ticks == 20
    finally:
        other.execute("COMMIT")
        other.close()
    await asyncio.wait_for(publish, 2.0)
    assert stored(bus.path) == 1


async def test_a_file_locked_past_patience_fails_every_waiter(bus: LocalBus) -> None:
    other = sqlite3.connect(bus.path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    try:
        results = await asyncio.gather(
            bus.publish(QUEUE, message(1)), bus.publish(QUEUE, message(2)), return_exceptions=True
        )
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert all(isinstance(r, BusError) and "stayed locked" in str(r) for r in results)
    # The bus is still usable once the file is free again.
    await bus.publish(QUEUE, message(3))
    assert stored(bus.path) == 1


async def test_close_commits_what_was_queued(tmp_path: Path) -> None:
    opened = await LocalBus.open(tmp_path / "bus.sqlite", topology=TOPOLOGY)
    publishes = [asyncio.ensure_future(opened.publish(QUEUE, message(n))) for n in range(5)]
    await asyncio.sleep(0)  # queued, not yet flushed
    await opened.close()
    await asyncio.gather(*publishes)
    assert stored(opened.path) == 5
    with pytest.raises(BusError):
        await opened.publish(QUEUE, message(9))


async def test_a_publish_within_a_deadline_is_dropped_unwritten_when_the_file_stays_locked(
    bus: LocalBus,
) -> None:
    """TimeoutError from the local bus means the message was not published, then or later."""
    other = sqlite3.connect(bus.path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    try:
        patient = asyncio.ensure_future(bus.publish(QUEUE, message(1)))
        with pytest.raises(TimeoutError):
            await bus.publish_within(QUEUE, message(2), 0.05)
        assert not patient.done()  # a publish without a deadline keeps waiting
    finally:
        other.execute("ROLLBACK")
        other.close()
    await asyncio.wait_for(patient, 2.0)
    with sqlite3.connect(bus.path) as conn:
        ids = [row[0] for row in conn.execute("SELECT message_id FROM messages")]
    assert ids == ["m-1"]
    # The dropped id was never remembered: published again, it is not taken for a duplicate.
    await bus.publish_within(QUEUE, message(2), 1.0)
    assert stored(bus.path) == 2


async def test_a_publish_within_a_deadline_on_a_free_file_is_committed(bus: LocalBus) -> None:
    await asyncio.gather(*(bus.publish_within(QUEUE, message(n), 1.0) for n in range(10)))
    assert stored(bus.path) == 10


def wal_pages(path: Path) -> int:
    """The WAL file's length in pages (it keeps its high-water length after a restart)."""
    return path.with_name(path.name + "-wal").stat().st_size // 4096


async def test_the_wal_is_rewound_under_sustained_publishing(tmp_path: Path) -> None:
    """Commits that never pause would grow the WAL without bound; it is restarted instead.

    A passive checkpoint racing a writer that never stops rarely catches the WAL's end, and
    SQLite rewinds only a WAL that was wholly copied; past the threshold a RESTART checkpoint
    does it. The file's length is its high-water mark, so it shows whether it was rewound.
    """
    path = tmp_path / "bus.sqlite"
    opened = await LocalBus.open(
        path, topology=TOPOLOGY, wal_restart_frames=64, checkpoint_period=0.05
    )
    written = 0
    try:
        loop = asyncio.get_running_loop()
        body = b"x" * 1500  # about one page a message: the WAL grows fast
        end = loop.time() + 1.5
        while loop.time() < end:
            batch = [OutgoingMessage(body=body, message_id=f"m-{written + n}") for n in range(20)]
            await asyncio.gather(*(opened.publish(QUEUE, m) for m in batch))
            written += len(batch)
        longest = wal_pages(path)
    finally:
        await opened.close()
    assert written > 2000
    # Each message wrote a page or more (row, index and dedupe entries, in 20-message commits).
    assert longest < written / 4


@pytest.fixture
async def windowed(tmp_path: Path) -> AsyncIterator[tuple[LocalBus, ManualClock]]:
    """A bus whose queue drops duplicates for 60 s, on a clock the test moves."""
    clock = ManualClock(start=1_700_000_000.0)
    spec = QueueSpec(name=QUEUE, sessions=False, max_deliveries=3, duplicate_window=60.0)
    opened = await LocalBus.open(
        tmp_path / "bus.sqlite", topology=MappingProxyType({QUEUE: spec}), clock=clock
    )
    yield opened, clock
    await opened.close()


async def test_an_id_is_a_duplicate_within_its_window_and_new_after_it(
    windowed: tuple[LocalBus, ManualClock],
) -> None:
    """A dropped duplicate does not refresh the window; once it expires the id is new again."""
    opened, clock = windowed
    await opened.publish(QUEUE, message(1))
    clock.advance(59.0)
    await opened.publish(QUEUE, message(1))  # within the window: dropped
    assert stored(opened.path) == 1
    clock.advance(1.5)  # 60.5 s after the first: its window has passed
    await asyncio.gather(opened.publish(QUEUE, message(1)), opened.publish(QUEUE, message(2)))
    assert stored(opened.path) == 3
    clock.advance(59.0)
    await opened.publish(QUEUE, message(1))  # within the new window
    assert stored(opened.path) == 3


def dedupe_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM dedupe").fetchone()[0])


async def test_expired_dedupe_entries_are_purged_a_bounded_batch_at_a_time(
    windowed: tuple[LocalBus, ManualClock],
) -> None:
    """Expired entries go by the expiry index, at most a batch per purge, oldest first."""
    opened, clock = windowed
    await opened.publish_batch(QUEUE, [message(n) for n in range(2500)])
    assert dedupe_rows(opened.path) == 2500
    clock.advance(61.0)
    await opened.publish(QUEUE, message(-1))
    assert dedupe_rows(opened.path) == 2500 - 2000 + 1  # one batch of the oldest went
    await opened.publish(QUEUE, message(-2))  # too soon for the next purge
    assert dedupe_rows(opened.path) == 500 + 2
    clock.advance(0.5)
    await opened.publish(QUEUE, message(-3))
    assert dedupe_rows(opened.path) == 3  # only the live entries are left


async def test_a_version_2_bus_file_gains_the_expiry_index(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite"
    opened = await LocalBus.open(path, topology=TOPOLOGY)
    await opened.publish(QUEUE, message(1))
    await opened.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX dedupe_expiry")
        conn.execute("PRAGMA user_version=2")
    reopened = await LocalBus.open(path, topology=TOPOLOGY)
    await reopened.close()
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    assert "dedupe_expiry" in names and version == 3
    assert stored(path) == 1
