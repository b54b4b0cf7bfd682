"""Fixtures of the Jira gateway tests: the real app, over real HTTP on loopback, with real parts.

Each test gets a :class:`Harness`: the app from ``create_app`` served by ``TestServer`` (access
log off: page URLs carry a ``jwt``), a ``LocalBus`` file and a migrated SQLite database in
``tmp_path``, an ``EnvSecretStore`` holding a fresh KEK, a fixed ``ManualClock``, and the
sandbox's install-key server on its own loopback port. Tokens are signed by
``dfj_sandbox.jira_signing`` exactly as Jira signs them. Installations needed by HS256 routes
are written with the storage repositories here, as the jira-worker would — the gateway only
reads them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
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
from dfj_common.storage import Database, Installations, InstallationState
from dfj_common.storage.migrate import upgrade
from dfj_gateway.app import create_app
from dfj_gateway.jira.routes import JIRA_OPTIONS, JiraOptions
from dfj_sandbox.jira_signing import (
    InstallKeyPair,
    InstallKeyServer,
    auth_header,
    installed_payload,
    sign_install,
    sign_request,
)

NOW: Final = 1_800_000_000.0
PUBLIC_URL: Final = "https://dfj.example.test"
SITE_URL: Final = "https://acme.atlassian.net"
CLIENT_KEY: Final = "8d4f7a52-1f0e-4c3b-9a6d-2b5e9c7f1a03"
SHARED_SECRET: Final = "cmVhbC1sb29raW5nLXNoYXJlZC1zZWNyZXQtZm9yLXRlc3RzLTAx"
ACCOUNT_ID: Final = "5b10ac8d82e05b22cc7d4ef5"
APP_KEY: Final = "discord-for-jira"
SECRET_PURPOSE: Final = "connect-shared-secret"  # the AAD contract with the jira-worker
INSTALLED: Final = "/jira/lifecycle/installed"

VECTORS: Final = (
    Path(__file__).resolve().parents[4] / ".." / "shared" / "vectors" / "atlassian-qsh-interop.json"
)

Client = TestClient[web.Request, web.Application]


STATE_SIGNING_KEY: Final = "a-state-signing-key-for-the-jira-page-tests"


@pytest.fixture(name="qsh_vectors", scope="session")
def _qsh_vectors() -> dict[str, Any]:
    """Atlassian's qsh interop vectors; skipped only when truly absent, and never under CI."""
    if not VECTORS.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"the qsh vectors must be present in CI: {VECTORS}")
        pytest.skip(f"shared/ is not beside the repository: {VECTORS} is missing")
    vectors: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return vectors


