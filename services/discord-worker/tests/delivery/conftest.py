"""A discord-worker built by its composition root, against the Discord simulator on loopback.

The local bus (with a short lock, so a lost worker's messages come back quickly) and a
migrated SQLite database are real; the simulator's per-channel message bucket is scaled to
5 per 0.5 s so tests see Discord's behaviour ten times faster.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from dfj_common.bus import DISCORD_OUTBOX, TOPOLOGY, QueueStats, Topology
from dfj_common.bus.local import LocalBus
from dfj_common.config import Settings
from dfj_common.envelope import Envelope
from dfj_common.service import WorkerService
from dfj_common.storage import Database, Repositories, migrate
from dfj_discord_worker.bootstrap import bootstrap
from dfj_discord_worker.delivery import INTERACTION_REPLY, MESSAGE_POST
from dfj_discord_worker.discord import LimiterPolicy
from dfj_sandbox.discord_sim import DiscordSimulator, Guild
from dfj_sandbox.discord_sim.ratelimit import RateLimits

SITE = "site-1"
WINDOW = 0.5
LIMITS = RateLimits().with_bucket("messages.create", 5, WINDOW)
POLICY = LimiterPolicy(reset_margin=0.02)


def short_locks(topology: Topology, seconds: float) -> Topology:
    """The topology with every lock ``seconds`` long (a lost worker's messages return soon)."""
    return {
        name: dataclasses.replace(spec, lock_duration=seconds) for name, spec in topology.items()
    }


def notification(key: str, *, text: str = "x", title: str | None = None) -> dict[str, Any]:
    """A message shaped like the jira-worker's notifications: one embed, one row of buttons."""
    url = f"https://example.atlassian.net/browse/{key}"
    return {
        "embeds": [
            {
                "title": title if title is not None else f"{key}: summary",
                "url": url,
                "description": text,
            }
        ],
        "components": [
            {
                "type": 1,
                "components": [
                    {"type": 2, "style": 5, "label": "Open in Jira", "url": url},
                    {
                        "type": 2,
                        "style": 2,
                        "label": "Assign to me",
                        "custom_id": f"assign-me:{key}",
                    },
                    {"type": 2, "style": 2, "label": "Comment", "custom_id": f"comment:{key}"},
                    {
                        "type": 2,
                        "style": 2,
                        "label": "Transition",
                        "custom_id": f"transition:{key}",
                    },
                ],
            }
        ],
        "allowed_mentions": {"parse": []},
    }


class Rig:
    """The simulator, the bus, the database and a discord-worker to start and stop."""

    def __init__(
        self, sim: DiscordSimulator, bus: LocalBus, database: Database, settings: Settings
    ) -> None:
        self.sim = sim
        self.bus = bus
        self.database = database
        self.repos = Repositories(database)
        self.settings = settings
        self.guild: Guild = sim.add_guild("Acme")
        self.channel = self.guild.channels[0].id
        self._services: list[tuple[WorkerService, asyncio.Event, asyncio.Task[Any]]] = []
        self._seq = 0

    async def post(
        self,
        channel: str,
        message: dict[str, Any],
        *,
        thread: dict[str, str] | None = None,
        message_id: str | None = None,
    ) -> str:
        self._seq += 1
        mid = message_id or f"post-{self._seq:05d}"
        data: dict[str, Any] = {
            "client_key": SITE,
            "guild_id": self.guild.id,
            "channel_id": channel,
            "message": message,
        }
        if thread is not None:
            data["thread"] = thread
        await self.bus.publish_envelope(
            DISCORD_OUTBOX,
            Envelope(
                id=mid,
                source="test",
                type=MESSAGE_POST,
                tenant=SITE,
                session_key=channel,
                data=data,
            ),
        )
        return mid

    async def publish(self, kind: str, data: Any, *, session: str, message_id: str) -> None:
        await self.bus.publish_envelope(
            DISCORD_OUTBOX,
            Envelope(
                id=message_id, source="test", type=kind, tenant=SITE, session_key=session, data=data
            ),
        )

    async def start(self, *, coalesce: bool = True) -> WorkerService:
        service = await bootstrap(
            self.settings, bus=self.bus, database=self.database, policy=POLICY, coalesce=coalesce
        )
        stop = asyncio.Event()

        async def run() -> None:
            await asyncio.gather(*(w.run(stop) for w in service.workers))

        task = asyncio.create_task(run())
        self._services.append((service, stop, task))
        return service

    async def stop(self) -> None:
        for service, stop, task in self._services:
            stop.set()
            await task
            for close in service.closers:
                await close()
        self._services.clear()

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            if loop.time() > deadline:
                raise AssertionError("timed out waiting")
            for _, _, task in self._services:
                if task.done():
                    task.result()
            await asyncio.sleep(0.02)

    async def wait_for_async(
        self, condition: Callable[[QueueStats], bool], timeout: float = 20.0
    ) -> None:
        """Wait until the outbox's counts satisfy ``condition``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition(await self.outbox()):
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting: {await self.outbox()}")
            await asyncio.sleep(0.05)

    async def wait_for_thread(self, key: str, timeout: float = 10.0) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (found := await self.repos.issue_threads.get(self.channel, key)) is None:
            if loop.time() > deadline:
                raise AssertionError(f"no thread for {key}")
            await asyncio.sleep(0.02)
        return found.thread_id

    async def wait_for_thread_other_than(self, key: str, old: str, timeout: float = 10.0) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = await self.repos.issue_threads.get(self.channel, key)
            if found is not None and found.thread_id != old:
                return found.thread_id
            if loop.time() > deadline:
                raise AssertionError(f"no new thread for {key}")
            await asyncio.sleep(0.02)

    async def outbox(self) -> QueueStats:
        (stats,) = [s for s in await self.bus.stats() if s.queue == DISCORD_OUTBOX]
        return stats

    def titles(self, channel: str) -> list[str]:
        return [e["title"] for m in self.sim.messages(channel) for e in m.embeds]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    url = f"sqlite:///{tmp_path / 'dfj.sqlite'}"
    migrate.upgrade(url)
    async with DiscordSimulator(limits=LIMITS) as sim:
        settings = Settings.from_env(
            {**sim.environ(), "DFJ_DATABASE_URL": url, "DFJ_BUS_PATH": str(tmp_path / "bus")},
            env_file=None,
        )
        topology = short_locks(TOPOLOGY, 2.0)
        bus = await LocalBus.open(tmp_path / "bus.sqlite", topology=topology)
        database = Database.open(url)
        rig = Rig(sim, bus, database, settings)
        await rig.repos.installations.save_connect(
            SITE, base_url="https://example.atlassian.net", shared_secret_ciphertext=b"ct"
        )
        try:
            yield rig
        finally:
            await rig.stop()
            await bus.close()
            await database.close()
        assert sim.spec_violations == [], "every request conformed to Discord's spec"


__all__ = ["INTERACTION_REPLY", "SITE", "WINDOW", "Rig", "notification"]
