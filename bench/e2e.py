"""End-to-end benchmark: a change in Jira to the message in Discord, through every process.

The sandbox (``dfj_sandbox.stack``) runs the four services as separate processes on the local
bus and SQLite, with the Jira and Discord simulators on loopback in this process. After the
first run (install, connect, link, subscribe), ``--channels`` channels each follow one project
of their own, and issues are created in those projects at a paced rate, round-robin. Each
creation makes the simulated site send its signed webhook; the gateway verifies and publishes;
the jira-worker routes it, reads the issue back as the app and renders; the discord-worker
posts it. Latency is from the change in Jira to the message stored by the Discord simulator.

Cases, all in the same run:

- **baseline**: the same webhook sender (the Jira simulator's dispatcher) posting the same
  paced changes to a bare aiohttp handler that answers 204 — what loopback HTTP alone costs
  between a change and its first hop; the pipeline's latencies are reported as ratios to it;
- **limits lifted** at 50, 200 and 500 events/s (Discord's rate limits off in the simulator,
  and the bot's own global pace of 50 requests/s lifted with them, so the figure is our own
  pipeline's); target p99 < 100 ms at 200 events/s;
- **limits on** at 200 events/s: Discord's real limits (5 messages per 5 s per channel, 50
  requests/s in all); reported is the time until the last notification was delivered against
  the floor those limits imply for the posts made (packing puts up to 10 embeds in a post).

Reported, not asserted: p50/p99 per case, delivered/lost/duplicated counts.

    python bench/e2e.py [--seconds S] [--channels C] [--rates 50,200,500]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from dfj_common.bus.local import LocalBus
from dfj_sandbox.discord_sim import RateLimits
from dfj_sandbox.jira_sim import JiraSimulator
from dfj_sandbox.stack import Sandbox, build_cast, file_sink, first_run

PER_WINDOW = 5
WINDOW = 5.0
GLOBAL_PER_SECOND = 50
PACK = 10


@dataclass
class Result:
    label: str
    sent: int
    delivered: int
    duplicated: int
    latencies: list[float]
    elapsed: float
    posts: int = 0
    cpu_ms: dict[str, float] | None = None
    """CPU milliseconds per event, by process (the simulators' process is "simulators")."""

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return 1000 * ordered[max(math.ceil(len(ordered) * q) - 1, 0)]


def _pace(rate: float, count: int) -> list[float]:
    return [i / rate for i in range(count)]


async def baseline(rate: float, count: int) -> Result:
    """The Jira simulator's webhook sender against a bare handler, at the same pace."""
    arrived: dict[str, float] = {}

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        if "issue" in body:  # lifecycle callbacks carry none
            arrived[str(body["issue"]["key"])] = time.time()
        return web.Response(status=204)

    async def descriptor(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "key": "discord-for-jira",
                "baseUrl": f"http://{request.host}",
                "authentication": {"type": "jwt"},
                "apiMigrations": {"signed-install": True},
                "lifecycle": {"installed": "/installed", "enabled": "/enabled"},
                "modules": {"webhooks": [{"event": "jira:issue_created", "url": "/hook"}]},
            }
        )

    app = web.Application()
    app.router.add_get("/descriptor", descriptor)
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with JiraSimulator() as jira:
            site = jira.add_site("baseline")
            await jira.install_app(site, f"http://127.0.0.1:{port}/descriptor")
            made: dict[str, float] = {}
            start = time.perf_counter()
            for offset in _pace(rate, count):
                delay = start + offset - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                issue = site.create_issue(summary="baseline")
                made[issue.key] = time.time()
            await jira.webhooks_idle(timeout=60)
            elapsed = time.perf_counter() - start
    finally:
        await runner.cleanup()
    latencies = [arrived[k] - t for k, t in made.items() if k in arrived]
    return Result(
        "baseline: webhook to a bare handler", count, len(latencies), 0, latencies, elapsed
    )


