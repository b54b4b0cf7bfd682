"""``/healthz`` and ``/readyz`` for the workers, on a tiny asyncio HTTP server.

``dfj_common`` does not depend on a web framework, and a liveness probe needs only a status
line: ``/healthz`` answers 200 while the event loop runs; ``/readyz`` runs every readiness
check (bus reachable, database reachable, …) with a timeout and answers 200 or 503 with the
names of the failing checks. The gateway serves the same two paths from its own aiohttp app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import structlog

__all__ = ["Check", "HealthServer", "run_checks"]

Check = Callable[[], Awaitable[None]]
_log: Final = structlog.get_logger("dfj.health")
_MAX_REQUEST: Final = 8192


async def run_checks(checks: Mapping[str, Check], *, timeout: float = 2.0) -> dict[str, str]:
    """Each check's outcome: ``ok``, or the kind of failure (never a message that may leak)."""

    async def one(check: Check) -> str:
        try:
            await asyncio.wait_for(check(), timeout)
        except TimeoutError:
            return "timeout"
        except Exception as exc:
            return f"error: {type(exc).__name__}"
        return "ok"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[n]) for n in names))
    return dict(zip(names, results, strict=True))


class HealthServer:
    """Serve the probes on ``host:port`` (port 0 picks a free one; see ``port``)."""

    def __init__(self, *, service: str, host: str, port: int, checks: Mapping[str, Check]) -> None:
        self._service = service
        self._host = host
        self._port = port
        self._checks = dict(checks)
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("health server is not running")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            if len(head) > _MAX_REQUEST:
                raise ValueError("request too large")
            method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            status, body = await self._answer(method, path.split("?", 1)[0])
        except (ValueError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            status, body = 400, {"error": "bad request"}
        payload = json.dumps(body).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
        writer.write(
            f"HTTP/1.1 {status} {reason.get(status, 'Service Unavailable')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + payload
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async def _answer(self, method: str, path: str) -> tuple[int, dict[str, object]]:
        if path not in ("/healthz", "/readyz"):
            return 404, {"error": "not found"}
        if method not in ("GET", "HEAD"):
            return 405, {"error": "method not allowed"}
        if path == "/healthz":
            return 200, {"status": "ok", "service": self._service}
        results = await run_checks(self._checks)
        ready = all(v == "ok" for v in results.values())
        if not ready:
            _log.warning("not ready", checks=results)
        return (200 if ready else 503), {
            "status": "ready" if ready else "not ready",
            "service": self._service,
            "checks": results,
        }
