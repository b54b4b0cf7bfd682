"""The workers' HTTP plumbing: a lazily made session, and capped body reads, over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from dfj_common.httpclient import LazySession, read_capped


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def sized(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.match_info["n"]))

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length to trust
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"y" * 100)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/sized/{n}", sized)
    app.router.add_get("/streamed", streamed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def test_bodies_are_read_up_to_the_cap(server: str) -> None:
    http = LazySession(name="Test", timeout=5.0)
    try:
        async with http.get().get(f"{server}/sized/10") as response:
            assert await read_capped(response, 64) == (b"x" * 10, True)
        async with http.get().get(f"{server}/sized/100") as response:
            assert await read_capped(response, 64) == (b"x" * 64, False)
        async with http.get().get(f"{server}/streamed") as response:
            body, complete = await read_capped(response, 250)
            assert (len(body), complete) == (250, False)
        async with http.get().get(f"{server}/streamed") as response:
            assert await read_capped(response, 5000) == (b"y" * 1000, True)
    finally:
        await http.close()
    with pytest.raises(RuntimeError, match="the Test client is closed"):
        http.get()


async def test_a_session_given_is_used_and_left_open() -> None:
    async with aiohttp.ClientSession() as own:
        http = LazySession(name="Test", timeout=1.0, session=own)
        assert http.get() is own
        await http.close()
        assert not own.closed, "the caller's session is the caller's to close"
    made = LazySession(name="Test", timeout=1.0)
    session = made.get()
    assert made.get() is session, "one session per client"
    await made.close()
    assert session.closed


def test_a_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LazySession(name="Test", timeout=0)
