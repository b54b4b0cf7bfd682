"""Fixtures of the Discord interaction tests: the real gateway app over real HTTP.

Each test gets a :class:`Harness`: ``create_app`` with a real ``LocalBus`` (tmp_path), a real
migrated SQLite ``Database`` (copied from a template migrated once per session), an
``EnvSecretStore`` holding a KEK and the state-signing key, a manual clock, and a real Ed25519
key pair whose public key is the app's ``DFJ_DISCORD_PUBLIC_KEY``. Requests are signed by
``dfj_sandbox.discord_signing`` exactly as Discord signs them. ``shared/`` (vectors, specs) is
found beside the repository; it is skipped when absent, except under CI, where it must exist.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from dfj_common.bus.local import LocalBus
from dfj_common.bus.topology import TOPOLOGY
from dfj_common.clock import ManualClock
from dfj_common.config import Settings
from dfj_common.envelope import Envelope
from dfj_common.secrets import EnvSecretStore
from dfj_common.storage import Database, Repositories, migrate
from dfj_gateway.app import create_app
from dfj_sandbox.discord_signing import DiscordSigner, InteractionFactory

REPO = Path(__file__).resolve().parents[4]
SHARED = REPO.parent / "shared"
NOW = 1_750_000_000.0
SITE = "jira:0b4f3c6e-2d9a-4c55-9a4e-5b8f6a1d2c3e"
APPLICATION_ID = "1300000000000000001"

Client = TestClient[web.Request, web.Application]


def shared_path(relative: str) -> Path:
    """A file under shared/; skipped when absent outside CI, a failure in CI."""
    path = SHARED / relative
    if not path.is_file():
        message = f"{path} is missing (shared/ is expected beside the repository)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


VECTOR_FILE = SHARED / "vectors" / "discord-interactions.json"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests taking ``vector_name`` run once per shared vector."""
    if "vector_name" in metafunc.fixturenames:
        names: list[str] = ["vectors-file-missing"]
        if VECTOR_FILE.is_file():
            names = [v["name"] for v in json.loads(VECTOR_FILE.read_text())["vectors"]]
        metafunc.parametrize("vector_name", names)


@pytest.fixture(scope="session")
def vector_file() -> dict[str, Any]:
    """The whole shared vector file."""
    data: dict[str, Any] = json.loads(shared_path("vectors/discord-interactions.json").read_text())
    return data


