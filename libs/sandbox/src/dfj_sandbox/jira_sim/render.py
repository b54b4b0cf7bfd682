"""The JSON shapes Jira gives its records, for REST v3 and (``version="2"``) for webhooks.

REST v3 carries rich text as ADF; webhooks are built from the v2 representation, where
``description`` and comment ``body`` are plain strings and ``self`` links point at
``/rest/api/2``. Everything else is the same shape, so both come from these functions.

Times are written the way Jira writes them: ``2024-05-01T09:30:00.000+0000``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from dfj_sandbox.jira_sim import adf
from dfj_sandbox.jira_sim.model import Comment, Issue, IssueType, Priority, Project, Status, User
from dfj_sandbox.jira_sim.site import Site

__all__ = [
    "ALL_FIELDS",
    "NAVIGABLE_FIELDS",
    "comment_json",
    "issue_fields",
    "issue_json",
    "issue_type_json",
    "jira_time",
    "priority_json",
    "project_json",
    "select_fields",
    "status_json",
    "user_json",
]

ALL_FIELDS: Final = (
    "summary",
    "description",
    "issuetype",
    "project",
    "status",
    "statuscategorychangedate",
    "priority",
    "assignee",
    "reporter",
    "creator",
    "labels",
    "security",
    "created",
    "updated",
    "watches",
    "comment",
)
NAVIGABLE_FIELDS: Final = tuple(f for f in ALL_FIELDS if f != "comment")


def jira_time(epoch: float) -> str:
    """``2024-05-01T09:30:00.000+0000``."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def user_json(site: Site, user: User | None, version: str = "3") -> dict[str, Any] | None:
    """A user as Jira shows it in fields and lists (no email: Jira hides it by default)."""
    if user is None:
        return None
    return {
        "self": site.api_url(f"user?accountId={quote(user.account_id)}", version),
        "accountId": user.account_id,
        "accountType": user.account_type,
        "displayName": user.display_name,
        "active": user.active,
        "timeZone": user.time_zone,
    }


def _person(site: Site, account_id: str | None, version: str) -> dict[str, Any] | None:
    return None if account_id is None else user_json(site, site.user(account_id), version)


def status_json(site: Site, status: Status, version: str = "3") -> dict[str, Any]:
    """A status with its category."""
    category = status.category
    return {
        "self": site.api_url(f"status/{status.id}", version),
        "description": status.description,
        "iconUrl": f"{site.base_url}/images/icons/statuses/generic.png",
        "name": status.name,
        "id": status.id,
        "statusCategory": {
            "self": site.api_url(f"statuscategory/{category.id}", version),
            "id": category.id,
            "key": category.key,
            "colorName": category.color_name,
            "name": category.name,
        },
    }


def issue_type_json(site: Site, issue_type: IssueType, version: str = "3") -> dict[str, Any]:
    """An issue type."""
    return {
        "self": site.api_url(f"issuetype/{issue_type.id}", version),
        "id": issue_type.id,
        "description": issue_type.description,
        "iconUrl": f"{site.base_url}/images/icons/issuetypes/{issue_type.name.lower()}.svg",
        "name": issue_type.name,
        "subtask": issue_type.subtask,
        "hierarchyLevel": issue_type.hierarchy_level,
    }


def priority_json(
    site: Site, priority: Priority | None, version: str = "3"
) -> dict[str, Any] | None:
    """A priority."""
    if priority is None:
        return None
    return {
        "self": site.api_url(f"priority/{priority.id}", version),
        "iconUrl": f"{site.base_url}/images/icons/priorities/{priority.name.lower()}.svg",
        "name": priority.name,
        "id": priority.id,
    }


def project_json(
    site: Site, project: Project, version: str = "3", *, full: bool = False
) -> dict[str, Any]:
    """A project as issue fields show it, or (``full``) as the project APIs do."""
    body: dict[str, Any] = {
        "self": site.api_url(f"project/{project.id}", version),
        "id": project.id,
        "key": project.key,
        "name": project.name,
        "projectTypeKey": "software",
        "simplified": False,
    }
    if full:
        body.update(
            {
                "style": "classic",
                "isPrivate": False,
                "properties": {},
                "issueTypes": [issue_type_json(site, t, version) for t in project.issue_types],
            }
        )
    return body


def comment_json(
    site: Site, issue: Issue, comment: Comment, version: str = "3", *, rendered: bool = False
) -> dict[str, Any]:
    """A comment (v3 body: ADF; v2 body: text), with its visibility when restricted."""
    body: dict[str, Any] = {
        "self": site.api_url(f"issue/{issue.id}/comment/{comment.id}", version),
        "id": comment.id,
        "author": _person(site, comment.author, version),
        "body": dict(comment.body) if version == "3" else adf.to_text(comment.body),
        "updateAuthor": _person(site, comment.update_author, version),
        "created": jira_time(comment.created),
        "updated": jira_time(comment.updated),
        "jsdPublic": True,
    }
    if comment.visibility is not None:
        body["visibility"] = {
            "type": comment.visibility.type,
            "value": comment.visibility.value,
            "identifier": comment.visibility.value,
        }
    if rendered:
        body["renderedBody"] = adf.to_html(comment.body)
    return body


