"""Projects, create metadata, users and the caller's permissions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from dfj_sandbox.jira_sim.model import PERMISSIONS, Project
from dfj_sandbox.jira_sim.render import (
    issue_type_json,
    project_json,
    user_json,
)
from dfj_sandbox.jira_sim.rest_common import (
    HIDDEN_ISSUE,
    Refusal,
    Reply,
    RestRequest,
    csv_values,
    page_window,
)

__all__ = [
    "bulk_users",
    "create_meta_issue_types",
    "get_project",
    "get_user",
    "my_permissions",
    "myself",
    "search_projects",
]


_PROJECT_ACTIONS: Final = {
    "view": "BROWSE_PROJECTS",
    "browse": "BROWSE_PROJECTS",
    "edit": "ADMINISTER_PROJECTS",
    "create": "CREATE_ISSUES",
}


def search_projects(req: RestRequest) -> Reply:
    """``GET /project/search``: the projects the caller may browse (or act on), paged."""
    site = req.site
    needed = _PROJECT_ACTIONS.get(str(req.params.get("action", "view")), "BROWSE_PROJECTS")
    query = str(req.params.get("query", "")).lower()
    keys = {k.upper() for k in csv_values(req.params.get("keys"))}
    ids = set(csv_values(req.params.get("id")))
    chosen = [
        p
        for p in site.projects.values()
        if site.may(req.viewer, "BROWSE_PROJECTS", p)
        and site.may(req.viewer, needed, p)
        and (not query or query in p.key.lower() or query in p.name.lower())
        and (not keys or p.key in keys)
        and (not ids or p.id in ids)
    ]
    order = str(req.params.get("orderBy", "key"))
    descending = order.startswith("-")
    name = order.lstrip("+-")
    sort_keys: dict[str, Callable[[Project], Any]] = {
        "key": lambda p: p.key,
        "name": lambda p: p.name.lower(),
        "id": lambda p: int(p.id),
    }
    chosen.sort(key=sort_keys.get(name, sort_keys["key"]), reverse=descending)
    start, size = page_window(req, 50, 100)
    page = chosen[start : start + size]
    expand = set(csv_values(req.params.get("expand")))
    values = []
    for project in page:
        shown = project_json(site, project, full=True)
        if "issueTypes" not in expand:
            shown.pop("issueTypes")
        values.append(shown)
    body: dict[str, Any] = {
        "self": site.api_url(f"project/search?startAt={start}&maxResults={size}"),
        "maxResults": size,
        "startAt": start,
        "total": len(chosen),
        "isLast": start + size >= len(chosen),
        "values": values,
    }
    if not body["isLast"]:
        body["nextPage"] = site.api_url(f"project/search?startAt={start + size}&maxResults={size}")
    return Reply(status=200, body=body)


def get_project(req: RestRequest) -> Reply:
    """``GET /project/{projectIdOrKey}`` (404 unless the caller may browse it)."""
    ref = req.path_params["projectIdOrKey"]
    project = req.site.project(ref)
    if project is None or not req.site.may(req.viewer, "BROWSE_PROJECTS", project):
        raise Refusal(404, f"No project could be found with key '{ref}'.")
    return Reply(status=200, body=project_json(req.site, project, full=True))


def create_meta_issue_types(req: RestRequest) -> Reply:
    """``GET /issue/createmeta/{projectIdOrKey}/issuetypes`` (empty without CREATE_ISSUES)."""
    site = req.site
    ref = req.path_params["projectIdOrKey"]
    project = site.project(ref)
    if project is None or not site.may(req.viewer, "BROWSE_PROJECTS", project):
        raise Refusal(400, f"No project could be found with key '{ref}'.")
    types = list(project.issue_types) if site.may(req.viewer, "CREATE_ISSUES", project) else []
    start, size = page_window(req, 50, 200)
    return Reply(
        status=200,
        body={
            "issueTypes": [issue_type_json(site, t) for t in types[start : start + size]],
            "maxResults": size,
            "startAt": start,
            "total": len(types),
        },
    )


def myself(req: RestRequest) -> Reply:
    """``GET /myself``: the caller (the app user for app JWTs)."""
    body = user_json(req.site, req.viewer)
    assert body is not None
    body["locale"] = req.viewer.locale
    return Reply(status=200, body=body)


def get_user(req: RestRequest) -> Reply:
    """``GET /user?accountId=``."""
    account = req.params.get("accountId")
    user = None if account is None else req.site.user(str(account))
    if user is None:
        raise Refusal(404, "Specified user does not exist or you do not have required permissions")
    return Reply(status=200, body=user_json(req.site, user))


def bulk_users(req: RestRequest) -> Reply:
    """``GET /user/bulk?accountId=…&accountId=…`` (unknown ids are left out)."""
    site = req.site
    wanted = csv_values(req.params.get("accountId"))
    found = [u for u in (site.user(a) for a in dict.fromkeys(wanted)) if u is not None]
    start, size = page_window(req, 10, 200)
    page = found[start : start + size]
    return Reply(
        status=200,
        body={
            "self": site.api_url(f"user/bulk?startAt={start}&maxResults={size}"),
            "maxResults": size,
            "startAt": start,
            "total": len(found),
            "isLast": start + size >= len(found),
            "values": [user_json(site, u) for u in page],
        },
    )


def my_permissions(req: RestRequest) -> Reply:
    """``GET /mypermissions?permissions=A,B[&projectKey|projectId|issueKey|issueId]``."""
    site = req.site
    keys = csv_values(req.params.get("permissions"))
    if not keys:
        raise Refusal(400, "The 'permissions' query parameter is required.")
    unknown = [k for k in keys if k not in PERMISSIONS]
    if unknown:
        raise Refusal(400, f"The following permission keys are invalid: {', '.join(unknown)}.")
    projects = _permission_context(req)
    report = {}
    for key in dict.fromkeys(keys):
        info = PERMISSIONS[key]
        held = any(site.may(req.viewer, key, p) for p in projects)
        report[key] = {
            "id": info.id,
            "key": info.key,
            "name": info.name,
            "type": info.type,
            "description": info.description,
            "havePermission": held,
        }
    return Reply(status=200, body={"permissions": report})


def _permission_context(req: RestRequest) -> Iterable[Project]:
    site = req.site
    params = req.params
    issue_ref = params.get("issueKey") or params.get("issueId")
    if issue_ref is not None:
        issue = site.issue(str(issue_ref))
        if issue is None or not site.can_see(req.viewer, issue):
            raise Refusal(404, HIDDEN_ISSUE)
        return [site.project_of(issue)]
    project_ref = params.get("projectKey") or params.get("projectId")
    if project_ref is not None:
        project = site.project(str(project_ref))
        if project is None:
            raise Refusal(404, f"No project could be found with key '{project_ref}'.")
        return [project]
    return list(site.projects.values())
