"""The embedded bus: one SQLite file (WAL) shared by every process on one machine.

How it keeps the contract of :mod:`dfj_common.bus.base`:

- **Durability.** Every publish and settlement is a committed SQLite transaction before its
  ``await`` returns, so a killed process loses nothing it was told had happened.
- **Group commit.** All of a process's writes (publishes, claims, settlements) made during one
  turn of the event loop are written by one transaction at the start of the next, on the loop
  thread: a burst of N concurrent publishes costs a few commits, not N, without a timer-based
  delay for a lone message. Not on a thread of its own: every SQLite call releases the GIL and
  takes it back, and a thread taking it back from a busy event loop waits a switch interval
  each time (measured: a batch that takes 1.7 ms alone took 650 ms beside a loop running
  Python) — the commit itself, WAL with ``synchronous=NORMAL``, is tens of microseconds a
  message.
- **Peek-lock.** ``available_at`` folds visibility and lock into one column. Claiming a message
  sets it to now + lock duration and a fresh ``lock_token``; settling checks the token, so a
  consumer whose lock expired (and whose message went to another) gets ``LockLost``.
- **Sessions.** On a session queue only the head (lowest sequence) of each session can be
  claimed, and only while nothing else of that session is in flight or waiting to be retried.
  That is FIFO per session with one consumer per session at a time, across processes. A
  receiver with ``session_batch=N`` claims a run instead: up to N consecutive messages of a
  session, each with its own lock, under the same condition for the first of them; while any
  is locked nothing behind it is claimable.
- **Waking consumers.** Receivers register an abstract Unix datagram socket in ``listeners``;
  after a commit that made messages available, the publishing process sends each listener of
  that queue one byte. Receivers also poll at ``poll_interval`` (and at the next scheduled
  time), which covers expired locks of crashed consumers and lost wake-ups.
- **Checkpoints off the hot path.** Automatic WAL checkpoints would run inside whichever commit
  crosses the threshold (copying pages and syncing the file) and show up as latency spikes; here
  each process checkpoints passively from a thread of its own instead.
- **Contention.** ``busy_timeout`` is 0: SQLite's busy handler would sleep on the loop thread.
  When another process holds the write lock, ``BEGIN IMMEDIATE`` fails at once and the batch
  is tried again from a loop timer (backing off to 2 ms), so the loop keeps serving meanwhile;
  after 30 s of a locked file every waiter of the batch gets :class:`BusError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson

from dfj_common.bus import _local_schema as schema
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
from dfj_common.errors import BusError, LockLost

__all__ = ["LocalBus"]

T = TypeVar("T")
Op = Callable[[sqlite3.Connection, float], Any]

_BEGIN_RETRY_LIMIT: Final = 30.0  # seconds a writer waits for the file's write lock
_LISTENER_TTL: Final = 1.0  # seconds a process trusts its cached list of listeners
_DEDUPE_PURGE_EVERY: Final = 0.1  # seconds between purges of expired dedupe entries
_DEDUPE_PURGE_BATCH: Final = 2000  # at most this many a purge: 20,000 a second
_MAX_BATCH: Final = 2000  # operations in one transaction
# A WAL this many pages long (16 MiB at SQLite's default page size) is rewound (``_checkpoint``).
_WAL_RESTART_FRAMES: Final = 4096
_RESTART_PATIENCE_MS: Final = 20
_BUSY_PAUSE_MIN: Final = 0.0001  # first pause when another process holds the write lock
_BUSY_PAUSE_MAX: Final = 0.002


@dataclass(slots=True)
class _Pending:
    op: Op | _Insert
    future: asyncio.Future[Any]
    wakes: str | None  # queue whose listeners to wake after commit
    deadline: float | None = None  # time.monotonic() after which it is dropped, unwritten


@dataclass(frozen=True, slots=True)
class _Insert:
    """A publish waiting for the next commit; all of a batch's publishes are written together."""

    spec: QueueSpec
    messages: Sequence[OutgoingMessage]
    at: float | None  # None: visible at once


