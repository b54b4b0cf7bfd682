"""Fixtures for the Discord simulator's tests: one loaded spec, a manual clock, a guild, a client.

The guild ``Acme`` has the bot (its managed role holds the install link's permissions), an
owner, ``#general``, and a member ``alice``. :class:`Api` calls the simulator over real HTTP
the way the discord-worker does: ``Authorization: Bot <token>`` on bot routes, no
Authorization on interaction webhooks, a ``DiscordBot (url, version)`` User-Agent. Every
simulator checks its own answers against the spec; a test fails at teardown if one did not
conform.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import pytest

from dfj_common.clock import ManualClock
from dfj_sandbox.discord_sim import DiscordSimulator, DiscordSpec, Guild, User, locate_spec

START: Final = 1_800_000_000.0
USER_AGENT: Final = "DiscordBot (https://github.com/example/discord-for-jira, 0.1.0)"
BOT: Final = "bot"


@dataclass(frozen=True, kw_only=True)
class Answer:
    """A response as the tests look at it."""

    status: int
    body: Any
    headers: Mapping[str, str]


class Api:
    """Calls the simulator's REST API."""

    def __init__(self, http: aiohttp.ClientSession, sim: DiscordSimulator) -> None:
        self.http = http
        self.sim = sim

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        auth: str | None = BOT,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request to ``{api_url}{path}``; ``auth`` is "bot", a raw header value or None."""
        sent = {"User-Agent": USER_AGENT, **(headers or {})}
        if auth == BOT:
            sent["Authorization"] = f"Bot {self.sim.application.bot_token}"
        elif auth is not None:
            sent["Authorization"] = auth
        async with self.http.request(
            method,
            self.sim.api_url + path,
            json=json,
            data=data,
            headers=sent,
            params=params,
        ) as response:
            raw = await response.read()
            body: Any = None
            if raw and response.content_type == "application/json":
                body = await response.json()
            elif raw:
                body = raw.decode()
            return Answer(status=response.status, body=body, headers=dict(response.headers))

    async def post_message(self, channel_id: str, body: Mapping[str, Any]) -> Answer:
        """Create Message."""
        return await self.call("POST", f"/channels/{channel_id}/messages", json=dict(body))


@pytest.fixture(name="spec", scope="session")
def _spec() -> DiscordSpec:
    return DiscordSpec.load(locate_spec(environ=os.environ))


@pytest.fixture(name="clock")
def _clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture(name="sim")
async def _sim(spec: DiscordSpec, clock: ManualClock) -> AsyncIterator[DiscordSimulator]:
    async with DiscordSimulator(clock=clock, spec=spec, validate_responses=True) as sim:
        yield sim
        assert sim.response_violations == []


@pytest.fixture(name="guild")
def _guild(sim: DiscordSimulator) -> Guild:
    guild = sim.add_guild("Acme")
    guild.add_member(username="alice", global_name="Alice")
    return guild


@pytest.fixture(name="alice")
def _alice(sim: DiscordSimulator, guild: Guild) -> User:
    return next(u for u in sim.world.users.values() if u.username == "alice")


@pytest.fixture(name="general")
def _general(guild: Guild) -> str:
    return guild.channels[0].id


@pytest.fixture(name="api")
async def _api(sim: DiscordSimulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(http, sim)
