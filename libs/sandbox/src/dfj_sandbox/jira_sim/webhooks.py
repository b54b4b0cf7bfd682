"""The JSON bodies Jira Cloud posts to an app's webhooks, built from simulated records.

Pure functions: they read a site and return a dict; sending (signing, headers, retries) is a
separate concern. Shapes follow what Jira sends (reference §6):

- ``jira:issue_created`` / ``jira:issue_updated`` / ``jira:issue_deleted``: ``timestamp`` (ms),
  ``webhookEvent``, ``issue_event_type_name``, ``user`` (who acted), ``issue`` with all its
  fields, and for updates the ``changelog`` ``{id, items: [{field, fieldtype, fieldId, from,
  fromString, to, toString}]}`` — take it from :meth:`Site.update_issue`, which returns it. An
  update caused by a comment carries the ``comment`` too (``issue_commented``).
- ``comment_created`` / ``comment_updated`` / ``comment_deleted``: ``comment`` (author,
  ``updateAuthor``, ``visibility`` when restricted) and an ``issue`` with only the few fields
  comment events carry (summary, type, project, assignee, priority, status).

Webhook bodies use the REST **v2** representation: ``self`` links point at ``/rest/api/2/…``
and ``description`` and comment ``body`` are plain text, not ADF.

``issue_event_type_name`` for an update follows Jira: ``issue_assigned`` when only the
assignee changed, ``issue_generic`` for a status change, otherwise ``issue_updated``.

:func:`bodies_for` maps one site change (:mod:`~dfj_sandbox.jira_sim.changes`) to every
webhook Jira sends for it — a new comment is both ``comment_created`` and a
``jira:issue_updated`` with ``issue_commented``, as on Jira Cloud.
"""

from __future__ import annotations

from typing import Any, Final

from dfj_sandbox.jira_sim.changes import (
    Change,
    CommentAdded,
    CommentDeleted,
    CommentUpdated,
    IssueCreated,
    IssueDeleted,
    IssueUpdated,
)
from dfj_sandbox.jira_sim.model import Changelog, Comment, Issue
from dfj_sandbox.jira_sim.render import (
    ALL_FIELDS,
    comment_json,
    issue_fields,
    user_json,
)
from dfj_sandbox.jira_sim.site import Site

__all__ = [
    "bodies_for",
    "changelog_object",
    "comment_created",
    "comment_deleted",
    "comment_updated",
    "event_type_name",
    "issue_commented",
    "issue_created",
    "issue_deleted",
    "issue_object",
    "issue_updated",
]

_VERSION: Final = "2"
_COMMENT_EVENT_FIELDS: Final = ("summary", "issuetype", "project", "assignee", "priority", "status")


def _millis(site: Site, timestamp: float | None) -> int:
    return int((site.now() if timestamp is None else timestamp) * 1000)


def _user(site: Site, account_id: str | None) -> dict[str, Any] | None:
    account = account_id or site.app_user.account_id
    return user_json(site, site.user(account), _VERSION)


def issue_object(site: Site, issue: Issue, fields: tuple[str, ...] = ALL_FIELDS) -> dict[str, Any]:
    """The ``issue`` of a webhook body (v2 fields as the app user sees them)."""
    viewer = site.app_user
    return {
        "id": issue.id,
        "self": site.api_url(f"issue/{issue.id}", _VERSION),
        "key": issue.key,
        "fields": issue_fields(site, issue, viewer, _VERSION, wanted=fields),
    }


def changelog_object(changelog: Changelog) -> dict[str, Any]:
    """The ``changelog`` of an update: ``{id, items: [...]}``."""
    return {"id": changelog.id, "items": [item.to_json() for item in changelog.items]}


def event_type_name(changelog: Changelog) -> str:
    """Jira's ``issue_event_type_name`` for an update with this changelog."""
    touched = changelog.fields()
    if touched == {"assignee"}:
        return "issue_assigned"
    if "status" in touched:
        return "issue_generic"
    return "issue_updated"


def issue_created(
    site: Site, issue: Issue, *, user: str | None = None, timestamp: float | None = None
) -> dict[str, Any]:
    """``jira:issue_created`` (``user``: who created it; default the reporter)."""
    return {
        "timestamp": _millis(site, timestamp),
        "webhookEvent": "jira:issue_created",
        "issue_event_type_name": "issue_created",
        "user": _user(site, user or issue.reporter),
        "issue": issue_object(site, issue),
    }


