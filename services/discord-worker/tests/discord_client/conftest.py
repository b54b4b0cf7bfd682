"""Virtual time for the limiter, and a small Discord of our own on loopback for the client.

:class:`VirtualTime` is the injected ``sleep``: a sleeper parks until the driver, once every
task is blocked, moves the shared ``ManualClock`` to the earliest wake-up and wakes it. So
concurrent coroutines see the same time line a real loop would, without waiting.

:class:`FakeDiscord` answers the routes the client uses the way Discord does, with code
written apart from the client's: fixed-window buckets per (bucket hash, major parameter) with
the ``X-RateLimit-*`` headers on every answer (two thread routes share one hash), the global
50 requests per second on bot routes, 429 bodies, ``nonce`` + ``enforce_nonce``
deduplication, and strict checks of ``User-Agent``, ``Content-Type`` and ``Authorization``
(``Bot <token>`` on bot routes, none on interaction webhooks). Anything wrong is answered 401
and noted in ``problems``, which teardown requires to be empty. Tests queue faults (a status
with a JSON body, a slow answer) with :meth:`FakeDiscord.inject`. Its windows run on the same
``ManualClock`` the client sleeps on, so "no 429" is decided on one time line.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import math
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from dfj_common.clock import ManualClock
from dfj_common.config import Secret
from dfj_common.retry import ExponentialBackOff
from dfj_discord_worker.discord import DiscordClient, LimiterPolicy

T = TypeVar("T")

NOW: Final = 1_800_000_000.0
# Shaped like a real bot token (base64 id . timestamp . HMAC), so the leak guard knows it.
BOT_TOKEN: Final = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789AB"
INTERACTION_TOKEN: Final = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OTpzZWNyZXQtdG9rZW4"
APPLICATION_ID: Final = "111111111111111111"
API_PREFIX: Final = "/api/v10"


# -- virtual time ------------------------------------------------------------------------------


class VirtualTime:
    """An injectable ``sleep`` on a ``ManualClock``, driven by :meth:`run`."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.slept: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)
        if delay <= 0:
            await asyncio.sleep(0)
            return
        waker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.clock.monotonic() + delay, next(self._order), waker))
        await waker

    async def _settle(self) -> None:
        """Yield until nothing is ready to run (every task is parked on something)."""
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)  # the selector loop's run queue
        for _ in range(100_000):
            await asyncio.sleep(0)
            if ready is not None and not ready:
                # One more lap: a callback may have been scheduled by the last one to run.
                await asyncio.sleep(0)
                if not ready:
                    return
        if ready is not None:
            raise AssertionError("the loop never went idle")

    async def run(self, *work: Awaitable[T]) -> list[T]:
        """Run ``work`` to the end, moving time forward only when every task is blocked."""
        tasks = [asyncio.ensure_future(item) for item in work]
        try:
            while True:
                await self._settle()
                if all(task.done() for task in tasks):
                    break
                while self._sleepers and self._sleepers[0][2].done():
                    heapq.heappop(self._sleepers)  # a cancelled sleeper
                if not self._sleepers:
                    raise AssertionError("deadlock: tasks are blocked and nobody sleeps")
                wake = self._sleepers[0][0]
                self.clock.advance(max(wake - self.clock.monotonic(), 0.0))
                while self._sleepers and self._sleepers[0][0] <= wake:
                    _, _, waker = heapq.heappop(self._sleepers)
                    if not waker.done():
                        waker.set_result(None)
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
        return [task.result() for task in tasks]


class AdvancingSleep:
    """An injectable ``sleep`` that moves the clock at once (for tests over real sockets)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.slept: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.slept.append(delay)
        if delay > 0:
            self.clock.advance(delay)
        await asyncio.sleep(0)


# -- the fake Discord --------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A bucket: ``limit`` requests per ``window`` seconds."""

    name: str
    limit: int
    window: float


@dataclass(frozen=True)
class FakeRoute:
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: Spec
    bot: bool
    handler: str


def _route(method: str, template: str, spec: Spec, handler: str, *, bot: bool = True) -> FakeRoute:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return FakeRoute(method, template, re.compile(f"^{regex}$"), spec, bot, handler)


MESSAGES: Final = Spec("b-msg-create", 5, 5.0)
EDITS: Final = Spec("b-msg-edit", 5, 5.0)
THREADS: Final = Spec("b-threads", 10, 10.0)  # both thread routes share it
CHANNELS: Final = Spec("b-channel-get", 10, 1.0)
DMS: Final = Spec("b-dm", 10, 10.0)
WEBHOOKS: Final = Spec("b-webhook", 5, 2.0)

