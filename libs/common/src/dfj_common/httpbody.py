"""Reading an HTTP client response's body without trusting its size.

Both workers call a remote API whose answers we parse; a body is read up to a cap so a broken
or hostile upstream cannot make a worker buffer without bound.
"""

from __future__ import annotations

import aiohttp

__all__ = ["read_capped"]


async def read_capped(response: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of the body, and whether that was all of it."""
    length = response.content_length
    if length is not None and length <= cap:
        return await response.read(), True
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        if size + len(chunk) > cap:
            chunks.append(chunk[: cap - size])
            return b"".join(chunks), False
        size += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks), True
