"""Atlassian's Personal Data Reporting API, called for the linker (which owns the accounts).

The linker knows which Jira accountIds we keep and since when; only the jira-worker calls
Jira. So the linker publishes ``privacy.report_accounts`` on ``jira-commands`` — a site and up
to 90 ``{"accountId", "updatedAt"}`` — and this handler reports them as the app
(``POST /app/report-accounts/``) and publishes what Jira said back to the linker as
``privacy.accounts_reported``: the accounts ``closed`` (to erase) and ``updated``, and the
``Cycle-Period`` in seconds. Jira's 429 (``Retry-After``) and 5xx propagate, so the runtime
retries after the wait Jira asked for; a site that is gone or not installed is answered with
nothing to erase (its data goes with the uninstall purge).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import structlog

from dfj_common.bus import LINKER, Bus
from dfj_common.envelope import Envelope, deterministic_id
from dfj_common.errors import MalformedMessage
from dfj_common.runtime import HandlerContext, HandlerTable
from dfj_common.storage import Installations, InstallationState
from dfj_jira_worker.jira import JiraClient
from dfj_jira_worker.jira.client import MAX_REPORTED_ACCOUNTS

__all__ = ["ACCOUNTS_REPORTED", "REPORT_ACCOUNTS", "Reporting"]

_log: Final = structlog.get_logger("dfj.jira_worker.reporting")

REPORT_ACCOUNTS: Final = "privacy.report_accounts"
ACCOUNTS_REPORTED: Final = "privacy.accounts_reported"
SOURCE: Final = "dfj-jira-worker"
_ACCOUNT_ID: Final = re.compile(r"^[A-Za-z0-9:_-]{1,128}$")
_LIVE: Final = (InstallationState.INSTALLED, InstallationState.ENABLED)


@dataclass(frozen=True, kw_only=True)
class Reporting:
    """The ``privacy.report_accounts`` handler."""

    installations: Installations
    jira: JiraClient
    bus: Bus

    def table(self) -> HandlerTable:
        return {REPORT_ACCOUNTS: self.report}

    async def report(self, envelope: Envelope, _context: HandlerContext) -> None:
        client_key, accounts = _request(envelope)
        installation = await self.installations.get(client_key)
        if installation is None or installation.state not in _LIVE:
            _log.info("report skipped", tenant=client_key, reason="site not installed")
            return
        result = await self.jira.as_app(installation).report_accounts(accounts)
        _log.info(
            "accounts reported",
            tenant=client_key,
            accounts=len(accounts),
            closed=len(result.closed),
            updated=len(result.updated),
        )
        await self.bus.publish_envelope(
            LINKER,
            Envelope(
                id=deterministic_id(ACCOUNTS_REPORTED, envelope.id),
                source=SOURCE,
                type=ACCOUNTS_REPORTED,
                tenant=client_key,
                data={
                    "clientKey": client_key,
                    "closed": list(result.closed),
                    "updated": list(result.updated),
                    "cycle_period_seconds": result.cycle_period_seconds,
                },
            ),
        )


def _request(envelope: Envelope) -> tuple[str, list[dict[str, str]]]:
    data = envelope.data
    client_key, accounts = data.get("clientKey"), data.get("accounts")
    if not isinstance(client_key, str) or not client_key:
        raise MalformedMessage("report lacks clientKey", reason="ReportField")
    if not isinstance(accounts, list) or not 1 <= len(accounts) <= MAX_REPORTED_ACCOUNTS:
        raise MalformedMessage(
            f"report must list 1 to {MAX_REPORTED_ACCOUNTS} accounts", reason="ReportField"
        )
    out: list[dict[str, str]] = []
    for item in accounts:
        account_id = item.get("accountId") if isinstance(item, dict) else None
        updated_at = item.get("updatedAt") if isinstance(item, dict) else None
        if not isinstance(account_id, str) or not _ACCOUNT_ID.match(account_id):
            raise MalformedMessage("report has a malformed accountId", reason="ReportField")
        if not isinstance(updated_at, str) or not updated_at:
            raise MalformedMessage("report has a malformed updatedAt", reason="ReportField")
        out.append({"accountId": account_id, "updatedAt": updated_at})
    return client_key, out
