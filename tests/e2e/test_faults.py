"""Faults at the edges: Discord's 5xx and 429 bursts, Jira's 503s, a channel the bot lost.

One sandbox for the module; each test follows its own projects in channels of its own, so
what one test sends never counts in another's tally. Notifications are identified as in the
chaos test: the issue key and the event's time in milliseconds (the embed's ``timestamp``), so
"delivered exactly once, in order" is checked per change Jira announced, embed by embed (a
busy channel gets packs of several embeds in one message). Dead letters are read from the
bus file; each test compares them with what was there before it started.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, TypeVar

import pytest
import pytest_asyncio

from dfj_common.bus import DISCORD_OUTBOX, DeadLetter
from dfj_sandbox.discord_sim.permissions import VIEW_CHANNEL
from dfj_sandbox.discord_sim.ratelimit import Scope
from dfj_sandbox.jira_sim.delivery import WebhookDelivery
from dfj_sandbox.stack import Cast, Sandbox, build_cast, file_sink, first_run

pytestmark = [
    pytest.mark.crossprocess,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(180),
]

T = TypeVar("T")

MESSAGE_CREATE: Final = "POST /channels/{channel_id}/messages"
SETTLE: Final = 1.5  # late copies of anything would have landed by then
# Longer than the queue's 10 deliveries of Retry-After: 1 s — rate-limit retries must not use them
# all up and dead-letter what Jira only asked us to slow down (the runtime holds the last one).
THROTTLED_FOR: Final = 14.0  # seconds Jira answers 503 (Retry-After: 1)

_ISSUE_TITLE: Final = re.compile(r"^([A-Z][A-Z0-9]*-\d+): ")


@dataclass(frozen=True, slots=True)
class Burst:
    """Discord's next ``count`` message posts fail with ``status`` (see ``fail_next``)."""

    status: int
    count: int
    scope: Scope = "shared"
    retry_after: float = 1.0
    applied: bool = False


@dataclass(frozen=True, slots=True)
class Seen:
    """One embed about an issue, in channel order."""

    channel_id: str
    key: str
    millis: int


