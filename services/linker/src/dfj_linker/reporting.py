"""Atlassian personal-data reporting: which accountIds we keep, and erasing the closed ones.

Every Jira accountId we keep is in a link. Once per cycle per site, the housekeeping sweep
asks the jira-worker (the only caller of Jira) to report the site's linked accounts, with the
time each link was made as ``updatedAt``, in batches of at most 90
(``privacy.report_accounts`` on ``jira-commands``). Jira's answer comes back as
``privacy.accounts_reported``: every link of a ``closed`` account is erased (accountIds are
global, so on every site), logged by ids; ``updated`` needs nothing, as we keep no copy of
anyone's profile. The cycle is Jira's ``Cycle-Period`` (7 days until Jira says otherwise): a
site's next report is due that long after its last answer. Whether a site is due is a
``MetadataCache`` entry (kind ``privacy``) that expires when the next report is due, so a
sweep that finds none starts one — and the sweep's own purge of expired entries keeps the
table clean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Final

import structlog

from dfj_common.bus import JIRA_COMMANDS, Bus
from dfj_common.clock import Clock
from dfj_common.envelope import Envelope, deterministic_id
from dfj_common.errors import MalformedMessage
from dfj_common.runtime import HandlerContext
from dfj_common.storage import Installations, InstallationState, MetadataCache, UserLinks
from dfj_linker.replies import SOURCE

__all__ = ["ACCOUNTS_REPORTED", "BATCH", "REPORT_ACCOUNTS", "Reporter"]

_log: Final = structlog.get_logger("dfj.linker.reporting")

REPORT_ACCOUNTS: Final = "privacy.report_accounts"
ACCOUNTS_REPORTED: Final = "privacy.accounts_reported"
BATCH: Final = 90
DEFAULT_CYCLE: Final = timedelta(days=7)
_KIND: Final = "privacy"
_DUE: Final = "report-due"
_LIVE: Final = (InstallationState.INSTALLED, InstallationState.ENABLED)
_ACCOUNT_ID: Final = re.compile(r"^[A-Za-z0-9:_-]{1,128}$")


@dataclass(frozen=True, kw_only=True)
class Reporter:
    """Starts the reports that are due, and erases what comes back closed."""

    installations: Installations
    links: UserLinks
    caches: MetadataCache
    bus: Bus
    clock: Clock

    async def report_due_sites(self) -> int:
        """Ask for a report of every live site whose cycle is over; the number of batches."""
        batches = 0
        for state in _LIVE:
            for client_key in await self.installations.client_keys(state):
                if await self.caches.get(client_key, _KIND, _DUE) is not None:
                    continue
                batches += await self._report(client_key)
        return batches

    async def _report(self, client_key: str) -> int:
        links = await self.links.list_for_site(client_key)
        accounts = [
            {
                "accountId": link.account_id,
                "updatedAt": link.linked_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            }
            for link in links
        ]
        started = int(self.clock.now())
        for index in range(0, len(accounts), BATCH):
            await self.bus.publish_envelope(
                JIRA_COMMANDS,
                Envelope(
                    id=deterministic_id(REPORT_ACCOUNTS, client_key, str(started), str(index)),
                    source=SOURCE,
                    type=REPORT_ACCOUNTS,
                    tenant=client_key,
                    data={"clientKey": client_key, "accounts": accounts[index : index + BATCH]},
                ),
            )
        # Due again after a cycle, unless Jira's answer names another one.
        await self.caches.put(client_key, _KIND, _DUE, {"started": started}, ttl=DEFAULT_CYCLE)
        batches = -(-len(accounts) // BATCH)
        _log.info("report requested", tenant=client_key, accounts=len(accounts), batches=batches)
        return batches

    async def accounts_reported(self, envelope: Envelope, _context: HandlerContext) -> None:
        data = envelope.data
        client_key, closed = data.get("clientKey"), data.get("closed")
        period = data.get("cycle_period_seconds")
        if not isinstance(client_key, str) or not isinstance(closed, list):
            raise MalformedMessage("report answer lacks clientKey or closed", reason="ReportField")
        for account_id in closed:
            if not isinstance(account_id, str) or not _ACCOUNT_ID.match(account_id):
                raise MalformedMessage(
                    "report answer has a malformed accountId", reason="ReportField"
                )
        for account_id in closed:
            erased = await self.links.erase_account(account_id)
            _log.info("erased", account_id=account_id, links=erased, reason="account closed")
        usable = isinstance(period, int | float) and not isinstance(period, bool) and period > 0
        if usable and await self.installations.get(client_key) is not None:
            assert isinstance(period, int | float)
            await self.caches.put(
                client_key, _KIND, _DUE, {"cycle": period}, ttl=timedelta(seconds=period)
            )
