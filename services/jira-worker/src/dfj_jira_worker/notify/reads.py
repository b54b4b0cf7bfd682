"""What the notifier reads from Jira REST at render time, as typed views.

The webhook on the bus carries ids only; names and text come from one issue read (``GET
/rest/api/3/issue/{id}?fields=…``, as the app) and, for comment events, one comment read. They
live only for the rendering of one event and are never stored: people are shown by the Jira
display name fetched now. The readers are tolerant — Jira leaves out fields it has no value
for (``assignee`` and ``security`` are ``null`` or absent) — and a wrong type reads as absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from dfj_jira_worker.adf import adf_to_text

__all__ = [
    "COMMENT_EXCERPT",
    "ISSUE_FIELDS",
    "CommentView",
    "IssueView",
    "comment_view",
    "issue_view",
]

#: The only fields the render needs (and the audience rule: ``security``).
ISSUE_FIELDS: Final = (
    "summary",
    "status",
    "assignee",
    "priority",
    "issuetype",
    "security",
    "project",
    "reporter",
)
#: Characters of a comment shown in a notification.
COMMENT_EXCERPT: Final = 300


@dataclass(frozen=True, kw_only=True, slots=True)
class IssueView:
    """An issue as Jira shows it to the app now."""

    id: str | None = None
    key: str | None = None
    summary: str | None = None
    status_id: str | None = None
    status_name: str | None = None
    status_category: str | None = None  # "new", "indeterminate" or "done"
    assignee_id: str | None = None
    assignee_name: str | None = None
    priority_id: str | None = None
    priority_name: str | None = None
    issue_type_id: str | None = None
    issue_type_name: str | None = None
    project_key: str | None = None
    project_name: str | None = None
    reporter_name: str | None = None
    security_level_id: str | None = None

    @property
    def restricted(self) -> bool:
        """The issue has a security level: only some people may see it."""
        return self.security_level_id is not None


@dataclass(frozen=True, kw_only=True, slots=True)
class CommentView:
    """A comment as Jira shows it to the app now, with a plain-text excerpt of its body."""

    id: str | None = None
    author_name: str | None = None
    excerpt: str = ""
    visibility_type: str | None = None
    jsd_public: bool | None = None

    @property
    def restricted(self) -> bool:
        """Visible to a group or role only, or an internal Service Management note."""
        return self.visibility_type is not None or self.jsd_public is False


def issue_view(issue: Mapping[str, Any]) -> IssueView:
    """Read a ``GET /rest/api/3/issue`` answer."""
    fields = _obj(issue.get("fields"))
    status = _obj(fields.get("status"))
    assignee = _obj(fields.get("assignee"))
    priority = _obj(fields.get("priority"))
    issue_type = _obj(fields.get("issuetype"))
    project = _obj(fields.get("project"))
    security = fields.get("security")
    return IssueView(
        id=_text(issue.get("id")),
        key=_text(issue.get("key")),
        summary=_text(fields.get("summary")),
        status_id=_text(status.get("id")),
        status_name=_text(status.get("name")),
        status_category=_text(_obj(status.get("statusCategory")).get("key")),
        assignee_id=_text(assignee.get("accountId")),
        assignee_name=_text(assignee.get("displayName")),
        priority_id=_text(priority.get("id")),
        priority_name=_text(priority.get("name")),
        issue_type_id=_text(issue_type.get("id")),
        issue_type_name=_text(issue_type.get("name")),
        project_key=_text(project.get("key")),
        project_name=_text(project.get("name")),
        reporter_name=_text(_obj(fields.get("reporter")).get("displayName")),
        # Any non-null security value restricts, even one whose id we cannot read.
        security_level_id=(_text(_obj(security).get("id")) or "?") if security else None,
    )


def comment_view(comment: Mapping[str, Any]) -> CommentView:
    """Read a ``GET /rest/api/3/issue/{id}/comment/{id}`` answer (body in ADF)."""
    visibility = _obj(comment.get("visibility"))
    jsd_public = comment.get("jsdPublic")
    return CommentView(
        id=_text(comment.get("id")),
        author_name=_text(_obj(comment.get("author")).get("displayName")),
        excerpt=adf_to_text(comment.get("body"), limit=COMMENT_EXCERPT),
        # Any visibility restricts, even one whose type we cannot read.
        visibility_type=(_text(visibility.get("type")) or "?") if visibility else None,
        jsd_public=jsd_public if isinstance(jsd_public, bool) else None,
    )


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None
