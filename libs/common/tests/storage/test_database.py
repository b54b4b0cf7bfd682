"""Database: units of work off the loop, transactions, bounded retries, error mapping, lifecycle."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

from dfj_common.clock import ManualClock
from dfj_common.errors import PermanentError, TransientError
from dfj_common.retry import ExponentialBackOff
from dfj_common.storage.database import Database
from dfj_common.storage.engine import create_engine
from dfj_common.storage.errors import AlreadyExists
from dfj_common.storage.schema import processed_ids

NO_JITTER = ExponentialBackOff(base=0.5, factor=2.0, maximum=4.0, jitter=0.0)


@pytest.fixture
def sqlite_engine(tmp_path: Path, sqlite_template: Path) -> Engine:
    """A migrated SQLite engine of its own."""
    path = tmp_path / "db.sqlite"
    shutil.copyfile(sqlite_template, path)
    return create_engine(f"sqlite:///{path}", busy_timeout=0.02)


class Sleeps:
    """Records back-off delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def locked() -> sa_exc.OperationalError:
    """The error SQLite gives when another writer holds the lock past busy_timeout."""
    return sa_exc.OperationalError("INSERT", None, sqlite3.OperationalError("database is locked"))


async def test_work_runs_on_a_worker_thread_not_the_event_loop(sqlite_engine: Engine) -> None:
    """The blocking call happens on a dfj-db thread."""
    async with Database(sqlite_engine) as db:
        name = await db.run(lambda conn: threading.current_thread().name, write=False)
    assert name.startswith("dfj-db")
    assert name != threading.current_thread().name


async def test_a_unit_of_work_commits_on_return_and_rolls_back_on_error(
    sqlite_engine: Engine,
) -> None:
    """Rows written by work that raises are gone; rows of work that returns are kept."""
    clock = ManualClock()
    async with Database(sqlite_engine, clock=clock) as db:

        def write(conn: Connection, message_id: str, fail: bool) -> None:
            conn.execute(
                sa.insert(processed_ids).values(
                    consumer="c", message_id=message_id, processed_at=db.now()
                )
            )
            if fail:
                raise RuntimeError("boom")

        await db.run(lambda conn: write(conn, "kept", False))
        with pytest.raises(RuntimeError, match="boom"):
            await db.run(lambda conn: write(conn, "undone", True))
        ids = await db.run(
            lambda conn: set(conn.execute(sa.select(processed_ids.c.message_id)).scalars()),
            write=False,
        )
    assert ids == {"kept"}


async def test_transient_failures_are_retried_with_back_off(sqlite_engine: Engine) -> None:
    """A unit of work that hits 'database is locked' twice succeeds on the third attempt."""
    sleeps = Sleeps()
    calls: list[int] = []

    def flaky(conn: Connection) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise locked()
        return "done"

    async with Database(sqlite_engine, backoff=NO_JITTER, sleep=sleeps) as db:
        assert await db.run(flaky) == "done"
    assert len(calls) == 3
    assert sleeps.delays == [0.5, 1.0]


async def test_retries_are_bounded_and_end_in_transient_error(sqlite_engine: Engine) -> None:
    """After max_attempts the failure is re-raised as TransientError, chained to the cause."""
    sleeps = Sleeps()
    calls: list[int] = []

    def always_locked(conn: Connection) -> None:
        calls.append(1)
        raise locked()

    async with Database(sqlite_engine, max_attempts=3, backoff=NO_JITTER, sleep=sleeps) as db:
        with pytest.raises(TransientError, match="after 3 attempts") as caught:
            await db.run(always_locked)
    assert len(calls) == 3
    assert len(sleeps.delays) == 2
    assert isinstance(caught.value.__cause__, sa_exc.OperationalError)


async def test_permanent_database_errors_are_not_retried(sqlite_engine: Engine) -> None:
    """A programming error propagates at once, unchanged."""
    sleeps = Sleeps()
    calls: list[int] = []

    def broken(conn: Connection) -> None:
        calls.append(1)
        conn.exec_driver_sql("SELECT * FROM no_such_table")

    async with Database(sqlite_engine, sleep=sleeps) as db:
        with pytest.raises(sa_exc.OperationalError, match="no such table"):
            await db.run(broken)
    assert calls == [1]
    assert sleeps.delays == []


async def test_integrity_errors_become_constraint_violations(sqlite_engine: Engine) -> None:
    """A duplicate key is the caller's fault: AlreadyExists (a PermanentError), no retry."""
    sleeps = Sleeps()
    async with Database(sqlite_engine, sleep=sleeps) as db:

        def insert_twice(conn: Connection) -> None:
            row = {"consumer": "c", "message_id": "m", "processed_at": db.now()}
            conn.execute(sa.insert(processed_ids).values(row))
            conn.execute(sa.insert(processed_ids).values(row))

        with pytest.raises(AlreadyExists, match="processed_ids") as caught:
            await db.run(insert_twice)
    assert isinstance(caught.value, PermanentError)
    assert caught.value.reason == "AlreadyExists"
    assert isinstance(caught.value.__cause__, sa_exc.IntegrityError)
    assert sleeps.delays == []


async def test_a_real_lock_is_waited_out_by_retrying(sqlite_engine: Engine) -> None:
    """Another connection holding the write lock makes attempts fail until it lets go."""
    engine = sqlite_engine
    path = engine.url.database
    assert path is not None
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    slept: list[float] = []

    async def sleep_then_release(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            holder.execute("ROLLBACK")

    backoff = ExponentialBackOff(base=0.01, maximum=0.01, jitter=0.0)
    try:
        async with Database(engine, sleep=sleep_then_release, backoff=backoff) as db:
            await db.run(
                lambda conn: conn.execute(
                    sa.insert(processed_ids).values(
                        consumer="c", message_id="m", processed_at=db.now()
                    )
                )
            )
            count = await db.run(
                lambda conn: conn.execute(
                    sa.select(sa.func.count()).select_from(processed_ids)
                ).scalar_one(),
                write=False,
            )
    finally:
        holder.close()
        engine.dispose()
    assert len(slept) == 2
    assert count == 1


async def test_closing_waits_and_then_refuses_work(sqlite_engine: Engine) -> None:
    """close() is idempotent; afterwards run() raises instead of hanging."""
    db = Database(sqlite_engine)
    assert await db.run(lambda conn: 1, write=False) == 1
    await db.close()
    await db.close()
    with pytest.raises(RuntimeError, match="closed"):
        await db.run(lambda conn: 1)


async def test_open_owns_and_disposes_its_engine(tmp_path: Path) -> None:
    """Database.open builds the engine from a URL and disposes of it on close."""
    db = Database.open(f"sqlite:///{tmp_path / 'own.sqlite'}", clock=ManualClock(1_000.0))
    async with db:
        assert await db.run(lambda conn: conn.exec_driver_sql("SELECT 7").scalar()) == 7
        assert db.now().timestamp() == 1_000.0
        assert db.now().tzinfo is not None
    pool = db.engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.checkedin() == 0  # a fresh pool: the used one was disposed of


async def test_units_of_work_run_concurrently(sqlite_engine: Engine) -> None:
    """Reads on several threads overlap rather than queue behind one another."""
    barrier = threading.Barrier(3, timeout=5)

    def meet(conn: Connection) -> bool:
        barrier.wait()  # only passes if three units of work are in flight at once
        return True

    async with Database(sqlite_engine, max_workers=3) as db:
        results = await asyncio.gather(*(db.run(meet, write=False) for _ in range(3)))
    assert results == [True, True, True]