class LocalBus(Bus):
    """The embedded SQLite bus. Open with ``await LocalBus.open(path)``."""

    def __init__(
        self,
        path: str | Path,
        *,
        topology: Topology = TOPOLOGY,
        clock: Clock | None = None,
        synchronous: str = "normal",
        poll_interval: float = 0.5,
        lock_patience: float = _BEGIN_RETRY_LIMIT,
        wal_restart_frames: int = _WAL_RESTART_FRAMES,
        checkpoint_period: float = 0.25,
    ) -> None:
        self._path = Path(path)
        self._wal_restart_frames = wal_restart_frames
        self._checkpoint_period = checkpoint_period
        self._topology = topology
        self._clock = clock or SystemClock()
        self._synchronous = synchronous.upper()
        if self._synchronous not in {"OFF", "NORMAL", "FULL"}:
            raise ValueError(f"synchronous must be off, normal or full, not {synchronous!r}")
        self.poll_interval = poll_interval
        self._lock_patience = lock_patience
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dfj-bus")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[_Pending] = []
        self._flush_handle: asyncio.Handle | None = None
        self._busy_since: float | None = None
        self._busy_pause = _BUSY_PAUSE_MIN
        self._wconn: sqlite3.Connection | None = None
        self._closed = False
        self._listeners: dict[str, tuple[float, list[str]]] = {}
        self._notify_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify_sock.setblocking(False)
        self._last_purge = 0.0
        self._receivers: set[LocalReceiver] = set()
        self._checkpointer: asyncio.Task[None] | None = None
        self._checkpoint_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="dfj-bus-checkpoint"
        )

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        topology: Topology = TOPOLOGY,
        clock: Clock | None = None,
        synchronous: str = "normal",
        poll_interval: float = 0.5,
        lock_patience: float = _BEGIN_RETRY_LIMIT,
        wal_restart_frames: int = _WAL_RESTART_FRAMES,
        checkpoint_period: float = 0.25,
    ) -> LocalBus:
        bus = cls(
            path,
            topology=topology,
            clock=clock,
            synchronous=synchronous,
            poll_interval=poll_interval,
            lock_patience=lock_patience,
            wal_restart_frames=wal_restart_frames,
            checkpoint_period=checkpoint_period,
        )
        await bus._call(bus._connect)
        bus._checkpointer = asyncio.get_running_loop().create_task(bus._checkpoint_loop())
        return bus

    # -- plumbing ---------------------------------------------------------------------------

    def spec(self, queue: str) -> QueueSpec:
        try:
            return self._topology[queue]
        except KeyError:
            raise ValueError(
                f"unknown queue {queue!r}; known: {', '.join(self._topology)}"
            ) from None

    @property
    def path(self) -> Path:
        return self._path

    def _open_connection(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=0")
        self._retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA journal_size_limit=67108864")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    def _connect(self) -> None:
        """Two connections: reads on the executor thread, writes on the writer thread."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._open_connection()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version < schema.SCHEMA_VERSION:
            self._begin(conn)
            for statement in schema.SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={schema.SCHEMA_VERSION}")
            conn.execute("COMMIT")
        self._conn = conn
        self._wconn = self._open_connection()

    @staticmethod
    def _retry_locked(fn: Callable[[], T]) -> T:
        deadline = time.monotonic() + _BEGIN_RETRY_LIMIT
        pause = 0.00005
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise BusError(f"bus file stayed locked for {_BEGIN_RETRY_LIMIT:.0f}s") from exc
                time.sleep(pause)
                pause = min(pause * 2, 0.002)

    def _begin(self, conn: sqlite3.Connection) -> None:
        self._retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._closed and self._conn is not None:
            raise BusError("the bus is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)

    def _write(
        self, op: Op | _Insert, *, wakes: str | None = None, deadline: float | None = None
    ) -> asyncio.Future[Any]:
        """Queue ``op`` for the next group-committed transaction; await the future for its result.

        A plain function returning the future, not a coroutine: every publish and settlement
        comes through here, and a coroutine around one ``await`` is a frame for nothing.
        """
        if self._closed or self._wconn is None:
            raise BusError("the bus is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Pending(op, future, wakes, deadline))
        if self._flush_handle is None:
            self._flush_handle = loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        """A loop callback: commit what is pending as one transaction, or retry if locked."""
        self._flush_handle = None
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        batch = self._pending[:_MAX_BATCH]
        conn = self._wconn
        results: list[tuple[bool, Any]] = []
        error: Exception | None = None
        try:
            if conn is None:
                raise BusError("the bus is not open")
            if not self._try_begin(conn):
                if self._drop_overdue():
                    batch = self._pending[:_MAX_BATCH]
                    if not batch:
                        self._busy_since, self._busy_pause = None, _BUSY_PAUSE_MIN
                        return
                if self._still_patient():
                    self._flush_handle = loop.call_later(self._busy_pause, self._flush)
                    self._busy_pause = min(self._busy_pause * 2, _BUSY_PAUSE_MAX)
                    return
                raise BusError(f"bus file stayed locked for {self._lock_patience:g}s")
            self._busy_since, self._busy_pause = None, _BUSY_PAUSE_MIN
            results = self._run_batch(conn, batch)
        except Exception as exc:  # every waiter of the batch must hear of the failure
            self._busy_since, self._busy_pause = None, _BUSY_PAUSE_MIN
            error = exc
        del self._pending[: len(batch)]
        if self._pending:
            self._flush_handle = loop.call_soon(self._flush)
        self._deliver(batch, results, error)

    def _drop_overdue(self) -> bool:
        """Fail the waiting publishes whose deadline has passed (unwritten); True if any."""
        now = time.monotonic()
        overdue = [p for p in self._pending if p.deadline is not None and p.deadline <= now]
        if not overdue:
            return False
        self._pending = [p for p in self._pending if p.deadline is None or p.deadline > now]
        for item in overdue:
            if not item.future.done():
                item.future.set_exception(TimeoutError("the bus file stayed locked"))
        return True

    def _try_begin(self, conn: sqlite3.Connection) -> bool:
        """``BEGIN IMMEDIATE`` without waiting: False while another process holds the lock."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return False
        return True

    def _still_patient(self) -> bool:
        now = time.monotonic()
        if self._busy_since is None:
            self._busy_since = now
        return now - self._busy_since < self._lock_patience

    def _deliver(
        self, batch: list[_Pending], results: list[tuple[bool, Any]], error: Exception | None
    ) -> None:
        if error is not None:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        woken: set[str] = set()
        for item, (ok, value) in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if ok:
                item.future.set_result(value)
                if item.wakes is not None and value:
                    woken.add(item.wakes)
            else:
                item.future.set_exception(value)
        for name in woken:
            self._wake(name)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        """Apply ``batch`` inside the transaction the caller began, and commit it."""
        now = self._clock.now()
        results: list[tuple[bool, Any]] = [(True, None)] * len(batch)
        try:
            inserts = [(i, item.op) for i, item in enumerate(batch) if isinstance(item.op, _Insert)]
            if inserts:
                counts = self._insert_many(conn, now, [op for _, op in inserts])
                for (i, _), count in zip(inserts, counts, strict=True):
                    results[i] = (True, count)
            for i, item in enumerate(batch):
                if isinstance(item.op, _Insert):
                    continue
                # No savepoints: an op refuses (LockLost, ValueError) before it writes anything,
                # and a database error rolls the whole batch back and fails every waiter.
                try:
                    results[i] = (True, item.op(conn, now))
                except (LockLost, ValueError) as exc:
                    results[i] = (False, exc)
            if now - self._last_purge > _DEDUPE_PURGE_EVERY:
                # A few at a time, oldest first, by the expiry index: one sweep of everything
                # once a minute scanned the whole table and, at a steady rate, deleted a
                # minute of entries in one commit (seconds of loop time at 1,000/s). An entry
                # left a little longer changes nothing: an expired one is written over anyway.
                conn.execute(
                    "DELETE FROM dedupe WHERE (queue, message_id) IN (SELECT queue, message_id"
                    " FROM dedupe WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
                    (now, _DEDUPE_PURGE_BATCH),
                )
                self._last_purge = now
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return results

    def _require_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise BusError("the bus is not open")
        return self._conn

    # -- waking receivers ----------------------------------------------------------------------

    def _wake(self, queue: str) -> None:
        cached = self._listeners.get(queue)
        now = time.monotonic()
        if cached is None or now - cached[0] > _LISTENER_TTL:
            self._refresh_listeners_soon(queue)
            if cached is None:
                return
        stale: list[str] = []
        for address in cached[1]:
            try:
                self._notify_sock.sendto(b"\x01", "\0" + address)
            except BlockingIOError:
                pass  # its buffer is full: it has wake-ups pending already
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    stale.append(address)
        if stale:
            cached[1][:] = [a for a in cached[1] if a not in stale]

    def _refresh_listeners_soon(self, queue: str) -> None:
        async def refresh() -> None:
            rows = await self._call(
                lambda: (
                    self._require_conn()
                    .execute("SELECT address FROM listeners WHERE queue = ?", (queue,))
                    .fetchall()
                )
            )
            self._listeners[queue] = (time.monotonic(), [r[0] for r in rows])
            if first:
                self._wake(queue)  # the publish that found no list yet still wakes them

        if not self._closed:
            first = queue not in self._listeners
            # Placeholder so a burst of publishes schedules one refresh, not one each.
            self._listeners.setdefault(queue, (time.monotonic(), []))
            task = asyncio.get_running_loop().create_task(refresh())
            task.add_done_callback(_log_task_failure)

    # -- publishing ------------------------------------------------------------------------------

    async def publish(self, queue: str, message: OutgoingMessage) -> None:
        await self.publish_batch(queue, [message])

    async def publish_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        insert = self._checked_insert(queue, messages)  # an unknown queue refused, even empty
        if messages:
            await self._write(insert, wakes=queue)

    async def schedule(self, queue: str, message: OutgoingMessage, *, at: float) -> None:
        await self._write(self._checked_insert(queue, [message], at=at), wakes=queue)

    async def publish_within(self, queue: str, message: OutgoingMessage, timeout: float) -> None:
        """A publish that is dropped, never written, if the file stays locked ``timeout`` s.

        A write waits only while another process holds the file's write lock; each retry
        drops what is overdue. No timer per publish, and ``TimeoutError`` means not published.
        """
        deadline = time.monotonic() + timeout
        await self._write(self._checked_insert(queue, [message]), wakes=queue, deadline=deadline)

    def _checked_insert(
        self, queue: str, messages: Sequence[OutgoingMessage], *, at: float | None = None
    ) -> _Insert:
        """The checked publish of ``messages`` on ``queue`` (visible at ``at``, or at once)."""
        spec = self.spec(queue)
        for message in messages:
            _check_session(spec, message)
        return _Insert(spec, list(messages), at)

    @staticmethod
    def _insert_many(conn: sqlite3.Connection, now: float, inserts: Sequence[_Insert]) -> list[int]:
        """Write every publish of a batch with a handful of statements (not a few per message).

        Each statement releases and re-takes the GIL, and the event loop holds it meanwhile;
        so the number of statements per commit, not their size, sets a busy publisher's pace.
        Returns, per insert, how many of its messages became visible at once (for wake-ups).
        """
        fresh: list[tuple[int, QueueSpec, OutgoingMessage, float]] = []
        seen: set[tuple[str, str]] = set()
        remembered: list[tuple[str, str, float]] = []
        for index, ins in enumerate(inserts):
            window = ins.spec.duplicate_window
            for m in ins.messages:
                if window > 0:
                    key = (ins.spec.name, m.message_id)
                    if key in seen:
                        continue  # the same id twice in one batch: the first one wins
                    seen.add(key)
                    remembered.append((*key, now + window))
                fresh.append((index, ins.spec, m, now if ins.at is None else max(ins.at, now)))
        # One statement both remembers the ids and tells which are new: an id still within
        # its window is left alone (not returned), one never seen or expired is (re)written.
        new_ids = {
            (queue, message_id)
            for queue, message_id in _insert_rows(
                conn,
                "INSERT INTO dedupe (queue, message_id, expires_at) VALUES ",
                remembered,
                " ON CONFLICT (queue, message_id) DO UPDATE SET expires_at = excluded.expires_at"
                " WHERE dedupe.expires_at <= ? RETURNING queue, message_id",
                (now,),
            )
        }
        rows_now: list[tuple[Any, ...]] = []
        rows_later: list[tuple[Any, ...]] = []
        counts = [0] * len(inserts)
        for index, spec, m, available_at in fresh:
            if spec.duplicate_window > 0 and (spec.name, m.message_id) not in new_ids:
                continue  # seen within the window: drop, as Service Bus does
            row = (
                spec.name,
                m.message_id,
                m.session_id,
                m.body,
                orjson.dumps(
                    m.properties if type(m.properties) is dict else dict(m.properties)
                ).decode(),
                m.content_type,
            )
            if available_at <= now:
                rows_now.append((*row, now, now))
                counts[index] += 1
            else:
                rows_later.append((*row, available_at))
        _insert_rows(
            conn,
            "INSERT INTO messages (queue, message_id, session_id, body, properties,"
            " content_type, enqueued_at, available_at) VALUES ",
            rows_now,
        )
        _insert_rows(
            conn,
            "INSERT INTO scheduled (queue, message_id, session_id, body, properties,"
            " content_type, due_at) VALUES ",
            rows_later,
        )
        return counts

    # -- receiving ---------------------------------------------------------------------------

    def receiver(self, queue: str, *, session_batch: int = 1) -> LocalReceiver:
        if session_batch < 1:
            raise ValueError("session_batch must be at least 1")
        receiver = LocalReceiver(self, self.spec(queue), session_batch=session_batch)
        self._receivers.add(receiver)
        return receiver

    def _claim(
        self,
        conn: sqlite3.Connection,
        now: float,
        spec: QueueSpec,
        limit: int,
        session_batch: int = 1,
    ) -> list[LocalDelivery]:
        token = secrets.token_hex(8)
        promoted = conn.execute(
            "INSERT INTO messages (queue, message_id, session_id, body, properties, content_type,"
            " enqueued_at, available_at) SELECT queue, message_id, session_id, body, properties,"
            " content_type, due_at, due_at FROM scheduled WHERE queue = ? AND due_at <= ?"
            " ORDER BY due_at, id",
            (spec.name, now),
        ).rowcount
        if promoted:
            conn.execute("DELETE FROM scheduled WHERE queue = ? AND due_at <= ?", (spec.name, now))
        if spec.sessions and session_batch > 1:
            # Runs: the first ``:k`` messages of each session, as long as nothing before them
            # in their session is locked or waiting for a retry (the running maximum of
            # ``available_at`` over the session, in sequence order, is not in the future).
            candidates = (
                "SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER w AS rn,"
                " MAX(available_at) OVER (w ROWS UNBOUNDED PRECEDING) AS latest"
                " FROM messages WHERE queue = :q AND state = 0"
                " WINDOW w AS (PARTITION BY session_id ORDER BY seq))"
                " WHERE rn <= :k AND latest <= :now ORDER BY seq LIMIT :n"
            )
        elif spec.sessions:
            candidates = (
                "SELECT m.seq FROM messages m WHERE m.queue = :q AND m.state = 0"
                " AND m.available_at <= :now AND m.seq = (SELECT MIN(h.seq) FROM messages h"
                " WHERE h.queue = m.queue AND h.session_id = m.session_id AND h.state = 0)"
                " ORDER BY m.seq LIMIT :n"
            )
        else:
            candidates = (
                "SELECT seq FROM messages WHERE queue = :q AND state = 0 AND available_at <= :now"
                " ORDER BY seq LIMIT :n"
            )
        # Both candidate queries are constants and every value is bound, hence the noqa.
        claim = (
            "UPDATE messages SET available_at = :lock, lock_token = :tok,"  # noqa: S608
            " delivery_count = delivery_count + 1"
            f" WHERE seq IN ({candidates})"
            " RETURNING seq, message_id, session_id, body, properties, delivery_count, enqueued_at"
        )
        rows = conn.execute(
            claim,
            {
                "q": spec.name,
                "now": now,
                "n": limit,
                "k": session_batch,
                "lock": now + spec.lock_duration,
                "tok": token,
            },
        ).fetchall()
        deliveries = []
        for seq, message_id, session_id, body, props, count, enqueued_at in sorted(rows):
            if count > spec.max_deliveries:
                conn.execute(
                    "UPDATE messages SET state = 1, lock_token = NULL, dl_reason = ?,"
                    " dl_description = ?, dl_at = ?, delivery_count = ? WHERE seq = ?",
                    (
                        MAX_DELIVERY_REASON,
                        f"delivered {count - 1} times without being completed",
                        now,
                        count - 1,
                        seq,
                    ),
                )
                continue
            deliveries.append(
                LocalDelivery(
                    self,
                    spec,
                    seq=seq,
                    token=token,
                    message_id=message_id,
                    session_id=session_id,
                    body=body,
                    properties=orjson.loads(props),
                    delivery_count=count,
                    enqueued_at=enqueued_at,
                )
            )
        return deliveries

    def _next_due(self, conn: sqlite3.Connection, spec: QueueSpec) -> float | None:
        """When something may next become claimable (a lock expiring, a retry or schedule due)."""
        if spec.sessions:
            # Only session heads can be claimed. SQLite returns the bare column of the row that
            # holds MIN(seq) in each group, i.e. each head's available_at.
            ready = (
                "SELECT MIN(t) AS t FROM (SELECT available_at AS t, MIN(seq) FROM messages"
                " WHERE queue = :q AND state = 0 GROUP BY session_id)"
            )
        else:
            ready = "SELECT MIN(available_at) AS t FROM messages WHERE queue = :q AND state = 0"
        row = conn.execute(
            f"SELECT MIN(t) FROM ({ready} UNION ALL"  # noqa: S608 - constant fragments
            " SELECT MIN(due_at) FROM scheduled WHERE queue = :q)",
            {"q": spec.name},
        ).fetchone()
        return None if row[0] is None else float(row[0])

    # -- settlement ops (run inside a group-committed transaction) ---------------------------------

    @staticmethod
    def _settle(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...], what: str) -> None:
        if conn.execute(sql, params).rowcount != 1:
            raise LockLost(f"lock on message {what} is gone")

    # -- operator tools ----------------------------------------------------------------------

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        spec = self.spec(queue)

        def read() -> list[DeadLetter]:
            rows = (
                self._require_conn()
                .execute(
                    "SELECT seq, message_id, session_id, body, properties, delivery_count,"
                    " dl_reason, dl_description, enqueued_at, dl_at FROM messages"
                    " WHERE queue = ? AND state = 1 ORDER BY seq LIMIT ?",
                    (spec.name, limit),
                )
                .fetchall()
            )
            return [
                DeadLetter(
                    queue=spec.name,
                    sequence=r[0],
                    message_id=r[1],
                    session_id=r[2],
                    body=r[3],
                    properties=orjson.loads(r[4]),
                    delivery_count=r[5],
                    reason=r[6] or "",
                    description=r[7] or "",
                    enqueued_at=r[8],
                    dead_lettered_at=r[9],
                )
                for r in rows
            ]

        return await self._call(read)

    async def replay(self, queue: str, *, message_ids: Sequence[str] | None = None) -> int:
        spec = self.spec(queue)
        ids = list(message_ids) if message_ids is not None else None

        def op(conn: sqlite3.Connection, now: float) -> int:
            sql = (
                "UPDATE messages SET state = 0, available_at = ?, delivery_count = 0,"
                " lock_token = NULL, dl_reason = NULL, dl_description = NULL, dl_at = NULL"
                " WHERE queue = ? AND state = 1"
            )
            params: list[Any] = [now, spec.name]
            if ids is not None:
                if not ids:
                    return 0
                sql += f" AND message_id IN ({','.join('?' * len(ids))})"
                params.extend(ids)
            return int(conn.execute(sql, params).rowcount)

        return int(await self._write(op, wakes=queue))

    async def stats(self) -> list[QueueStats]:
        def read() -> list[QueueStats]:
            now = self._clock.now()
            conn = self._require_conn()
            out = []
            for name in self._topology:
                r = conn.execute(
                    "SELECT"
                    " COALESCE(SUM(state = 0 AND lock_token IS NULL AND available_at <= :now), 0),"
                    " COALESCE(SUM(state = 0 AND lock_token IS NULL AND available_at > :now), 0),"
                    " COALESCE(SUM(state = 0 AND lock_token IS NOT NULL AND available_at > :now),"
                    " 0),"
                    " COALESCE(SUM(state = 1), 0),"
                    " MIN(CASE WHEN state = 0 THEN enqueued_at END)"
                    " FROM messages WHERE queue = :q",
                    {"now": now, "q": name},
                ).fetchone()
                expired_locks = conn.execute(
                    "SELECT COUNT(*) FROM messages WHERE queue = ? AND state = 0"
                    " AND lock_token IS NOT NULL AND available_at <= ?",
                    (name, now),
                ).fetchone()[0]
                # A scheduled message that is due counts as active (and as enqueued when due)
                # even before a receiver's claim has moved it into the queue.
                due, waiting, first_due = conn.execute(
                    "SELECT COALESCE(SUM(due_at <= :now), 0), COALESCE(SUM(due_at > :now), 0),"
                    " MIN(CASE WHEN due_at <= :now THEN due_at END)"
                    " FROM scheduled WHERE queue = :q",
                    {"now": now, "q": name},
                ).fetchone()
                oldest = [t for t in (r[4], first_due) if t is not None]
                out.append(
                    QueueStats(
                        queue=name,
                        active=int(r[0]) + int(expired_locks) + int(due),
                        scheduled=int(r[1]) + int(waiting),
                        locked=int(r[2]),
                        dead_lettered=int(r[3]),
                        oldest_enqueued_at=min(oldest) if oldest else None,
                    )
                )
            return out

        return await self._call(read)

    async def ping(self) -> None:
        await self._call(lambda: self._require_conn().execute("SELECT 1").fetchone())

    async def _checkpoint_loop(self) -> None:
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(
            self._checkpoint_executor,
            lambda: sqlite3.connect(self._path, timeout=0, check_same_thread=False),
        )
        try:
            while True:
                await asyncio.sleep(self._checkpoint_period)
                await loop.run_in_executor(
                    self._checkpoint_executor, _checkpoint, conn, self._wal_restart_frames
                )
        finally:
            await loop.run_in_executor(self._checkpoint_executor, conn.close)

    async def close(self) -> None:
        if self._closed:
            return
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
        self._checkpoint_executor.shutdown(wait=True)
        for receiver in list(self._receivers):
            await receiver.close()
        # Everything already queued is committed (or refused) before the connections close.
        pending = [item.future for item in self._pending]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._closed = True
        loop = asyncio.get_running_loop()
        for conn in (self._conn, self._wconn):
            if conn is not None:
                await loop.run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)
        self._notify_sock.close()


