"""HTTP client plumbing shared by the workers that call a remote API (Jira, Discord).

- :class:`LazySession`: one ``aiohttp`` session per client, made on first use (inside the
  running loop, as aiohttp requires), with a connection pool sized per host, closed only if
  it was made here.
- :func:`read_capped`: a body read up to a cap, so a broken or hostile upstream cannot make a
  worker buffer without bound.
"""

from __future__ import annotations

import aiohttp

__all__ = ["LazySession", "read_capped"]


class LazySession:
    """The process's session for one remote API, made when first needed."""

    def __init__(
        self,
        *,
        name: str,
        timeout: float,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
        max_connections_per_host: int = 50,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._name = name
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None
        self._limits = (max_connections, max_connections_per_host)
        self._closed = False

    def get(self) -> aiohttp.ClientSession:
        """The session (``RuntimeError`` once closed)."""
        if self._closed:
            raise RuntimeError(f"the {self._name} client is closed")
        if self._session is None:
            total, per_host = self._limits
            connector = aiohttp.TCPConnector(
                limit=total, limit_per_host=per_host, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, raise_for_status=False
            )
        return self._session

    async def close(self) -> None:
        """Close the session if it is ours; further use raises."""
        self._closed = True
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None


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
