"""Uninstall retention and the housekeeping sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dfj_common.bus import LINKER
from dfj_common.envelope import Envelope
from dfj_common.storage import (
    DeliveryLog,
    Drafts,
    GuildConnections,
    Installations,
    InstallationState,
    OAuthStates,
    ProcessedIds,
    UserLinks,
)
from dfj_linker.handlers import build_retention
from dfj_linker.retention import PURGE_SITE, Retention
from dfj_linker.settings import LinkerSettings

if TYPE_CHECKING:
    from services.linker.tests.conftest import Rig

DAY = 86_400.0


def retention(rig: Rig, days: float = 30.0) -> Retention:
    settings = LinkerSettings(uninstall_retention_days=days, housekeeping_interval_seconds=60.0)
    return build_retention(rig.db, rig.bus, clock=rig.clock, settings=settings)


async def uninstall(rig: Rig) -> Envelope:
    """What the jira-worker does on Jira's uninstalled callback, and what it tells the linker."""
    await Installations(rig.db).set_state(rig.site, InstallationState.UNINSTALLED)
    return Envelope(
        id=f"uninstalled-{rig.clock.now()}",
        source="dfj-jira-worker",
        type="tenant.uninstalled",
        tenant=rig.site,
        time=datetime.fromtimestamp(rig.clock.now(), UTC),
        data={"clientKey": rig.site, "known": True},
    )


def purge_job(rig: Rig, event: Envelope) -> Envelope:
    return Envelope(
        id="purge",
        source="dfj-linker",
        type=PURGE_SITE,
        tenant=rig.site,
        data={"clientKey": rig.site, "uninstalled_at": event.time.timestamp()},
    )


async def site_data(rig: Rig) -> tuple[bool, bool, bool]:
    return (
        await Installations(rig.db).get(rig.site) is not None,
        await GuildConnections(rig.db).get(rig.guild_id) is not None,
        bool(await UserLinks(rig.db).list_for_site(rig.site)),
    )


async def scheduled(rig: Rig) -> int:
    return next(s.scheduled for s in await rig.bus.stats() if s.queue == LINKER)


async def test_with_no_retention_an_uninstall_erases_the_site_at_once(rig: Rig) -> None:
    await UserLinks(rig.db).link(rig.site, account_id=rig.account, discord_user_id=rig.alice)
    event = await uninstall(rig)
    await retention(rig, days=0).site_uninstalled(event, rig.context())
    assert await site_data(rig) == (False, False, False)
    await retention(rig, days=0).site_uninstalled(event, rig.context())  # idempotent


async def test_an_uninstall_schedules_the_purge_for_the_end_of_retention(rig: Rig) -> None:
    await UserLinks(rig.db).link(rig.site, account_id=rig.account, discord_user_id=rig.alice)
    event = await uninstall(rig)
    keeper = retention(rig)
    await keeper.site_uninstalled(event, rig.context())
    assert await site_data(rig) == (True, True, True)  # kept meanwhile
    assert await scheduled(rig) == 1
    rig.clock.advance(30 * DAY)
    await keeper.purge_site(purge_job(rig, event), rig.context())
    assert await site_data(rig) == (False, False, False)


async def test_a_reinstall_within_retention_restores_everything(rig: Rig) -> None:
    await UserLinks(rig.db).link(rig.site, account_id=rig.account, discord_user_id=rig.alice)
    event = await uninstall(rig)
    keeper = retention(rig)
    await keeper.site_uninstalled(event, rig.context())
    rig.clock.advance(3 * DAY)
    await Installations(rig.db).save_connect(
        rig.site, base_url=rig.site_url, shared_secret_ciphertext=b"new"
    )  # the installed callback of a re-install
    rig.clock.advance(27 * DAY)
    await keeper.purge_site(purge_job(rig, event), rig.context())
    assert await site_data(rig) == (True, True, True)


async def test_the_purge_of_an_earlier_uninstall_spares_a_later_one(rig: Rig) -> None:
    keeper = retention(rig)
    first = await uninstall(rig)
    rig.clock.advance(DAY)
    await Installations(rig.db).save_connect(
        rig.site, base_url=rig.site_url, shared_secret_ciphertext=b"new"
    )
    rig.clock.advance(DAY)
    await uninstall(rig)  # uninstalled again: its own 30 days start now
    rig.clock.advance(28 * DAY)
    await keeper.purge_site(purge_job(rig, first), rig.context())
    assert (await site_data(rig))[0]


async def test_housekeeping_purges_what_expired_and_schedules_the_next_run(rig: Rig) -> None:
    drafts, states = Drafts(rig.db), OAuthStates(rig.db)
    await drafts.put(
        client_key=rig.site, discord_user_id=rig.alice, payload={}, ttl=timedelta(minutes=5)
    )
    now = datetime.fromtimestamp(rig.clock.now(), UTC)
    assert await states.consume("old", expires_at=now + timedelta(minutes=5))
    deliveries = DeliveryLog(rig.db)
    await deliveries.record("posted-long-ago", channel_id="1200000000000000001", status="sent")
    assert await ProcessedIds(rig.db).mark_processed("jira-worker.commands", "handled-long-ago")
    await uninstall(rig)
    rig.clock.advance(31 * DAY)
    await Installations(rig.db).save_connect(
        "jira:other", base_url="https://other.atlassian.net", shared_secret_ciphertext=b"s"
    )
    live = await drafts.put(
        client_key="jira:other", discord_user_id=rig.alice, payload={}, ttl=timedelta(hours=5)
    )
    keeper = retention(rig)
    await keeper.housekeeping(
        Envelope(id="h", source="t", type="linker.job.housekeeping"), rig.context()
    )
    assert [d.id for d in await drafts.list_for_discord_user(rig.alice)] == [live.id]
    assert await states.consume("old", expires_at=now + timedelta(days=40))  # purged: new again
    assert not (await site_data(rig))[0]  # the backstop erased the long-uninstalled site
    assert await deliveries.get("posted-long-ago") is None  # idempotency records: 7 days
    assert not await ProcessedIds(rig.db).is_processed("jira-worker.commands", "handled-long-ago")
    assert await scheduled(rig) == 1
    # Two replicas kicking the sweep for the same slot make one run, not two.
    await keeper.schedule_housekeeping(after=rig.clock.now(), now=True)
    await keeper.schedule_housekeeping(after=rig.clock.now(), now=True)
    assert next(s.active for s in await rig.bus.stats() if s.queue == LINKER) == 1
