"""The jira-worker on a Forge installation, against the Jira simulator acting as Forge.

The simulator installs the app from ``forge/manifest.yml`` and calls a small remote on
loopback that records what Forge sent; the system token it handed over is sealed as the
gateway seals it and given to the handlers as the gateway's events carry it. Then the real
:class:`JiraClient` calls ``/ex/jira/<cloudId>`` with the stored token, and mints offline user
tokens over the simulator's GraphQL endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web

from dfj_common.bus import LINKER
from dfj_common.bus.local import LocalBus
from dfj_common.clock import ManualClock
from dfj_common.envelope import Envelope
from dfj_common.errors import MalformedMessage, RateLimited
from dfj_common.runtime import HandlerContext
from dfj_common.secrets import EnvelopeCipher, EnvSecretStore, make_aad
from dfj_common.storage import (
    Database,
    InstallationKind,
    Installations,
    InstallationState,
    create_engine,
    migrate,
)
from dfj_common.testing import drain
from dfj_jira_worker.forge_lifecycle import ForgeLifecycle
from dfj_jira_worker.jira import JiraClient
from dfj_jira_worker.jira.errors import (
    JiraRateLimited,
    JiraTokenPending,
    JiraUnauthorized,
    JiraUnavailable,
)
from dfj_jira_worker.lifecycle import SITE_UNINSTALLED, Lifecycle
from dfj_sandbox.jira_sim import JiraSimulator, Site
from dfj_sandbox.jira_sim.forge_installation import ForgeInstallation

MANIFEST = Path(__file__).resolve().parents[4] / "forge" / "manifest.yml"
APP_ID = "ari:cloud:ecosystem::app/5d2c8a1e-7b3f-4c6d-9e0a-1b2c3d4e5f60"
ALICE = "5b10a2844c20165700ede21a"
MALLORY = "5b10a2844c20165700ede21c"
CTX = HandlerContext(
    queue="jira-events", message_id="m", delivery_count=1, max_deliveries=10, enqueued_at=0.0
)


class Remote:
    """Our side as Forge sees it: answers 204 and keeps the system tokens it was handed."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _any(self, request: web.Request) -> web.Response:
        token = request.headers.get("x-forge-oauth-system")
        if token:
            self.tokens.append(token)
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class World:
    clock: ManualClock
    sim: JiraSimulator
    site: Site
    remote: Remote
    installations: Installations
    bus: LocalBus
    cipher: EnvelopeCipher
    jira: JiraClient
    forge: ForgeLifecycle
    installation: ForgeInstallation | None = None
    sent: list[str] = field(default_factory=list)

    async def install(self) -> ForgeInstallation:
        self.installation = await self.sim.install_forge_app(
            self.site, MANIFEST, remote_base_url=self.remote.url, app_id=APP_ID
        )
        return self.installation

    async def event(
        self, kind: str = "jira.forge.installed", *, token: str | None = None, **extra: Any
    ) -> Envelope:
        """The gateway's event for the latest call Forge made (its token sealed)."""
        inst = self.installation
        assert inst is not None
        raw = token if token is not None else self.remote.tokens[-1]
        sealed = await self.cipher.seal(
            raw.encode(), aad=make_aad(inst.installation_id, "forge-system-token")
        )
        exp = jwt.decode(raw, options={"verify_signature": False})["exp"]
        data: dict[str, Any] = {
            "installationId": inst.installation_id,
            "cloudId": inst.cloud_id,
            "apiBaseUrl": inst.api_base_url,
            "environmentId": inst.environment_id,
            "systemToken": {"sealed": base64.b64encode(sealed).decode(), "expiresAt": exp},
            **extra,
        }
        return Envelope(
            id=f"evt-{len(self.sent)}",
            source="dfj-gateway",
            type=kind,
            data=data,
            tenant=inst.installation_id,
        )

    async def row(self) -> Any:
        assert self.installation is not None
        return await self.installations.get_by_installation_id(self.installation.installation_id)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    import time

    clock = ManualClock(time.time())
    url = f"sqlite:///{tmp_path / 'dfj.sqlite'}"
    await asyncio.to_thread(migrate.upgrade, url)
    remote = Remote()
    await remote.start()
    async with JiraSimulator(clock=clock, validate_responses=True) as sim:
        site = sim.add_site("acme")
        site.add_user(ALICE, "Alice Example")
        site.add_user(MALLORY, "Mallory Example", permissions=())
        db = Database(create_engine(url), clock=clock, owns_engine=True)
        bus = await LocalBus.open(tmp_path / "bus.sqlite")
        store = EnvSecretStore(
            {"DFJ_KEK": base64.b64encode(os.urandom(32)).decode()}, env_file=None
        )
        cipher = EnvelopeCipher(store, clock=clock)
        jira = JiraClient(
            app_key="discord-for-jira", oauth_url=sim.oauth_url, cipher=cipher, clock=clock
        )
        installations = Installations(db)
        forge = ForgeLifecycle(
            installations=installations,
            lifecycle=Lifecycle(installations=installations, bus=bus),
            jira=jira,
            connect_key=site.app_key,
        )
        try:
            yield World(clock, sim, site, remote, installations, bus, cipher, jira, forge)
        finally:
            await jira.close()
            await bus.close()
            await db.close()
    await remote.close()


