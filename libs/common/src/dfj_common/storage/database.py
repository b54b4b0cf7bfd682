"""Units of work off the event loop, with bounded retries of transient failures.

A :class:`Database` owns a ``ThreadPoolExecutor`` sized to the engine's pool (one connection per
thread at a time; pyodbc and sqlite3 release the GIL while they wait). ``await db.run(work)``
calls ``work(connection)`` on a worker thread inside one transaction — committed when ``work``
returns, rolled back when it raises — so a whole unit of work is what gets retried:

- transient failures (SQLite busy/locked, Azure SQL fail-over or throttling, a dropped
  connection, a pool time-out) are retried with :class:`~dfj_common.retry.ExponentialBackOff`
  up to ``max_attempts`` times, then raised as :class:`~dfj_common.errors.TransientError`;
- integrity errors become :mod:`dfj_common.storage.errors` (the caller's fault, never retried);
- anything else propagates unchanged.

``work`` must therefore be safe to run more than once (every repository method is). If the
awaiting task is cancelled, the thread still finishes (commit or rollback) and its result is
dropped. There are no module-level singletons: build a ``Database`` in the composition root and
``async with`` it, or ``await db.close()``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Self, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from dfj_common.clock import Clock, SystemClock
from dfj_common.config import Settings
from dfj_common.errors import TransientError
from dfj_common.retry import ExponentialBackOff
from dfj_common.storage import mssql
from dfj_common.storage.engine import SQLITE_BEGIN, TokenCredential, create_engine, worker_count
from dfj_common.storage.errors import constraint_error

__all__ = ["DEFAULT_BACKOFF", "Database", "is_transient_db_error"]

T = TypeVar("T")
_log: Final = logging.getLogger(__name__)

#: Short waits: the bus redelivers with its own, longer back-off if these are not enough.
DEFAULT_BACKOFF: Final = ExponentialBackOff(base=0.25, factor=2.0, maximum=4.0, jitter=0.5)
_SQLITE_TRANSIENT: Final = ("database is locked", "database is busy", "database table is locked")


def is_transient_db_error(exc: BaseException) -> bool:
    """True for failures a later attempt of the same unit of work may not hit."""
    if isinstance(exc, sa_exc.TimeoutError):  # waited too long for a pooled connection
        return True
    if not isinstance(exc, sa_exc.DBAPIError) or isinstance(exc, sa_exc.IntegrityError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        text = str(orig).lower()
        return isinstance(orig, sqlite3.OperationalError) and any(
            m in text for m in _SQLITE_TRANSIENT
        )
    return orig is not None and mssql.is_transient(orig)


class Database:
    """An engine, the threads that use it, and the retry policy for units of work."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock | None = None,
        max_workers: int | None = None,
        max_attempts: int = 4,
        backoff: ExponentialBackOff = DEFAULT_BACKOFF,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        owns_engine: bool = False,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.engine: Final = engine
        self.clock: Final[Clock] = clock if clock is not None else SystemClock()
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._sleep = sleep
        self._owns_engine = owns_engine
        workers = max_workers if max_workers is not None else worker_count(engine)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dfj-db")
        self._closed = False

    @classmethod
    def open(
        cls,
        settings_or_url: Settings | str,
        *,
        credential: TokenCredential | None = None,
        clock: Clock | None = None,
    ) -> Database:
        """A database over a new engine, which ``close()`` disposes of."""
        engine = create_engine(settings_or_url, credential=credential)
        return cls(engine, clock=clock, owns_engine=True)

    def now(self) -> datetime:
        """The injected clock's time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.clock.now(), UTC)

    async def run(self, work: Callable[[Connection], T], *, write: bool = True) -> T:
        """Run ``work`` in one transaction on a worker thread, retrying transient failures."""
        if self._closed:
            raise RuntimeError("the database is closed")
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await loop.run_in_executor(self._executor, self._once, work, write)
            except sa_exc.IntegrityError as exc:
                raise constraint_error(exc, _name(work)) from exc
            except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
                if not is_transient_db_error(exc):
                    raise
                label = f"{type(exc).__name__} {mssql.native_error_codes(exc) or ''}".strip()
                if attempt >= self._max_attempts:
                    raise TransientError(
                        f"database unavailable after {attempt} attempts ({label})"
                    ) from exc
                delay = self._backoff.delay(attempt)
                _log.warning(
                    "transient database error, retrying",
                    extra={"error": label, "attempt": attempt, "delay": round(delay, 3)},
                )
                await self._sleep(delay)

    def _once(self, work: Callable[[Connection], T], write: bool) -> T:
        with self.engine.connect() as conn:
            if write:
                conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            with conn.begin():
                return work(conn)

    async def close(self) -> None:
        """Wait for running units of work, stop the threads, and dispose of an owned engine."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        if self._owns_engine:
            self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _name(work: Callable[..., object]) -> str:
    # "Subscriptions.add.<locals>.work" -> "Subscriptions.add": the operation, for messages.
    name = getattr(work, "__qualname__", None)
    return str(name).split(".<locals>")[0] if name else "write"