FieldRenderer = Callable[[Site, Issue, User, str], Any]


def _description(site: Site, issue: Issue, viewer: User, version: str) -> Any:
    if version == "3":
        return None if issue.description is None else dict(issue.description)
    return adf.to_text(issue.description) or None


def _security(site: Site, issue: Issue, viewer: User, version: str) -> Any:
    level = site.security_level_of(issue)
    if level is None:
        return None
    return {
        "self": site.api_url(f"securitylevel/{level.id}", version),
        "id": level.id,
        "description": level.description,
        "name": level.name,
    }


def _watches(site: Site, issue: Issue, viewer: User, version: str) -> Any:
    return {
        "self": site.api_url(f"issue/{issue.key}/watchers", version),
        "watchCount": len(issue.watchers),
        "isWatching": viewer.account_id in issue.watchers,
    }


def _comments(site: Site, issue: Issue, viewer: User, version: str) -> Any:
    visible = [
        comment_json(site, issue, c, version)
        for c in issue.comments
        if site.can_see_comment(viewer, issue, c)
    ]
    return {
        "self": site.api_url(f"issue/{issue.id}/comment", version),
        "comments": visible,
        "maxResults": len(visible),
        "total": len(visible),
        "startAt": 0,
    }


_RENDERERS: Final[Mapping[str, FieldRenderer]] = {
    "summary": lambda site, issue, viewer, version: issue.summary,
    "description": _description,
    "issuetype": lambda site, issue, viewer, version: issue_type_json(
        site, site.issue_type_of(issue), version
    ),
    "project": lambda site, issue, viewer, version: project_json(
        site, site.project_of(issue), version
    ),
    "status": lambda site, issue, viewer, version: status_json(
        site, site.status_of(issue), version
    ),
    "statuscategorychangedate": lambda site, issue, viewer, version: jira_time(issue.updated),
    "priority": lambda site, issue, viewer, version: priority_json(
        site, site.priority_of(issue), version
    ),
    "assignee": lambda site, issue, viewer, version: _person(site, issue.assignee, version),
    "reporter": lambda site, issue, viewer, version: _person(site, issue.reporter, version),
    "creator": lambda site, issue, viewer, version: _person(site, issue.reporter, version),
    "labels": lambda site, issue, viewer, version: list(issue.labels),
    "security": _security,
    "created": lambda site, issue, viewer, version: jira_time(issue.created),
    "updated": lambda site, issue, viewer, version: jira_time(issue.updated),
    "watches": _watches,
    "comment": _comments,
}


def issue_fields(
    site: Site,
    issue: Issue,
    viewer: User,
    version: str = "3",
    *,
    wanted: Iterable[str] = ALL_FIELDS,
) -> dict[str, Any]:
    """The ``fields`` object of an issue, limited to ``wanted``; comments the viewer may see."""
    return {
        name: _RENDERERS[name](site, issue, viewer, version)
        for name in wanted
        if name in _RENDERERS
    }


def select_fields(requested: Iterable[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """Resolve a ``fields`` parameter (``*all``, ``*navigable``, names, ``-name``) to names.

    Unknown names are dropped, as Jira does; only exclusions mean "start from the default".
    """
    names = [n.strip() for n in requested or () if n.strip()]
    if not names:
        return default
    chosen: list[str] = []
    excluded: set[str] = set()
    for name in names:
        if name == "*all":
            chosen.extend(ALL_FIELDS)
        elif name == "*navigable":
            chosen.extend(NAVIGABLE_FIELDS)
        elif name.startswith("-"):
            excluded.add(name[1:])
        elif name in ALL_FIELDS:
            chosen.append(name)
    if not chosen and excluded:
        chosen.extend(default if default else NAVIGABLE_FIELDS)
    return tuple(n for n in dict.fromkeys(chosen) if n not in excluded)


def issue_json(
    site: Site,
    issue: Issue,
    viewer: User,
    *,
    fields: tuple[str, ...] = ALL_FIELDS,
    expand: frozenset[str] = frozenset(),
    version: str = "3",
) -> dict[str, Any]:
    """An issue: ``id``, ``key``, ``self`` and the chosen ``fields`` (``renderedFields`` too)."""
    body: dict[str, Any] = {
        "expand": "renderedFields,names,schema,operations,editmeta,changelog,"
        "versionedRepresentations",
        "id": issue.id,
        "self": site.api_url(f"issue/{issue.id}", version),
        "key": issue.key,
        "fields": issue_fields(site, issue, viewer, version, wanted=fields),
    }
    if "renderedFields" in expand:
        rendered: dict[str, Any] = {}
        if "description" in fields:
            rendered["description"] = adf.to_html(issue.description) or None
        if "comment" in fields:
            rendered["comment"] = {
                "comments": [
                    comment_json(site, issue, c, version, rendered=True)
                    for c in issue.comments
                    if site.can_see_comment(viewer, issue, c)
                ]
            }
        body["renderedFields"] = rendered
    if "names" in expand:
        body["names"] = {name: name.capitalize() for name in fields}
    return body
