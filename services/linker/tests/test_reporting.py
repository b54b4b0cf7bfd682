"""Personal-data reporting from the linker's side: what is reported, and erasing closed ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from dfj_common.bus import JIRA_COMMANDS
from dfj_common.envelope import Envelope
from dfj_common.errors import MalformedMessage
from dfj_common.storage import MetadataCache, UserLinks
from dfj_common.testing import drain
from dfj_linker.handlers import build_retention
from dfj_linker.reporting import Reporter

if TYPE_CHECKING:
    from services.linker.tests.conftest import Rig


def reporter(rig: Rig) -> Reporter:
    return build_retention(rig.db, rig.bus, clock=rig.clock).reporter


async def requests(rig: Rig) -> list[Envelope]:
    return await drain(rig.bus, JIRA_COMMANDS)


def answer(rig: Rig, closed: list[str], period: float = 7 * 86_400.0) -> Envelope:
    return Envelope(
        id="answer",
        source="dfj-jira-worker",
        type="privacy.accounts_reported",
        tenant=rig.site,
        data={
            "clientKey": rig.site,
            "closed": closed,
            "updated": [],
            "cycle_period_seconds": period,
        },
    )


async def test_every_linked_account_is_reported_in_batches_of_90_once_per_cycle(
    rig: Rig,
) -> None:
    links = UserLinks(rig.db)
    for n in range(200):
        await links.link(rig.site, account_id=f"acc-{n:03}", discord_user_id=str(10**17 + n))
    assert await reporter(rig).report_due_sites() == 3
    sent = await requests(rig)
    assert [len(r.data["accounts"]) for r in sent] == [90, 90, 20]
    reported = [a["accountId"] for r in sent for a in r.data["accounts"]]
    assert sorted(reported) == [f"acc-{n:03}" for n in range(200)]
    assert all(a["updatedAt"].endswith("Z") for r in sent for a in r.data["accounts"])
    assert {r.type for r in sent} == {"privacy.report_accounts"}
    assert await reporter(rig).report_due_sites() == 0  # not due again this cycle
    assert await requests(rig) == []


async def test_closed_accounts_are_erased_and_the_next_cycle_follows_jira(rig: Rig) -> None:
    links = UserLinks(rig.db)
    await links.link(rig.site, account_id="closed-1", discord_user_id=rig.alice)
    await links.link(rig.site, account_id="active-1", discord_user_id=rig.mallory)
    await reporter(rig).report_due_sites()
    await requests(rig)
    await reporter(rig).accounts_reported(answer(rig, ["closed-1"], period=3600.0), rig.context())
    assert [link.account_id for link in await links.list_for_site(rig.site)] == ["active-1"]
    rig.clock.advance(3601)  # Jira's cycle of one hour is over
    await MetadataCache(rig.db).purge_expired()
    assert await reporter(rig).report_due_sites() == 1
    # Erasing is idempotent: the same answer again erases nothing more.
    await reporter(rig).accounts_reported(answer(rig, ["closed-1"]), rig.context())
    assert len(await links.list_for_site(rig.site)) == 1


async def test_a_malformed_answer_is_dead_lettered(rig: Rig) -> None:
    with pytest.raises(MalformedMessage):
        await reporter(rig).accounts_reported(answer(rig, ["has spaces"]), rig.context())
    broken = Envelope(id="x", source="t", type="privacy.accounts_reported", data={})
    with pytest.raises(MalformedMessage):
        await reporter(rig).accounts_reported(broken, rig.context())
