"""The one HTTP session of the process, and how a single request goes over it.

``aiohttp`` wants one ``ClientSession`` per process (it holds the connection pool). It is made
lazily, inside the running loop, on first use, unless one is passed in (then the caller keeps
ownership). The pool is bounded in total and per host; every request has a total time-out;
redirects are not followed (a redirect would carry the bot token somewhere we did not
choose). Bodies are read with a cap, so a misbehaving peer cannot exhaust memory.

A failure to get an answer becomes :class:`DiscordUnavailable` naming the route *template*
and the kind of failure. The aiohttp exception is chained only when the URL holds no token:
some of aiohttp's exceptions print the URL, and an interaction webhook's URL contains the
interaction token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import aiohttp
from yarl import URL

from dfj_common.httpclient import LazySession, read_capped
from dfj_discord_worker.discord.errors import DiscordUnavailable
from dfj_discord_worker.discord.routes import Route

__all__ = ["MAX_BODY", "MAX_ERROR_BODY", "Answer", "Transport"]

MAX_BODY: Final = 8 * 1024 * 1024
MAX_ERROR_BODY: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: status, headers (case-insensitive) and the capped body."""

    status: int
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)


class Transport:
    """Sends requests over the process's session, with a time-out and a body cap."""

    def __init__(
        self,
        *,
        timeout: float,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
        max_connections_per_host: int = 50,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http = LazySession(
            name="Discord",
            timeout=timeout,
            session=session,
            max_connections=max_connections,
            max_connections_per_host=max_connections_per_host,
        )

    def session(self) -> aiohttp.ClientSession:
        """The session, made on first use (it must be made inside the running loop)."""
        return self._http.get()

    async def send(
        self, route: Route, url: URL, *, headers: Mapping[str, str], body: bytes | None
    ) -> Answer:
        """One request; :class:`DiscordUnavailable` when it times out or cannot connect."""
        try:
            async with self.session().request(
                route.method,
                url,
                data=body,
                headers=dict(headers),
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                ok = 200 <= response.status < 300
                payload, complete = await read_capped(response, MAX_BODY if ok else MAX_ERROR_BODY)
                answer = Answer(response.status, response.headers, payload)
        except TimeoutError as exc:
            failure = DiscordUnavailable(f"Discord timed out on {route.key}")
            raise failure from (None if route.has_secret else exc)
        except aiohttp.ClientError as exc:
            failure = DiscordUnavailable(
                f"Discord unreachable on {route.key}: {type(exc).__name__}"
            )
            raise failure from (None if route.has_secret else exc)
        if ok and not complete:
            raise DiscordUnavailable(
                f"Discord's answer to {route.key} is larger than {MAX_BODY} bytes",
                status=answer.status,
            )
        return answer

    async def close(self) -> None:
        """Close the session if it is ours; further calls raise."""
        await self._http.close()
