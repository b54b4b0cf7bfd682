"""Reading a byte stream with a hard cap, so no peer can make us buffer more than we allow."""

from __future__ import annotations

from aiohttp import StreamReader

__all__ = ["TooLarge", "read_capped"]


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
