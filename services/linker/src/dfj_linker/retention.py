"""What the linker erases on its own: uninstalled sites after retention, and expired records.

**Uninstall.** The jira-worker marks a site uninstalled and tells the linker
(``tenant.uninstalled``). With ``DFJ_UNINSTALL_RETENTION_DAYS=0`` the site is erased at once;
otherwise a ``linker.job.purge_site`` is scheduled on the bus for the end of the retention
period. When it comes due, the site is erased only if it is still uninstalled *since then*: a
re-install within the period restores everything as it was (nothing had been deleted), and a
later uninstall has a job of its own. Erasing a site deletes its installation row, and the
database cascades to everything else of it: server connections (and their subscriptions, role
rules and access modes), links, drafts, caches, threads.

**Housekeeping.** ``linker.job.housekeeping`` runs every ``DFJ_HOUSEKEEPING_INTERVAL_SECONDS``:
expired drafts, OAuth states and one-time codes, metadata caches, idempotency records (the
workers' handled ids and the discord-worker's delivery log) older than
``DFJ_PROCESSED_IDS_RETENTION_DAYS``, and — as a backstop for a purge job that was lost —
sites uninstalled longer ago than the retention period; then the personal-data reports that
are due (``reporting``). Each run schedules the next at the next
slot boundary with an id derived from the slot, so however many linker replicas kick it at
start, the bus's duplicate detection keeps one chain.

Every erasure is logged by ids only, and is idempotent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import structlog

from dfj_common.bus import LINKER, Bus, OutgoingMessage
from dfj_common.clock import Clock
from dfj_common.envelope import Envelope, deterministic_id
from dfj_common.errors import MalformedMessage
from dfj_common.runtime import HandlerContext
from dfj_common.storage import (
    DeliveryLog,
    Drafts,
    Installations,
    InstallationState,
    MetadataCache,
    OAuthStates,
    ProcessedIds,
)
from dfj_linker.replies import SOURCE
from dfj_linker.reporting import Reporter
from dfj_linker.settings import LinkerSettings

__all__ = ["HOUSEKEEPING", "PURGE_SITE", "SITE_UNINSTALLED", "Retention"]

_log: Final = structlog.get_logger("dfj.linker.retention")

SITE_UNINSTALLED: Final = "tenant.uninstalled"
PURGE_SITE: Final = "linker.job.purge_site"
HOUSEKEEPING: Final = "linker.job.housekeeping"
_DAY: Final = 86_400.0


@dataclass(frozen=True, kw_only=True)
class Retention:
    """The uninstall purge and the housekeeping sweep."""

    installations: Installations
    drafts: Drafts
    states: OAuthStates
    caches: MetadataCache
    processed: ProcessedIds
    deliveries: DeliveryLog
    bus: Bus
    settings: LinkerSettings
    clock: Clock
    reporter: Reporter

    @property
    def _retention(self) -> float:
        return self.settings.uninstall_retention_days * _DAY

    async def site_uninstalled(self, envelope: Envelope, _context: HandlerContext) -> None:
        client_key = _client_key(envelope)
        if self._retention == 0:
            await self._erase(client_key, uninstalled_at=envelope.time.timestamp())
            return
        due = envelope.time.timestamp() + self._retention
        job = Envelope(
            id=deterministic_id(PURGE_SITE, envelope.id),
            source=SOURCE,
            type=PURGE_SITE,
            tenant=client_key,
            data={"clientKey": client_key, "uninstalled_at": envelope.time.timestamp()},
        )
        await self.bus.schedule(LINKER, OutgoingMessage.from_envelope(job), at=due)
        _log.info("site purge scheduled", tenant=client_key, due=datetime.fromtimestamp(due, UTC))

    async def purge_site(self, envelope: Envelope, _context: HandlerContext) -> None:
        uninstalled_at = envelope.data.get("uninstalled_at")
        if isinstance(uninstalled_at, bool) or not isinstance(uninstalled_at, int | float):
            raise MalformedMessage("purge job lacks uninstalled_at", reason="PurgeJobField")
        await self._erase(_client_key(envelope), uninstalled_at=float(uninstalled_at))

    async def _erase(self, client_key: str, *, uninstalled_at: float) -> None:
        site = await self.installations.get(client_key)
        if site is None:
            return  # erased already, or never stored
        if site.state is not InstallationState.UNINSTALLED:
            _log.info("site kept", tenant=client_key, reason="re-installed within retention")
            return
        if site.updated_at.timestamp() > uninstalled_at + 1.0:
            return  # uninstalled again later: that uninstall has its own purge
        if await self.installations.delete(client_key):
            _log.info("erased", tenant=client_key, reason="uninstalled", scope="site")

    async def housekeeping(self, envelope: Envelope, _context: HandlerContext) -> None:
        now = self.clock.now()
        drafts = await self.drafts.purge_expired()
        states = await self.states.purge_expired()
        caches = await self.caches.purge_expired()
        remembered = timedelta(days=self.settings.processed_ids_retention_days)
        processed = await self.processed.purge_older_than(remembered)
        processed += await self.deliveries.purge_older_than(remembered)
        sites = 0
        if self._retention > 0:
            cutoff = now - self._retention
            for client_key in await self.installations.client_keys(InstallationState.UNINSTALLED):
                site = await self.installations.get(client_key)
                if site is not None and site.updated_at.timestamp() <= cutoff:
                    await self._erase(client_key, uninstalled_at=site.updated_at.timestamp())
                    sites += 1
        reports = await self.reporter.report_due_sites()
        _log.info(
            "housekeeping",
            reports=reports,
            drafts=drafts,
            states=states,
            caches=caches,
            processed=processed,
            sites=sites,
        )
        await self.schedule_housekeeping(after=now)

    async def schedule_housekeeping(self, *, after: float, now: bool = False) -> None:
        """Put the next run on the bus: at once (``now``, at start) or at the next slot."""
        interval = self.settings.housekeeping_interval_seconds
        slot = math.floor(after / interval) + (0 if now else 1)
        job = Envelope(
            id=deterministic_id(HOUSEKEEPING, str(slot)),
            source=SOURCE,
            type=HOUSEKEEPING,
            data={"slot": slot},
        )
        message = OutgoingMessage.from_envelope(job)
        if now:
            await self.bus.publish(LINKER, message)
        else:
            await self.bus.schedule(LINKER, message, at=slot * interval)


def _client_key(envelope: Envelope) -> str:
    client_key = envelope.data.get("clientKey")
    if not isinstance(client_key, str) or not client_key:
        raise MalformedMessage(f"{envelope.type} lacks clientKey", reason="SiteEventField")
    return client_key
