"""Process lifecycle shared by the workers: signals, the health server, running and draining.

Each worker service builds a :class:`WorkerService` in its own composition root (its
``bootstrap`` module) and hands it to :func:`serve`, which runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, TypeVar

import sqlalchemy as sa
import structlog
from opentelemetry import metrics

from dfj_common.bus import TOPOLOGY, Bus, Topology, open_bus
from dfj_common.config import Settings
from dfj_common.health import Check, HealthServer
from dfj_common.logging import configure_logging
from dfj_common.runtime import HandlerTable, Worker
from dfj_common.storage import Database
from dfj_common.telemetry import Telemetry, start_consume_span, telemetry_from_settings

__all__ = [
    "WorkerService",
    "build_worker_service",
    "database_check",
    "install_stop_signals",
    "run_main",
    "run_worker",
    "serve",
    "settle_heap",
    "setup_process",
]

_log: Final = structlog.get_logger("dfj.service")
T = TypeVar("T")


_GC_THRESHOLDS: Final = (10_000, 10, 10)


def settle_heap() -> None:
    """Call once a process has started: move everything alive now out of the collector's way.

    A full (generation 2) collection walks every tracked object; after imports and start-up
    that is a few hundred thousand of them — SQLAlchemy, OpenTelemetry, the Azure SDKs — and
    each such pass stalled a request for 20-50 ms. Frozen, they are never walked again; only
    what the service allocates while running is.

    Then the collector runs less often: reference counting frees almost everything a request
    or message allocates, and at the default threshold (a young collection every 700
    allocations, an older one every tenth) the collector walked the same few live objects
    again and again — 9 µs of each gateway request at saturation, 4% of its budget. Cyclic
    garbage waits a little longer for it; the gateway's peak RSS in ``bench/gateway.py``
    stayed at 110 MB.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


def run_main(main: Coroutine[Any, Any, T]) -> T:
    """Run a service's main coroutine on uvloop where it exists, else on asyncio's own loop.

    uvloop (libuv) halves the loop's and the transports' per-request cost, which is most of a
    fast handler's budget; the code above the loop is the same on both, and tests run on the
    default loop, so nothing may depend on which one runs.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows has no uvloop
        return asyncio.run(main)
    return uvloop.run(main)


@dataclass(kw_only=True)
class WorkerService:
    """Everything one worker process runs: its consumers, probes and what to close after."""

    name: str
    host: str
    port: int
    workers: Sequence[Worker]
    checks: Mapping[str, Check]
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


TablesFactory = Callable[[Database, Bus], Mapping[str, HandlerTable]]


def setup_process(service: str, settings: Settings) -> Telemetry:
    """Once per process, before anything logs: redacting structured logs and telemetry."""
    configure_logging(service=service, level=settings.log_level, fmt=settings.log_format)
    return telemetry_from_settings(settings, service=service)


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM (Container Apps, ``make run``) and SIGINT (Ctrl-C) set ``stop``."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def serve(
    service: WorkerService,
    stop: asyncio.Event,
    *,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Run the health server and every worker until ``stop``; then drain and close."""
    health = HealthServer(
        service=service.name, host=service.host, port=service.port, checks=service.checks
    )
    await health.start()
    _log.info(
        "started", service=service.name, port=health.port, queues=[w.queue for w in service.workers]
    )
    if on_ready is not None:
        on_ready(health.port)
    try:
        await asyncio.gather(*(w.run(stop) for w in service.workers))
    finally:
        await health.close()
        for close in reversed(service.closers):
            try:
                await close()
            except Exception as exc:
                _log.warning("close failed", error=type(exc).__name__)
        _log.info("stopped", service=service.name)


async def build_worker_service(
    *,
    name: str,
    settings: Settings,
    port: int,
    tables: Mapping[str, HandlerTable] | TablesFactory,
    bus: Bus | None = None,
    database: Database | None = None,
    extra_checks: Mapping[str, Check] | None = None,
    closers: Sequence[Callable[[], Awaitable[None]]] = (),
    topology: Topology = TOPOLOGY,
    telemetry: Telemetry | None = None,
    session_batch: Mapping[str, int] | None = None,
    concurrency: Mapping[str, int] | None = None,
) -> WorkerService:
    """The common shape of a worker: one :class:`Worker` per consumed queue, plus probes.

    ``session_batch`` names the queues whose handlers act on runs of one session's messages
    (see :mod:`dfj_common.runtime`) and the longest run each may receive; ``concurrency``
    overrides ``worker_concurrency`` for queues whose handlers mostly wait (on a remote rate
    limit, say), where more of them in flight is what keeps the remote busy.

    ``tables`` maps each queue the service consumes to its handler table, or builds that map
    from the database and bus once they are open. The bus and the database are opened from the
    settings unless given (then the caller closes them).
    """
    owned: list[Callable[[], Awaitable[None]]] = list(closers)
    if bus is None:
        bus = await open_bus(settings, topology=topology)
        owned.append(bus.close)
    if database is None:
        database = Database.open(settings)
        owned.append(database.close)
    if callable(tables):
        tables = tables(database, bus)
    meter: metrics.Meter | None = None
    span_factory = None
    if telemetry is not None:
        meter = telemetry.meter
        span_factory = partial(start_consume_span, telemetry)
    workers = [
        Worker(
            bus,
            topology[queue],
            table,
            concurrency=(concurrency or {}).get(queue, settings.worker_concurrency),
            grace=settings.drain_grace_seconds,
            meter=meter,
            span_factory=span_factory,
            session_batch=(session_batch or {}).get(queue, 1),
        )
        for queue, table in tables.items()
    ]
    checks: dict[str, Check] = {"bus": bus.ping, "database": database_check(database)}
    checks.update(extra_checks or {})
    return WorkerService(
        name=name, host=settings.bind_host, port=port, workers=workers, checks=checks, closers=owned
    )


def database_check(database: Database) -> Check:
    """A readiness check that the database answers a trivial query."""

    async def check() -> None:
        await database.run(lambda conn: conn.execute(sa.text("SELECT 1")).scalar(), write=False)

    return check


Bootstrap = Callable[..., Awaitable[WorkerService]]


async def run_worker(service: str, settings: Settings, bootstrap: Bootstrap) -> None:
    """A worker process from start to exit: logging, telemetry, signals, serve, drain."""
    telemetry = setup_process(service, settings)
    stop = asyncio.Event()
    install_stop_signals(stop)
    try:
        service_ = await bootstrap(settings, telemetry=telemetry)
        settle_heap()
        await serve(service_, stop)
    finally:
        telemetry.shutdown()
