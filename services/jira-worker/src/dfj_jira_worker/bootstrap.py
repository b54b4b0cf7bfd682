"""Composition root of jira-worker: everything built from settings.

Tests call it with a bus and a database of their own (and then close them themselves).
"""

from __future__ import annotations

from dfj_common.bus import Bus
from dfj_common.config import Settings
from dfj_common.service import WorkerService, build_worker_service
from dfj_common.storage import Database
from dfj_common.telemetry import Telemetry
from dfj_jira_worker.handlers import build_tables

SERVICE = "jira-worker"


async def bootstrap(
    settings: Settings,
    *,
    bus: Bus | None = None,
    database: Database | None = None,
    telemetry: Telemetry | None = None,
) -> WorkerService:
    """The jira-worker process: its queue consumers, wired to its bus and database."""
    return await build_worker_service(
        name=SERVICE,
        settings=settings,
        port=settings.jira_worker_port,
        tables=build_tables,
        bus=bus,
        database=database,
        telemetry=telemetry,
    )