class Rig:
    """The running sandbox with the waits and tallies the tests need."""

    def __init__(self, sandbox: Sandbox, cast: Cast, logs: Path) -> None:
        self.sandbox = sandbox
        self.cast = cast
        self.logs = logs

    async def feed(self, project: str, channel_name: str) -> str:
        """A channel following ``project`` (made if new); its id."""
        if self.cast.site.project(project) is None:
            self.cast.site.add_project(project)
        channel_id = self.cast.guild.add_channel(channel_name).id
        answer = await self.sandbox.run_command(
            channel_id, self.cast.alice, "subscribe", {"project": project}
        )
        assert "now gets updates" in answer.content, answer.content
        return channel_id

    def mark(self) -> int:
        """Where the webhook records stand now (for :meth:`expected`)."""
        return len(self.sandbox.jira.webhook_deliveries)

    def expected(self, since: int, projects: Sequence[str]) -> list[tuple[str, int]]:
        """(key, millis) of every notification the webhooks since ``since`` call for."""
        found: list[tuple[str, int]] = []
        for delivery in self.sandbox.jira.webhook_deliveries[since:]:
            if _notifies(delivery) and delivery.body is not None:
                key = str(delivery.body["issue"]["key"])
                if key.split("-", maxsplit=1)[0] in projects:
                    found.append((key, int(delivery.body["timestamp"])))
        return found

    def seen(self, channel_ids: Sequence[str]) -> list[Seen]:
        """Every embed about an issue in these channels, in order."""
        found: list[Seen] = []
        for channel_id in channel_ids:
            for message in self.sandbox.discord.messages(channel_id, ephemeral=False):
                for embed in message.embeds:
                    match = _ISSUE_TITLE.match(str(embed.get("title", "")))
                    if match is not None:
                        stamp = datetime.fromisoformat(str(embed["timestamp"]))
                        millis = round(stamp.timestamp() * 1000)
                        found.append(Seen(channel_id, match.group(1), millis))
        return found

    async def webhooks_idle(self, timeout: float) -> None:
        try:
            await self.sandbox.jira.webhooks_idle(timeout=timeout)
        except TimeoutError:
            raise AssertionError(
                f"Jira still sending webhooks; service logs in {self.logs}"
            ) from None

    async def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter on every queue."""
        return [d for ds in (await self.sandbox.dead_letters()).values() for d in ds]

    async def new_dead_letters(self, before: Sequence[DeadLetter]) -> list[DeadLetter]:
        known = {(d.queue, d.message_id) for d in before}
        return [d for d in await self.dead_letters() if (d.queue, d.message_id) not in known]

    async def delivered_exactly_once(
        self, since: int, feeds: Mapping[str, Sequence[str]], timeout: float = 60
    ) -> list[Seen]:
        """Wait for the notifications since ``since`` in the channels of ``feeds``
        (project → channels), then check each came once, to each channel, in order."""
        await self.webhooks_idle(timeout)
        expected = self.expected(since, list(feeds))
        assert len(set(expected)) == len(expected), "two changes of an issue in one millisecond"
        channels = [c for cs in feeds.values() for c in cs]
        wanted = sum(
            len(cs) * sum(1 for key, _ in expected if key.startswith(f"{project}-"))
            for project, cs in feeds.items()
        )
        await self.sandbox.until(
            lambda: len(self.seen(channels)) >= wanted or None,
            f"{wanted} notifications in {len(channels)} channels",
            timeout=timeout,
        )
        await asyncio.sleep(SETTLE)
        seen = self.seen(channels)
        for project, project_channels in feeds.items():
            mine = sorted(e for e in expected if e[0].startswith(f"{project}-"))
            for channel_id in project_channels:
                here = [(s.key, s.millis) for s in seen if s.channel_id == channel_id]
                copies = {k: n for k, n in Counter(here).items() if n > 1}
                assert not copies, f"delivered more than once in {channel_id}: {copies}"
                assert sorted(here) == mine, (
                    f"{channel_id}: missing {sorted(set(mine) - set(here))[:5]}, "
                    f"unexpected {sorted(set(here) - set(mine))[:5]}; logs in {self.logs}"
                )
                for key in {k for k, _ in mine}:
                    stamps = [m for k, m in here if k == key]
                    assert stamps == sorted(stamps), f"{key} out of order in {channel_id}"
            assert all(self.sandbox.discord.duplicates(c) == {} for c in project_channels), {
                c: self.sandbox.discord.duplicates(c) for c in project_channels
            }
        return seen


def _notifies(delivery: WebhookDelivery) -> bool:
    """Whether the subscriptions (default events) make a notification of this webhook."""
    body = delivery.body or {}
    if delivery.event in ("jira:issue_created", "comment_created"):
        return True
    return delivery.event == "jira:issue_updated" and bool(body.get("changelog", {}).get("items"))


@pytest_asyncio.fixture(name="rig", scope="module", loop_scope="module")
async def _rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    workdir = tmp_path_factory.mktemp("faults")
    async with Sandbox(workdir=workdir, sink=file_sink(workdir / "logs")) as sandbox:
        cast = build_cast(sandbox)
        await first_run(sandbox, cast, subscribe=False)
        yield Rig(sandbox, cast, workdir / "logs")


# Notifications are told apart by issue and event time in milliseconds: two changes are never
# made closer than this, even when the pace catches up after a stall of the event loop.
MIN_GAP: Final = 0.004


async def _paced(count: int, per_second: float) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    last = float("-inf")
    for n in range(count):
        wait = max(start + n / per_second, last + MIN_GAP) - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        last = loop.time()
        yield n


async def test_discord_5xx_and_429_bursts_delay_but_lose_and_duplicate_nothing(
    rig: Rig,
) -> None:
    """Discord fails message posts in bursts — some 5xx after storing the message, as when
    an answer is lost — while notifications flow: each still arrives once, in order."""
    sim, site = rig.sandbox.discord, rig.cast.site
    feeds = {"FA": [await rig.feed("FA", "faults-a")], "FB": [await rig.feed("FB", "faults-b")]}
    bursts = {
        4: Burst(500, 3),
        12: Burst(503, 2, applied=True),
        20: Burst(429, 4, retry_after=1.0),
        28: Burst(429, 2, scope="global", retry_after=0.5),
        36: Burst(502, 2, applied=True),
    }
    before = await rig.dead_letters()
    since = rig.mark()
    issues: list[str] = []
    async for n in _paced(48, 16):
        burst = bursts.get(n)
        if burst is not None:
            sim.fail_next(
                MESSAGE_CREATE,
                burst.status,
                burst.count,
                scope=burst.scope,
                retry_after=burst.retry_after,
                applied=burst.applied,
            )
        if n % 3 == 2:
            site.add_comment(issues[-1], f"comment {n}")
        else:
            issues.append(site.create_issue(f"F{'AB'[n % 2]}", f"fault {n}").key)
    seen = await rig.delivered_exactly_once(since, feeds)
    assert len(seen) == 48, "one notification per change"
    hit = [c for c in sim.calls if c.injected and c.key == MESSAGE_CREATE]
    injected = sum(b.count for b in bursts.values())
    assert len(hit) == injected, f"{len(hit)} of {injected} faults were met"
    assert await rig.new_dead_letters(before) == []


async def test_jira_503_with_retry_after_delays_notifications_until_it_recovers(
    rig: Rig,
) -> None:
    """Jira sheds load (503, Retry-After) while the jira-worker must read the issues back:
    nothing arrives meanwhile, everything arrives once afterwards, nothing is dead-lettered."""
    site = rig.cast.site
    feeds = {"FJ": [await rig.feed("FJ", "faults-jira")]}
    channel = feeds["FJ"][0]
    before = await rig.dead_letters()
    since = rig.mark()
    refused_before = sum(1 for c in rig.sandbox.jira.calls if c.status == 503)
    site.throttle(1_000_000, status=503, retry_after=1.0, reason="jira-quota-global-based")
    loop = asyncio.get_running_loop()
    lift_at = loop.time() + THROTTLED_FOR
    try:
        keys: list[str] = []
        async for n in _paced(24, 12):
            if n % 2:
                site.add_comment(keys[-1], f"while throttled {n}")
            else:
                keys.append(site.create_issue("FJ", f"throttled {n}").key)
        await asyncio.sleep(max(0.0, lift_at - loop.time()))
        assert rig.seen([channel]) == [], "nothing can be shown while Jira refuses the reads"
        refused = sum(1 for c in rig.sandbox.jira.calls if c.status == 503) - refused_before
        assert refused > 0, "the jira-worker never met the 503"
    finally:
        site.throttle(0)
    seen = await rig.delivered_exactly_once(since, feeds)
    assert len(seen) == 24, "one notification per change"
    assert await rig.new_dead_letters(before) == []


async def test_a_channel_the_bot_can_no_longer_see_is_dead_lettered_the_others_delivered(
    rig: Rig,
) -> None:
    """Two channels follow one project; the bot loses access to one. Its notifications are
    dead-lettered as ``DiscordMissingAccess`` (Discord's 50001) and the subscriber is told
    once; the other channel gets every notification."""
    sandbox, cast = rig.sandbox, rig.cast
    kept = await rig.feed("FM", "faults-kept")
    lost = await rig.feed("FM", "faults-lost")
    bot_role = cast.guild.bot_role
    assert bot_role is not None
    cast.guild.set_overwrite(lost, bot_role.id, deny=VIEW_CHANNEL)
    before = await rig.dead_letters()
    since = rig.mark()
    for n in range(6):
        cast.site.create_issue("FM", f"hidden from the bot {n}")
    await rig.delivered_exactly_once(since, {"FM": [kept]})
    expected = rig.expected(since, ["FM"])
    assert len(expected) == 6

    async def all_dead_for_lost() -> bool:
        dead = await rig.new_dead_letters(before)
        return sum(1 for d in dead if d.session_id == lost) >= len(expected)

    await sandbox.until(all_dead_for_lost, f"{len(expected)} dead letters for the lost channel")
    await asyncio.sleep(SETTLE)
    dead = await rig.new_dead_letters(before)
    assert len(dead) == len(expected), (
        f"{len(dead)} dead letters, {len(expected)} expected: "
        f"{Counter((d.queue, d.reason, d.session_id) for d in dead)}; logs in {rig.logs}"
    )
    assert {(d.queue, d.session_id, d.reason) for d in dead} == {
        (DISCORD_OUTBOX, lost, "DiscordMissingAccess")
    }
    assert all("50001" in d.description for d in dead), [d.description for d in dead]
    assert rig.seen([lost]) == [], "nothing reached the channel the bot cannot see"
    dm = sandbox.discord.world.dm_channel(cast.alice.discord_user_id)
    assert dm is not None, "the subscriber was not told"
    notices = [m for m in sandbox.discord.messages(dm.id) if f"<#{lost}>" in str(m.embeds)]
    assert len(notices) == 1, "told once, not once per message"
    assert "50001" in str(notices[0].embeds[0].get("description", ""))