_ROWS_PER_STATEMENT: Final = 100  # below SQLite's limits on VALUES terms and bound parameters


def _insert_rows(
    conn: sqlite3.Connection,
    head: str,
    rows: Sequence[tuple[Any, ...]],
    tail: str = "",
    tail_params: tuple[Any, ...] = (),
) -> list[Any]:
    """Insert ``rows`` with multi-row VALUES statements; what a ``RETURNING`` tail returns.

    ``executemany`` steps once per row, and every step hands the GIL to the event loop and back;
    one statement for a hundred rows is one hand-off.
    """
    returned: list[Any] = []
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        one = "(" + ",".join("?" * len(chunk[0])) + ")"
        cursor = conn.execute(
            head + ",".join([one] * len(chunk)) + tail,
            [*(value for row in chunk for value in row), *tail_params],
        )
        returned.extend(cursor.fetchall())
    return returned


def _checkpoint(conn: sqlite3.Connection, restart_frames: int) -> None:
    """Copy committed WAL frames into the database; restart a WAL that has grown long.

    A passive checkpoint never blocks anyone, but under a steady stream of commits it never
    catches the WAL's end either, and SQLite only rewinds a WAL that was wholly copied when the
    next writer starts: under sustained load the file grew without bound (1 GB after 120,000
    publishes) and every page lookup searched its ever longer index (a publish went from 28 to
    67 µs). Past ``restart_frames`` pages, right after the passive pass has copied almost
    everything, a RESTART checkpoint copies the rest and makes the next writer start the WAL
    from the beginning. It holds the write lock meanwhile; writers here never wait on it (their
    ``BEGIN IMMEDIATE`` fails at once and is retried from a loop timer), and it gives up after
    :data:`_RESTART_PATIENCE_MS` if a reader holds an old snapshot, to try again next period.
    """
    with contextlib.suppress(sqlite3.OperationalError):  # another process is checkpointing
        _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames > restart_frames:
            conn.execute(f"PRAGMA busy_timeout={_RESTART_PATIENCE_MS}")
            try:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            finally:
                conn.execute("PRAGMA busy_timeout=0")


