"""Bounded reads for every route: request bodies with a hard cap, local lookups with a deadline.

No peer may make the gateway buffer more than a route allows, and no slow database read may
hold up an answer that Discord expects within 3 seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, Final, TypeVar

import orjson
import structlog
from aiohttp import StreamReader, web
from sqlalchemy.exc import SQLAlchemyError

from dfj_common.errors import DfjError
from dfj_gateway.middleware import note

__all__ = [
    "Rejected",
    "TooLarge",
    "bounded",
    "has_content_type",
    "json_object",
    "read_body",
    "read_capped",
]

T = TypeVar("T")
_log: Final = structlog.get_logger("dfj.gateway.reads")


class TooLarge(Exception):
    """The stream held more than the cap."""


class Rejected(Exception):
    """A request refused with ``status`` and a short ``reason`` (the route answers it)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def has_content_type(request: web.Request, expected: str) -> bool:
    """Whether the request's ``Content-Type`` is ``expected`` (lower case), parameters aside.

    Cheaper than ``request.content_type``, which parses the header's parameters on every
    request; and a request without the header is not taken for the default type.
    """
    header = request.headers.get("Content-Type")
    return header is not None and header.partition(";")[0].strip().lower() == expected


async def read_body(request: web.Request, *, max_body: int, content_type: str | None) -> bytes:
    """The body of a route that takes at most ``max_body`` bytes of ``content_type``.

    Checked in this order, before anything is parsed: the declared length (413), the content
    type (415), then the bytes actually sent (413 as soon as they pass the cap).
    """
    length = request.content_length
    if length is not None and length > max_body:
        raise Rejected(413, "body too large")
    if content_type is not None and not has_content_type(request, content_type):
        raise Rejected(415, f"content type must be {content_type}")
    try:
        return await read_capped(request.content, max_body)
    except TooLarge as exc:
        raise Rejected(413, "body too large") from exc


def json_object(body: bytes) -> Mapping[str, Any]:
    """``body`` parsed as a JSON object; 400 for anything else (bad UTF-8, deep nesting too)."""
    try:
        parsed = orjson.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Rejected(400, "body is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise Rejected(400, "body is not a JSON object")
    return parsed


async def read_capped(stream: StreamReader, limit: int) -> bytes:
    """All of ``stream``, or :class:`TooLarge` as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if stream.at_eof():  # all read: no further read just to be told so (the usual case)
            return b"".join(chunks)
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