async def pipeline(
    label: str, *, rate: float, count: int, channels: int, limits: RateLimits, workdir: Path
) -> Result:
    """``count`` issue creations at ``rate``/s across ``channels`` projects, end to end."""
    async with Sandbox(
        workdir=workdir,
        sink=file_sink(workdir / "logs"),
        discord_limits=limits,
        check_discord_requests=False,
        sandbox_environ={
            "DFJ_LOG_LEVEL": "warning",
            # Lifted limits lift the bot's own global pace too (Discord raises it for large
            # bots); with the limits on it stays Discord's 50 requests/s.
            "DFJ_DISCORD_GLOBAL_REQUESTS_PER_SECOND": "100000" if not limits.enabled else "50",
        },
    ) as sandbox:
        cast = build_cast(sandbox)
        await first_run(sandbox, cast, subscribe=False)
        projects = []
        for n in range(channels):
            key = f"P{n:02d}"
            cast.site.add_project(key, f"Project {n}")
            channel = cast.guild.add_channel(f"feed-{n}")
            answer = await sandbox.run_command(
                channel.id, cast.alice, "subscribe", {"project": key}
            )
            if "now gets updates" not in answer.content:
                raise SystemExit(f"subscribe failed: {answer.content!r}")
            projects.append((key, channel.id))
        sandbox.discord.reset_records()
        before = _cpu(sandbox)
        depths = asyncio.ensure_future(_watch_depths(Path(sandbox.environ["DFJ_BUS_PATH"])))
        made: dict[str, tuple[float, str]] = {}
        start = time.perf_counter()
        for i, offset in enumerate(_pace(rate, count)):
            delay = start + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            project, channel_id = projects[i % len(projects)]
            issue = cast.site.create_issue(project, f"bench {i}")
            made[issue.key] = (time.time(), channel_id)
        seen: dict[str, list[float]] = {}
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            seen = _delivered(sandbox, [c for _, c in projects])
            if len(seen) >= len(made):
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - start
        after = _cpu(sandbox)
        depths.cancel()
        peak = await asyncio.gather(depths, return_exceptions=True)
        print(f"  {label}: peak queue depth (waiting + locked) {peak[0]}")
        await asyncio.sleep(0.5)
        seen = _delivered(sandbox, [c for _, c in projects])
        posts = sum(len(sandbox.discord.messages(c)) for _, c in projects)
        answers = sorted(
            a.elapsed
            for d in sandbox.jira.webhooks_for(cast.site)[-count:]
            for a in d.attempts
            if a.ok
        )
        if answers:
            print(
                f"  {label}: the gateway answered webhooks in p50 "
                f"{1000 * answers[len(answers) // 2]:.1f} ms, p99 "
                f"{1000 * answers[int(len(answers) * 0.99) - 1]:.1f} ms"
            )
    latencies = [min(seen[k]) - t for k, (t, _) in made.items() if k in seen]
    duplicated = sum(len(v) - 1 for v in seen.values())
    cpu = {name: 1000 * (after[name] - before[name]) / count for name in after}
    return Result(label, count, len(latencies), duplicated, latencies, elapsed, posts, cpu)


async def _watch_depths(path: Path) -> dict[str, int]:
    """The deepest each queue got (sampled every 0.2 s) until cancelled."""
    peak: dict[str, int] = {}
    bus = await LocalBus.open(path)
    try:
        while True:
            for q in await bus.stats():
                peak[q.queue] = max(peak.get(q.queue, 0), q.active + q.locked)
            await asyncio.sleep(0.2)
    except asyncio.CancelledError:
        return peak
    finally:
        await bus.close()


def _cpu(sandbox: Sandbox) -> dict[str, float]:
    """CPU seconds used so far by each service process and by this (the simulators') one."""
    used: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for name in sandbox.services.names:
        pid = sandbox.services.pid(name)
        if pid is None:
            continue
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used[name] = (int(fields[11]) + int(fields[12])) / tick
    me = resource.getrusage(resource.RUSAGE_SELF)
    used["simulators"] = me.ru_utime + me.ru_stime
    return used