async def test_installed_stores_the_installation_and_learns_the_site_url(world: World) -> None:
    inst = await world.install()
    await world.forge.installed(await world.event(), CTX)
    row = await world.row()
    assert row.client_key == inst.installation_id
    assert row.kind is InstallationKind.FORGE
    assert row.state is InstallationState.ENABLED
    assert (row.cloud_id, row.api_base_url) == (inst.cloud_id, inst.api_base_url)
    assert row.environment_id == inst.environment_id
    assert row.base_url == world.site.base_url.rstrip("/")
    assert (
        row.system_token_ciphertext
        and world.remote.tokens[-1].encode() not in row.system_token_ciphertext
    )
    calls = [c for c in world.sim.calls if c.template == "/rest/api/3/serverInfo"]
    assert calls and calls[-1].status == 200


async def test_the_app_calls_the_api_base_url_with_the_system_token(world: World) -> None:
    await world.install()
    await world.forge.installed(await world.event(), CTX)
    issue = world.site.create_issue(summary="Seen by the app")
    found = await world.jira.as_app(await world.row()).get_issue(issue.key, fields=["summary"])
    assert found["fields"]["summary"] == "Seen by the app"
    last = world.sim.calls[-1]
    assert last.status == 200 and last.account_id == world.site.app_user.account_id


async def test_users_act_with_cached_offline_tokens_and_jiras_permissions(world: World) -> None:
    await world.install()
    await world.forge.installed(await world.event(), CTX)
    row = await world.row()
    alice = world.jira.as_user(row, ALICE)
    assert (await alice.get_myself())["accountId"] == ALICE
    assert (await alice.get_myself())["accountId"] == ALICE
    mints = [r for r in world.sim.offline_token_requests if r.account_id == ALICE]
    assert len(mints) == 1, "minted once, then cached"
    issue = world.site.create_issue(summary="Private")
    mallory = world.jira.as_user(row, MALLORY)
    with pytest.raises(Exception) as caught:
        await mallory.get_issue(issue.key)
    assert type(caught.value).__name__ in {"JiraNotFound", "JiraForbidden"}


async def test_an_unknown_user_cannot_be_impersonated(world: World) -> None:
    await world.install()
    await world.forge.installed(await world.event(), CTX)
    with pytest.raises(JiraUnauthorized, match="cannot act as the user"):
        await world.jira.as_user(await world.row(), "557058:nobody").get_myself()


async def test_without_a_valid_system_token_the_job_waits(world: World) -> None:
    """No token, or one about to lapse: RateLimited, so the job is retried later."""
    inst = await world.install()
    await world.installations.save_forge(
        inst.installation_id, cloud_id=inst.cloud_id, api_base_url=inst.api_base_url
    )
    with pytest.raises(JiraTokenPending, match="no Forge system token yet") as caught:
        await world.jira.as_app(await world.row()).get_myself()
    assert isinstance(caught.value, RateLimited) and caught.value.retry_after > 0
    await world.forge.token(await world.event("jira.forge.token"), CTX)
    assert (await world.jira.as_app(await world.row()).get_myself())["accountId"]
    world.clock.advance(4 * 3600)
    with pytest.raises(JiraTokenPending, match="expired"):
        await world.jira.as_app(await world.row()).get_myself()
    with pytest.raises(JiraTokenPending):
        await world.jira.as_user(await world.row(), ALICE).get_myself()


