"""Every request gets one log line; unknown routes and methods get JSON 404/405, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dfj_common.bus.local import LocalBus
from dfj_common.config import Settings
from dfj_common.secrets import EnvSecretStore
from dfj_common.storage import Database
from dfj_gateway.app import create_app
from dfj_gateway.middleware import note


@pytest.fixture(name="client")
async def _client(tmp_path: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    settings = Settings.from_env({}, env_file=None)
    bus = await LocalBus.open(tmp_path / "bus.sqlite")
    database = Database.open(f"sqlite:///{tmp_path / 'dfj.sqlite'}")
    app = create_app(
        settings, bus=bus, database=database, secrets=EnvSecretStore({}, env_file=None)
    )

    async def noted(request: web.Request) -> web.Response:
        note(request, tenant="client-1", event_id="evt-1")
        return web.json_response({"ok": True})

    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("a bug with a secret: hunter2")

    app.router.add_get("/test/noted", noted)
    app.router.add_get("/test/crash", crash)
    async with TestClient(TestServer(app)) as client:
        yield client
    await database.close()
    await bus.close()


async def test_unknown_route_is_json_404(client: TestClient[web.Request, web.Application]) -> None:
    """A path we do not serve is a 404 with a JSON reason."""
    resp = await client.get("/nope")
    assert resp.status == 404
    assert await resp.json() == {"error": "not found"}


async def test_wrong_method_is_json_405(client: TestClient[web.Request, web.Application]) -> None:
    """A known path with the wrong method is a 405 with a JSON reason."""
    resp = await client.post("/healthz", data=b"{}")
    assert resp.status == 405
    assert await resp.json() == {"error": "method not allowed"}


async def test_one_log_line_per_request_with_notes(
    client: TestClient[web.Request, web.Application],
) -> None:
    """The request line names route, method, status, latency and the handler's notes."""
    with structlog.testing.capture_logs() as logs:
        resp = await client.get("/test/noted")
    assert resp.status == 200
    lines = [e for e in logs if e["event"] == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["route"] == "/test/noted"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["tenant"] == "client-1"
    assert line["event_id"] == "evt-1"
    assert isinstance(line["ms"], float)


async def test_a_bug_answers_500_without_details(
    client: TestClient[web.Request, web.Application],
) -> None:
    """An unexpected exception gives a generic JSON 500; its text is not in the answer."""
    with structlog.testing.capture_logs() as logs:
        resp = await client.get("/test/crash")
    assert resp.status == 500
    body = await resp.text()
    assert "hunter2" not in body
    assert [e["status"] for e in logs if e["event"] == "request"] == [500]
