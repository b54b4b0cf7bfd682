"""Composition root of linker: everything built from settings.

Tests call it with a bus, a database and a secret store of their own (and close those).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

from dfj_common.bus import Bus, open_bus
from dfj_common.clock import Clock, SystemClock
from dfj_common.config import Secret, Settings
from dfj_common.derived_keys import STATE_SIGNING_KEY_SECRET, master_key
from dfj_common.errors import PermanentError
from dfj_common.secrets import SecretStore, open_secret_store
from dfj_common.service import WorkerService, build_worker_service
from dfj_common.storage import Database
from dfj_common.telemetry import Telemetry
from dfj_linker.handlers import build_retention, build_tables
from dfj_linker.oauth import DiscordOAuth
from dfj_linker.settings import LinkerSettings

SERVICE = "linker"
OAUTH_TIMEOUT_SECONDS = 10.0


def signing_key_source(settings: Settings, store: SecretStore) -> Callable[[], Awaitable[bytes]]:
    """The state-signing master key, read when a link needs it.

    Linking needs the Discord application (id and OAuth secret) too; without them a link
    callback is dead-lettered as ``LinkingNotConfigured``, kept for a replay once configured.
    """

    async def signing_key() -> bytes:
        if not settings.discord_application_id or settings.discord_client_secret is None:
            raise PermanentError(
                "linking needs DFJ_DISCORD_APPLICATION_ID and DFJ_DISCORD_CLIENT_SECRET",
                reason="LinkingNotConfigured",
            )
        return master_key((await store.get(STATE_SIGNING_KEY_SECRET)).reveal())

    return signing_key


async def bootstrap(
    settings: Settings,
    *,
    bus: Bus | None = None,
    database: Database | None = None,
    telemetry: Telemetry | None = None,
    secrets: SecretStore | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> WorkerService:
    """The linker process: its queue consumer and probes.

    Without the Discord application id and OAuth client secret the linker still runs (so
    ``/jira me`` and ``/jira unlink`` work), and a link callback fails with a clear
    reason (``LinkingNotConfigured``): it is dead-lettered, kept for a replay once configured.
    """
    clock = clock or SystemClock()
    env = environ if environ is not None else os.environ
    store = secrets or open_secret_store(settings, env)
    linker = LinkerSettings.from_env(env)
    closers: list[Callable[[], Awaitable[None]]] = []
    if bus is None:
        bus = await open_bus(settings, clock=clock)
        closers.append(bus.close)
    if database is None:
        database = Database.open(settings)
        closers.append(database.close)
    # The sweep's chain starts (or is joined) here; duplicate detection keeps one per slot.
    await build_retention(database, bus, clock=clock, settings=linker).schedule_housekeeping(
        after=clock.now(), now=True
    )
    oauth = DiscordOAuth(
        api_url=settings.discord_api_url,
        client_id=settings.discord_application_id or "",
        client_secret=settings.discord_client_secret or Secret(""),
        timeout=OAUTH_TIMEOUT_SECONDS,
    )

    signing_key = signing_key_source(settings, store)

    return await build_worker_service(
        name=SERVICE,
        settings=settings,
        port=settings.linker_port,
        tables=partial(
            build_tables,
            oauth=oauth,
            master_key=signing_key,
            public_url=settings.public_url,
            app_key=settings.app_key,
            forge_app_id=settings.forge_app_id,
            clock=clock,
            settings=linker,
        ),
        bus=bus,
        database=database,
        closers=[oauth.close, *reversed(closers)],
        telemetry=telemetry,
    )