def _check_session(spec: QueueSpec, message: OutgoingMessage) -> None:
    if spec.sessions and message.session_id is None:
        raise ValueError(f"queue {spec.name} is ordered by session: the message needs a session_id")
    if not spec.sessions and message.session_id is not None:
        raise ValueError(f"queue {spec.name} has no sessions: drop the message's session_id")


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        import logging

        logging.getLogger(__name__).warning("listener refresh failed: %s", task.exception())


class LocalDelivery(Delivery):
    """A message claimed from the local bus."""

    def __init__(
        self,
        bus: LocalBus,
        spec: QueueSpec,
        *,
        seq: int,
        token: str,
        message_id: str,
        session_id: str | None,
        body: bytes,
        properties: dict[str, str],
        delivery_count: int,
        enqueued_at: float,
    ) -> None:
        super().__init__()
        self._bus = bus
        self._spec = spec
        self._seq = seq
        self._token = token
        self.queue = spec.name
        self.message_id = message_id
        self.session_id = session_id
        self.body = body
        self.properties = properties
        self.delivery_count = delivery_count
        self.enqueued_at = enqueued_at
        self.max_deliveries = spec.max_deliveries

    @property
    def sequence(self) -> int:
        return self._seq

    async def _settle(self, sql: str, params: tuple[Any, ...], *, wakes: bool) -> None:
        self._mark_settled()
        where = " WHERE seq = ? AND lock_token = ? AND state = 0"
        args = (*params, self._seq, self._token)

        def op(conn: sqlite3.Connection, _now: float) -> bool:
            LocalBus._settle(conn, sql + where, args, self.message_id)
            return True

        await self._bus._write(op, wakes=self.queue if wakes else None)

    async def complete(self) -> None:
        await self._settle("DELETE FROM messages", (), wakes=self._spec.sessions)

    async def retry(self, delay: float, *, reason: str = "") -> None:
        if self.delivery_count >= self.max_deliveries:
            description = f"retries used up after {self.delivery_count} deliveries"
            if reason:
                description += f"; last error: {reason}"
            await self.dead_letter(MAX_DELIVERY_REASON, description)
            return
        at = self._bus._clock.now() + max(delay, 0.0)
        await self._settle(
            "UPDATE messages SET available_at = ?, lock_token = NULL, dl_description = ?",
            (at, reason[:500] or None),
            wakes=delay <= 0,
        )

    async def dead_letter(self, reason: str, description: str = "") -> None:
        now = self._bus._clock.now()
        await self._settle(
            "UPDATE messages SET state = 1, lock_token = NULL, dl_reason = ?, dl_description = ?,"
            " dl_at = ?",
            (reason[:200], description[:2000], now),
            wakes=self._spec.sessions,
        )

    async def release(self) -> None:
        now = self._bus._clock.now()
        await self._settle(
            "UPDATE messages SET available_at = ?, lock_token = NULL", (now,), wakes=True
        )

    async def renew_lock(self) -> None:
        if self.settled:
            raise LockLost(f"message {self.message_id} is already settled")
        spec = self._spec

        def op(conn: sqlite3.Connection, now: float) -> None:
            LocalBus._settle(
                conn,
                "UPDATE messages SET available_at = ? WHERE seq = ? AND lock_token = ?"
                " AND state = 0",
                (now + spec.lock_duration, self._seq, self._token),
                self.message_id,
            )

        await self._bus._write(op)


