"""The gateway's composition root: probes over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dfj_common.bus.local import LocalBus
from dfj_common.config import Settings
from dfj_gateway.app import create_app


@pytest.fixture(name="settings")
def _settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {
            "DFJ_BUS_PATH": str(tmp_path / "bus.sqlite"),
            "DFJ_DATABASE_URL": f"sqlite:///{tmp_path / 'dfj.sqlite'}",
        },
        env_file=None,
    )


@pytest.fixture(name="client")
async def _client(settings: Settings) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


async def test_healthz(client: TestClient[web.Request, web.Application]) -> None:
    """/healthz answers 200 while the process runs."""
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["service"] == "gateway"


async def test_readyz_with_the_bus_it_opened(
    client: TestClient[web.Request, web.Application],
) -> None:
    """/readyz is 200 when the bus the app opened from settings answers."""
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["checks"] == {"bus": "ok", "database": "ok"}


async def test_readyz_is_503_when_the_bus_is_gone(settings: Settings) -> None:
    """A closed bus makes /readyz 503 naming the bus check."""
    bus = await LocalBus.open(settings.bus_path)
    async with TestClient(TestServer(create_app(settings, bus=bus))) as client:
        await bus.close()
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert (await resp.json())["checks"]["bus"].startswith("error")
