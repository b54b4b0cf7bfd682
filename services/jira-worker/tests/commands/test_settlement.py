"""Through the real worker runtime: how each outcome of a command settles on the bus."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from commands.harness import ACC_ALICE, Harness, content
from dfj_common.bus import JIRA_COMMANDS, TOPOLOGY
from dfj_common.envelope import Envelope
from dfj_common.runtime import Worker
from dfj_jira_worker.jira import JiraRateLimited


async def _run_until(harness: Harness, done: Callable[[Worker], bool]) -> Worker:
    """Run a worker over jira-commands until ``done`` holds (bounded), then drain it."""
    worker = Worker(
        harness.bus,
        TOPOLOGY[JIRA_COMMANDS],
        harness.commands.table(),
        receive_timeout=0.05,
        grace=1.0,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(10):
            while not done(worker):  # noqa: ASYNC110 - the stats offer no event to await
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task
    return worker


async def test_a_jira_refusal_completes_with_an_answer(harness: Harness) -> None:
    """403 from Jira: the user is told, and the message is completed (not dead-lettered)."""
    harness.jira.site.forbid(ACC_ALICE, "get_issue")
    await harness.bus.publish_envelope(JIRA_COMMANDS, harness.command("issue", key="ABC-1"))
    worker = await _run_until(harness, lambda w: w.stats.completed == 1)
    assert worker.stats.dead_lettered == 0
    (reply,) = await harness.replies()
    assert "permission" in content(reply.data["message"])


async def test_a_malformed_event_is_dead_lettered(harness: Harness) -> None:
    """An event without its token cannot be answered: dead-letter with the reason."""
    event = harness.command("issue", key="ABC-1")
    broken = Envelope.from_dict({**event.to_dict(), "data": {**event.data, "token": None}})
    await harness.bus.publish_envelope(JIRA_COMMANDS, broken)
    worker = await _run_until(harness, lambda w: w.stats.dead_lettered == 1)
    assert worker.stats.reasons == {"CommandField": 1}
    (dead,) = await harness.bus.dead_letters(JIRA_COMMANDS)
    assert dead.reason == "CommandField"
    assert await harness.replies() == []


async def test_a_rate_limited_jira_is_retried(harness: Harness) -> None:
    """429: the runtime schedules a retry after Jira's Retry-After; nothing is answered yet."""
    harness.jira.site.fail("get_issue", JiraRateLimited("Jira answered 429", retry_after=30.0))
    await harness.bus.publish_envelope(JIRA_COMMANDS, harness.command("issue", key="ABC-1"))
    worker = await _run_until(harness, lambda w: w.stats.retried == 1)
    assert (worker.stats.completed, worker.stats.dead_lettered) == (0, 0)
    assert await harness.replies() == []
