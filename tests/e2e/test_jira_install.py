"""A Jira site installs, enables, sends a webhook and uninstalls, through gateway and jira-worker.

The gateway verifies each callback as Jira signs it (RS256 signed install with the key served by
the sandbox key server, HS256 with the shared secret afterwards) and publishes; the jira-worker
runtime consumes ``jira-events`` and keeps the installation. Only then can the gateway verify
the site's HS256 calls: this is the loop that makes a site usable.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dfj_common.bus import JIRA_EVENTS, LINKER
from dfj_common.bus.local import LocalBus
from dfj_common.config import Settings
from dfj_common.envelope import Envelope
from dfj_common.secrets import EnvSecretStore
from dfj_common.service import serve
from dfj_common.storage import Database, Installations, InstallationState
from dfj_common.storage.migrate import upgrade
from dfj_gateway.app import create_app
from dfj_jira_worker.bootstrap import bootstrap
from dfj_sandbox.jira_signing import (
    InstallKeyPair,
    InstallKeyServer,
    auth_header,
    installed_payload,
    sign_install,
    sign_request,
)

CLIENT_KEY = "e2e-client-key-0001"
SITE = "https://e2e-site.atlassian.net"
SECRET = "e2e-shared-secret-that-is-long-enough-000"


@dataclass
class World:
    client: TestClient[web.Request, web.Application]
    keys: InstallKeyPair
    settings: Settings
    installations: Installations
    bus: LocalBus


@pytest.fixture(name="world")
async def _world(tmp_path: Path) -> AsyncIterator[World]:
    keys = InstallKeyPair.generate()
    async with InstallKeyServer([keys]) as key_server:
        url = f"sqlite:///{tmp_path / 'dfj.sqlite'}"
        await asyncio.to_thread(upgrade, url)
        settings = Settings.from_env(
            {
                "DFJ_PUBLIC_URL": "https://dfj.example.test",
                "DFJ_ATLASSIAN_INSTALL_KEYS_URL": key_server.url,
                "DFJ_JIRA_WORKER_PORT": "0",
                "DFJ_DRAIN_GRACE_SECONDS": "2",
            },
            env_file=None,
        )
        environ = {"DFJ_KEK": base64.b64encode(os.urandom(32)).decode()}
        secrets = EnvSecretStore(environ, env_file=None)
        bus = await LocalBus.open(tmp_path / "bus.sqlite", poll_interval=0.05)
        database = Database.open(url)
        worker = await bootstrap(settings, bus=bus, database=database, environ=environ)
        stop = asyncio.Event()
        running = asyncio.ensure_future(serve(worker, stop))
        app = create_app(settings, bus=bus, database=database, secrets=secrets)
        try:
            async with TestClient(TestServer(app)) as client:
                yield World(client, keys, settings, Installations(database), bus)
        finally:
            stop.set()
            await running
            await database.close()
            await bus.close()


async def lifecycle(world: World, event: str, *, signed_install: bool, secret: str = SECRET) -> int:
    path = f"/jira/lifecycle/{event}"
    body = installed_payload(
        client_key=CLIENT_KEY,
        base_url=SITE,
        app_key=world.settings.app_key,
        shared_secret=secret if event == "installed" else None,
        event_type=event,
    )
    if signed_install:
        token = sign_install(
            world.keys,
            client_key=CLIENT_KEY,
            audience=world.settings.public_url,
            path=path,
            now=time.time(),
        )
    else:
        token = sign_request(
            secret, client_key=CLIENT_KEY, method="POST", path=path, now=time.time()
        )
    resp = await world.client.post(
        path,
        data=json.dumps(body),
        headers={**auth_header(token), "Content-Type": "application/json"},
    )
    return resp.status


async def webhook(world: World, identifier: str) -> int:
    path = "/jira/webhooks/issue-updated"
    body = {
        "webhookEvent": "jira:issue_updated",
        "timestamp": int(time.time() * 1000),
        "issue": {"id": "10001", "key": "E2E-1", "fields": {"project": {"id": "1", "key": "E2E"}}},
    }
    token = sign_request(SECRET, client_key=CLIENT_KEY, method="POST", path=path, now=time.time())
    resp = await world.client.post(
        path,
        data=json.dumps(body),
        headers={
            **auth_header(token),
            "Content-Type": "application/json",
            "X-Atlassian-Webhook-Identifier": identifier,
        },
    )
    return resp.status


async def state_becomes(world: World, state: InstallationState, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = await world.installations.get(CLIENT_KEY)
        if found is not None and found.state is state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"installation never became {state.value}")


async def test_a_site_installs_enables_notifies_and_uninstalls(world: World) -> None:
    """Install → stored sealed; enable → enabled; webhook accepted; uninstall → purge asked."""
    assert await lifecycle(world, "installed", signed_install=True) == 204
    await state_becomes(world, InstallationState.INSTALLED)
    stored = await world.installations.get(CLIENT_KEY)
    assert stored is not None
    assert stored.base_url == SITE
    assert stored.shared_secret_ciphertext is not None
    assert SECRET.encode() not in stored.shared_secret_ciphertext  # sealed, never plain

    assert await lifecycle(world, "enabled", signed_install=False) == 204
    await state_becomes(world, InstallationState.ENABLED)
    assert await webhook(world, "e2e-hook-1") == 204

    assert await lifecycle(world, "uninstalled", signed_install=True) == 204
    await state_becomes(world, InstallationState.UNINSTALLED)
    purge = await world.bus.receiver(LINKER).receive(1, timeout=5)
    assert len(purge) == 1
    envelope = Envelope.decode(purge[0].body)
    assert envelope.type == "tenant.uninstalled"
    assert envelope.data["clientKey"] == CLIENT_KEY
    await purge[0].complete()
    # After the uninstall the site's own secret no longer opens the door.
    await asyncio.sleep(5.1)  # the gateway's read cache of the installation ages out
    assert await webhook(world, "e2e-hook-2") == 401


async def test_reinstall_overwrites_the_secret(world: World) -> None:
    """A re-install's new secret replaces the old one, and the worker leaves no message behind."""
    assert await lifecycle(world, "installed", signed_install=True) == 204
    await state_becomes(world, InstallationState.INSTALLED)
    first = await world.installations.get(CLIENT_KEY)
    rotated = "e2e-rotated-shared-secret-long-enough-0001"
    assert await lifecycle(world, "installed", signed_install=True, secret=rotated) == 204
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        again = await world.installations.get(CLIENT_KEY)
        assert first is not None and again is not None
        if again.shared_secret_ciphertext != first.shared_secret_ciphertext:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the re-install's secret was not stored")
    # The gateway now verifies the site's calls with the new secret.
    assert await lifecycle(world, "enabled", signed_install=False, secret=rotated) == 204
    await state_becomes(world, InstallationState.ENABLED)
    stats = {s.queue: s for s in await world.bus.stats()}[JIRA_EVENTS]
    assert (stats.active, stats.dead_lettered) == (0, 0)


async def test_enabled_right_after_installed_is_not_lost(world: World) -> None:
    """Jira's back-to-back installed + enabled both succeed, in that order, with no wait."""
    assert await lifecycle(world, "installed", signed_install=True) == 204
    assert await lifecycle(world, "enabled", signed_install=False) == 204
    await state_becomes(world, InstallationState.ENABLED)
