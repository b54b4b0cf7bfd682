"""The site metadata the gateway autocompletes from, kept fresh by the jira-worker.

The gateway answers autocomplete and prefills forms within Discord's 3 seconds from local
reads only, so the worker writes what it needs into ``MetadataCache`` (shapes as the gateway's
``discord/responses.py`` reads them):

==================  =======================  =============================================
kind                key                      value
==================  =======================  =============================================
``projects``        ``all``                  ``[{"key": "ABC", "name": "Alpha"}, …]``
``issuetypes``      ``<PROJECT KEY>``,       ``[{"id": "10001", "name": "Bug"}, …]`` (no
                    ``all``                  sub-tasks: they cannot be created on their own)
``recent-issues``   ``all``                  ``["ABC-7", …]``, most recent first
==================  =======================  =============================================

Projects and issue types live for :attr:`MetadataRefresher.ttl` (15 minutes): a command that
finds them expired refreshes them (as the asking user — commands never call Jira as the app),
and a scheduled job calls :meth:`MetadataRefresher.refresh_sites`, which refreshes every live
site as the app. Recent issues are
those viewed or created through Discord, remembered for a day. Only keys, ids and names are
stored — site metadata, not issue content.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Protocol

import structlog

from dfj_common.errors import TransientError
from dfj_common.storage import Installation, Installations, InstallationState, MetadataCache
from dfj_jira_worker.commands.suggest import IssueTypeOption, ProjectOption
from dfj_jira_worker.jira import JiraError

__all__ = [
    "ALL",
    "ISSUE_TYPES",
    "PROJECTS",
    "RECENT_ISSUES",
    "AppMetadataSource",
    "MetadataRefresher",
    "MetadataSource",
]

_log: Final = structlog.get_logger("dfj.jira_worker.metadata")

PROJECTS: Final = "projects"
ISSUE_TYPES: Final = "issuetypes"
RECENT_ISSUES: Final = "recent-issues"
ALL: Final = "all"


class MetadataSource(Protocol):
    """The Jira reads a refresh makes (as the app or as a user)."""

    async def search_projects(self, *, max_results: int = 50) -> list[dict[str, Any]]: ...

    async def issue_types_for_project(self, project: str) -> list[dict[str, Any]]: ...


class AppMetadataSource(Protocol):
    """Jira as the app, for the scheduled refresh (``JiraClient`` satisfies it)."""

    def as_app(self, installation: Installation) -> MetadataSource: ...


def _projects(values: Sequence[Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for value in values:
        if isinstance(value, Mapping) and isinstance(value.get("key"), str) and value["key"]:
            name = value.get("name")
            out.append({"key": value["key"], "name": name if isinstance(name, str) else ""})
    return out


def _issue_types(values: Sequence[Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for value in values:
        if not isinstance(value, Mapping) or value.get("subtask") is True:
            continue
        ident, name = value.get("id"), value.get("name")
        if isinstance(ident, str) and ident and isinstance(name, str) and name:
            out.append({"id": ident, "name": name})
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class MetadataRefresher:
    """Reads and refreshes a site's cached projects, issue types and recent issues."""

    cache: MetadataCache
    ttl: timedelta = timedelta(minutes=15)
    recent_ttl: timedelta = timedelta(days=1)
    recent_limit: int = 25
    max_projects: int = 50
    concurrency: int = 4

    async def refresh(self, client_key: str, source: MetadataSource) -> None:
        """Fetch projects and each one's issue types, and cache them for :attr:`ttl`.

        A project whose issue types the caller may not read is left out of the issue-type
        entries (a permanent Jira error for one project does not spoil the rest); transient
        errors propagate so a scheduled refresh is retried.
        """
        projects = _projects(await source.search_projects(max_results=self.max_projects))
        gate = asyncio.Semaphore(self.concurrency)

        async def types_of(key: str) -> list[dict[str, str]] | None:
            async with gate:
                try:
                    return _issue_types(await source.issue_types_for_project(key))
                except JiraError as exc:
                    _log.debug("issue types unreadable", tenant=client_key, reason=exc.reason)
                    return None

        per_project = await asyncio.gather(*(types_of(p["key"]) for p in projects))
        union: dict[str, dict[str, str]] = {}
        for project, types in zip(projects, per_project, strict=True):
            if types is None:
                continue
            await self.cache.put(client_key, ISSUE_TYPES, project["key"], types, ttl=self.ttl)
            for issue_type in types:
                union.setdefault(issue_type["id"], issue_type)
        await self.cache.put(client_key, ISSUE_TYPES, ALL, list(union.values()), ttl=self.ttl)
        # Projects last: their entry is the freshness marker, so a refresh that failed half-way
        # is tried again on the next command.
        await self.cache.put(client_key, PROJECTS, ALL, projects, ttl=self.ttl)
        _log.debug("metadata refreshed", tenant=client_key, projects=len(projects))

    async def refresh_sites(self, installations: Installations, jira: AppMetadataSource) -> int:
        """The scheduled job: refresh every live site as the app; the number refreshed.

        A site whose refresh Jira refuses is skipped (logged); a transient failure propagates,
        so the job is retried.
        """
        done = 0
        for state in (InstallationState.ENABLED, InstallationState.INSTALLED):
            for client_key in await installations.client_keys(state):
                installation = await installations.get(client_key)
                if installation is None or not installation.base_url:
                    continue
                try:
                    await self.refresh(client_key, jira.as_app(installation))
                except JiraError as exc:
                    _log.info("site metadata refresh refused", tenant=client_key, reason=exc.reason)
                    continue
                done += 1
        return done

    async def is_stale(self, client_key: str) -> bool:
        """Whether the projects entry is missing or expired."""
        return await self.cache.get(client_key, PROJECTS, ALL) is None

    async def refresh_if_stale(self, client_key: str, source: MetadataSource) -> bool:
        """Refresh when stale; whether it did."""
        if not await self.is_stale(client_key):
            return False
        await self.refresh(client_key, source)
        return True

    async def refresh_quietly(self, client_key: str, source: MetadataSource) -> None:
        """Refresh when stale, logging instead of raising: a command must not fail for it."""
        try:
            await self.refresh_if_stale(client_key, source)
        except (JiraError, TransientError) as exc:
            _log.info("metadata refresh skipped", tenant=client_key, error=type(exc).__name__)

    async def projects(self, client_key: str) -> list[ProjectOption]:
        """The cached projects (empty when unknown)."""
        entry = await self.cache.get(client_key, PROJECTS, ALL)
        values = entry.value if entry is not None and isinstance(entry.value, list) else []
        return [ProjectOption(p["key"], p["name"]) for p in _projects(values)]

    async def issue_types(self, client_key: str, project: str | None) -> list[IssueTypeOption]:
        """The cached issue types of ``project`` (or of the whole site when None or unknown)."""
        entry = None
        if project:
            entry = await self.cache.get(client_key, ISSUE_TYPES, project)
        if entry is None:
            entry = await self.cache.get(client_key, ISSUE_TYPES, ALL)
        values = entry.value if entry is not None and isinstance(entry.value, list) else []
        return [IssueTypeOption(t["id"], t["name"]) for t in _issue_types(values)]

    async def remember_issue(self, client_key: str, key: str) -> None:
        """Put ``key`` first in the recent issues (bounded, no duplicates)."""
        entry = await self.cache.get(client_key, RECENT_ISSUES, ALL)
        old = entry.value if entry is not None and isinstance(entry.value, list) else []
        keys = [key, *(k for k in old if isinstance(k, str) and k != key)]
        await self.cache.put(
            client_key, RECENT_ISSUES, ALL, keys[: self.recent_limit], ttl=self.recent_ttl
        )
