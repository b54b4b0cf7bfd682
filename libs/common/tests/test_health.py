"""The workers' probes: /healthz while alive, /readyz reflecting every check."""

from __future__ import annotations

import asyncio
import json

from dfj_common.health import HealthServer, run_checks


async def fetch(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, object]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def ok() -> None:
    return None


async def broken() -> None:
    raise ConnectionRefusedError("db down at 10.0.0.1 with password hunter2")


async def slow() -> None:
    await asyncio.sleep(10)


async def test_healthz_and_readyz() -> None:
    """healthz is 200; readyz is 200 only when every check passes."""
    async with HealthServer(service="t", host="127.0.0.1", port=0, checks={"bus": ok}) as srv:
        assert (await fetch(srv.port, "/healthz"))[0] == 200
        status, body = await fetch(srv.port, "/readyz")
        assert status == 200
        assert body["checks"] == {"bus": "ok"}


async def test_failing_check_gives_503_without_details() -> None:
    """A failing check makes readyz 503, naming the check and error kind but not its message."""
    checks = {"bus": ok, "db": broken}
    async with HealthServer(service="t", host="127.0.0.1", port=0, checks=checks) as srv:
        status, body = await fetch(srv.port, "/readyz")
    assert status == 503
    assert body["checks"] == {"bus": "ok", "db": "error: ConnectionRefusedError"}
    assert "hunter2" not in json.dumps(body)


async def test_hanging_check_times_out() -> None:
    """A check that hangs is reported as a timeout instead of hanging the probe."""
    assert await run_checks({"slow": slow}, timeout=0.05) == {"slow": "timeout"}


async def test_unknown_paths_methods_and_garbage() -> None:
    """Other paths are 404, other methods 405, and a garbage request 400."""
    async with HealthServer(service="t", host="127.0.0.1", port=0, checks={}) as srv:
        assert (await fetch(srv.port, "/nope"))[0] == 404
        assert (await fetch(srv.port, "/healthz", "POST"))[0] == 405
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"garbage\r\n\r\n")
        await writer.drain()
        raw = await reader.read()
        writer.close()
        await writer.wait_closed()
    assert raw.startswith(b"HTTP/1.1 400")
