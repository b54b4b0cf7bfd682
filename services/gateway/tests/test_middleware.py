"""Every request gets one log line; unknown routes and methods get JSON 404/405, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from dfj_common.bus.local import LocalBus
from dfj_common.config import Settings
from dfj_common.secrets import EnvSecretStore
from dfj_common.storage import Database
from dfj_gateway.app import create_app
from dfj_gateway.middleware import add_route, note


@pytest.fixture(name="app")
async def _app(tmp_path: Path) -> AsyncIterator[web.Application]:
    bus = await LocalBus.open(tmp_path / "bus.sqlite")
    database = Database.open(f"sqlite:///{tmp_path / 'dfj.sqlite'}")
    yield create_app(
        Settings.from_env({}, env_file=None),
        bus=bus,
        database=database,
        secrets=EnvSecretStore({}, env_file=None),
    )
    await database.close()
    await bus.close()


@pytest.fixture(name="client")
async def _client(app: web.Application) -> AsyncIterator[TestClient[web.Request, web.Application]]:

    async def noted(request: web.Request) -> web.Response:
        note(request, tenant="client-1", event_id="evt-1")
        return web.json_response({"ok": True})

    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("a bug with a secret: hunter2")

    async def too_big(request: web.Request) -> web.Response:
        raise web.HTTPRequestEntityTooLarge(max_size=1, actual_size=2)

    add_route(app, "GET", "/test/noted", noted)
    add_route(app, "GET", "/test/crash", crash)
    add_route(app, "GET", "/test/too-big", too_big)
    async with TestClient(TestServer(app)) as client:
        yield client


async def _request_lines(
    client: TestClient[web.Request, web.Application], method: str, path: str
) -> tuple[ClientResponse, list[MutableMapping[str, Any]]]:
    """The response to one request, and the request log lines it wrote."""
    with structlog.testing.capture_logs() as logs:
        resp = await client.request(method, path)
        await resp.read()
    return resp, [e for e in logs if e["event"] == "request"]


async def test_unknown_route_is_json_404(client: TestClient[web.Request, web.Application]) -> None:
    """A path we do not serve is a 404 with a JSON reason."""
    resp = await client.get("/nope")
    assert resp.status == 404
    assert await resp.json() == {"error": "not found"}


async def test_wrong_method_is_json_405(client: TestClient[web.Request, web.Application]) -> None:
    """A known path with the wrong method is a 405 with a JSON reason."""
    with structlog.testing.capture_logs() as logs:
        resp = await client.post("/healthz", data=b"{}")
    assert resp.status == 405
    assert await resp.json() == {"error": "method not allowed"}
    assert resp.headers["Allow"] == "GET,HEAD"  # RFC 9110: a 405 names what is allowed
    assert [(e["route"], e["status"]) for e in logs if e["event"] == "request"] == [
        ("unmatched", 405)
    ]


async def test_unknown_route_with_any_method_is_404_and_logged(
    client: TestClient[web.Request, web.Application],
) -> None:
    """What no route matches, by path, is a 404 whatever the method, with its log line."""
    with structlog.testing.capture_logs() as logs:
        for method in ("GET", "POST", "DELETE", "PATCH"):
            resp = await client.request(method, "/discord/interactions/extra")
            assert resp.status == 404, method
            assert "Allow" not in resp.headers
    assert [(e["route"], e["method"], e["status"]) for e in logs if e["event"] == "request"] == [
        ("unmatched", m, 404) for m in ("GET", "POST", "DELETE", "PATCH")
    ]


async def test_head_where_get_is_served(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.head("/healthz")
    assert resp.status == 200


async def test_an_aiohttp_error_in_a_handler_is_json(
    client: TestClient[web.Request, web.Application],
) -> None:
    """aiohttp's own HTTP errors raised under a handler get our JSON shape and a log line."""
    resp, lines = await _request_lines(client, "GET", "/test/too-big")
    assert resp.status == 413
    assert await resp.json() == {"error": "request entity too large"}
    assert [e["status"] for e in lines] == [413]


async def test_one_log_line_per_request_with_notes(
    client: TestClient[web.Request, web.Application],
) -> None:
    """The request line names route, method, status, latency and the handler's notes."""
    resp, lines = await _request_lines(client, "GET", "/test/noted")
    assert resp.status == 200
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


async def test_a_route_added_without_add_route_stops_the_app_starting(
    app: web.Application,
) -> None:
    """A handler registered on the router directly would have no log line and no 500 guard."""

    async def unlogged(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/test/unlogged", unlogged)
    with pytest.raises(RuntimeError, match=r"GET /test/unlogged"):
        async with TestClient(TestServer(app)):
            pass
