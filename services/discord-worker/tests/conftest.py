"""The Discord simulator on loopback, on the real clock, for every discord-worker test.

``discord_sim`` starts :class:`~dfj_sandbox.discord_sim.DiscordSimulator` on 127.0.0.1 with a
guild ``Acme`` (the bot holding its install permissions, an owner, ``#general`` and a member
``alice``) and yields a :class:`SimDiscord`: the REST base URL, the bot token, the
application id, the channel ids, and what the simulator recorded. Its rate-limit windows are
Discord's scaled by :data:`SCALE` — ``messages.create`` allows 5 per 0.5 s instead of 5 per
5 s — so tests see Discord's behaviour ten times faster without a fake clock; the global
limit stays 50 per second, which the client's default policy keeps. A test that needs other
numbers calls ``discord_sim.set_limits(scaled_limits(...))``.

``make_discord_client(policy=..., **overrides)`` builds a :class:`DiscordClient` pointed at
the simulator (closed at teardown); ``interaction_endpoint`` is an app endpoint that defers
every interaction, so ``await discord_sim.open_interaction(interaction_endpoint.url)`` gives
an acknowledged interaction whose token the webhook routes accept.

Teardown requires every request body to have conformed to Discord's spec.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from types import MappingProxyType
from typing import Any, Final, Protocol

import pytest
from aiohttp import web

from dfj_common.clock import SystemClock
from dfj_common.config import Secret
from dfj_common.retry import ExponentialBackOff
from dfj_discord_worker.discord import DiscordClient, LimiterPolicy
from dfj_sandbox.discord_sim import (
    DEFAULT_BUCKETS,
    BucketSpec,
    Call,
    DiscordSimulator,
    DiscordSpec,
    Guild,
    InteractionResult,
    RateLimits,
    locate_spec,
)

__all__ = [
    "FAST_BACKOFF",
    "SCALE",
    "DeferringEndpoint",
    "MakeDiscordClient",
    "SimDiscord",
    "scaled_limits",
]

SCALE: Final = 0.1
"""Every bucket window of the simulator is Discord's times this."""

FAST_BACKOFF: Final = ExponentialBackOff(base=0.05, factor=2.0, maximum=0.2, jitter=0.0)
"""The clients' 5xx back-off: 50, 100, 200 ms (Discord's real one would be seconds)."""


def scaled_limits(
    scale: float = SCALE, *, global_limit: int = 50, global_window: float = 1.0
) -> RateLimits:
    """The simulator's default buckets with every window times ``scale``."""
    buckets = {
        name: BucketSpec(limit=spec.limit, window=spec.window * scale)
        for name, spec in DEFAULT_BUCKETS.items()
    }
    return RateLimits(
        buckets=MappingProxyType(buckets), global_limit=global_limit, global_window=global_window
    )


class SimDiscord:
    """The running simulator with its guild, and shortcuts to what it recorded."""

    def __init__(self, sim: DiscordSimulator) -> None:
        self.sim = sim
        self.guild: Guild = sim.add_guild("Acme")
        self.user_id = self.guild.add_member(username="alice", global_name="Alice").user_id
        self.channel_id = self.guild.channels[0].id

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:<port>/api/v10``."""
        return self.sim.api_url

    @property
    def bot_token(self) -> Secret:
        """The bot token, as the worker's settings hold it."""
        return Secret(self.sim.application.bot_token)

    @property
    def application_id(self) -> str:
        """The application id (the bot's user id; the id in interaction webhook URLs)."""
        return self.sim.application.id

    def add_channel(self, name: str = "other", *, deny_bot: int = 0) -> str:
        """Another text channel in the guild (``deny_bot``: permissions the bot lacks there)."""
        return self.guild.add_channel(name, deny_bot=deny_bot).id

    def set_limits(self, limits: RateLimits) -> None:
        """Rate-limit with ``limits`` from now on (open windows are forgotten)."""
        self.sim.set_limits(limits)

    @property
    def calls(self) -> list[Call]:
        """Every REST request the simulator answered, in order."""
        return self.sim.calls

    def calls_to(self, method: str, template: str, *, major: str | None = None) -> list[Call]:
        """The recorded requests to one route (the simulator's template spelling)."""
        return [
            c
            for c in self.sim.calls
            if c.method == method.upper()
            and c.template == template
            and (major is None or c.major == major)
        ]

    def rate_limited(self, *, scope: str | None = None) -> list[Call]:
        """Every 429 the simulator answered (of ``scope``: user, global, shared)."""
        return self.sim.rate_limited(scope=scope)

    def contents(self, channel_id: str) -> list[str]:
        """The ``content`` of a channel's messages, oldest first."""
        return [m.content for m in self.sim.messages(channel_id)]

    async def open_interaction(
        self, endpoint_url: str, *, channel_id: str | None = None
    ) -> InteractionResult:
        """alice runs ``/jira`` in a channel; the endpoint's answer makes the token live."""
        body = self.sim.interactions.slash(channel_id or self.channel_id, self.user_id)
        result = await self.sim.send_interaction(endpoint_url, body)
        assert result.acknowledged, f"the endpoint did not acknowledge: {result.status}"
        return result


class DeferringEndpoint:
    """An app's interactions endpoint reduced to one answer: PONG, or defer (type 5)."""

    def __init__(self) -> None:
        self.ephemeral = False
        self.delay = 0.0  # seconds before answering (Discord takes the answer only then)
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.delay:
            await asyncio.sleep(self.delay)
        if body.get("type") == 1:
            return web.json_response({"type": 1})
        return web.json_response({"type": 5, "data": {"flags": 64} if self.ephemeral else {}})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/interactions", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/interactions"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class MakeDiscordClient(Protocol):
    """``make_discord_client(policy=..., **overrides)``: a client for the simulator."""

    def __call__(
        self, *, policy: LimiterPolicy | None = None, **overrides: Any
    ) -> DiscordClient: ...


@pytest.fixture(name="discord_spec", scope="session")
def _discord_spec() -> DiscordSpec:
    return DiscordSpec.load(locate_spec(environ=os.environ))


@pytest.fixture(name="discord_sim")
async def _discord_sim(discord_spec: DiscordSpec) -> AsyncIterator[SimDiscord]:
    async with DiscordSimulator(
        clock=SystemClock(), spec=discord_spec, limits=scaled_limits()
    ) as sim:
        yield SimDiscord(sim)
        assert sim.spec_violations == [], "every request conformed to Discord's spec"


@pytest.fixture(name="make_discord_client")
async def _make_discord_client(discord_sim: SimDiscord) -> AsyncIterator[MakeDiscordClient]:
    made: list[DiscordClient] = []

    def make(*, policy: LimiterPolicy | None = None, **overrides: Any) -> DiscordClient:
        options: dict[str, Any] = {
            "api_url": discord_sim.api_url,
            "bot_token": discord_sim.bot_token,
            "clock": SystemClock(),
            "backoff": FAST_BACKOFF,
            "timeout": 5.0,
        }
        if "limiter" not in overrides:
            options["policy"] = policy or LimiterPolicy()
        options.update(overrides)
        client = DiscordClient(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture(name="interaction_endpoint")
async def _interaction_endpoint() -> AsyncIterator[DeferringEndpoint]:
    endpoint = DeferringEndpoint()
    await endpoint.start()
    yield endpoint
    await endpoint.close()
