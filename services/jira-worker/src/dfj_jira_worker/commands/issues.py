"""The issue commands — create, view, search, assign, transition, comment, watch — as the user.

Each is one small method taking the request and the :class:`~.scope.Scope` (Jira acting as the
linked account) and returning the answer. Jira decides every permission; a refusal arrives as
a ``JiraError`` whose ``user_message`` the handler shows. Transitions are looked up among those
Jira offers *this* user (by id, then name, then target status), so an unavailable one is
explained rather than attempted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from dfj_jira_worker.adf import text_to_adf
from dfj_jira_worker.commands import replies
from dfj_jira_worker.commands.access import AccessCheck
from dfj_jira_worker.commands.metadata import MetadataRefresher
from dfj_jira_worker.commands.requests import (
    ME,
    NOBODY,
    AssignIssue,
    CommentIssue,
    SearchIssues,
    TransitionIssue,
    ViewIssue,
    WatchIssue,
)
from dfj_jira_worker.commands.scope import Scope
from dfj_jira_worker.jira import JiraBadRequest

__all__ = [
    "ISSUE_FIELDS",
    "SEARCH_FIELDS",
    "IssueCommands",
    "NewIssue",
    "find_transition",
    "issue_fields",
]

ISSUE_FIELDS: Final = (
    "summary",
    "status",
    "assignee",
    "priority",
    "issuetype",
    "description",
    "project",
)
SEARCH_FIELDS: Final = ("summary", "status", "assignee", "priority", "issuetype")
SEARCH_PAGE: Final = 10
_DEFAULT_TYPE: Final = "Task"


@dataclass(frozen=True, kw_only=True, slots=True)
class NewIssue:
    """The fields of an issue to create, before they are shaped for Jira."""

    project: str
    issue_type: str
    summary: str
    description: str = ""
    priority: str | None = None


def _ref(value: str) -> dict[str, str]:
    return {"id": value} if value.isdigit() else {"key": value}


def issue_fields(issue: NewIssue, *, issue_type_id: str | None = None) -> dict[str, Any]:
    """The ``fields`` of ``POST /rest/api/3/issue`` (description as ADF)."""
    fields: dict[str, Any] = {
        "project": _ref(issue.project),
        "summary": issue.summary,
        "issuetype": (
            {"id": issue_type_id or issue.issue_type}
            if issue_type_id or issue.issue_type.isdigit()
            else {"name": issue.issue_type}
        ),
    }
    if issue.description.strip():
        fields["description"] = text_to_adf(issue.description)
    if issue.priority:
        fields["priority"] = {"name": issue.priority}
    return fields


def find_transition(
    transitions: Sequence[Mapping[str, Any]], wanted: str
) -> Mapping[str, Any] | None:
    """The transition whose id, name or target status is ``wanted`` (case-insensitive)."""
    needle = wanted.strip().casefold()
    for t in transitions:
        if str(t.get("id", "")) == wanted.strip():
            return t
    for t in transitions:
        if str(t.get("name", "")).casefold() == needle:
            return t
    for t in transitions:
        target = t.get("to")
        if isinstance(target, Mapping) and str(target.get("name", "")).casefold() == needle:
            return t
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class IssueCommands:
    """The issue commands; ``access`` resolves other members' links, ``metadata`` the caches."""

    access: AccessCheck
    metadata: MetadataRefresher

    async def create(self, issue: NewIssue, scope: Scope) -> dict[str, Any]:
        """Create the issue as the user and answer with its key and link.

        A suggested priority the project's create screen does not take is dropped (one retry
        without it) instead of failing the whole create.
        """
        type_id = await self._issue_type_id(issue, scope)
        fields = issue_fields(issue, issue_type_id=type_id)
        try:
            created = await scope.jira.create_issue(fields)
        except JiraBadRequest as exc:
            if "priority" not in fields or "priority" not in exc.user_message.casefold():
                raise
            fields.pop("priority")
            created = await scope.jira.create_issue(fields)
        key = str(created.get("key") or created.get("id") or "")
        await self.metadata.remember_issue(scope.client_key, key)
        return replies.created(key, issue.summary, replies.browse_url(scope.site_url, key))

    async def default_issue_type(self, project: str, scope: Scope) -> str:
        """ "Task" when the project has it, else its first issue type (cached, else asked)."""
        types = [t.name for t in await self.metadata.issue_types(scope.client_key, project)]
        if not types:
            fetched = await scope.jira.issue_types_for_project(project)
            types = [
                str(t["name"])
                for t in fetched
                if isinstance(t.get("name"), str) and t.get("subtask") is not True
            ]
        for name in types:
            if name.casefold() == _DEFAULT_TYPE.casefold():
                return name
        return types[0] if types else _DEFAULT_TYPE

    async def _issue_type_id(self, issue: NewIssue, scope: Scope) -> str | None:
        if issue.issue_type.isdigit():
            return issue.issue_type
        cached = await self.metadata.issue_types(scope.client_key, issue.project)
        wanted = issue.issue_type.casefold()
        return next((t.id for t in cached if t.name.casefold() == wanted), None)

    async def view(self, request: ViewIssue, scope: Scope) -> dict[str, Any]:
        issue, transitions = await asyncio.gather(
            scope.jira.get_issue(request.key, fields=ISSUE_FIELDS),
            scope.jira.get_transitions(request.key),
        )
        key = issue.get("key")
        if isinstance(key, str) and key:
            await self.metadata.remember_issue(scope.client_key, key)
        return replies.issue_view(issue, transitions, site_url=scope.site_url)

    async def search(self, request: SearchIssues, scope: Scope) -> dict[str, Any]:
        result = await scope.jira.search_jql(
            request.jql, fields=SEARCH_FIELDS, max_results=SEARCH_PAGE
        )
        return replies.search_results(request.jql, result, site_url=scope.site_url)

    async def assign(self, request: AssignIssue, scope: Scope) -> dict[str, Any]:
        if request.assignee in (ME, scope.invocation.user_id):
            await scope.jira.assign_issue(request.key, scope.account_id)
            return replies.assigned(request.key, to_user=None, site_url=scope.site_url)
        if request.assignee == NOBODY:
            await scope.jira.assign_issue(request.key, None)
            return replies.assigned(request.key, to_user="", site_url=scope.site_url)
        link = await self.access.link_of(scope.client_key, request.assignee)
        if link is None:
            return replies.text(
                f"<@{request.assignee}> hasn't linked a Jira account, so I don't know who they "
                "are in Jira. They can link with `/jira link`."
            )
        await scope.jira.assign_issue(request.key, link.account_id)
        return replies.assigned(request.key, to_user=request.assignee, site_url=scope.site_url)

    async def transition(self, request: TransitionIssue, scope: Scope) -> dict[str, Any]:
        transitions = await scope.jira.get_transitions(request.key)
        if request.to is None:
            return replies.transition_picker(request.key, transitions)
        chosen = find_transition(transitions, request.to)
        if chosen is None:
            return replies.unknown_transition(request.key, request.to, transitions)
        await scope.jira.transition_issue(request.key, str(chosen["id"]))
        return replies.transitioned(request.key, chosen, site_url=scope.site_url)

    async def comment(self, request: CommentIssue, scope: Scope) -> dict[str, Any]:
        text = request.text
        where = scope.invocation
        if request.message_id is not None and where.guild_id is not None:
            link = replies.message_link(where.guild_id, where.channel_id, request.message_id)
            text = f"{text}\n\nFrom Discord: {link}"
        added = await scope.jira.add_comment(request.key, text_to_adf(text))
        comment_id = added.get("id") if isinstance(added, Mapping) else None
        return replies.comment_added(
            request.key, str(comment_id) if comment_id else None, site_url=scope.site_url
        )

    async def watch(self, request: WatchIssue, scope: Scope) -> dict[str, Any]:
        await scope.jira.add_watcher(request.key, scope.account_id)
        return replies.watching(request.key, site_url=scope.site_url)