def issue_updated(
    site: Site,
    issue: Issue,
    changelog: Changelog,
    *,
    timestamp: float | None = None,
    event_type: str | None = None,
) -> dict[str, Any]:
    """``jira:issue_updated`` for ``changelog`` (its author is the ``user``)."""
    return {
        "timestamp": _millis(site, changelog.created if timestamp is None else timestamp),
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": event_type or event_type_name(changelog),
        "user": _user(site, changelog.author),
        "issue": issue_object(site, issue),
        "changelog": changelog_object(changelog),
    }


def issue_commented(
    site: Site, issue: Issue, comment: Comment, *, timestamp: float | None = None
) -> dict[str, Any]:
    """``jira:issue_updated`` with ``issue_commented``, as Jira sends beside comment_created."""
    return {
        "timestamp": _millis(site, comment.created if timestamp is None else timestamp),
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_commented",
        "user": _user(site, comment.author),
        "issue": issue_object(site, issue),
        "comment": comment_json(site, issue, comment, _VERSION),
    }


def issue_deleted(
    site: Site, issue: Issue, *, user: str | None = None, timestamp: float | None = None
) -> dict[str, Any]:
    """``jira:issue_deleted`` (``issue`` is the record as it was; see Site.delete_issue)."""
    return {
        "timestamp": _millis(site, timestamp),
        "webhookEvent": "jira:issue_deleted",
        "issue_event_type_name": "issue_deleted",
        "user": _user(site, user),
        "issue": issue_object(site, issue),
    }


def _comment_event(
    site: Site, name: str, issue: Issue, comment: Comment, timestamp: float | None
) -> dict[str, Any]:
    return {
        "timestamp": _millis(site, timestamp),
        "webhookEvent": name,
        "comment": comment_json(site, issue, comment, _VERSION),
        "issue": issue_object(site, issue, _COMMENT_EVENT_FIELDS),
    }


def comment_created(
    site: Site, issue: Issue, comment: Comment, *, timestamp: float | None = None
) -> dict[str, Any]:
    """``comment_created``."""
    return _comment_event(
        site, "comment_created", issue, comment, comment.created if timestamp is None else timestamp
    )


def comment_updated(
    site: Site, issue: Issue, comment: Comment, *, timestamp: float | None = None
) -> dict[str, Any]:
    """``comment_updated``."""
    return _comment_event(
        site, "comment_updated", issue, comment, comment.updated if timestamp is None else timestamp
    )


def comment_deleted(
    site: Site, issue: Issue, comment: Comment, *, timestamp: float | None = None
) -> dict[str, Any]:
    """``comment_deleted`` (``comment`` is the removed record; see Site.delete_comment)."""
    return _comment_event(site, "comment_deleted", issue, comment, timestamp)


def bodies_for(site: Site, change: Change) -> list[tuple[str, dict[str, Any]]]:
    """Every ``(webhook event, body)`` Jira sends for ``change``, in Jira's order."""
    bodies: list[tuple[str, dict[str, Any]]] = []
    match change:
        case IssueCreated(issue=issue, by=by, at=at):
            bodies.append(("jira:issue_created", issue_created(site, issue, user=by, timestamp=at)))
        case IssueUpdated(issue=issue, changelog=changelog) if changelog.items:
            bodies.append(("jira:issue_updated", issue_updated(site, issue, changelog)))
        case IssueDeleted(issue=issue, by=by, at=at):
            bodies.append(("jira:issue_deleted", issue_deleted(site, issue, user=by, timestamp=at)))
        case CommentAdded(issue=issue, comment=comment):
            bodies.append(("comment_created", comment_created(site, issue, comment)))
            bodies.append(("jira:issue_updated", issue_commented(site, issue, comment)))
        case CommentUpdated(issue=issue, comment=comment):
            bodies.append(("comment_updated", comment_updated(site, issue, comment)))
        case CommentDeleted(issue=issue, comment=comment, at=at):
            bodies.append(("comment_deleted", comment_deleted(site, issue, comment, timestamp=at)))
    return bodies
