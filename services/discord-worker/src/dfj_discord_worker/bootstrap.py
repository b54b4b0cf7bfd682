"""Composition root of discord-worker: everything built from settings.

Tests call it with a bus and a database of their own (and close those themselves); the one
Discord client (its HTTP session and rate limiter, shared by every handler so the limits are
kept per process) is opened here and closed on shutdown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial

from dfj_common.bus import DISCORD_OUTBOX, Bus
from dfj_common.clock import Clock, SystemClock
from dfj_common.config import Settings
from dfj_common.service import WorkerService, build_worker_service
from dfj_common.storage import Database
from dfj_common.telemetry import Telemetry
from dfj_discord_worker.discord import DiscordClient, LimiterPolicy
from dfj_discord_worker.handlers import OUTBOX_CONCURRENCY, OUTBOX_RUN, build_tables
from dfj_discord_worker.settings import DiscordWorkerSettings

SERVICE = "discord-worker"


async def bootstrap(
    settings: Settings,
    *,
    bus: Bus | None = None,
    database: Database | None = None,
    telemetry: Telemetry | None = None,
    clock: Clock | None = None,
    policy: LimiterPolicy | None = None,
    coalesce: bool = True,
    environ: Mapping[str, str] | None = None,
) -> WorkerService:
    """The discord-worker process: its outbox consumer, wired to its bus, database and Discord."""
    clock = clock or SystemClock()
    if policy is None:
        own = DiscordWorkerSettings.from_env(environ if environ is not None else os.environ)
        policy = LimiterPolicy(global_per_second=own.global_requests_per_second)
    discord = DiscordClient.from_settings(settings, clock=clock, policy=policy)
    return await build_worker_service(
        name=SERVICE,
        settings=settings,
        port=settings.discord_worker_port,
        tables=partial(build_tables, discord=discord, clock=clock, coalesce=coalesce),
        bus=bus,
        database=database,
        closers=[discord.close],
        telemetry=telemetry,
        session_batch={DISCORD_OUTBOX: OUTBOX_RUN},
        concurrency={DISCORD_OUTBOX: max(settings.worker_concurrency, OUTBOX_CONCURRENCY)},
    )
