"""The discord-worker's Discord REST client: typed calls, kept within the rate limits.

Make one :class:`DiscordClient` per process (``DiscordClient.from_settings``) and close it
on shutdown. Each call goes:

1. through the :class:`~.limiter.RateLimiter` (its bucket, the global 50/s for bot routes,
   the invalid-request budget) — waiting there *before* sending is what keeps 429s away;
2. over the one HTTP session (:mod:`.http`) with ``User-Agent: DiscordBot (url, version)``,
   JSON bodies, and ``Authorization: Bot <token>`` on bot routes only — interaction
   webhooks authenticate with the token in their URL and get no ``Authorization``;
3. back through the limiter, which learns the bucket from the answer's headers.

Then, by status:

- 2xx → the decoded JSON (``None`` for 204 or an empty body);
- 429 → re-queued at the front of its bucket after ``retry_after``, a few times; a wait
  longer than the limiter's ``max_wait``, or too many 429s in a row, raises
  :class:`DiscordRateLimited` so the bus can retry later. A 429 from Discord's edge (not
  JSON: a ban) raises at once;
- 5xx, time-outs, connection errors → retried with exponential back-off and jitter (on the
  injected sleep), then :class:`DiscordUnavailable`;
- any other 4xx → :class:`DiscordError` and its subclasses, with Discord's error code.

Retried POSTs are safe for messages only when the body carries ``nonce`` and
``enforce_nonce`` (Discord then returns the message it already made); the delivery code
sets them from the bus message id.

Logs name the route template and the major parameter (a token shows only as a digest),
never the URL; the bot token and interaction tokens never reach a log line.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Any, Final

import aiohttp
import structlog
from yarl import URL

from dfj_common.clock import Clock, SystemClock
from dfj_common.config import Secret, Settings
from dfj_common.retry import ExponentialBackOff
from dfj_discord_worker.discord import routes
from dfj_discord_worker.discord.errors import (
    DiscordError,
    DiscordRateLimited,
    DiscordUnavailable,
    error_for_status,
)
from dfj_discord_worker.discord.headers import RateLimitInfo, parse_rate_limit
from dfj_discord_worker.discord.http import Transport
from dfj_discord_worker.discord.limiter import LimiterPolicy, Permit, RateLimiter, Sleep
from dfj_discord_worker.discord.routes import ParamValue, Route

__all__ = [
    "DEFAULT_PROJECT_URL",
    "DiscordClient",
    "JsonObject",
    "Upload",
    "multipart_body",
    "user_agent",
]

LOGGER_NAME: Final = "dfj.discord_worker.discord"
DEFAULT_PROJECT_URL: Final = "https://github.com/discord-for-jira/discord-for-jira"
_log: Final = structlog.get_logger(LOGGER_NAME)
_stdlib: Final = logging.getLogger(LOGGER_NAME)
_JSON: Final = "application/json"

JsonObject = dict[str, Any]


def user_agent(project_url: str = DEFAULT_PROJECT_URL) -> str:
    """``DiscordBot (url, version)``, the form Discord requires of every client."""
    try:
        release = version("dfj-discord-worker")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        release = "0.0.0"
    return f"DiscordBot ({project_url}, {release})"


def _encode(body: Any) -> bytes:
    return jsonlib.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class DiscordClient:
    """Discord REST for the discord-worker (see the module docstring)."""

    def __init__(
        self,
        *,
        api_url: str,
        bot_token: Secret | None,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        limiter: RateLimiter | None = None,
        policy: LimiterPolicy | None = None,
        timeout: float = 15.0,
        backoff: ExponentialBackOff | None = None,
        max_attempts: int = 4,
        max_rate_limit_retries: int = 5,
        session: aiohttp.ClientSession | None = None,
        project_url: str = DEFAULT_PROJECT_URL,
        max_connections: int = 100,
        max_connections_per_host: int = 50,
    ) -> None:
        if max_attempts < 1 or max_rate_limit_retries < 0:
            raise ValueError("need max_attempts >= 1 and max_rate_limit_retries >= 0")
        if limiter is not None and policy is not None:
            raise ValueError("pass a limiter or a policy, not both")
        self._base = URL(api_url.rstrip("/"))
        self._token = bot_token
        self._clock = clock
        self._sleep = sleep
        self._limiter = limiter or RateLimiter(clock=clock, sleep=sleep, policy=policy)
        self._backoff = backoff or ExponentialBackOff(base=0.5, factor=2.0, maximum=8.0)
        self._max_attempts = max_attempts
        self._max_rate_limit_retries = max_rate_limit_retries
        self._user_agent = user_agent(project_url)
        self._transport = Transport(
            timeout=timeout,
            session=session,
            max_connections=max_connections,
            max_connections_per_host=max_connections_per_host,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        session: aiohttp.ClientSession | None = None,
        policy: LimiterPolicy | None = None,
    ) -> DiscordClient:
        """The process's client: base URL and bot token from settings."""
        return cls(
            api_url=settings.discord_api_url,
            bot_token=settings.discord_bot_token,
            clock=clock or SystemClock(),
            sleep=sleep,
            session=session,
            policy=policy,
        )

    @property
    def limiter(self) -> RateLimiter:
        """The rate limiter (``expected_wait`` tells delivery when a channel is saturated)."""
        return self._limiter

    async def close(self) -> None:
        """Close the HTTP session if the client made it."""
        await self._transport.close()

    async def __aenter__(self) -> DiscordClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- typed calls -------------------------------------------------------------------------

    async def create_message(self, channel_id: str, body: Mapping[str, Any]) -> JsonObject:
        """``POST /channels/{channel_id}/messages`` (give ``nonce`` + ``enforce_nonce``)."""
        route = routes.CREATE_MESSAGE.compile(channel_id=channel_id)
        return _object(await self.send(route, json=body), route)

    async def edit_message(
        self, channel_id: str, message_id: str, body: Mapping[str, Any]
    ) -> JsonObject:
        """``PATCH /channels/{channel_id}/messages/{message_id}``."""
        route = routes.EDIT_MESSAGE.compile(channel_id=channel_id, message_id=message_id)
        return _object(await self.send(route, json=body), route)

    async def start_thread_from_message(
        self, channel_id: str, message_id: str, name: str, *, auto_archive_duration: int = 1440
    ) -> JsonObject:
        """``POST /channels/{channel_id}/messages/{message_id}/threads``: a public thread."""
        route = routes.START_THREAD_FROM_MESSAGE.compile(
            channel_id=channel_id, message_id=message_id
        )
        body = {"name": name, "auto_archive_duration": auto_archive_duration}
        return _object(await self.send(route, json=body), route)

    async def start_thread(
        self, channel_id: str, name: str, *, type: int = 11, auto_archive_duration: int = 1440
    ) -> JsonObject:
        """``POST /channels/{channel_id}/threads`` without a message (11 = public thread).

        Discord's default type is a *private* thread (12), hence the explicit 11 here.
        """
        route = routes.START_THREAD.compile(channel_id=channel_id)
        body = {"name": name, "type": type, "auto_archive_duration": auto_archive_duration}
        return _object(await self.send(route, json=body), route)

    async def create_dm(self, recipient_id: str) -> JsonObject:
        """``POST /users/@me/channels``: the DM channel with a user (made or found)."""
        route = routes.CREATE_DM.compile()
        return _object(await self.send(route, json={"recipient_id": recipient_id}), route)

    async def get_channel(self, channel_id: str) -> JsonObject:
        """``GET /channels/{channel_id}``."""
        route = routes.GET_CHANNEL.compile(channel_id=channel_id)
        return _object(await self.send(route), route)

    async def edit_original_response(
        self,
        application_id: str,
        token: str,
        body: Mapping[str, Any],
        *,
        files: Sequence[Upload] = (),
    ) -> JsonObject:
        """``PATCH /webhooks/{application_id}/{token}/messages/@original`` (no bot auth)."""
        route = routes.EDIT_ORIGINAL_RESPONSE.compile(
            application_id=application_id, interaction_token=token
        )
        return _object(await self.send(route, json=body, bot=False, files=files), route)

    async def create_followup(
        self,
        application_id: str,
        token: str,
        body: Mapping[str, Any],
        *,
        files: Sequence[Upload] = (),
    ) -> JsonObject:
        """``POST /webhooks/{application_id}/{token}``: a follow-up message (no bot auth)."""
        route = routes.CREATE_FOLLOWUP.compile(
            application_id=application_id, interaction_token=token
        )
        return _object(await self.send(route, json=body, bot=False, files=files), route)

    # -- generic calls -----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        route: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        query: Mapping[str, str] | None = None,
        json: Any = None,
        bot: bool = True,
    ) -> Any:
        """Any route: ``route`` is a template (``/channels/{channel_id}/messages``) filled
        from ``params``; ``query`` is the query string; ``bot=False`` for interaction
        webhooks (no ``Authorization``, exempt from the global limit)."""
        return await self.send(Route.of(method, route, params), query=query, json=json, bot=bot)

    async def send(
        self,
        route: Route,
        *,
        query: Mapping[str, str] | None = None,
        json: Any = None,
        bot: bool = True,
        files: Sequence[Upload] = (),
    ) -> Any:
        """Send a compiled route within the rate limits; see the module docstring.

        With ``files`` the request is ``multipart/form-data``: ``payload_json`` (``json`` plus
        an ``attachments`` entry per file) and ``files[n]``, as Discord takes uploads.
        """
        url, headers, body = self._prepare(route, query=query, json=json, bot=bot, files=files)
        failures = 0
        limited = 0
        attempt = 0
        permit: Permit | None = await self._limiter.acquire(route, bot=bot)
        try:
            while True:
                assert permit is not None
                attempt += 1
                started = self._clock.monotonic()
                try:
                    answer = await self._transport.send(route, url, headers=headers, body=body)
                except DiscordUnavailable as exc:
                    self._trace(route, None, started, attempt, None, error=str(exc))
                    self._limiter.release(permit)
                    permit = None
                    failures += 1
                    permit = await self._back_off(route, bot=bot, failures=failures, last=None)
                    continue
                info = parse_rate_limit(
                    answer.headers, status=answer.status, body=answer.body, now=self._clock.now()
                )
                self._trace(route, answer.status, started, attempt, info.bucket)
                held, permit = permit, None
                if answer.status == 429:
                    limited += 1
                    refusal = self._refusal(route, info, limited)
                    if refusal is None:
                        # Keep the bucket's turn through the wait: nobody behind overtakes.
                        permit = await self._limiter.requeue(held, status=429, info=info)
                        continue
                    self._limiter.complete(held, status=429, info=info)
                    raise refusal
                self._limiter.complete(held, status=answer.status, info=info)
                if 200 <= answer.status < 300:
                    return _decode(answer.status, answer.body, route)
                if answer.status < 500:
                    raise error_for_status(
                        answer.status, method=route.method, route=route.template, body=answer.body
                    )
                failures += 1
                permit = await self._back_off(route, bot=bot, failures=failures, last=answer.status)
        finally:
            if permit is not None:
                self._limiter.release(permit)

    async def _back_off(
        self, route: Route, *, bot: bool, failures: int, last: int | None
    ) -> Permit:
        """After a 5xx or no answer: give up at ``max_attempts``, else wait and re-queue."""
        if failures >= self._max_attempts:
            said = "no answer" if last is None else f"{last}"
            raise DiscordUnavailable(
                f"Discord failed {route.key} {failures} times (last: {said})", status=last
            )
        await self._sleep(self._backoff.delay(failures))
        return await self._limiter.acquire(route, bot=bot, front=True)

    def _prepare(
        self,
        route: Route,
        *,
        query: Mapping[str, str] | None,
        json: Any,
        bot: bool,
        files: Sequence[Upload] = (),
    ) -> tuple[URL, dict[str, str], bytes | None]:
        headers = {"User-Agent": self._user_agent, "Accept": _JSON}
        if bot:
            if not self._token:
                raise DiscordError(
                    f"no bot token configured for {route.key}",
                    status=None,
                    reason="DiscordBotTokenMissing",
                )
            headers["Authorization"] = "Bot " + self._token.reveal()
        body: bytes | None
        if files:
            content_type, body = multipart_body(json if json is not None else {}, files)
            headers["Content-Type"] = content_type
        else:
            body = None if json is None else _encode(json)
            if body is not None:
                headers["Content-Type"] = _JSON
        url = self._base.with_path(self._base.path + route.path, encoded=True)
        if query:
            url = url.with_query(query)
        return url, headers, body

    def _refusal(
        self, route: Route, info: RateLimitInfo, limited: int
    ) -> DiscordRateLimited | None:
        """The error to raise when a 429 should go back to the bus rather than be waited
        out here (an edge ban, a long wait, too many 429s in a row), else ``None``."""
        retry_after = info.retry_after
        if retry_after is None:
            retry_after = self._limiter.policy.default_retry_after
        scope = info.scope or ("global" if info.is_global else "user")
        if info.edge_ban:
            return DiscordRateLimited(
                f"Discord's edge refused {route.key} (invalid-request ban)",
                retry_after=max(retry_after, 60.0),
                scope="edge",
                banned=True,
            )
        if retry_after > self._limiter.policy.max_wait or limited > self._max_rate_limit_retries:
            return DiscordRateLimited(
                f"Discord rate limited {route.key} {limited} times (retry after "
                f"{retry_after:.1f}s, scope {scope})",
                retry_after=retry_after,
                scope=scope,
                is_global=info.is_global,
            )
        return None

    def _trace(
        self,
        route: Route,
        status: int | None,
        started: float,
        attempt: int,
        bucket: str | None,
        *,
        error: str | None = None,
    ) -> None:
        if not _stdlib.isEnabledFor(logging.DEBUG):
            return
        _log.debug(
            "discord call" if error is None else "discord call failed",
            method=route.method,
            route=route.template,
            major=route.major,
            status=status,
            attempt=attempt,
            bucket=bucket,
            error=error,
            ms=round((self._clock.monotonic() - started) * 1000.0, 1),
        )


