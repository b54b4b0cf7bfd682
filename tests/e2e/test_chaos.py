"""Chaos: services killed with SIGKILL and restarted while 2,000 webhooks flow.

Eight projects, each followed by a channel of its own, get 80 issues; each issue is created
and then changed 16 times — a comment ``step N`` and a summary ``… step N`` by turns — in a
random interleaving, paced at about 130 webhooks a second (a comment is two webhooks:
``comment_created`` and the ``issue_commented`` update that Jira sends beside it). Meanwhile
every service is killed with ``kill -9`` at least once, the two workers more often, each
restarted after a short pause. A gateway that is down makes Jira retry (the simulator's retry
budget is raised towards Jira Cloud's real one, which runs for minutes); a worker killed in
the middle of a message leaves it locked until the lock expires, then it is delivered again.

A notification is identified by its issue key and the event's time (the embed's
``timestamp`` is the webhook's, in milliseconds, and an issue's changes are made at least a
few milliseconds apart), so the test can say, for every change Jira announced: delivered
exactly once, in its project's channel, after the issue's earlier changes and before its
later ones. Embeds are counted, not messages: a busy channel gets packs of up to ten.

Everything random (the interleaving, who is killed, when, for how long) comes from one seed,
printed at the start; ``CHAOS_SEED=<n>`` replays another.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, TypeVar

import pytest

from dfj_sandbox.jira_sim.delivery import WebhookDelivery
from dfj_sandbox.jira_sim.dispatch import WebhookPolicy
from dfj_sandbox.jira_sim.site import Site
from dfj_sandbox.stack import Sandbox, build_cast, file_sink, first_run

pytestmark = [
    pytest.mark.crossprocess,
    pytest.mark.slow,
    pytest.mark.timeout(240),
]

T = TypeVar("T")

DEFAULT_SEED: Final = 20_260_817
PROJECTS: Final = 8
ISSUES_PER_PROJECT: Final = 10
CHANGES_PER_ISSUE: Final = 16  # after the creation: comment, summary, comment, …
WEBHOOKS_PER_SECOND: Final = 130.0
SAME_ISSUE_GAP: Final = 0.004  # seconds between two changes of one issue: distinct timestamps
WORKERS: Final = ("jira-worker", "discord-worker")
EVERY_SERVICE: Final = ("gateway", "jira-worker", "discord-worker", "linker")
EXTRA_WORKER_KILLS: Final = 3
# Jira Cloud retries a webhook for up to about half an hour; the simulator's default budget
# (5 retries, a few seconds in all) is for tests of giving up, not for a gateway restart.
PATIENT_JIRA: Final = WebhookPolicy(first_delay=0.2, factor=2.0, max_delay=2.0, max_retries=15)
DRAIN_TIMEOUT: Final = 120.0  # a killed worker's locks expire after 30 s, then the backlog
SETTLE: Final = 2.0  # late copies of anything would have landed by then

_ISSUE_TITLE: Final = re.compile(r"^([A-Z][A-Z0-9]*-\d+): ")


@dataclass(frozen=True, slots=True)
class Kill:
    """One ``kill -9``: after ``wait`` seconds, ``service`` dies and stays down ``down`` s."""

    service: str
    wait: float
    down: float


@dataclass(frozen=True, slots=True)
class Seen:
    """One embed about an issue, where and in which order it appeared."""

    channel_id: str
    key: str
    millis: int
    kind: str
    description: str


@dataclass(frozen=True, slots=True)
class Expected:
    """One notification a webhook calls for."""

    key: str
    millis: int
    kind: str
    comment: str | None


def _seed() -> int:
    return int(os.environ.get("CHAOS_SEED", DEFAULT_SEED))


def _kill_plan(rng: random.Random) -> list[Kill]:
    victims = [*EVERY_SERVICE, *(rng.choice(WORKERS) for _ in range(EXTRA_WORKER_KILLS))]
    rng.shuffle(victims)
    return [Kill(name, rng.uniform(0.6, 1.6), rng.uniform(0.0, 0.6)) for name in victims]


def _workload(rng: random.Random, issues: int) -> list[int]:
    """Which issue changes next, for every change: each issue's turns, shuffled together."""
    order = [n for n in range(issues) for _ in range(1 + CHANGES_PER_ISSUE)]
    rng.shuffle(order)
    return order


@dataclass
class Produced:
    """What the workload did: site actions made, and the webhooks they cost."""

    actions: int = 0
    webhooks: int = 0
    seconds: float = 0.0