async def test_the_freshest_token_wins_whatever_the_order(world: World) -> None:
    await world.install()
    first = await world.event()
    await world.forge.installed(first, CTX)
    stored = (await world.row()).system_token_expires_at
    world.clock.advance(3600 + 60)  # the simulator rotates once less than 2 h are left
    await world.sim.run_scheduled_trigger(world.installation)  # type: ignore[arg-type]
    fresher = await world.event("jira.forge.token")
    await world.forge.token(fresher, CTX)
    newer = (await world.row()).system_token_expires_at
    assert newer > stored
    webhook = Envelope(
        id="w", source="dfj-gateway", type="jira.webhook", data={"forge": dict(first.data)}
    )
    await world.forge.remember(webhook)  # an older token, arriving late
    assert (await world.row()).system_token_expires_at == newer


async def test_a_fresh_site_is_not_mistaken_for_a_connect_one(world: World) -> None:
    """Jira answers 404 for the reserved clientKey property: a new row, keyed by the ARI.

    (A site that really moves from Connect is proven end to end in
    tests/e2e/test_forge_migration.py, where the simulator has the Connect app installed.)
    """
    site = world.site
    await world.installations.save_connect(
        site.client_key,
        base_url=site.base_url,
        shared_secret_ciphertext=b"sealed-secret",
        app_key=site.app_key,
        state=InstallationState.ENABLED,
    )
    inst = await world.install()
    await world.forge.installed(await world.event(), CTX)
    keys = await world.installations.client_keys()
    assert sorted(keys) == sorted([site.client_key, inst.installation_id])
    connect = await world.installations.get(site.client_key)
    assert connect is not None and connect.kind is InstallationKind.CONNECT
    assert any(
        "properties/connect_client_key_" in c.path and c.status == 404 for c in world.sim.calls
    )


async def test_uninstalled_marks_the_site_and_asks_the_linker_to_purge(world: World) -> None:
    await world.install()
    await world.forge.installed(await world.event(), CTX)
    event = await world.event("jira.forge.uninstalled")
    await world.forge.uninstalled(event, CTX)
    assert (await world.row()).state is InstallationState.UNINSTALLED
    [purge] = await drain(world.bus, LINKER)
    assert purge.type == SITE_UNINSTALLED
    assert purge.data["clientKey"] == world.installation.installation_id  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"installationId": "x", "cloudId": "c"},
        {"installationId": "x", "cloudId": "c", "apiBaseUrl": "u", "systemToken": "plain"},
        {
            "installationId": "x",
            "cloudId": "c",
            "apiBaseUrl": "u",
            "systemToken": {"sealed": "!!", "expiresAt": 1},
        },
    ],
)
async def test_malformed_events_are_dead_lettered_with_a_reason(
    world: World, data: dict[str, Any]
) -> None:
    envelope = Envelope(id="bad", source="dfj-gateway", type="jira.forge.installed", data=data)
    with pytest.raises(MalformedMessage) as caught:
        await world.forge.installed(envelope, CTX)
    assert caught.value.reason == "ForgeField"


async def test_a_reinstall_within_retention_takes_the_sites_earlier_row_over(
    world: World,
) -> None:
    """Forge gives a re-install a new installation id; the site's kept data comes back."""
    first = await world.install()
    await world.forge.installed(await world.event(), CTX)
    await world.forge.uninstalled(await world.event("jira.forge.uninstalled"), CTX)
    await drain(world.bus, LINKER)
    await world.sim.uninstall_forge_app(first)
    second = await world.install()
    assert second.installation_id != first.installation_id
    assert second.cloud_id == first.cloud_id
    await world.forge.installed(await world.event(), CTX)
    rows = [await world.installations.get(k) for k in await world.installations.client_keys()]
    assert [(r.client_key, r.installation_id, r.state) for r in rows if r is not None] == [
        (first.installation_id, second.installation_id, InstallationState.ENABLED)
    ]


async def test_a_live_installation_of_the_same_site_is_not_taken_over(world: World) -> None:
    """Only a row kept after an uninstall is adopted; a live one (another app environment on
    the same site, say) keeps its own data, and an uninstalled row of another environment too.
    """
    other = "ari:cloud:ecosystem::installation/other-environment"
    await world.installations.save_forge(
        other,
        cloud_id=world.site.cloud_id,
        api_base_url="https://api.example/ex/jira/x",
        environment_id="ari:cloud:ecosystem::environment/app/other",
        state=InstallationState.ENABLED,
    )
    kept = "ari:cloud:ecosystem::installation/kept-of-another-environment"
    await world.installations.save_forge(
        kept,
        cloud_id=world.site.cloud_id,
        api_base_url="https://api.example/ex/jira/x",
        environment_id="ari:cloud:ecosystem::environment/app/another",
        state=InstallationState.UNINSTALLED,
    )
    inst = await world.install()
    await world.forge.installed(await world.event(), CTX)
    assert sorted(await world.installations.client_keys()) == sorted(
        [other, kept, inst.installation_id]
    )
    assert (await world.installations.get(other)).installation_id == other  # type: ignore[union-attr]