def _delivered(sandbox: Sandbox, channel_ids: Sequence[str]) -> dict[str, list[float]]:
    """Issue key → when each embed naming it was stored (one entry per copy)."""
    found: dict[str, list[float]] = {}
    for channel_id in channel_ids:
        for message in sandbox.discord.messages(channel_id):
            for embed in message.embeds:
                title = str(embed.get("title", ""))
                if ": " in title:
                    found.setdefault(title.split(": ", 1)[0], []).append(message.timestamp)
    return found


def floor_seconds(posts_per_channel: Sequence[int]) -> float:
    """The least time Discord's limits allow for these posts (5 per 5 s per channel, 50/s)."""
    per_channel = max((math.ceil(p / PER_WINDOW) - 1) * WINDOW for p in posts_per_channel)
    return max(per_channel, sum(posts_per_channel) / GLOBAL_PER_SECOND)


async def main_async(args: argparse.Namespace) -> None:
    rates = [float(r) for r in args.rates.split(",")]
    results: list[tuple[Result, Result]] = []
    with tempfile.TemporaryDirectory(prefix="dfj-bench-e2e-") as tmp:
        for rate in rates:
            count = int(rate * args.seconds)
            base = await baseline(rate, count)
            run = await pipeline(
                f"limits lifted, {rate:.0f} events/s",
                rate=rate,
                count=count,
                channels=args.channels,
                limits=RateLimits.lifted(),
                workdir=Path(tmp) / f"lifted-{rate:.0f}",
            )
            results.append((base, run))
        limited_rate = 200.0
        limited_count = int(limited_rate * args.seconds)
        limited = await pipeline(
            f"limits on, {limited_rate:.0f} events/s",
            rate=limited_rate,
            count=limited_count,
            channels=args.channels,
            limits=RateLimits(),
            workdir=Path(tmp) / "limited",
        )
    print(
        f"end-to-end benchmark — {args.seconds:.0f} s of changes per case, "
        f"{args.channels} channels, every service in its own process"
    )
    head = (
        f"{'case':<40}{'sent':>6}{'got':>6}{'dup':>5}{'p50 ms':>9}{'p99 ms':>9}{'x base p50':>11}"
    )
    print(head)
    for base, run in results:
        for r in (base, run):
            ratio = "" if r is base else f"{run.pct(0.5) / max(base.pct(0.5), 1e-9):>11.1f}"
            print(
                f"{r.label:<40}{r.sent:>6}{r.delivered:>6}{r.duplicated:>5}"
                f"{r.pct(0.5):>9.1f}{r.pct(0.99):>9.1f}{ratio}"
            )
    print("CPU ms per event, by process:")
    for _, run in [*results, (None, limited)]:
        if run.cpu_ms:
            parts = ", ".join(f"{k} {v:.1f}" for k, v in run.cpu_ms.items())
            print(f"  {run.label:<38}{parts} (total {sum(run.cpu_ms.values()):.1f})")
    per_channel = math.ceil(limited_count / args.channels / PACK)
    floor = floor_seconds([per_channel] * args.channels)
    print(
        f"{limited.label:<40}{limited.sent:>6}{limited.delivered:>6}{limited.duplicated:>5}"
        f"{limited.pct(0.5):>9.1f}{limited.pct(0.99):>9.1f}"
    )
    print(
        f"limits on: {limited.posts} posts, all delivered after {limited.elapsed:.1f} s; "
        f"floor for {per_channel} packed posts per channel {floor:.1f} s "
        f"({limited.elapsed / max(floor, 1e-9):.2f}x; the changes themselves take "
        f"{args.seconds:.0f} s)"
    )
    at_200 = next((run for _, run in results if "200" in run.label), None)
    if at_200 is not None:
        p99 = at_200.pct(0.99)
        verdict = "PASS" if p99 < 100 and at_200.delivered == at_200.sent else "FAIL"
        print(f"target p99 < 100 ms at 200 events/s (limits lifted): {p99:.1f} ms {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--rates", default="50,200,500")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
