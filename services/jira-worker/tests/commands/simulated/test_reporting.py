"""Personal-data reporting for the linker, against the Jira simulator's reporting endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from commands.simulated.conftest import ACC_ALICE, ACC_BOB, ACC_MALLORY, World
from dfj_common.bus import LINKER
from dfj_common.envelope import Envelope
from dfj_common.errors import MalformedMessage
from dfj_common.runtime import HandlerContext
from dfj_common.storage import InstallationState
from dfj_common.testing import drain
from dfj_jira_worker.jira import JiraRateLimited
from dfj_jira_worker.reporting import REPORT_ACCOUNTS, Reporting

UPDATED = "2026-11-30T10:00:00Z"


def request(world: World, *account_ids: str, **data: Any) -> Envelope:
    return Envelope(
        id="report-1",
        source="dfj-linker",
        type=REPORT_ACCOUNTS,
        tenant=world.site.client_key,
        data={
            "clientKey": world.site.client_key,
            "accounts": [{"accountId": a, "updatedAt": UPDATED} for a in account_ids],
            **data,
        },
    )


async def run(world: World, envelope: Envelope) -> list[Envelope]:
    reporting = Reporting(installations=world.repos.installations, jira=world.jira, bus=world.bus)
    ctx = HandlerContext(
        queue="jira-commands",
        message_id=envelope.id,
        delivery_count=1,
        max_deliveries=10,
        enqueued_at=0.0,
    )
    await reporting.report(envelope, ctx)
    return await drain(world.bus, LINKER)


async def test_closed_accounts_and_the_cycle_period_go_back_to_the_linker(world: World) -> None:
    world.site.reporting.closed.add(ACC_MALLORY)
    world.site.reporting.updated.add(ACC_BOB)
    world.site.reporting.cycle_period_days = 15
    [answer] = await run(world, request(world, ACC_ALICE, ACC_BOB, ACC_MALLORY))
    assert answer.type == "privacy.accounts_reported"
    assert answer.data == {
        "clientKey": world.site.client_key,
        "closed": [ACC_MALLORY],
        "updated": [ACC_BOB],
        "cycle_period_seconds": 15 * 86_400.0,
    }
    assert world.site.reporting.reported == [ACC_ALICE, ACC_BOB, ACC_MALLORY]
    # The call was the app's (its JWT, the qsh of POST /app/report-accounts/).
    [call] = [c for c in world.sim.calls if c.template == "/app/report-accounts/"]
    assert (call.method, call.account_id) == ("POST", None)


async def test_nothing_changed_is_an_empty_answer(world: World) -> None:
    [answer] = await run(world, request(world, ACC_ALICE))
    assert answer.data["closed"] == [] and answer.data["updated"] == []
    assert answer.data["cycle_period_seconds"] == 7 * 86_400.0


async def test_jiras_429_is_retried_after_its_retry_after(world: World) -> None:
    world.site.limiter.throttle(retry_after=30.0)
    with pytest.raises(JiraRateLimited) as limited:
        await run(world, request(world, ACC_ALICE))
    assert limited.value.retry_after == pytest.approx(30.0, abs=1.0)
    assert world.site.reporting.reports == []


async def test_bad_requests_are_dead_lettered_and_a_gone_site_is_skipped(world: World) -> None:
    with pytest.raises(MalformedMessage):
        await run(world, request(world))  # no accounts
    with pytest.raises(MalformedMessage):
        await run(world, request(world, *[f"acc-{n}" for n in range(91)]))
    with pytest.raises(MalformedMessage):
        await run(world, request(world, "has spaces"))
    await world.repos.installations.set_state(world.site.client_key, InstallationState.UNINSTALLED)
    assert await run(world, request(world, ACC_ALICE)) == []
    assert world.site.reporting.reports == []
