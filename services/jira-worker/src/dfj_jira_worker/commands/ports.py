"""The part of the Jira client the commands use, as protocols.

``dfj_jira_worker.jira.JiraClient`` and its ``JiraApi`` satisfy these structurally (same names
and signatures); naming only what the commands call keeps them honest about their needs (no
``as_app`` here: a command always runs as the linked user) and lets tests stand a small fake at
the I/O edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from dfj_common.storage import Installation

__all__ = ["JiraCalls", "JiraImpersonation"]


class JiraCalls(Protocol):
    """Jira REST calls made as one identity (here: the linked user)."""

    async def get_issue(
        self, issue: str, *, fields: Sequence[str] = (), expand: Sequence[str] = ()
    ) -> dict[str, Any]: ...

    async def create_issue(self, fields: Mapping[str, Any]) -> dict[str, Any]: ...

    async def assign_issue(self, issue: str, account_id: str | None) -> None: ...

    async def get_transitions(self, issue: str) -> list[dict[str, Any]]: ...

    async def transition_issue(self, issue: str, transition_id: str) -> None: ...

    async def add_comment(self, issue: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def add_watcher(self, issue: str, account_id: str) -> None: ...

    async def search_jql(
        self, jql: str, *, fields: Sequence[str], max_results: int = 10
    ) -> dict[str, Any]: ...

    async def parse_jql(self, queries: Sequence[str]) -> list[dict[str, Any]]: ...

    async def search_projects(self, *, max_results: int = 50) -> list[dict[str, Any]]: ...

    async def issue_types_for_project(self, project: str) -> list[dict[str, Any]]: ...

    async def my_permissions(
        self, permissions: Sequence[str], *, project_key: str | None = None
    ) -> dict[str, bool]: ...


class JiraImpersonation(Protocol):
    """Hands out a :class:`JiraCalls` acting as a linked Jira user of an installation."""

    def as_user(self, installation: Installation, account_id: str) -> JiraCalls: ...
