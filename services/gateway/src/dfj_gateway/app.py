"""Composition root of the gateway: ``create_app(settings, bus=...)`` builds the aiohttp app.

The gateway never calls Jira or Discord and never writes to the database; it verifies what
arrives, publishes it to the bus and answers. Shared state lives on the app under typed keys,
and the bus it opens itself is closed by a cleanup context (no module-level singletons).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from dfj_common.bus import Bus, open_bus
from dfj_common.config import Settings
from dfj_common.health import run_checks
from dfj_common.service import database_check
from dfj_common.storage import Database

__all__ = ["BUS", "DATABASE", "SETTINGS", "create_app"]

SERVICE: Final = "gateway"
SETTINGS: Final = web.AppKey("settings", Settings)
BUS: Final = web.AppKey("bus", Bus)
DATABASE: Final = web.AppKey("database", Database)


def create_app(
    settings: Settings, *, bus: Bus | None = None, database: Database | None = None
) -> web.Application:
    """The gateway's app; what is passed in is owned (and closed) by the caller."""
    app = web.Application(client_max_size=1024 * 1024)
    app[SETTINGS] = settings
    if bus is not None:
        app[BUS] = bus
    else:
        app.cleanup_ctx.append(_bus_context)
    if database is not None:
        app[DATABASE] = database
    else:
        app.cleanup_ctx.append(_database_context)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def _bus_context(app: web.Application) -> AsyncIterator[None]:
    bus = await open_bus(app[SETTINGS])
    app[BUS] = bus
    yield
    await bus.close()


async def _database_context(app: web.Application) -> AsyncIterator[None]:
    # The gateway only reads (installations, cached metadata); it never writes.
    database = Database.open(app[SETTINGS])
    app[DATABASE] = database
    yield
    await database.close()


async def healthz(request: web.Request) -> web.Response:
    """Alive while the event loop answers."""
    return web.json_response({"status": "ok", "service": SERVICE})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the bus (every accepted request is published) and the database answer."""
    results = await run_checks(
        {"bus": request.app[BUS].ping, "database": database_check(request.app[DATABASE])}
    )
    ready = all(v == "ok" for v in results.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "service": SERVICE, "checks": results},
        status=200 if ready else 503,
    )