async def _produce(
    site: Site, projects: Sequence[str], order: Sequence[int], produced: Produced
) -> None:
    """Every change of ``order`` (issue ``n`` lives in ``projects[n]``), paced at
    :data:`WEBHOOKS_PER_SECOND`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    steps = [0] * len(projects)
    issue_keys: list[str | None] = [None] * len(projects)
    last = [0.0] * len(projects)
    for n in order:
        due = start + produced.webhooks / WEBHOOKS_PER_SECOND
        wait = max(due, last[n] + SAME_ISSUE_GAP) - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        step = steps[n]
        key = issue_keys[n]
        if key is None:
            issue_keys[n] = site.create_issue(projects[n], f"chaos {n}").key
            produced.webhooks += 1
        elif step % 2 == 1:
            site.add_comment(key, f"step {step}")
            produced.webhooks += 2
        else:
            site.update_issue(key, summary=f"chaos {n} step {step}")
            produced.webhooks += 1
        steps[n] += 1
        produced.actions += 1
        last[n] = loop.time()
    produced.seconds = loop.time() - start


async def _chaos(
    sandbox: Sandbox, plan: Sequence[Kill], produced: Produced, logs: Path
) -> list[str]:
    """Carry out the kills; one line per kill for the report."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    done: list[str] = []
    for kill in plan:
        await asyncio.sleep(kill.wait)
        at, sent = loop.time() - start, produced.webhooks
        await sandbox.services.kill(kill.service)
        await asyncio.sleep(kill.down)
        try:
            await sandbox.services.restart(kill.service)
        except RuntimeError as exc:
            raise AssertionError(f"{exc} after kill -9; service logs in {logs}") from None
        done.append(
            f"{at:5.1f} s  kill -9 {kill.service:<14} after {sent:4d} webhooks; "
            f"ready again {loop.time() - start - at:.1f} s later"
        )
    return done


def _expected(deliveries: Sequence[WebhookDelivery]) -> list[Expected]:
    """The notifications these webhooks call for (an ``issue_commented`` update is none)."""
    found: list[Expected] = []
    for delivery in deliveries:
        body = delivery.body or {}
        key = str(body["issue"]["key"])
        millis = int(body["timestamp"])
        if delivery.event == "jira:issue_created":
            found.append(Expected(key, millis, "created", None))
        elif delivery.event == "comment_created":
            found.append(Expected(key, millis, "commented", str(body["comment"]["body"])))
        elif delivery.event == "jira:issue_updated" and body.get("changelog", {}).get("items"):
            found.append(Expected(key, millis, "updated", None))
    return found


def _kind(description: str) -> str:
    headline = description.split("\n", 1)[0]
    if headline.endswith(" created"):
        return "created"
    if headline.endswith(" commented"):
        return "commented"
    if headline.startswith("Issue updated"):
        return "updated"
    return f"other: {headline}"


def _seen(sandbox: Sandbox, channel_ids: Sequence[str]) -> list[Seen]:
    """Every embed about an issue in these channels, in channel order, embeds in order."""
    found: list[Seen] = []
    for channel_id in channel_ids:
        for message in sandbox.discord.messages(channel_id, ephemeral=False):
            for embed in message.embeds:
                match = _ISSUE_TITLE.match(str(embed.get("title", "")))
                if match is None:
                    continue
                stamp = datetime.fromisoformat(str(embed["timestamp"]))
                description = str(embed.get("description", ""))
                found.append(
                    Seen(
                        channel_id=channel_id,
                        key=match.group(1),
                        millis=round(stamp.timestamp() * 1000),
                        kind=_kind(description),
                        description=description,
                    )
                )
    return found


def _problems(
    expected: Sequence[Expected], seen: Sequence[Seen], home: Mapping[str, str]
) -> list[str]:
    """Everything wrong with what arrived, as readable lines (empty: all is well)."""
    problems: list[str] = []
    wanted = {(e.key, e.millis): e for e in expected}
    counts = Counter((s.key, s.millis) for s in seen)
    missing = sorted(k for k in wanted if counts[k] == 0)
    doubled = sorted((k, n) for k, n in counts.items() if n > 1)
    unknown = sorted(k for k in counts if k not in wanted)
    if missing:
        problems.append(f"{len(missing)} notifications missing, e.g. {missing[:5]}")
    if doubled:
        problems.append(
            f"{len(doubled)} notifications delivered more than once, e.g. {doubled[:5]}"
        )
    if unknown:
        problems.append(f"{len(unknown)} embeds match no webhook, e.g. {unknown[:5]}")
    astray = [s for s in seen if home.get(s.key.split("-")[0]) != s.channel_id]
    if astray:
        problems.append(f"{len(astray)} embeds in the wrong channel, e.g. {astray[:3]}")
    wrong_kind = [
        (s.key, s.millis, s.kind, wanted[(s.key, s.millis)].kind)
        for s in seen
        if (s.key, s.millis) in wanted and s.kind != wanted[(s.key, s.millis)].kind
    ]
    if wrong_kind:
        problems.append(f"{len(wrong_kind)} embeds say the wrong thing, e.g. {wrong_kind[:3]}")
    bad_text = [
        (s.key, s.millis)
        for s in seen
        if (e := wanted.get((s.key, s.millis))) is not None
        and e.comment is not None
        and f"> {e.comment}" not in s.description
    ]
    if bad_text:
        problems.append(f"{len(bad_text)} comment embeds lack their text, e.g. {bad_text[:3]}")
    by_issue: dict[str, list[int]] = {}
    for s in seen:
        by_issue.setdefault(s.key, []).append(s.millis)
    disordered = sorted(k for k, stamps in by_issue.items() if stamps != sorted(stamps))
    if disordered:
        problems.append(
            f"{len(disordered)} issues' notifications out of order, e.g. "
            + "; ".join(f"{k}: {by_issue[k]}" for k in disordered[:2])
        )
    return problems