async def test_personal_data_is_reported_on_the_api_base_url_with_the_system_token(
    world: World,
) -> None:
    """Forge apps report the accounts they keep too: as the app, through ``apiBaseUrl``."""
    from dfj_jira_worker.reporting import REPORT_ACCOUNTS, Reporting

    inst = await world.install()
    await world.forge.installed(await world.event(), CTX)
    world.site.reporting.closed.add(MALLORY)
    reporting = Reporting(installations=world.installations, jira=world.jira, bus=world.bus)
    request = Envelope(
        id="report-1",
        source="dfj-linker",
        type=REPORT_ACCOUNTS,
        tenant=inst.installation_id,
        data={
            "clientKey": inst.installation_id,
            "accounts": [
                {"accountId": a, "updatedAt": "2026-11-30T10:00:00Z"} for a in (ALICE, MALLORY)
            ],
        },
    )
    await reporting.report(request, CTX)
    [answer] = await drain(world.bus, LINKER)
    assert answer.data["closed"] == [MALLORY]
    call = world.sim.calls[-1]
    assert call.path == "/app/report-accounts/" and call.status == 200


class GraphqlEdge:
    """Atlassian's GraphQL endpoint answering what a test scripts, on loopback."""

    def __init__(self) -> None:
        self.answer: tuple[int, bytes, dict[str, str]] = (200, b"{}", {})
        self.seen: list[tuple[str | None, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _graphql(self, request: web.Request) -> web.Response:
        self.seen.append((request.headers.get("Authorization"), await request.json()))
        status, body, headers = self.answer
        return web.Response(status=status, body=body, headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/graphql", self._graphql)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "match"),
    [
        (401, b"{}", {}, JiraTokenPending, "system token was refused"),
        (403, b"{}", {}, JiraTokenPending, "system token was refused"),
        (429, b"{}", {"Retry-After": "7"}, JiraRateLimited, "answered 429"),
        (503, b"{}", {}, JiraUnavailable, "answered 503"),
        (400, b"{}", {}, JiraUnavailable, "answered 400"),
        (200, b"not json", {}, JiraUnavailable, "no JSON"),
        (200, b'{"data": {}}', {}, JiraUnavailable, "without offlineUserAuthToken"),
        (
            200,
            b'{"data": {"offlineUserAuthToken": {"success": true, "authToken": {"token": "t"}}}}',
            {},
            JiraUnavailable,
            "usable ttl",
        ),
        (
            200,
            b'{"data": {"offlineUserAuthToken": {"success": false, "errors": [{"message": "x"}]}}}',
            {},
            JiraUnauthorized,
            "cannot act as the user",
        ),
    ],
)
async def test_what_the_graphql_api_refuses_becomes_the_matching_error(
    world: World,
    *,
    status: int,
    body: bytes,
    headers: dict[str, str],
    error: type[Exception],
    match: str,
) -> None:
    edge = GraphqlEdge()
    await edge.start()
    try:
        edge.answer = (status, body, headers)
        installation_id = "ari:cloud:ecosystem::installation/edge"
        token = "edge.system.token"
        sealed = await world.cipher.seal(
            token.encode(), aad=make_aad(installation_id, "forge-system-token")
        )
        row = await world.installations.save_forge(
            installation_id,
            cloud_id="c1",
            api_base_url=f"{edge.url}/ex/jira/c1",
            system_token_ciphertext=sealed,
            system_token_expires_at=datetime.fromtimestamp(world.clock.now() + 3 * 3600, UTC),
            state=InstallationState.ENABLED,
        )
        with pytest.raises(error, match=match) as caught:
            await world.jira.as_user(row, ALICE).get_myself()
        if error is JiraRateLimited:
            assert isinstance(caught.value, JiraRateLimited)
            assert caught.value.retry_after == 7
        [(authorization, sent)] = edge.seen
        assert authorization == f"Bearer {token}"
        assert sent["variables"]["input"] == {
            "contextIds": ["ari:cloud:jira::site/c1"],
            "userId": ALICE,
        }
        assert token not in str(caught.value)
    finally:
        await edge.close()