@dataclass
class Harness:
    """The running app and everything around it that a test drives or inspects."""

    client: Client
    app: web.Application
    bus: LocalBus
    db: Database
    clock: ManualClock
    cipher: EnvelopeCipher
    key: InstallKeyPair
    key_server: InstallKeyServer
    settings: Settings
    receiver: Receiver

    # --- requests ---------------------------------------------------------------------

    async def post(
        self,
        path: str,
        body: Mapping[str, Any] | bytes,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Iterable[tuple[str, str]] = (),
        content_type: str | None = "application/json",
    ) -> aiohttp.ClientResponse:
        """POST ``body`` (JSON-encoded unless bytes) with ``Authorization: JWT token``."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent: dict[str, str] = dict(headers or {})
        if token is not None:
            sent.update(auth_header(token))
        if content_type is not None:
            sent["Content-Type"] = content_type
        return await self.client.post(path, data=raw, headers=sent, params=list(params))

    def sign(
        self,
        method: str,
        path: str,
        *,
        query: Iterable[tuple[str, str]] = (),
        secret: str = SHARED_SECRET,
        client_key: str = CLIENT_KEY,
        claims: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        """An HS256 token for ``method path`` as Jira signs it."""
        return sign_request(
            secret,
            client_key=client_key,
            method=method,
            path=path,
            query=query,
            now=self.clock.now() if now is None else now,
            account_id=ACCOUNT_ID,
            claims=claims,
        )

    def install_token(
        self,
        path: str = INSTALLED,
        *,
        client_key: str = CLIENT_KEY,
        key: InstallKeyPair | None = None,
        audience: str = PUBLIC_URL,
        claims: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        """An RS256 signed-install token for ``path``."""
        return sign_install(
            key or self.key,
            client_key=client_key,
            audience=audience,
            path=path,
            now=self.clock.now() if now is None else now,
            account_id=ACCOUNT_ID,
            claims=claims,
        )

    async def install(
        self,
        *,
        client_key: str = CLIENT_KEY,
        secret: str = SHARED_SECRET,
        base_url: str = SITE_URL,
        token: str | None = None,
    ) -> aiohttp.ClientResponse:
        """A signed ``installed`` callback, as Jira sends it."""
        body = installed_payload(
            client_key=client_key, base_url=base_url, app_key=APP_KEY, shared_secret=secret
        )
        sent = token if token is not None else self.install_token(client_key=client_key)
        return await self.post(INSTALLED, body, token=sent)

    # --- state ------------------------------------------------------------------------

    async def seed(
        self,
        *,
        client_key: str = CLIENT_KEY,
        secret: str = SHARED_SECRET,
        state: InstallationState = InstallationState.ENABLED,
        sealed: bytes | None = None,
    ) -> bytes:
        """Store an installation as the jira-worker does; returns the sealed secret."""
        blob = sealed or await self.cipher.seal(
            secret.encode(), aad=make_aad(client_key, SECRET_PURPOSE)
        )
        await Installations(self.db).save_connect(
            client_key,
            base_url=SITE_URL,
            shared_secret_ciphertext=blob,
            app_key=APP_KEY,
            state=state,
        )
        return blob

    async def open_sealed(self, client_key: str, sealed_b64: str) -> str:
        """Open a sealed secret from an event, with the AAD the contract names."""
        plain = await self.cipher.open(
            base64.b64decode(sealed_b64), aad=make_aad(client_key, SECRET_PURPOSE)
        )
        return plain.decode()

    async def published(self, count: int = 1) -> list[Envelope]:
        """Receive (and complete) ``count`` messages from ``jira-events``."""
        return await received(self.receiver, count)

    async def queued(self) -> int:
        """How many messages ``jira-events`` holds in any state (0: nothing was published)."""
        return await held(self.bus)


MakeHarness = Callable[..., Awaitable[Harness]]


@pytest.fixture(scope="session")
def install_key() -> InstallKeyPair:
    """One RSA key pair for the session (generating one takes a while)."""
    return InstallKeyPair.generate()


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("db") / "template.sqlite"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(name="make_harness")
async def _make_harness(
    tmp_path: Path, install_key: InstallKeyPair, database_template: Path
) -> AsyncIterator[MakeHarness]:
    closers: list[Callable[[], Awaitable[None]]] = []

    async def make(
        *, env: Mapping[str, str] | None = None, options: JiraOptions | None = None
    ) -> Harness:
        root = tmp_path / f"h{len(closers)}"
        root.mkdir()
        db_path = root / "dfj.sqlite"
        shutil.copyfile(database_template, db_path)
        key_server = InstallKeyServer([install_key])
        await key_server.start()
        closers.append(key_server.close)
        settings = Settings.from_env(
            {
                "DFJ_PUBLIC_URL": PUBLIC_URL,
                "DFJ_APP_KEY": APP_KEY,
                "DFJ_ATLASSIAN_INSTALL_KEYS_URL": key_server.url,
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
            {"DFJ_KEK": generate_kek(), "DFJ_STATE_SIGNING_KEY": STATE_SIGNING_KEY},
            env_file=None,
        )
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        closers.append(http.close)
        app = create_app(settings, bus=bus, database=db, clock=clock, secrets=secrets, http=http)
        if options is not None:
            app[JIRA_OPTIONS] = options
        server = TestServer(app)
        await server.start_server(access_log=None)
        client: Client = TestClient(server)
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
            key=install_key,
            key_server=key_server,
            settings=settings,
            receiver=receiver,
        )

    yield make
    for close in reversed(closers):
        await close()


@pytest.fixture(name="h")
async def _harness(make_harness: MakeHarness) -> Harness:
    return await make_harness()