def _decode(status: int, body: bytes, route: Route) -> Any:
    if status == 204 or not body.strip():
        return None
    try:
        return jsonlib.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise DiscordUnavailable(
            f"Discord's answer to {route.key} is not JSON", status=status
        ) from None


def _object(value: Any, route: Route) -> JsonObject:
    if not isinstance(value, dict):
        raise DiscordUnavailable(f"Discord's answer to {route.key} is not a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class Upload:
    """A file to attach: its name (as Discord shows it), media type and bytes."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)


_FILENAME: Final = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_MEDIA_TYPE: Final = re.compile(r"^[a-z]+/[a-z0-9.+-]+$")


def multipart_body(payload: Mapping[str, Any], files: Sequence[Upload]) -> tuple[str, bytes]:
    """The ``Content-Type`` and body of an upload (names and types are checked, not escaped)."""
    boundary = "dfj-" + secrets.token_hex(16)
    attachments = [*payload.get("attachments", ())]
    for index, upload in enumerate(files):
        if not _FILENAME.match(upload.filename) or not _MEDIA_TYPE.match(upload.content_type):
            raise ValueError(f"cannot upload {upload.filename!r} as {upload.content_type!r}")
        attachments.append({"id": str(index), "filename": upload.filename})
    parts = [
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="payload_json"\r\n'
            f"Content-Type: {_JSON}\r\n\r\n"
        ).encode()
        + _encode({**payload, "attachments": attachments})
        + b"\r\n"
    ]
    for index, upload in enumerate(files):
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files[{index}]"; '
            f'filename="{upload.filename}"\r\nContent-Type: {upload.content_type}\r\n\r\n'
        )
        parts.append(head.encode() + upload.data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)
