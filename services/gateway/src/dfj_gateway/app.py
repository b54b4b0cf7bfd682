"""Composition root of the gateway: ``create_app(settings, ...)`` builds the aiohttp app.

The gateway never calls Jira or Discord and never writes to the database; it verifies what
arrives, publishes it to the bus and answers. Shared state lives on the app under typed keys;
what the app opens itself (bus, database, HTTP client for signing keys, secret store) is closed
by its cleanup contexts, and what the caller passes in stays the caller's (no singletons).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Final

import aiohttp
from aiohttp import web

from dfj_common.bus import Bus, open_bus
from dfj_common.clock import Clock, SystemClock
from dfj_common.config import Settings
from dfj_common.health import run_checks
from dfj_common.secrets import EnvelopeCipher, SecretStore, open_secret_store
from dfj_common.service import database_check
from dfj_common.storage import Database
from dfj_gateway.middleware import add_fallback, add_route

__all__ = [
    "BUS",
    "CIPHER",
    "CLOCK",
    "DATABASE",
    "HTTP",
    "MAX_FIELD_SIZE",
    "SECRETS",
    "SETTINGS",
    "create_app",
]

SERVICE: Final = "gateway"
SETTINGS: Final = web.AppKey("settings", Settings)
BUS: Final = web.AppKey("bus", Bus)
DATABASE: Final = web.AppKey("database", Database)
CLOCK: Final = web.AppKey("clock", Clock)
SECRETS: Final = web.AppKey("secrets", SecretStore)
CIPHER: Final = web.AppKey("cipher", EnvelopeCipher)
HTTP: Final = web.AppKey("http", aiohttp.ClientSession)  # signing-key fetches only

DEFAULT_BODY_LIMIT: Final = 256 * 1024
#: Passed to the aiohttp runner: a Forge Invocation Token for a UI call embeds its signed
#: context and outgrows aiohttp's default 8 KiB header field limit.
MAX_FIELD_SIZE: Final = 64 * 1024


def create_app(
    settings: Settings,
    *,
    bus: Bus | None = None,
    database: Database | None = None,
    clock: Clock | None = None,
    secrets: SecretStore | None = None,
    http: aiohttp.ClientSession | None = None,
    environ: Mapping[str, str] | None = None,
) -> web.Application:
    """The gateway's app; whatever is passed in is owned (and closed) by the caller."""
    app = web.Application(client_max_size=DEFAULT_BODY_LIMIT)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    if bus is not None:
        app[BUS] = bus
    else:
        app.cleanup_ctx.append(_bus_context)
    if database is not None:
        app[DATABASE] = database
    else:
        app.cleanup_ctx.append(_database_context)
    if secrets is not None:
        app[SECRETS] = secrets
        app[CIPHER] = EnvelopeCipher(secrets, clock=app[CLOCK])
    else:
        app.cleanup_ctx.append(_secrets_context(environ or {}))
    if http is not None:
        app[HTTP] = http
    else:
        app.cleanup_ctx.append(_http_context)
    add_route(app, "GET", "/healthz", healthz, head=True)
    add_route(app, "GET", "/readyz", readyz, head=True)
    # Route groups register themselves here (each module owns its routes and their kinds).
    # Imported here: the route modules read this module's app keys (an import cycle otherwise).
    from dfj_gateway.browser import setup_browser_routes
    from dfj_gateway.discord import setup_discord_routes

    setup_discord_routes(app, environ=environ)
    setup_browser_routes(app, environ=environ)
    from dfj_gateway.jira import setup_jira_routes  # here, not on top: jira/ imports app's keys

    setup_jira_routes(app)
    from dfj_gateway.forge import setup_forge_routes

    setup_forge_routes(app)
    add_fallback(app)  # last: what no route above matched
    return app


async def _bus_context(app: web.Application) -> AsyncIterator[None]:
    bus = await open_bus(app[SETTINGS])
    app[BUS] = bus
    yield
    await bus.close()


async def _database_context(app: web.Application) -> AsyncIterator[None]:
    # The gateway only reads (installations, cached metadata); it never writes.
    database = Database.open(app[SETTINGS], clock=app[CLOCK])
    app[DATABASE] = database
    yield
    await database.close()


def _secrets_context(
    environ: Mapping[str, str],
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        store = open_secret_store(app[SETTINGS], environ, clock=app[CLOCK])
        app[SECRETS] = store
        app[CIPHER] = EnvelopeCipher(store, clock=app[CLOCK])
        yield
        await store.close()

    return context


async def _http_context(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=5, connect=2)
    async with aiohttp.ClientSession(timeout=timeout, raise_for_status=False) as session:
        app[HTTP] = session
        yield


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
