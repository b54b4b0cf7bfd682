"""Two discord-worker processes on one bus, one of them killed mid-post: in order, exactly once.

Each worker is ``python -m dfj_discord_worker`` with the embedded defaults (local bus, SQLite)
pointed at the Discord simulator in this process. The first worker is SIGKILLed while Discord
has stored its post but the answer is being lost (a 503 after the work, as when a response
goes missing): nothing was recorded as sent and the bus still holds the messages. The second
pair of workers takes over once the dead worker's locks expire (the topology's 30 s) and posts
again under the same nonce, so Discord hands back the message it has instead of a second one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dfj_common.bus import DISCORD_OUTBOX, OutgoingMessage
from dfj_common.bus.local import LocalBus
from dfj_common.envelope import Envelope
from dfj_common.storage import migrate
from dfj_discord_worker.delivery import MESSAGE_POST
from dfj_sandbox.discord_sim import DiscordSimulator
from dfj_sandbox.discord_sim.ratelimit import RateLimits

from .conftest import notification

pytestmark = [pytest.mark.crossprocess, pytest.mark.slow]

CHANNELS = 4
PER_CHANNEL = 40
CREATE = "/channels/{channel_id}/messages"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dfj_discord_worker"],
        env={**env, "DFJ_DISCORD_WORKER_PORT": str(free_port())},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_two_workers_and_a_killed_one_deliver_in_order_exactly_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dfj.sqlite'}"
    migrate.upgrade(url)
    limits = RateLimits().with_bucket("messages.create", 5, 0.5)
    async with DiscordSimulator(limits=limits) as sim:
        guild = sim.add_guild("Acme", general=False)
        channels = [guild.add_channel(f"c{i}").id for i in range(CHANNELS)]
        bus_path = tmp_path / "bus.sqlite"
        bus = await LocalBus.open(bus_path)
        batch = [
            OutgoingMessage.from_envelope(
                Envelope(
                    id=f"{channel}-{i:03d}",
                    source="test",
                    type=MESSAGE_POST,
                    tenant="site-1",
                    session_key=channel,
                    data={
                        "client_key": "site-1",
                        "guild_id": guild.id,
                        "channel_id": channel,
                        "message": notification(f"C{n}-{i:03d}"),
                    },
                )
            )
            for i in range(PER_CHANNEL)
            for n, channel in enumerate(channels)
        ]
        await bus.publish_batch(DISCORD_OUTBOX, batch)
        env = {
            **os.environ,
            **sim.environ(),
            "DFJ_BUS_PATH": str(bus_path),
            "DFJ_DATABASE_URL": url,
            "DFJ_DRAIN_GRACE_SECONDS": "2",
            "DFJ_LOG_LEVEL": "warning",
        }
        # Every answer to a post is lost for a while: the first worker's post is stored by
        # Discord, and the worker is retrying it when it is killed.
        sim.fail_next(f"POST {CREATE}", 503, count=4, applied=True)
        first = spawn(env, tmp_path)
        workers: list[subprocess.Popen[bytes]] = [first]
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while not any(c.injected for c in sim.calls):
                assert first.poll() is None, "the first worker died on its own"
                assert loop.time() < deadline, "the first worker never posted"
                await asyncio.sleep(0.02)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            stored_before = sum(len(sim.messages(c)) for c in channels)
            assert stored_before >= 1, "Discord kept the post whose answer was lost"
            workers += [spawn(env, tmp_path), spawn(env, tmp_path)]
            total = CHANNELS * PER_CHANNEL
            deadline = loop.time() + 90
            while sum(len(m.embeds) for c in channels for m in sim.messages(c)) < total:
                for proc in workers[1:]:
                    assert proc.poll() is None, "a worker died"
                assert loop.time() < deadline, "not everything arrived"
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # a duplicate would arrive now
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in workers:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for n, channel in enumerate(channels):
            titles = [e["title"] for m in sim.messages(channel) for e in m.embeds]
            assert titles == [f"C{n}-{i:03d}: summary" for i in range(PER_CHANNEL)], channel
        assert sim.duplicates() == {}, "no nonce was stored twice"
        posts = sum(len(sim.messages(c)) for c in channels)
        assert posts < total / 3, f"{posts} posts: the bursts were packed"
        stats = {s.queue: s for s in await bus.stats()}[DISCORD_OUTBOX]
        deadline_settle = time.monotonic() + 10
        while (stats.active or stats.locked) and time.monotonic() < deadline_settle:
            await asyncio.sleep(0.1)
            stats = {s.queue: s for s in await bus.stats()}[DISCORD_OUTBOX]
        assert (stats.active, stats.locked, stats.dead_lettered) == (0, 0, 0)
        await bus.close()
