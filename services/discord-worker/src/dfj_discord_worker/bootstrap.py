"""Composition root of discord-worker: everything built from settings.

Tests call it with a bus of their own.
"""

from __future__ import annotations

from dfj_common.bus import Bus
from dfj_common.config import Settings
from dfj_common.service import WorkerService, build_worker_service
from dfj_common.telemetry import Telemetry
from dfj_discord_worker.handlers import TABLES

SERVICE = "discord-worker"


async def bootstrap(
    settings: Settings, *, bus: Bus | None = None, telemetry: Telemetry | None = None
) -> WorkerService:
    """The discord-worker process: its queue consumers and probes."""
    return await build_worker_service(
        name=SERVICE,
        settings=settings,
        port=settings.discord_worker_port,
        tables=TABLES,
        bus=bus,
        telemetry=telemetry,
    )
