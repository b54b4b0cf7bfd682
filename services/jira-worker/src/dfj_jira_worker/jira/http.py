"""The one HTTP session of the process, and how a single request goes over it.

``aiohttp`` wants one ``ClientSession`` per process (it holds the connection pool); it is
made lazily, inside the running loop, the first time a call needs it, unless one is passed in
(then the caller keeps ownership). The pool is bounded in total and per host, so one slow site
cannot take every connection. Every request has a total time-out; redirects are not followed
(a redirect would carry our ``Authorization`` header somewhere we did not choose).

Each request logs one debug line: method, the route *template* (ids in the path at most,
never query values), status, milliseconds, tenant and whether we acted as the app or a user.
Headers, tokens and bodies are never logged. The line is skipped entirely when debug logging
is off, so it costs nothing on the hot path in production.

Bodies are read with a cap (16 MiB for answers, 64 KiB of an error body — enough for Jira's
``errorMessages``), so a misbehaving peer cannot exhaust memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final

import aiohttp
import structlog
from yarl import URL

from dfj_common.clock import Clock
from dfj_common.httpclient import LazySession, read_capped
from dfj_jira_worker.jira.errors import JiraError, JiraUnavailable

__all__ = ["MAX_BODY", "MAX_ERROR_BODY", "Answer", "Transport"]

LOGGER_NAME: Final = "dfj.jira_worker.jira"
MAX_BODY: Final = 16 * 1024 * 1024
MAX_ERROR_BODY: Final = 64 * 1024
_log: Final = structlog.get_logger(LOGGER_NAME)
_stdlib: Final = logging.getLogger(LOGGER_NAME)


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: status, the (capped) body and ``Retry-After`` if any."""

    status: int
    body: bytes = field(repr=False)
    retry_after: str | None = None
    cycle_period: str | None = None  # the Personal Data Reporting API's Cycle-Period


class Transport:
    """Sends requests over the process's session, with time-outs, caps and one log line each."""

    def __init__(
        self,
        *,
        clock: Clock,
        timeout: float,
        user_agent: str,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
        max_connections_per_host: int = 16,
    ) -> None:
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._user_agent = user_agent
        self._http = LazySession(
            name="Jira",
            timeout=timeout,
            session=session,
            max_connections=max_connections,
            max_connections_per_host=max_connections_per_host,
        )

    def session(self) -> aiohttp.ClientSession:
        """The session, made on first use (it must be made inside the running loop)."""
        return self._http.get()

    async def send(
        self,
        method: str,
        url: URL,
        *,
        authorization: str | None,
        body: bytes | None,
        content_type: str,
        route: str,
        tenant: str,
        actor: str,
    ) -> Answer:
        """One request; :class:`JiraUnavailable` when it times out or cannot connect."""
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        if authorization is not None:
            headers["Authorization"] = authorization
        if body is not None:
            headers["Content-Type"] = content_type
        started = self._clock.monotonic()
        try:
            async with self.session().request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                ok = 200 <= status < 300
                payload, complete = await read_capped(response, MAX_BODY if ok else MAX_ERROR_BODY)
                retry_after = response.headers.get("Retry-After")
                cycle_period = response.headers.get("Cycle-Period")
        except TimeoutError as exc:
            self._trace(
                method=method,
                route=route,
                status=None,
                started=started,
                tenant=tenant,
                actor=actor,
                error="timeout",
            )
            raise JiraUnavailable(f"Jira timed out on {method} {route}") from exc
        except aiohttp.ClientError as exc:
            self._trace(
                method=method,
                route=route,
                status=None,
                started=started,
                tenant=tenant,
                actor=actor,
                error=type(exc).__name__,
            )
            raise JiraUnavailable(
                f"Jira unreachable on {method} {route}: {type(exc).__name__}"
            ) from exc
        self._trace(
            method=method,
            route=route,
            status=status,
            started=started,
            tenant=tenant,
            actor=actor,
            error=None,
        )
        if ok and not complete:
            raise JiraError(
                f"Jira's answer to {method} {route} is larger than {MAX_BODY} bytes",
                status=status,
                reason="JiraResponseTooLarge",
            )
        return Answer(status, payload, retry_after, cycle_period)

    def _trace(
        self,
        *,
        method: str,
        route: str,
        status: int | None,
        started: float,
        tenant: str,
        actor: str,
        error: str | None,
    ) -> None:
        if not _stdlib.isEnabledFor(logging.DEBUG):
            return
        elapsed = round((self._clock.monotonic() - started) * 1000.0, 1)
        if error is None:
            _log.debug(
                "jira call",
                method=method,
                path=route,
                status=status,
                ms=elapsed,
                tenant=tenant,
                actor=actor,
            )
        else:
            _log.debug(
                "jira call failed",
                method=method,
                path=route,
                error=error,
                ms=elapsed,
                tenant=tenant,
                actor=actor,
            )

    async def close(self) -> None:
        """Close the session if it is ours; further calls raise."""
        await self._http.close()