ROUTES: Final = (
    _route("POST", "/channels/{channel_id}/messages", MESSAGES, "create_message"),
    _route("PATCH", "/channels/{channel_id}/messages/{message_id}", EDITS, "echo_message"),
    _route("POST", "/channels/{channel_id}/messages/{message_id}/threads", THREADS, "thread"),
    _route("POST", "/channels/{channel_id}/threads", THREADS, "thread"),
    _route("GET", "/channels/{channel_id}", CHANNELS, "channel"),
    _route("POST", "/users/@me/channels", DMS, "dm"),
    _route(
        "PATCH",
        "/webhooks/{application_id}/{token}/messages/@original",
        WEBHOOKS,
        "echo_message",
        bot=False,
    ),
    _route("POST", "/webhooks/{application_id}/{token}", WEBHOOKS, "echo_message", bot=False),
)


@dataclass
class Window:
    opened: float
    used: int = 0


@dataclass(frozen=True)
class Seen:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float
    status: int


@dataclass(frozen=True)
class Fault:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # real seconds, to provoke the client's time-out
    raw: bytes | None = None


@dataclass
class FakeDiscord:
    """See the module docstring."""

    clock: ManualClock
    bot_token: str = BOT_TOKEN
    global_limit: int = 50
    seen: list[Seen] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    faults: dict[tuple[str, str], deque[Fault]] = field(default_factory=dict)
    windows: dict[tuple[str, str], Window] = field(default_factory=dict)
    global_window: Window | None = None
    nonces: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    root: str = ""
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(900_000_000_000_000_000))

    @property
    def api_url(self) -> str:
        return self.root + API_PREFIX

    def inject(self, method: str, route: str, *faults: Fault) -> None:
        """Answer the next requests to ``method route`` (a fake route template) with these."""
        self.faults.setdefault((method, route), deque()).extend(faults)

    def statuses(self) -> list[int]:
        return [s.status for s in self.seen]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._handle)
        return app

    def _next_id(self) -> str:
        return str(next(self._ids))

    def _match(self, method: str, path: str) -> tuple[FakeRoute, dict[str, str]] | None:
        for candidate in ROUTES:
            found = candidate.pattern.match(path)
            if candidate.method == method and found:
                return candidate, found.groupdict()
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path[len(API_PREFIX) :]
        raw = await request.read()
        body: Any = json.loads(raw) if raw else None
        headers = dict(request.headers)
        matched = self._match(request.method, path)
        if matched is None:
            self.problems.append(f"unknown route {request.method} {path}")
            return self._record(
                request,
                path,
                headers,
                body,
                web.json_response({"message": "404: Not Found", "code": 0}, status=404),
            )
        route, params = matched
        problem = self._check(request, route, raw)
        if problem:
            self.problems.append(problem)
            return self._record(
                request,
                path,
                headers,
                body,
                web.json_response({"message": "401: Unauthorized", "code": 0}, status=401),
            )
        if route.bot:
            refused = self._global()
            if refused is not None:
                return self._record(request, path, headers, body, refused)
        major = params.get("channel_id") or (
            params.get("application_id", "") + "/" + params.get("token", "")
        )
        limited, limit_headers = self._bucket(route.spec, major)
        if limited is not None:
            return self._record(request, path, headers, body, limited)
        queue = self.faults.get((request.method, route.template))
        if queue:
            fault = queue.popleft()
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.raw is not None:
                answer = web.Response(status=fault.status, body=fault.raw, headers=fault.headers)
            else:
                answer = web.json_response(fault.body, status=fault.status, headers=fault.headers)
            answer.headers.update(limit_headers)
            return self._record(request, path, headers, body, answer)
        answer = self._answer(route.handler, params, body)
        answer.headers.update(limit_headers)
        return self._record(request, path, headers, body, answer)

    def _check(self, request: web.Request, route: FakeRoute, raw: bytes) -> str | None:
        agent = request.headers.get("User-Agent", "")
        if not re.fullmatch(r"DiscordBot \(https?://\S+, [\w.+-]+\)", agent):
            return "bad User-Agent"
        if raw and request.headers.get("Content-Type") != "application/json":
            return "body without application/json"
        auth = request.headers.get("Authorization")
        if route.bot and auth != f"Bot {self.bot_token}":
            return f"bot route {route.handler} without the bot token"
        if not route.bot and auth is not None:
            return "interaction webhook called with an Authorization header"
        if not route.bot and request.match_info["tail"].split("/")[2] != INTERACTION_TOKEN:
            return "wrong interaction token"
        return None

    def _limit_headers(self, spec: Spec, window: Window, remaining: int) -> dict[str, str]:
        reset_after = window.opened + spec.window - self.clock.monotonic()
        return {
            "X-RateLimit-Limit": str(spec.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{self.clock.now() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": spec.name,
        }

    def _bucket(self, spec: Spec, major: str) -> tuple[web.Response | None, dict[str, str]]:
        now = self.clock.monotonic()
        key = (spec.name, major)
        window = self.windows.get(key)
        if window is None or now >= window.opened + spec.window:
            window = self.windows[key] = Window(opened=now)
        if window.used >= spec.limit:
            retry = window.opened + spec.window - now
            headers = self._limit_headers(spec, window, 0)
            headers.update({"X-RateLimit-Scope": "user", "Retry-After": str(math.ceil(retry))})
            body = {
                "message": "You are being rate limited.",
                "retry_after": round(retry, 3),
                "global": False,
            }
            return web.json_response(body, status=429, headers=headers), headers
        window.used += 1
        return None, self._limit_headers(spec, window, spec.limit - window.used)

    def _global(self) -> web.Response | None:
        now = self.clock.monotonic()
        window = self.global_window
        if window is None or now >= window.opened + 1.0:
            window = self.global_window = Window(opened=now)
        if window.used >= self.global_limit:
            retry = window.opened + 1.0 - now
            return web.json_response(
                {
                    "message": "You are being rate limited.",
                    "retry_after": round(retry, 3),
                    "global": True,
                },
                status=429,
                headers={
                    "X-RateLimit-Global": "true",
                    "X-RateLimit-Scope": "global",
                    "Retry-After": str(math.ceil(retry)),
                },
            )
        window.used += 1
        return None

    def _answer(self, handler: str, params: dict[str, str], body: Any) -> web.Response:
        if handler == "create_message":
            channel = params["channel_id"]
            nonce = body.get("nonce") if isinstance(body, dict) else None
            if nonce is not None and body.get("enforce_nonce"):
                existing = self.nonces.get((channel, str(nonce)))
                if existing is not None:
                    return web.json_response(existing)
            message = {"id": self._next_id(), "channel_id": channel, **(body or {})}
            if nonce is not None:
                self.nonces[(channel, str(nonce))] = message
            return web.json_response(message)
        if handler == "echo_message":
            return web.json_response(
                {"id": params.get("message_id", self._next_id()), **(body or {})}
            )
        if handler == "thread":
            thread_id = params.get("message_id") or self._next_id()
            return web.json_response(
                {
                    "id": thread_id,
                    "parent_id": params["channel_id"],
                    "type": (body or {}).get("type", 11),
                    **(body or {}),
                },
                status=201,
            )
        if handler == "channel":
            return web.json_response({"id": params["channel_id"], "type": 0})
        return web.json_response(
            {
                "id": self._next_id(),
                "type": 1,
                "recipients": [{"id": (body or {}).get("recipient_id")}],
            }
        )

    def _record(
        self,
        request: web.Request,
        path: str,
        headers: dict[str, str],
        body: Any,
        answer: web.Response,
    ) -> web.Response:
        self.seen.append(
            Seen(
                request.method,
                path,
                dict(request.query),
                headers,
                body,
                self.clock.monotonic(),
                answer.status,
            )
        )
        return answer


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(name="clock")
def _clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture(name="fake")
async def _fake(clock: ManualClock) -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(clock=clock)
    server = TestServer(fake.app())
    await server.start_server(access_log=None)
    fake.root = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()
    assert fake.problems == [], fake.problems


@pytest.fixture(name="vt")
def _vt(clock: ManualClock) -> VirtualTime:
    return VirtualTime(clock)


@pytest.fixture(name="sleep")
def _sleep(clock: ManualClock) -> AdvancingSleep:
    return AdvancingSleep(clock)


MakeClient = Callable[..., DiscordClient]


@pytest.fixture(name="make_client")
async def _make_client(
    fake: FakeDiscord, clock: ManualClock, sleep: AdvancingSleep
) -> AsyncIterator[MakeClient]:
    made: list[DiscordClient] = []

    def make(**overrides: Any) -> DiscordClient:
        options: dict[str, Any] = {
            "api_url": fake.api_url,
            "bot_token": Secret(BOT_TOKEN),
            "clock": clock,
            "sleep": sleep,
            "policy": LimiterPolicy(reset_margin=0.0),
            "backoff": ExponentialBackOff(base=0.5, factor=2.0, maximum=8.0, jitter=0.0),
            "timeout": 2.0,
        }
        options.update(overrides)
        client = DiscordClient(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture(name="client")
def _client(make_client: MakeClient) -> DiscordClient:
    return make_client()
