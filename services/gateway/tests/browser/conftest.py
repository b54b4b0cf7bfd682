"""Fixtures of the browser-route tests: the real gateway app over real HTTP.

The same collaborators as production: ``create_app`` with a real ``LocalBus`` (tmp_path), a
real migrated SQLite ``Database``, an ``EnvSecretStore`` holding a KEK and the state-signing
key, and a manual clock the tests move.
"""

from __future__ import annotations

import base64
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dfj_common.bus.local import LocalBus
from dfj_common.clock import ManualClock
from dfj_common.config import Settings
from dfj_common.envelope import Envelope
from dfj_common.secrets import EnvSecretStore
from dfj_common.storage import Database, Repositories, migrate
from dfj_gateway.app import create_app

NOW = 1_750_000_000.0
SITE = "jira:0b4f3c6e-2d9a-4c55-9a4e-5b8f6a1d2c3e"
PUBLIC_URL = "https://gateway.example.test"

Client = TestClient[web.Request, web.Application]


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, copied by each test."""
    path = tmp_path_factory.mktemp("template") / "dfj.sqlite"
    migrate.upgrade(f"sqlite:///{path}")
    return path


class Browser:
    """The running app and what the tests inspect or seed: bus, database, clock, the key."""

    def __init__(
        self,
        *,
        client: Client,
        bus: LocalBus,
        database: Database,
        clock: ManualClock,
        signing_key: str | None,
    ) -> None:
        self.client = client
        self.bus = bus
        self.repos = Repositories(database)
        self.clock = clock
        self.signing_key = signing_key

    @property
    def key(self) -> bytes:
        """The state-signing key's bytes (as ``state.signing_key`` reads the secret)."""
        assert self.signing_key is not None
        return self.signing_key.encode()

    async def published(self) -> int:
        """How many messages wait on any queue."""
        return sum(s.active + s.scheduled for s in await self.bus.stats())

    async def take(self, queue: str, *, expect: int = 1) -> list[Envelope]:
        """Receive, complete and decode up to ``expect`` messages of ``queue``."""
        receiver = self.bus.receiver(queue)
        got: list[Envelope] = []
        try:
            while len(got) < expect:
                batch = await receiver.receive(expect - len(got), timeout=0.5)
                if not batch:
                    break
                for delivery in batch:
                    got.append(Envelope.decode(delivery.body))
                    await delivery.complete()
        finally:
            await receiver.close()
        return got

    async def install(self) -> None:
        """Install the Jira site the states are issued for."""
        await self.repos.installations.save_connect(
            SITE, base_url="https://acme.atlassian.net", shared_secret_ciphertext=b"\x00" * 80
        )


@asynccontextmanager
async def running_gateway(
    tmp_path: Path, template: Path, *, with_signing_key: bool = True
) -> AsyncIterator[Browser]:
    """Start the app over loopback HTTP with real collaborators; close them after."""
    clock = ManualClock(NOW)
    db_file = tmp_path / f"dfj-{secrets.token_hex(4)}.sqlite"
    shutil.copyfile(template, db_file)
    signing_key = base64.b64encode(secrets.token_bytes(32)).decode() if with_signing_key else None
    environ = {"DFJ_KEK": base64.b64encode(secrets.token_bytes(32)).decode()}
    if signing_key is not None:
        environ["DFJ_STATE_SIGNING_KEY"] = signing_key
    settings = Settings.from_env(
        {
            "DFJ_BUS_PATH": str(tmp_path / f"bus-{secrets.token_hex(4)}.sqlite"),
            "DFJ_DATABASE_URL": f"sqlite:///{db_file}",
            "DFJ_PUBLIC_URL": PUBLIC_URL,
        },
        env_file=None,
    )
    bus = await LocalBus.open(settings.bus_path)
    database = Database.open(settings, clock=clock)
    store = EnvSecretStore(environ, env_file=None)
    app = create_app(
        settings, bus=bus, database=database, clock=clock, secrets=store, environ=environ
    )
    server = TestServer(app)
    await server.start_server(access_log=None)
    try:
        async with TestClient(server) as client:
            yield Browser(
                client=client, bus=bus, database=database, clock=clock, signing_key=signing_key
            )
    finally:
        await bus.close()
        await database.close()


@pytest.fixture(name="browser")
async def _browser(tmp_path: Path, template_db: Path) -> AsyncIterator[Browser]:
    async with running_gateway(tmp_path, template_db) as started:
        yield started


@pytest.fixture(name="start_browser")
async def _start_browser(
    tmp_path: Path, template_db: Path
) -> AsyncIterator[Callable[..., Awaitable[Browser]]]:
    """Start gateways with other secrets (closed after the test)."""
    managers: list[Any] = []

    async def start(**kwargs: Any) -> Browser:
        manager = running_gateway(tmp_path, template_db, **kwargs)
        managers.append(manager)
        return await manager.__aenter__()

    yield start
    for manager in reversed(managers):
        await manager.__aexit__(None, None, None)
