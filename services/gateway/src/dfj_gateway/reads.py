"""Bounded reads for every route: request bodies with a hard cap, local lookups with a deadline.

No peer may make the gateway buffer more than a route allows, and no slow database read may
hold up an answer that Discord expects within 3 seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Final, TypeVar

import structlog
from aiohttp import StreamReader, web
from sqlalchemy.exc import SQLAlchemyError

from dfj_common.errors import DfjError
from dfj_gateway.middleware import note

__all__ = ["TooLarge", "bounded", "read_capped"]

T = TypeVar("T")
_log: Final = structlog.get_logger("dfj.gateway.reads")


class TooLarge(Exception):
    """The stream held more than the cap."""


async def read_capped(stream: StreamReader, limit: int) -> bytes:
    """All of ``stream``, or :class:`TooLarge` as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)


async def bounded(
    request: web.Request, what: str, work: Awaitable[T], *, timeout: float
) -> tuple[bool, T | None]:
    """(True, result), or (False, None) when the read failed or took longer than ``timeout``.

    The failure is noted on the request's log line as ``degraded=<what>``; the caller answers
    without the data rather than not at all.
    """
    try:
        # asyncio.timeout, not wait_for: no extra task per read on the hot path.
        async with asyncio.timeout(timeout):
            return True, await work
    except (TimeoutError, DfjError, SQLAlchemyError, OSError, RuntimeError) as exc:
        _log.warning("local read failed", what=what, error=type(exc).__name__)
        note(request, degraded=what)
        return False, None
