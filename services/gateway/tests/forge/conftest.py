"""Fixtures of the Forge gateway tests: the real app over loopback HTTP, a real JWKS server.

The app is ``create_app`` served by ``TestServer`` with the header limit the gateway runs with;
the bus is a ``LocalBus`` file and the database a migrated SQLite copy in ``tmp_path``; the
clock is a fixed ``ManualClock``. Forge's side is :mod:`dfj_sandbox.forge_signing`: tokens are
RS256 FITs signed with keys a small aiohttp server publishes as a JWKS document, exactly as
Forge's CDN does, so the gateway fetches keys over HTTP.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from services.gateway.tests.support import held, received

from dfj_common.bus import JIRA_EVENTS, Receiver
from dfj_common.bus.local import LocalBus
from dfj_common.clock import ManualClock
from dfj_common.config import Settings
from dfj_common.envelope import Envelope
from dfj_common.secrets import EnvelopeCipher, EnvSecretStore, generate_kek, make_aad
from dfj_common.storage import Database
from dfj_common.storage.migrate import upgrade
from dfj_gateway.app import MAX_FIELD_SIZE, create_app
from dfj_gateway.forge.jwks import ForgeKeyOptions
from dfj_gateway.forge.routes import FORGE_OPTIONS, ForgeOptions
from dfj_sandbox.forge_signing import FitSubject, InstallKeyPair, UiContext, jwks, sign_fit

NOW: Final = 1_800_000_000.0
PUBLIC_URL: Final = "https://dfj.example.test"
APP_ID: Final = "ari:cloud:ecosystem::app/6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"
INSTALLATION_UUID: Final = "0c6b8f4e-2a1d-4e3f-9b7c-5d6e7f8a9b0c"
INSTALLATION_ID: Final = "ari:cloud:ecosystem::installation/" + INSTALLATION_UUID
CLOUD_ID: Final = "a436116f-02ce-4520-8fbb-7301462a1674"
API_BASE_URL: Final = f"https://api.atlassian.com/ex/jira/{CLOUD_ID}"
ACCOUNT_ID: Final = "5b10ac8d82e05b22cc7d4ef5"
STATE_SIGNING_KEY: Final = "a-state-signing-key-for-the-forge-tests"
TOKEN_PURPOSE: Final = "forge-system-token"

SUBJECT: Final = FitSubject(
    app_id=APP_ID,
    app_version="1.2.0",
    installation_id=INSTALLATION_ID,
    cloud_id=CLOUD_ID,
    api_base_url=API_BASE_URL,
    environment_id="ari:cloud:ecosystem::environment/11111111-2222-4333-8444-555555555555",
)

Client = TestClient[web.Request, web.Application]


class JwksServer:
    """Forge's key endpoint on loopback: serves the current keys, counts fetches."""

    def __init__(self, keys: list[InstallKeyPair]) -> None:
        self.keys = keys
        self.fetches = 0
        self.status = 200
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _serve(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.status != 200:
            return web.json_response({"error": "down"}, status=self.status)
        return web.json_response(jwks(self.keys))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/.well-known/jwks.json"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Harness:
    """The running app and what a test drives or inspects."""

    client: Client
    app: web.Application
    bus: LocalBus
    db: Database
    clock: ManualClock
    cipher: EnvelopeCipher
    key: InstallKeyPair
    jwks: JwksServer
    receiver: Receiver
    subject: FitSubject = field(default=SUBJECT)

    def fit(
        self,
        module_key: str = "events",
        *,
        key: InstallKeyPair | None = None,
        ui: UiContext | None = None,
        module_type: str = "core:endpoint",
        **kwargs: Any,
    ) -> str:
        """A FIT as Forge signs it for a call of ``module_key`` now."""
        return sign_fit(
            key or self.key,
            self.subject,
            module_key=module_key,
            module_type=module_type,
            ui=ui,
            now=self.clock.now(),
            **kwargs,
        )

    async def call(
        self,
        path: str,
        body: Mapping[str, Any] | bytes | None = None,
        *,
        token: str | None = None,
        system_token: str | None = None,
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> aiohttp.ClientResponse:
        """Call ``path`` as Forge does: ``Authorization: Bearer <FIT>``, system token header."""
        sent: dict[str, str] = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if system_token is not None:
            sent["x-forge-oauth-system"] = system_token
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            if content_type is not None:
                sent["Content-Type"] = content_type
        return await self.client.request(method, path, data=data, headers=sent)

    async def published(self, count: int = 1) -> list[Envelope]:
        """Receive (and complete) ``count`` messages from ``jira-events``."""
        return await received(self.receiver, count)

    async def queued(self) -> int:
        """How many messages ``jira-events`` holds in any state (0: nothing was published)."""
        return await held(self.bus)

    async def open_token(self, sealed_b64: str, installation_id: str = INSTALLATION_ID) -> str:
        """Open a sealed system token from an event, with the AAD the contract names."""
        plain = await self.cipher.open(
            base64.b64decode(sealed_b64), aad=make_aad(installation_id, TOKEN_PURPOSE)
        )
        return plain.decode()


MakeHarness = Callable[..., Awaitable[Harness]]


@pytest.fixture(scope="session")
def forge_key() -> InstallKeyPair:
    """One RSA key pair for the session (generating one takes a while)."""
    return InstallKeyPair.generate()


@pytest.fixture(scope="session")
def other_key() -> InstallKeyPair:
    """A second key: a rotation, or a key Forge never published."""
    return InstallKeyPair.generate()


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("db") / "template.sqlite"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(name="make_harness")
async def _make_harness(
    tmp_path: Path, forge_key: InstallKeyPair, database_template: Path
) -> AsyncIterator[MakeHarness]:
    closers: list[Callable[[], Awaitable[None]]] = []

    async def make(
        *,
        env: Mapping[str, str] | None = None,
        keys: ForgeKeyOptions | None = None,
        secrets_env: Mapping[str, str] | None = None,
    ) -> Harness:
        root = tmp_path / f"h{len(closers)}"
        root.mkdir()
        db_path = root / "dfj.sqlite"
        shutil.copyfile(database_template, db_path)
        server = JwksServer([forge_key])
        await server.start()
        closers.append(server.close)
        settings = Settings.from_env(
            {
                "DFJ_PUBLIC_URL": PUBLIC_URL,
                "DFJ_FORGE_APP_ID": APP_ID,
                "DFJ_FORGE_JWKS_URL": server.url,
                "DFJ_DISCORD_APPLICATION_ID": "1100000000000000001",
                "DFJ_BUS_PATH": str(root / "bus.sqlite"),
                "DFJ_DATABASE_URL": f"sqlite:///{db_path}",
                **(env or {}),
            },
            env_file=None,
        )
        clock = ManualClock(NOW)
        bus = await LocalBus.open(settings.bus_path)
        closers.append(bus.close)
        db = Database.open(settings, clock=clock)
        closers.append(db.close)
        secrets = EnvSecretStore(
            {"DFJ_KEK": generate_kek(), "DFJ_STATE_SIGNING_KEY": STATE_SIGNING_KEY}
            if secrets_env is None
            else secrets_env,
            env_file=None,
        )
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        closers.append(http.close)
        app = create_app(settings, bus=bus, database=db, clock=clock, secrets=secrets, http=http)
        app[FORGE_OPTIONS] = ForgeOptions(keys=keys or ForgeKeyOptions())
        test_server = TestServer(app)
        await test_server.start_server(access_log=None, max_field_size=MAX_FIELD_SIZE)
        client: Client = TestClient(test_server)
        await client.start_server()
        closers.append(client.close)
        receiver = bus.receiver(JIRA_EVENTS)
        closers.append(receiver.close)
        return Harness(
            client=client,
            app=app,
            bus=bus,
            db=db,
            clock=clock,
            cipher=EnvelopeCipher(secrets, clock=clock),
            key=forge_key,
            jwks=server,
            receiver=receiver,
        )

    yield make
    for close in reversed(closers):
        await close()


@pytest.fixture(name="h")
async def _harness(make_harness: MakeHarness) -> Harness:
    return await make_harness()