@pytest.fixture(scope="session")
def vectors(vector_file: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The shared vectors by name."""
    return {v["name"]: v for v in vector_file["vectors"]}


@cache
def _spec_registry(path: Path) -> Registry[Any]:
    document = json.loads(path.read_text())
    resource: Resource[Any] = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:discord-openapi", resource)
    return registry


SpecCheck = Callable[[str, Mapping[str, Any]], None]


@pytest.fixture(name="spec_valid")
def _spec_valid() -> SpecCheck:
    """Assert a JSON value matches a schema of Discord's pinned OpenAPI spec, by name."""
    registry = _spec_registry(shared_path("specs/discord-openapi.json"))

    def check(schema: str, instance: Mapping[str, Any]) -> None:
        ref = {"$ref": f"urn:discord-openapi#/components/schemas/{schema}"}
        validator = jsonschema.Draft202012Validator(ref, registry=registry)
        errors = [e.message for e in validator.iter_errors(instance)]
        assert not errors, f"{schema}: {errors}"

    return check


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, copied by each test."""
    path = tmp_path_factory.mktemp("template") / "dfj.sqlite"
    migrate.upgrade(f"sqlite:///{path}")
    return path


class Harness:
    """The running app, its bus, database and clock, and a signer that speaks for Discord."""

    def __init__(
        self,
        *,
        client: Client,
        bus: LocalBus,
        database: Database,
        clock: ManualClock,
        signer: DiscordSigner,
        factory: InteractionFactory,
    ) -> None:
        self.client = client
        self.bus = bus
        self.db = database
        self.repos = Repositories(database)
        self.clock = clock
        self.signer = signer
        self.factory = factory

    async def post(
        self,
        body: Mapping[str, Any] | bytes,
        *,
        timestamp: int | str | None = None,
        headers: Mapping[str, str] | None = None,
        drop: tuple[str, ...] = (),
    ) -> ClientResponse:
        """POST a signed interaction (signed now, by the app's clock, unless ``timestamp``)."""
        ts = int(self.clock.now()) if timestamp is None else timestamp
        raw, signed = self.signer.signed(body, timestamp=ts)
        merged = {**signed, **(headers or {})}
        for name in drop:
            merged.pop(name, None)
        return await self.client.post("/discord/interactions", data=raw, headers=merged)

    async def answer(self, body: Mapping[str, Any] | bytes) -> dict[str, Any]:
        """POST and return the 200 JSON answer."""
        response = await self.post(body)
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result

    async def published(self) -> int:
        """How many messages wait on any queue."""
        return sum(s.active + s.scheduled for s in await self.bus.stats())

    async def take(self, queue: str, *, expect: int = 1) -> list[Envelope]:
        """Receive, complete and decode what ``queue`` holds (``expect`` messages)."""
        receiver = self.bus.receiver(queue)
        try:
            got: list[Envelope] = []
            while len(got) < expect:
                batch = await receiver.receive(expect - len(got), timeout=1.0)
                if not batch:
                    break
                for delivery in batch:
                    got.append(Envelope.decode(delivery.body))
                    await delivery.complete()
        finally:
            await receiver.close()
        return got

    async def install(self, guild_id: str | None = None) -> None:
        """Install the Jira site and connect the factory's guild (or ``guild_id``) to it."""
        await self.repos.installations.save_connect(
            SITE, base_url="https://acme.atlassian.net", shared_secret_ciphertext=b"\x00" * 80
        )
        guild = guild_id or self.factory.guild_id
        assert guild is not None
        await self.repos.guild_connections.connect(
            guild, SITE, connected_by=self.factory.user_id, settings={"default_project": "OPS"}
        )

    async def cache(self, kind: str, key: str, value: Any) -> None:
        """Seed the metadata cache of the site (as the jira-worker would)."""
        await self.repos.metadata_cache.put(SITE, kind, key, value, ttl=timedelta(minutes=10))


HarnessFactory = Callable[..., Awaitable[Harness]]


def base_environ(**extra: str) -> dict[str, str]:
    """Secrets and gateway settings as the environment would give them."""
    return {
        "DFJ_KEK": base64.b64encode(secrets.token_bytes(32)).decode(),
        "DFJ_STATE_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        **extra,
    }


@pytest.fixture(name="make_environ")
def _make_environ() -> Callable[..., dict[str, str]]:
    """Build an environment: fresh secrets plus the given ``DFJ_`` settings."""
    return base_environ


@asynccontextmanager
async def running_gateway(
    tmp_path: Path,
    template: Path,
    *,
    signer: DiscordSigner,
    public_key: str | None = None,
    clock: ManualClock | None = None,
    environ: Mapping[str, str] | None = None,
    guild_id: str | None = "1300000000000000002",
) -> AsyncIterator[Harness]:
    """Start the app over loopback HTTP with real collaborators; close them all after."""
    clock = clock or ManualClock(NOW)
    db_file = tmp_path / f"dfj-{secrets.token_hex(4)}.sqlite"
    shutil.copyfile(template, db_file)
    env = dict(environ) if environ is not None else base_environ()
    settings = Settings.from_env(
        {
            "DFJ_BUS_PATH": str(tmp_path / f"bus-{secrets.token_hex(4)}.sqlite"),
            "DFJ_DATABASE_URL": f"sqlite:///{db_file}",
            "DFJ_DISCORD_APPLICATION_ID": APPLICATION_ID,
            "DFJ_PUBLIC_URL": "https://gateway.example.test",
            **({"DFJ_DISCORD_PUBLIC_KEY": public_key} if public_key else {}),
        },
        env_file=None,
    )
    bus = await LocalBus.open(settings.bus_path, topology=TOPOLOGY)
    database = Database.open(settings, clock=clock)
    secrets_store = EnvSecretStore(env, env_file=None)
    app = create_app(
        settings, bus=bus, database=database, clock=clock, secrets=secrets_store, environ=env
    )
    server = TestServer(app)
    await server.start_server(access_log=None)
    factory = InteractionFactory(guild_id=guild_id, clock=clock.now)
    try:
        async with TestClient(server) as client:
            yield Harness(
                client=client,
                bus=bus,
                database=database,
                clock=clock,
                signer=signer,
                factory=factory,
            )
    finally:
        await bus.close()
        await database.close()


@pytest.fixture(scope="session")
def signer() -> DiscordSigner:
    """The application's Ed25519 key pair (Discord's half signs, the app verifies)."""
    return DiscordSigner.generate()


@pytest.fixture(name="gateway")
async def _gateway(
    tmp_path: Path, template_db: Path, signer: DiscordSigner
) -> AsyncIterator[Harness]:
    async with running_gateway(
        tmp_path, template_db, signer=signer, public_key=signer.public_key_hex
    ) as harness:
        yield harness


@pytest.fixture(name="start_gateway")
async def _start_gateway(
    tmp_path: Path, template_db: Path, signer: DiscordSigner
) -> AsyncIterator[HarnessFactory]:
    """Start gateways with other keys, clocks, settings or guilds (closed after the test)."""
    stack: list[Any] = []

    async def start(**kwargs: Any) -> Harness:
        kwargs.setdefault("signer", signer)
        kwargs.setdefault("public_key", kwargs["signer"].public_key_hex)
        manager = running_gateway(tmp_path, template_db, **kwargs)
        stack.append(manager)
        return await manager.__aenter__()

    yield start
    for manager in reversed(stack):
        await manager.__aexit__(None, None, None)
