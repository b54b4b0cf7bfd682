"""Jira REST for the jira-worker: as the app (Connect JWT) or as a linked user (impersonation).

Make one :class:`JiraClient` per process and close it on shutdown; per message, take a view
with ``client.as_app(installation)`` or ``client.as_user(installation, account_id)`` and call
its methods. Failures are the classes of :mod:`.errors`, which the worker runtime settles
(permanent → dead-letter with ``reason``, rate-limited → retry after ``retry_after``,
unavailable → retry with back-off); each carries a ``user_message`` fit for Discord.
"""

from __future__ import annotations

from dfj_jira_worker.jira.client import JiraApi, JiraClient, Params, ParamValue
from dfj_jira_worker.jira.errors import (
    JiraBadRequest,
    JiraError,
    JiraForbidden,
    JiraInstallationIncomplete,
    JiraNotFound,
    JiraRateLimited,
    JiraUnauthorized,
    JiraUnavailable,
)

__all__ = [
    "JiraApi",
    "JiraBadRequest",
    "JiraClient",
    "JiraError",
    "JiraForbidden",
    "JiraInstallationIncomplete",
    "JiraNotFound",
    "JiraRateLimited",
    "JiraUnauthorized",
    "JiraUnavailable",
    "ParamValue",
    "Params",
]