async def test_killed_services_lose_nothing_duplicate_nothing_and_keep_order(
    tmp_path: Path,
) -> None:
    """Every change Jira announced reaches its channel once and in order, and nothing is
    dead-lettered, though each service was killed with SIGKILL at least once meanwhile."""
    seed = _seed()
    print(f"chaos seed: {seed} (CHAOS_SEED={seed} replays it)")
    rng = random.Random(seed)
    issues = PROJECTS * ISSUES_PER_PROJECT
    order = _workload(rng, issues)
    plan = _kill_plan(rng)
    logs = tmp_path / "logs"
    async with Sandbox(workdir=tmp_path, sink=file_sink(logs)) as sandbox:
        sandbox.jira.webhook_policy = PATIENT_JIRA
        cast = build_cast(sandbox)
        await first_run(sandbox, cast, subscribe=False)
        home: dict[str, str] = {}
        for p in range(PROJECTS):
            key = f"CH{p}"
            cast.site.add_project(key, f"Chaos {p}")
            home[key] = cast.guild.add_channel(f"chaos-{p}").id
            answer = await sandbox.run_command(home[key], cast.alice, "subscribe", {"project": key})
            assert "now gets updates" in answer.content, answer.content
        projects = [f"CH{n % PROJECTS}" for n in range(issues)]
        first = len(sandbox.jira.webhook_deliveries)
        produced = Produced()
        started = time.perf_counter()

        producing = asyncio.ensure_future(_produce(cast.site, projects, order, produced))
        try:
            kills = await _chaos(sandbox, plan, produced, logs)
            await producing
        finally:
            producing.cancel()
        try:
            await sandbox.jira.webhooks_idle(timeout=60)
        except TimeoutError:
            raise AssertionError(f"Jira still sending webhooks; service logs in {logs}") from None

        deliveries = sandbox.jira.webhook_deliveries[first:]
        expected = _expected(deliveries)
        channels = list(home.values())
        await sandbox.until(
            lambda: len(_seen(sandbox, channels)) >= len(expected) or None,
            f"{len(expected)} notifications",
            timeout=DRAIN_TIMEOUT,
        )
        drained_in = time.perf_counter() - started
        await asyncio.sleep(SETTLE)
        seen = _seen(sandbox, channels)
        dead = await sandbox.dead_letters()
        posts = sum(len(sandbox.discord.messages(c, ephemeral=False)) for c in channels)
        retried = sum(len(d.attempts) - 1 for d in deliveries)
        print(
            f"{len(deliveries)} webhooks made in {produced.seconds:.1f} s ({retried} retried "
            f"attempts), {len(expected)} notifications in {posts} posts, all there "
            f"{drained_in:.1f} s after the start; kills:\n  " + "\n  ".join(kills)
        )

        assert produced.webhooks >= 2000, produced
        assert len(deliveries) == produced.webhooks, (len(deliveries), produced)
        undelivered = Counter(d.outcome for d in deliveries if d.outcome != "delivered")
        assert not undelivered, f"webhooks Jira gave up on: {undelivered}; logs in {logs}"
        assert len(expected) == produced.actions, "one notification per change made"
        assert len({(e.key, e.millis) for e in expected}) == len(expected), "ids not unique"
        problems = _problems(expected, seen, home)
        assert not problems, "\n".join([*problems, f"seed {seed}; service logs in {logs}"])
        nonce_copies = {c: sandbox.discord.duplicates(c) for c in channels}
        assert not any(nonce_copies.values()), nonce_copies
        dead_reasons = {q: Counter(d.reason for d in ds) for q, ds in dead.items() if ds}
        assert not dead_reasons, f"dead-lettered: {dead_reasons}; logs in {logs}"
        assert sandbox.services.exited() == [], f"crashed on their own; logs in {logs}"
        assert sum(sandbox.services.restarts.values()) == len(plan)
