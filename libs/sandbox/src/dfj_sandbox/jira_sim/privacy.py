"""Atlassian's Personal Data Reporting API, as a Connect app reaches it on a site.

``POST {baseUrl}/app/report-accounts/`` with the app's JWT (qsh of
``POST&/app/report-accounts&``): a body ``{"accounts": [{"accountId", "updatedAt"}]}`` of 1 to
90 accounts (``updatedAt`` an RFC 3339 time). The answer: ``204`` when nothing changed for
any of them, else ``200`` ``{"accounts": [{"accountId", "status": "closed" | "updated"}]}``;
every answer carries ``Cycle-Period`` (days; how often an account may be reported). A bad
body is ``400``; a user token is ``403`` (only the app reports); the site's Jira-style 429
applies as to every call. What each site was sent is kept in :attr:`Reporting.reports`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final

from dfj_sandbox.jira_sim.reporting import Reporting
from dfj_sandbox.jira_sim.rest_common import Reply

__all__ = ["MAX_ACCOUNTS", "REPORT_ACCOUNTS_PATH", "Reporting", "report_accounts"]

REPORT_ACCOUNTS_PATH: Final = "/app/report-accounts/"
MAX_ACCOUNTS: Final = 90


def _error(status: int, message: str, headers: dict[str, str]) -> Reply:
    return Reply(status=status, body={"errorMessages": [message], "errors": {}}, headers=headers)


def report_accounts(reporting: Reporting, *, kind: str, body: bytes) -> Reply:
    """Answer one report (the caller is authenticated already; ``kind`` is app or user)."""
    headers = {"Cycle-Period": str(reporting.cycle_period_days)}
    if kind != "app":
        return _error(403, "Only the app may report accounts.", headers)
    accounts = _accounts(body)
    if isinstance(accounts, str):
        return _error(400, accounts, headers)
    reporting.reports.append(accounts)
    changed = [
        {"accountId": a["accountId"], "status": "closed"}
        for a in accounts
        if a["accountId"] in reporting.closed
    ] + [
        {"accountId": a["accountId"], "status": "updated"}
        for a in accounts
        if a["accountId"] in reporting.updated and a["accountId"] not in reporting.closed
    ]
    if not changed:
        return Reply(status=204, body=None, headers=headers)
    return Reply(status=200, body={"accounts": changed}, headers=headers)


def _accounts(body: bytes) -> list[dict[str, str]] | str:
    try:
        value: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "The body is not JSON."
    accounts = value.get("accounts") if isinstance(value, dict) else None
    if not isinstance(accounts, list) or not 1 <= len(accounts) <= MAX_ACCOUNTS:
        return f"'accounts' must list 1 to {MAX_ACCOUNTS} accounts."
    out: list[dict[str, str]] = []
    for item in accounts:
        if not isinstance(item, dict) or set(item) != {"accountId", "updatedAt"}:
            return "Each account is {accountId, updatedAt}."
        account_id, updated_at = item["accountId"], item["updatedAt"]
        if not isinstance(account_id, str) or not account_id or not isinstance(updated_at, str):
            return "Each account is {accountId, updatedAt}."
        try:
            datetime.fromisoformat(updated_at.replace("Z", "+00:00"))
        except ValueError:
            return f"updatedAt {updated_at!r} is not an RFC 3339 time."
        out.append({"accountId": account_id, "updatedAt": updated_at})
    return out