class LocalReceiver(Receiver):
    """Claims messages of one queue; woken by datagrams from publishers, or by polling."""

    def __init__(self, bus: LocalBus, spec: QueueSpec, *, session_batch: int = 1) -> None:
        self._bus = bus
        self._spec = spec
        self._session_batch = session_batch if spec.sessions else 1
        self._sock: socket.socket | None = None
        self._address = f"dfj-bus-{os.getpid()}-{secrets.token_hex(6)}"
        self._wakeup = asyncio.Event()
        self._registered = False
        self._closed = False

    async def _register(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind("\0" + self._address)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._on_readable)
        spec, address = self._spec, self._address

        def op(conn: sqlite3.Connection, now: float) -> None:
            # Forget listeners of processes that are gone (a SIGKILLed consumer never says bye).
            for queue, addr, pid in conn.execute("SELECT queue, address, pid FROM listeners"):
                if not _alive(pid):
                    conn.execute(
                        "DELETE FROM listeners WHERE queue = ? AND address = ?", (queue, addr)
                    )
            conn.execute(
                "INSERT OR REPLACE INTO listeners (queue, address, pid, registered)"
                " VALUES (?, ?, ?, ?)",
                (spec.name, address, os.getpid(), now),
            )

        await self._bus._write(op)
        self._bus._listeners.pop(spec.name, None)  # this process's publishers see us at once
        self._registered = True

    def _on_readable(self) -> None:
        assert self._sock is not None
        with contextlib.suppress(BlockingIOError, OSError):
            while True:
                self._sock.recv(64)
        self._wakeup.set()

    def is_closed(self) -> bool:
        """A method, not an attribute read: it may change while ``receive`` awaits."""
        return self._closed

    async def receive(self, max_messages: int, *, timeout: float) -> list[Delivery]:
        if self._closed:
            raise BusError("receiver is closed")
        if max_messages < 1:
            return []
        if not self._registered:
            await self._register()
        deadline = time.monotonic() + max(timeout, 0.0)
        spec, run = self._spec, self._session_batch
        while True:
            if self.is_closed():
                return []
            self._wakeup.clear()
            got: list[LocalDelivery] = await self._bus._write(
                lambda c, now: self._bus._claim(c, now, spec, max_messages, run)
            )
            if self.is_closed():
                # Closed while claiming: hand the claims straight back rather than orphan them.
                for delivery in got:
                    await delivery.release()
                return []
            if got:
                return list(got)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            wait = min(remaining, self._bus.poll_interval)
            due = await self._bus._call(
                lambda: self._bus._next_due(self._bus._require_conn(), spec)
            )
            if due is not None:
                wait = min(wait, max(due - self._bus._clock.now(), 0.0) + 0.001)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), wait)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()  # a receive waiting for messages returns now, empty-handed
        self._bus._receivers.discard(self)
        if self._sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
        if self._registered and not self._bus._closed:
            spec, address = self._spec, self._address
            await self._bus._write(
                lambda c, _n: (
                    c.execute(
                        "DELETE FROM listeners WHERE queue = ? AND address = ?",
                        (spec.name, address),
                    ).rowcount
                )
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
