"""The bodies Forge posts to a trigger's endpoint, built from site changes and installs.

Pure functions, like :mod:`~dfj_sandbox.jira_sim.webhooks` (whose ``issue`` and ``changelog``
shapes they reuse, so an app parses one issue representation for both paths). Product events
follow Atlassian's Jira events reference (forge.md §5):

- ``avi:jira:created:issue`` / ``avi:jira:updated:issue`` / ``avi:jira:deleted:issue``:
  ``eventType``, ``atlassianId`` (who acted), ``issue`` ``{id, key, fields}``,
  ``associatedUsers`` (the reporter and assignee, as ``{accountId}``), ``selfGenerated``, and
  for updates the ``changelog`` ``{id, items: [{field, fieldId, fieldtype, from, to,
  fromString, toString}]}``. An update that changes the assignee is also
  ``avi:jira:assigned:issue`` (sent only to triggers that list it).
- ``avi:jira:commented:issue`` for a comment created **or edited**, and
  ``avi:jira:deleted:comment``: the same plus ``comment`` (author, ``updateAuthor``, body).

``selfGenerated`` is true when the change was made with the app's own system token; a
trigger with ``filter.ignoreSelf`` is not sent those (see the dispatcher).

Lifecycle: :func:`installed_body` / :func:`upgraded_body` (``id`` is the installation UUID
*without* its ARI prefix; ``context`` is the site ARI), and the scheduled trigger's and
``preUninstall``'s ``{"context": {"cloudId", "moduleKey"}}``.
"""

from __future__ import annotations

from typing import Any

from dfj_sandbox.jira_sim.changes import (
    Change,
    CommentAdded,
    CommentDeleted,
    CommentUpdated,
    IssueCreated,
    IssueDeleted,
    IssueUpdated,
)
from dfj_sandbox.jira_sim.forge_installation import ForgeInstallation
from dfj_sandbox.jira_sim.model import Comment, Issue
from dfj_sandbox.jira_sim.render import comment_json
from dfj_sandbox.jira_sim.site import Site
from dfj_sandbox.jira_sim.webhooks import changelog_object, issue_object

__all__ = [
    "context_body",
    "events_for",
    "installed_body",
    "upgraded_body",
]


def _associated(issue: Issue) -> list[dict[str, str]]:
    people = [issue.reporter, issue.assignee]
    unique = dict.fromkeys(p for p in people if p)
    return [{"accountId": account_id} for account_id in unique]


def _event(
    site: Site, name: str, issue: Issue, actor: str | None, *, self_generated: bool
) -> dict[str, Any]:
    return {
        "eventType": name,
        "atlassianId": actor or site.app_user.account_id,
        "issue": issue_object(site, issue),
        "associatedUsers": _associated(issue),
        "selfGenerated": self_generated,
    }


def _with_comment(
    body: dict[str, Any], site: Site, issue: Issue, comment: Comment
) -> dict[str, Any]:
    body["comment"] = comment_json(site, issue, comment, "2")
    return body


def events_for(
    site: Site, change: Change, *, self_generated: bool = False
) -> list[tuple[str, dict[str, Any]]]:
    """Every ``(Forge event, body)`` ``change`` causes, in order."""
    flag = self_generated
    found: list[tuple[str, dict[str, Any]]] = []
    match change:
        case IssueCreated(issue=issue, by=by):
            name = "avi:jira:created:issue"
            found.append(
                (name, _event(site, name, issue, by or issue.reporter, self_generated=flag))
            )
        case IssueUpdated(issue=issue, changelog=changelog) if changelog.items:
            names = ["avi:jira:updated:issue"]
            if "assignee" in changelog.fields():
                names.append("avi:jira:assigned:issue")
            for name in names:
                body = _event(site, name, issue, changelog.author, self_generated=flag)
                body["changelog"] = changelog_object(changelog)
                found.append((name, body))
        case IssueDeleted(issue=issue, by=by):
            name = "avi:jira:deleted:issue"
            found.append((name, _event(site, name, issue, by, self_generated=flag)))
        case CommentAdded(issue=issue, comment=comment):
            name = "avi:jira:commented:issue"
            body = _event(site, name, issue, comment.author, self_generated=flag)
            found.append((name, _with_comment(body, site, issue, comment)))
        case CommentUpdated(issue=issue, comment=comment):
            name = "avi:jira:commented:issue"
            body = _event(site, name, issue, comment.update_author, self_generated=flag)
            found.append((name, _with_comment(body, site, issue, comment)))
        case CommentDeleted(issue=issue, comment=comment, by=by):
            name = "avi:jira:deleted:comment"
            body = _event(site, name, issue, by, self_generated=flag)
            found.append((name, _with_comment(body, site, issue, comment)))
    return found


def installed_body(installation: ForgeInstallation) -> dict[str, Any]:
    """``avi:forge:installed:app`` as Forge posts it to a remote."""
    body: dict[str, Any] = {
        "eventType": "avi:forge:installed:app",
        "id": installation.installation_uuid,
        "app": {"id": installation.app_id, "version": installation.app_version},
        "environment": {"id": installation.environment_id},
        "context": installation.context_ari,
    }
    if installation.installer_account_id is not None:
        body["installerAccountId"] = installation.installer_account_id
    return body


def upgraded_body(installation: ForgeInstallation, upgrader: str | None) -> dict[str, Any]:
    """``avi:forge:upgraded:app`` (a major version: new scopes or endpoints)."""
    body = installed_body(installation)
    body.pop("installerAccountId", None)
    body["eventType"] = "avi:forge:upgraded:app"
    body["permissions"] = {"scopes": sorted(installation.manifest.scopes), "external": {}}
    if upgrader is not None:
        body["upgraderAccountId"] = upgrader
    return body


def context_body(installation: ForgeInstallation, module_key: str) -> dict[str, Any]:
    """``{"context": {"cloudId", "moduleKey"}}`` of a scheduled trigger or preUninstall."""
    return {"context": {"cloudId": installation.cloud_id, "moduleKey": module_key}}
