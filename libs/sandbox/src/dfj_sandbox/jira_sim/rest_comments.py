"""Comment and watcher operations.

Comments restricted to a project role or group are invisible (404, left out of lists) to
callers outside it; posting one requires being in it. Watching an issue needs only seeing it;
adding or removing someone else takes MANAGE_WATCHERS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dfj_sandbox.jira_sim import adf
from dfj_sandbox.jira_sim.model import Comment, Issue, Project, User, Visibility
from dfj_sandbox.jira_sim.render import (
    comment_json,
    user_json,
)
from dfj_sandbox.jira_sim.rest_common import (
    NOT_ADF,
    Refusal,
    Reply,
    RestRequest,
    csv_values,
    json_object,
    page_window,
    reference,
    require,
    visible_issue,
)

__all__ = [
    "add_comment",
    "add_watcher",
    "delete_comment",
    "get_comment",
    "get_comments",
    "get_watchers",
    "remove_watcher",
    "update_comment",
]

# --- comments -----------------------------------------------------------------------------


def get_comments(req: RestRequest) -> Reply:
    """``GET /issue/{k}/comment``: the comments the caller may see, paged."""
    issue = visible_issue(req)
    site = req.site
    visible = [c for c in issue.comments if site.can_see_comment(req.viewer, issue, c)]
    if str(req.params.get("orderBy", "")).startswith("-"):
        visible.reverse()
    start, size = page_window(req, 5000, 5000)
    rendered = "renderedBody" in csv_values(req.params.get("expand"))
    chosen = visible[start : start + size]
    return Reply(
        status=200,
        body={
            "startAt": start,
            "maxResults": size,
            "total": len(visible),
            "comments": [comment_json(site, issue, c, rendered=rendered) for c in chosen],
        },
    )


def _visibility(req: RestRequest, project: Project, value: Any) -> Visibility | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, Mapping) else None
    name = reference(value, "value", "identifier")
    if kind not in ("role", "group") or name is None:
        raise Refusal(400, errors={"commentLevel": "Specify the visibility type and value."})
    viewer = req.viewer
    if kind == "role":
        if name.lower() not in (r.lower() for r in project.roles):
            raise Refusal(
                400, errors={"commentLevel": f"The project role '{name}' does not exist."}
            )
        if viewer.account_type != "app" and not viewer.in_role(name, project.key):
            raise Refusal(
                400,
                errors={
                    "commentLevel": f"You are currently not a member of the project role: {name}."
                },
            )
        return Visibility(type="role", value=name)
    if viewer.account_type != "app" and name not in viewer.groups:
        raise Refusal(
            400, errors={"commentLevel": f"You are currently not a member of the group: {name}."}
        )
    return Visibility(type="group", value=name)


def add_comment(req: RestRequest) -> Reply:
    """``POST /issue/{k}/comment`` (ADD_COMMENTS; ADF body; role or group visibility)."""
    issue = visible_issue(req)
    site = req.site
    project = site.project_of(issue)
    require(
        req, "ADD_COMMENTS", project, "You do not have the permission to comment on this issue."
    )
    body = json_object(req.body)
    if "body" not in body:
        raise Refusal(400, errors={"comment": "Comment body can not be empty!"})
    if not adf.is_document(body["body"]):
        raise Refusal(400, errors={"comment": NOT_ADF})
    visibility = _visibility(req, project, body.get("visibility"))
    comment = site.add_comment(
        issue, body["body"], author=req.viewer.account_id, visibility=visibility
    )
    fresh = site.issue(issue.id)
    assert fresh is not None
    rendered = "renderedBody" in csv_values(req.params.get("expand"))
    return Reply(status=201, body=comment_json(site, fresh, comment, rendered=rendered))


def _comment(req: RestRequest, issue: Issue) -> Comment:
    comment = issue.comment(req.path_params["id"])
    if comment is None or not req.site.can_see_comment(req.viewer, issue, comment):
        raise Refusal(404, f"Can not find a comment for the id: {req.path_params['id']}.")
    return comment


def get_comment(req: RestRequest) -> Reply:
    """``GET /issue/{k}/comment/{id}`` (404 for a comment the caller may not see)."""
    issue = visible_issue(req)
    comment = _comment(req, issue)
    rendered = "renderedBody" in csv_values(req.params.get("expand"))
    return Reply(status=200, body=comment_json(req.site, issue, comment, rendered=rendered))


def _may_change_comment(req: RestRequest, issue: Issue, comment: Comment, verb: str) -> None:
    project = req.site.project_of(issue)
    own = comment.author == req.viewer.account_id
    needed = f"{verb}_OWN_COMMENTS" if own else f"{verb}_ALL_COMMENTS"
    if not (
        req.site.may(req.viewer, needed, project)
        or req.site.may(req.viewer, f"{verb}_ALL_COMMENTS", project)
    ):
        raise Refusal(403, f"You do not have the permission to {verb.lower()} this comment.")


def update_comment(req: RestRequest) -> Reply:
    """``PUT /issue/{k}/comment/{id}`` (EDIT_OWN_COMMENTS or EDIT_ALL_COMMENTS)."""
    issue = visible_issue(req)
    comment = _comment(req, issue)
    _may_change_comment(req, issue, comment, "EDIT")
    body = json_object(req.body)
    if not adf.is_document(body.get("body")):
        raise Refusal(400, errors={"comment": NOT_ADF})
    changed = req.site.update_comment(issue, comment.id, body["body"], by=req.viewer.account_id)
    fresh = req.site.issue(issue.id)
    assert fresh is not None
    return Reply(status=200, body=comment_json(req.site, fresh, changed))


def delete_comment(req: RestRequest) -> Reply:
    """``DELETE /issue/{k}/comment/{id}`` (DELETE_OWN_COMMENTS or DELETE_ALL_COMMENTS)."""
    issue = visible_issue(req)
    comment = _comment(req, issue)
    _may_change_comment(req, issue, comment, "DELETE")
    req.site.delete_comment(issue, comment.id, by=req.viewer.account_id)
    return Reply(status=204)


# --- watchers -----------------------------------------------------------------------------


def _watcher_target(req: RestRequest, account: Any) -> User:
    target = req.site.user(str(account)) if isinstance(account, str) else None
    if target is None:
        raise Refusal(404, f"The user with account ID '{account}' does not exist.")
    return target


def add_watcher(req: RestRequest) -> Reply:
    """``POST /issue/{k}/watchers`` with a JSON string account id (others: MANAGE_WATCHERS)."""
    issue = visible_issue(req)
    site = req.site
    target = _watcher_target(req, req.body)
    if target.account_id != req.viewer.account_id:
        require(
            req,
            "MANAGE_WATCHERS",
            site.project_of(issue),
            "You do not have the permission to manage the watcher list.",
        )
    if not site.can_see(target, issue):
        raise Refusal(
            400, f"The user '{target.account_id}' does not have permission to view this issue."
        )
    site.add_watcher(issue, target.account_id)
    return Reply(status=204)


def remove_watcher(req: RestRequest) -> Reply:
    """``DELETE /issue/{k}/watchers?accountId=`` (others: MANAGE_WATCHERS)."""
    issue = visible_issue(req)
    target = _watcher_target(req, req.params.get("accountId"))
    if target.account_id != req.viewer.account_id:
        require(
            req,
            "MANAGE_WATCHERS",
            req.site.project_of(issue),
            "You do not have the permission to manage the watcher list.",
        )
    req.site.remove_watcher(issue, target.account_id)
    return Reply(status=204)


def get_watchers(req: RestRequest) -> Reply:
    """``GET /issue/{k}/watchers`` (the list needs VIEW_VOTERS_AND_WATCHERS)."""
    issue = visible_issue(req)
    site = req.site
    watchers: list[Any] = []
    if site.may(req.viewer, "VIEW_VOTERS_AND_WATCHERS", site.project_of(issue)):
        watchers = [user_json(site, site.user(a)) for a in issue.watchers if site.user(a)]
    return Reply(
        status=200,
        body={
            "self": site.api_url(f"issue/{issue.key}/watchers"),
            "isWatching": req.viewer.account_id in issue.watchers,
            "watchCount": len(issue.watchers),
            "watchers": watchers,
        },
    )
