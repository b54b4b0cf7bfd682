"""Delivery benchmark: notifications into Discord at the rate-limit ceiling, against the simulator.

The discord-worker its composition root builds (real client and limiter, local bus, SQLite)
posts to the Discord simulator on loopback, whose limits are Discord's — 5 messages per 5 s
per channel, 50 requests per second in all — scaled in time by ``--scale`` (0.2: 5 per 1 s),
with the client's global window scaled alike. Cases, all in the same run:

- **(a)** 1,000 notifications into one channel, packed (up to 10 per post);
- **baseline**: one post per notification (packing off) for ``--baseline`` notifications
  into one channel: its time per notification, times 1,000, is what (a) would take without
  packing;
- **(b)** 5,000 notifications across 50 channels (100 each), packed.

Reported per case: time from start to the last message stored, the floor the limits imply
(a channel needs ``ceil(posts/5) - 1`` full windows after its first, and every post counts
against 50 per second; posts = ``ceil(notifications/10)`` per channel), the ratio to it, the
posts made, the 429s Discord answered, notifications lost, duplicated or out of order, and
posts over Discord's message limits (checked on what the simulator stored; the simulator's
own schema check of each body is off here, as it costs more CPU than the worker under test).
Targets (from the issue): no loss, no duplicates, no 429 after the first learnt bucket, within
1.2x the floor, and (a) at least 5x faster than one post per notification. Reported, not
asserted.

(a) and the baseline run on limits scaled by ``--scale`` (default 0.2, so the case takes
~20 s rather than ~95 s); (b) by ``--scale-b`` (default 1: Discord's own numbers), because
at a smaller scale its floor becomes shorter than the time the worker needs to read 5,000
messages off the bus at all, and the ratio would measure the bus instead of delivery.

    python bench/delivery.py [--scale S] [--scale-b S] [--baseline N]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dfj_common.bus import DISCORD_OUTBOX, OutgoingMessage
from dfj_common.bus.local import LocalBus
from dfj_common.config import Settings
from dfj_common.envelope import Envelope
from dfj_common.logging import configure_logging
from dfj_common.storage import Database, Repositories
from dfj_common.storage.migrate import upgrade
from dfj_discord_worker.bootstrap import bootstrap
from dfj_discord_worker.delivery import MESSAGE_POST
from dfj_discord_worker.delivery.limits import problems as limits_problems
from dfj_discord_worker.discord import LimiterPolicy
from dfj_sandbox.discord_sim import DiscordSimulator
from dfj_sandbox.discord_sim.ratelimit import RateLimits

SITE = "bench-site"
PER_WINDOW = 5
GLOBAL = 50
EMBEDS = 10


@dataclass(frozen=True)
class Result:
    name: str
    notifications: int
    seconds: float
    floor: float
    posts: int
    rate_limited: int
    lost: int
    duplicated: int
    out_of_order: int
    over_limits: int


def notification(key: str) -> dict[str, Any]:
    url = f"https://bench.atlassian.net/browse/{key}"
    return {
        "embeds": [
            {
                "title": f"{key}: a summary of moderate length",
                "url": url,
                "description": "Status changed from To Do to In Progress",
                "fields": [{"name": "Assignee", "value": "Alice", "inline": True}],
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
                ],
            }
        ],
        "allowed_mentions": {"parse": []},
    }


def floor(per_channel: int, channels: int, scale: float) -> float:
    posts = math.ceil(per_channel / EMBEDS)
    channel_floor = (math.ceil(posts / PER_WINDOW) - 1) * 5.0 * scale
    global_floor = (math.ceil(posts * channels / GLOBAL) - 1) * 1.0 * scale
    return max(channel_floor, global_floor, 0.0)


async def run_case(
    name: str, *, channels: int, per_channel: int, scale: float, coalesce: bool
) -> Result:
    with tempfile.TemporaryDirectory(prefix="dfj-bench-delivery-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'dfj.sqlite'}"
        upgrade(url)
        limits = RateLimits(global_limit=GLOBAL, global_window=1.0 * scale).with_bucket(
            "messages.create", PER_WINDOW, 5.0 * scale
        )
        # The client's default margin (50 ms on every reset and on the global window), scaled.
        policy = LimiterPolicy(global_window=1.0 * scale, reset_margin=0.05 * scale)
        # The simulator's schema check of each body costs more CPU than the worker spends on
        # it, in this same process; the limits are checked below on what was stored instead.
        async with DiscordSimulator(limits=limits, validate_requests=False) as sim:
            guild = sim.add_guild("Bench", general=False)
            ids = [guild.add_channel(f"c{i}").id for i in range(channels)]
            settings = Settings.from_env(
                {**sim.environ(), "DFJ_DATABASE_URL": url, "DFJ_BUS_PATH": f"{tmp}/bus.sqlite"},
                env_file=None,
            )
            bus = await LocalBus.open(Path(tmp) / "bus.sqlite")
            database = Database.open(url)
            await Repositories(database).installations.save_connect(
                SITE, base_url="https://bench.atlassian.net", shared_secret_ciphertext=b"ct"
            )
            batch: list[OutgoingMessage] = []
            for i in range(per_channel):
                for channel in ids:
                    envelope = Envelope(
                        id=f"{channel}-{i}",
                        source="bench",
                        type=MESSAGE_POST,
                        tenant=SITE,
                        session_key=channel,
                        data={
                            "client_key": SITE,
                            "guild_id": guild.id,
                            "channel_id": channel,
                            "message": notification(f"C{channel[-4:]}-{i}"),
                        },
                    )
                    batch.append(OutgoingMessage.from_envelope(envelope))
            for start in range(0, len(batch), 500):
                await bus.publish_batch(DISCORD_OUTBOX, batch[start : start + 500])
            service = await bootstrap(
                settings, bus=bus, database=database, policy=policy, coalesce=coalesce
            )
            stop = asyncio.Event()
            total = channels * per_channel
            started = time.perf_counter()
            runs = asyncio.gather(*(w.run(stop) for w in service.workers))

            def stored() -> int:
                return sum(len(m.embeds) for c in ids for m in sim.messages(c))

            deadline = started + 600
            while time.perf_counter() < deadline:
                if stored() >= total:
                    break
                await asyncio.sleep(0.02)
            seconds = time.perf_counter() - started
            await asyncio.sleep(0.2)  # anything posted twice would show up now
            stop.set()
            await runs
            for close in service.closers:
                await close()
            await bus.close()
            await database.close()
            lost = duplicated = out_of_order = 0
            for channel in ids:
                titles = [e["title"] for m in sim.messages(channel) for e in m.embeds]
                keys = [t.split(":", 1)[0] for t in titles]
                expected = [f"C{channel[-4:]}-{i}" for i in range(per_channel)]
                lost += len(set(expected) - set(keys))
                duplicated += len(keys) - len(set(keys))
                out_of_order += int(keys != expected and not (set(expected) - set(keys)))
            posts = sum(len(sim.messages(c)) for c in ids)
            over_limits = sum(
                1
                for c in ids
                for m in sim.messages(c)
                if limits_problems(
                    {
                        "embeds": list(m.embeds),
                        "components": list(m.components),
                        "content": m.content,
                    }
                )
            )
            return Result(
                name=name,
                notifications=total,
                seconds=seconds,
                floor=floor(per_channel, channels, scale) if coalesce else 0.0,
                posts=posts,
                rate_limited=len(sim.rate_limited()),
                lost=lost,
                duplicated=duplicated,
                out_of_order=out_of_order,
                over_limits=over_limits,
            )


def show(result: Result) -> None:
    ratio = f"{result.seconds / result.floor:5.2f}x floor" if result.floor else "     —     "
    print(
        f"  {result.name:<34} {result.seconds:7.2f} s  floor {result.floor:6.2f} s  {ratio}"
        f"  posts {result.posts:5d}  429s {result.rate_limited:3d}  lost {result.lost}"
        f"  dup {result.duplicated}  out of order {result.out_of_order}"
        f"  over limits {result.over_limits}"
    )


async def main(scale: float, scale_b: float, baseline_n: int) -> None:
    configure_logging(service="bench", level="warning", fmt="json")
    print(
        f"delivery benchmark — Discord's limits scaled x{scale} in time for (a), x{scale_b} "
        f"for (b) (5 posts per 5 s per channel, 50 per second), {os.cpu_count()} cores"
    )
    a = await run_case(
        "(a) 1,000 → 1 channel, packed", channels=1, per_channel=1000, scale=scale, coalesce=True
    )
    show(a)
    base = await run_case(
        f"baseline {baseline_n} → 1 channel, one each",
        channels=1,
        per_channel=baseline_n,
        scale=scale,
        coalesce=False,
    )
    show(base)
    b = await run_case(
        "(b) 5,000 → 50 channels, packed",
        channels=50,
        per_channel=100,
        scale=scale_b,
        coalesce=True,
    )
    show(b)
    one_each = base.seconds / base.notifications * a.notifications
    print(
        f"  (a) vs one post each: {one_each:.1f} s expected for 1,000 one by one → "
        f"{one_each / a.seconds:.1f}x faster packed (target ≥ 5x)"
    )
    print("  targets: no loss, no duplicates, no 429 after the first learnt bucket, ≤ 1.2x floor")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.2, help="time scale of the limits")
    parser.add_argument("--scale-b", type=float, default=1.0, help="time scale for case (b)")
    parser.add_argument("--baseline", type=int, default=100, help="notifications, one post each")
    args = parser.parse_args()
    asyncio.run(main(args.scale, args.scale_b, args.baseline))
