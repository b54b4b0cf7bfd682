"""Notification fan-out benchmark: webhooks processed/s, and Jira calls per event.

One tenant on the Jira simulator (loopback HTTP, the real client, real JWTs) with 50 channel
subscriptions to one project, half of them filtered by JQL. Webhook events, as the gateway
publishes them, are put on ``jira-events``; the real worker runtime runs the jira-worker's
handler table until every event is settled, and each message the channels should get lands on
``discord-outbox``. Everything runs in this process, simulator included, so the numbers are a
floor for a worker talking to a remote Jira.

Cases, all in the same run:

- **baseline**: the same bus and runtime with a handler that only completes each event;
- **1 subscription** and **50 subscriptions**: the real notifier.

Reported: events/s and the ratio to the baseline, messages published, and Jira calls per event.
Target (from the jira-worker issue): at most one ``jql/match`` call and one issue read per
event, whatever the number of subscriptions. Reported, not asserted.

    python bench/fanout.py [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dfj_common.bus import DISCORD_OUTBOX, JIRA_EVENTS, TOPOLOGY
from dfj_common.bus.local import LocalBus
from dfj_common.clock import SystemClock
from dfj_common.envelope import Envelope, deterministic_id
from dfj_common.logging import configure_logging
from dfj_common.runtime import HandlerContext, HandlerTable, Worker
from dfj_common.secrets import EnvelopeCipher, EnvSecretStore, make_aad
from dfj_common.storage import Database, InstallationState, Repositories
from dfj_common.storage.migrate import upgrade
from dfj_jira_worker.handlers import build_tables
from dfj_jira_worker.jira import JiraClient
from dfj_sandbox.jira_sim import Issue, JiraSimulator, Site

GUILD = "1100000000000000001"
LABELS = ("ops", "web", "api", "db", "ui")


def webhook(site: Site, issue: Issue, n: int) -> Envelope:
    data = {
        "clientKey": site.client_key,
        "event": "jira:issue_created",
        "delivery": {"identifier": f"bench-{n}", "retry": 0},
        "issue": {
            "id": issue.id,
            "key": issue.key,
            "projectId": issue.project_id,
            "projectKey": "DEMO",
            "issueTypeId": issue.issue_type_id,
            "statusId": issue.status_id,
        },
    }
    return Envelope(
        id=deterministic_id("bench-webhook", str(n)),
        source="dfj-gateway",
        type="jira.webhook",
        tenant=site.client_key,
        session_key=f"{site.client_key}:{issue.id}",
        data=data,
    )


async def drain(bus: LocalBus, queue: str) -> int:
    receiver = bus.receiver(queue)
    count = 0
    try:
        while got := await receiver.receive(100, timeout=0):
            for delivery in got:
                await delivery.complete()
                count += 1
    finally:
        await receiver.close()
    return count


async def run_case(bus: LocalBus, table: HandlerTable, events: list[Envelope]) -> tuple[float, int]:
    """Seconds to settle every event through the runtime, and the messages they published."""
    for envelope in events:
        await bus.publish_envelope(JIRA_EVENTS, envelope)
    worker = Worker(bus, TOPOLOGY[JIRA_EVENTS], table, concurrency=16, receive_timeout=0.05)
    stop = asyncio.Event()
    started = time.perf_counter()
    running = asyncio.ensure_future(worker.run(stop))
    # The runtime has no "done" signal (a queue never ends); poll its counters.
    while worker.stats.completed + worker.stats.dead_lettered < len(events):  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    stop.set()
    await running
    return elapsed, await drain(bus, DISCORD_OUTBOX)


async def complete_only(_envelope: Envelope, _ctx: HandlerContext) -> None:
    return None


async def main(n: int) -> None:
    configure_logging(service="bench", level="warning", fmt="json")
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    clock = SystemClock()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dfj-bench-fanout-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'dfj.sqlite'}"
        await asyncio.to_thread(upgrade, url)
        async with JiraSimulator(clock=clock) as sim:
            site = sim.add_site("bench")
            issues = [
                site.create_issue(
                    "DEMO",
                    f"Issue {i}",
                    priority=("High", "Medium", "Low")[i % 3],
                    labels=(LABELS[i % len(LABELS)],),
                )
                for i in range(3 * n)
            ]
            database = Database.open(url)
            bus = await LocalBus.open(Path(tmp) / "bus.sqlite", poll_interval=0.01)
            repos = Repositories(database)
            cipher = EnvelopeCipher(
                EnvSecretStore(
                    {"DFJ_KEK": base64.b64encode(os.urandom(32)).decode()}, env_file=None
                )
            )
            sealed = await cipher.seal(
                site.shared_secret.encode(),
                aad=make_aad(site.client_key, "connect-shared-secret"),
            )
            await repos.installations.save_connect(
                site.client_key,
                base_url=site.base_url,
                shared_secret_ciphertext=sealed,
                app_key=site.app_key,
                oauth_client_id=site.oauth_client_id,
                state=InstallationState.ENABLED,
            )
            await repos.guild_connections.connect(GUILD, site.client_key, connected_by="1")
            jira = JiraClient(
                app_key=site.app_key, oauth_url=sim.oauth_url, cipher=cipher, clock=clock
            )
            tables: Mapping[str, HandlerTable] = build_tables(database, bus, jira=jira, clock=clock)
            batches = iter(range(0, 3 * n, n))

            def next_events() -> list[Envelope]:
                start = next(batches)
                return [webhook(site, issues[i], i) for i in range(start, start + n)]

            elapsed, _ = await run_case(bus, {"jira.webhook": complete_only}, next_events())
            results["baseline"] = (elapsed, 0, 0, 0)
            for subs in (1, 50):
                existing = await repos.subscriptions.list_for_project(site.client_key, "DEMO")
                for i in range(len(existing), subs):
                    await repos.subscriptions.add(
                        guild_id=GUILD,
                        channel_id=str(1200000000000000000 + i),
                        client_key=site.client_key,
                        project_key="DEMO",
                        event_types=("issue_created",),
                        created_by="1",
                        jql=None if i % 2 == 0 else f"labels = {LABELS[i % len(LABELS)]}",
                    )
                sim.reset_records()
                elapsed, published = await run_case(bus, tables[JIRA_EVENTS], next_events())
                results[f"{subs} subscription{'s' if subs > 1 else ''}"] = (
                    elapsed,
                    published,
                    sim.count("POST", "/rest/api/3/jql/match"),
                    sim.count("GET", "/rest/api/3/issue/{issueIdOrKey}"),
                )
            await jira.close()
            await bus.close()
            await database.close()
    base = n / results["baseline"][0]
    print(f"fan-out benchmark — {n} webhook events per case, {os.cpu_count()} cores")
    print(
        f"{'case':<20}{'events/s':>10}{'x base':>8}{'messages':>10}"
        f"{'match/event':>13}{'reads/event':>13}"
    )
    for name, (elapsed, published, matches, reads) in results.items():
        rate = n / elapsed
        print(
            f"{name:<20}{rate:>10.0f}{rate / base:>8.2f}{published:>10}"
            f"{matches / n:>13.2f}{reads / n:>13.2f}"
        )
    _, _, matches, reads = results["50 subscriptions"]
    ok = matches <= n and reads <= n
    print(
        f"target <= 1 jql/match and <= 1 issue read per event with 50 subscriptions: "
        f"{matches / n:.2f} and {reads / n:.2f} {'PASS' if ok else 'FAIL'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500)
    asyncio.run(main(parser.parse_args().events))
