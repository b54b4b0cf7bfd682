"""Jira decides per account: what an impersonated user may see and do differs from user to user."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dfj_sandbox.jira_sim import adf

if TYPE_CHECKING:
    from libs.sandbox.tests.jira_sim.conftest import JiraClient

HIDDEN = {
    "errorMessages": ["Issue does not exist or you do not have permission to see it."],
    "errors": {},
}


def _doc(text: str) -> dict[str, Any]:
    return adf.document(text)


async def test_an_issue_outside_the_users_projects_does_not_exist_for_them(
    jira: JiraClient,
) -> None:
    """carol cannot browse DEMO: 404 with Jira's wording, the same as for a missing issue."""
    issue = jira.site.create_issue(summary="Only for DEMO members")
    assert (await jira.as_user("alice", "GET", f"/rest/api/3/issue/{issue.key}")).status == 200
    hidden = await jira.as_user("carol", "GET", f"/rest/api/3/issue/{issue.key}")
    missing = await jira.as_user("carol", "GET", "/rest/api/3/issue/DEMO-999")
    assert (hidden.status, hidden.body) == (404, HIDDEN)
    assert (missing.status, missing.body) == (404, HIDDEN)


async def test_a_security_level_hides_an_issue_from_non_members(jira: JiraClient) -> None:
    """bob browses DEMO but is not in ``Staff``: the issue is hidden in reads, search and match."""
    site = jira.site
    secret = site.create_issue(summary="Staff only", security_level="Staff")
    public = site.create_issue(summary="Everyone")
    assert (await jira.as_user("alice", "GET", f"/rest/api/3/issue/{secret.key}")).status == 200
    read = await jira.as_user("bob", "GET", f"/rest/api/3/issue/{secret.key}")
    assert read.status == 404
    found = await jira.as_user(
        "bob", "POST", "/rest/api/3/search/jql", json={"jql": "project = DEMO", "fields": ["key"]}
    )
    assert [i["key"] for i in found.body["issues"]] == [public.key]
    match = await jira.as_user(
        "bob",
        "POST",
        "/rest/api/3/jql/match",
        json={"issueIds": [int(secret.id), int(public.id)], "jqls": ["project = DEMO"]},
    )
    assert match.body["matches"][0]["matchedIssues"] == [int(public.id)]
    as_app = await jira.app("GET", f"/rest/api/3/issue/{secret.key}")
    assert as_app.status == 200
    assert as_app.body["fields"]["security"]["name"] == "Staff"


async def test_creating_needs_create_issues(jira: JiraClient) -> None:
    """bob may browse DEMO but not create there: 403 with an error message."""
    body = {"fields": {"project": {"key": "DEMO"}, "issuetype": {"name": "Task"}, "summary": "Hi"}}
    refused = await jira.as_user("bob", "POST", "/rest/api/3/issue", json=body)
    assert refused.status == 403
    assert refused.body["errorMessages"] == [
        "You do not have permission to create issues in this project."
    ]
    assert refused.body["errors"] == {}
    created = await jira.as_user("alice", "POST", "/rest/api/3/issue", json=body)
    assert created.status == 201
    issue = jira.site.issue(created.body["key"])
    assert issue is not None
    assert issue.reporter == "alice"


async def test_a_project_the_user_cannot_browse_is_not_a_valid_project(jira: JiraClient) -> None:
    """carol creating in DEMO is told the project is not valid (it does not exist for her)."""
    body = {"fields": {"project": {"key": "DEMO"}, "issuetype": {"name": "Task"}, "summary": "Hi"}}
    answer = await jira.as_user("carol", "POST", "/rest/api/3/issue", json=body)
    assert answer.status == 400
    assert answer.body["errors"] == {"project": "Specify a valid project ID or key"}


async def test_assigning_needs_assign_issues_and_an_assignable_user(jira: JiraClient) -> None:
    """bob may not assign; alice may, but only to someone assignable in the project."""
    issue = jira.site.create_issue(summary="Assign me")
    path = f"/rest/api/3/issue/{issue.key}/assignee"
    bob = await jira.as_user("bob", "PUT", path, json={"accountId": "alice"})
    assert bob.status == 403
    to_carol = await jira.as_user("alice", "PUT", path, json={"accountId": "carol"})
    assert to_carol.status == 400
    assert to_carol.body["errors"] == {"assignee": "User 'carol' cannot be assigned issues."}
    to_dora = await jira.as_user("alice", "PUT", path, json={"accountId": "dora"})
    assert to_dora.status == 204
    fresh = jira.site.issue(issue.id)
    assert fresh is not None
    assert fresh.assignee == "dora"


async def test_transitions_are_empty_without_transition_issues(jira: JiraClient) -> None:
    """bob sees the issue but no transitions, and cannot take one."""
    issue = jira.site.create_issue(summary="Move me")
    path = f"/rest/api/3/issue/{issue.key}/transitions"
    listed = await jira.as_user("bob", "GET", path)
    assert listed.status == 200
    assert listed.body["transitions"] == []
    taken = await jira.as_user("bob", "POST", path, json={"transition": {"id": "21"}})
    assert taken.status == 403


async def test_commenting_needs_add_comments(jira: JiraClient) -> None:
    """carol (no DEMO access) gets 404; an OPS-only viewer without ADD_COMMENTS gets 403."""
    site = jira.site
    site.add_user("viewer", "Viewer", permissions={"BROWSE_PROJECTS"})
    issue = site.create_issue(summary="Talk about me")
    path = f"/rest/api/3/issue/{issue.key}/comment"
    assert (await jira.as_user("carol", "POST", path, json={"body": _doc("hi")})).status == 404
    refused = await jira.as_user("viewer", "POST", path, json={"body": _doc("hi")})
    assert refused.status == 403
    assert (await jira.as_user("bob", "POST", path, json={"body": _doc("hi")})).status == 201


async def test_restricted_comments_are_seen_only_by_their_audience(jira: JiraClient) -> None:
    """A comment for ``Administrators`` is listed for dora, not for alice; 404 when fetched."""
    site = jira.site
    issue = site.create_issue(summary="Discussed")
    public = site.add_comment(issue, "for everyone", author="alice")
    private = site.add_comment(
        issue, "admins only", author="dora", visibility=("role", "Administrators")
    )
    path = f"/rest/api/3/issue/{issue.key}/comment"
    for_dora = await jira.as_user("dora", "GET", path)
    for_alice = await jira.as_user("alice", "GET", path)
    assert [c["id"] for c in for_dora.body["comments"]] == [public.id, private.id]
    assert for_dora.body["comments"][1]["visibility"]["value"] == "Administrators"
    assert [c["id"] for c in for_alice.body["comments"]] == [public.id]
    assert (await jira.as_user("alice", "GET", f"{path}/{private.id}")).status == 404
    in_issue = await jira.as_user(
        "alice", "GET", f"/rest/api/3/issue/{issue.key}", params=[("fields", "comment")]
    )
    assert [c["id"] for c in in_issue.body["fields"]["comment"]["comments"]] == [public.id]


async def test_a_user_cannot_restrict_a_comment_to_a_role_they_lack(jira: JiraClient) -> None:
    """alice is not an administrator, so she cannot post for administrators."""
    issue = jira.site.create_issue(summary="Restricted")
    answer = await jira.as_user(
        "alice",
        "POST",
        f"/rest/api/3/issue/{issue.key}/comment",
        json={"body": _doc("psst"), "visibility": {"type": "role", "value": "Administrators"}},
    )
    assert answer.status == 400
    assert "commentLevel" in answer.body["errors"]


async def test_watching_others_needs_manage_watchers(jira: JiraClient) -> None:
    """Anyone who sees the issue may watch it; adding someone else takes MANAGE_WATCHERS."""
    issue = jira.site.create_issue(summary="Watch me")
    path = f"/rest/api/3/issue/{issue.key}/watchers"
    assert (await jira.as_user("alice", "POST", path, json="alice")).status == 204
    refused = await jira.as_user("alice", "POST", path, json="bob")
    assert refused.status == 403
    assert (await jira.as_user("dora", "POST", path, json="bob")).status == 204
    fresh = jira.site.issue(issue.id)
    assert fresh is not None
    assert fresh.watchers == ("alice", "bob")


async def test_project_search_lists_only_browsable_projects(jira: JiraClient) -> None:
    """carol sees OPS only; alice both; with ``action=create`` bob sees none."""
    for user, action, keys in (
        ("carol", "view", ["OPS"]),
        ("alice", "view", ["DEMO", "OPS"]),
        ("bob", "view", ["DEMO"]),
        ("bob", "create", []),
    ):
        answer = await jira.as_user(
            user, "GET", "/rest/api/3/project/search", params=[("action", action)]
        )
        assert answer.status == 200
        assert [p["key"] for p in answer.body["values"]] == keys, (user, action)


async def test_my_permissions_answers_for_the_caller(jira: JiraClient) -> None:
    """bob may browse DEMO but not create; as the app everything is allowed."""
    params = [("permissions", "BROWSE_PROJECTS,CREATE_ISSUES"), ("projectKey", "DEMO")]
    bob = await jira.as_user("bob", "GET", "/rest/api/3/mypermissions", params=params)
    assert bob.status == 200
    held = {k: v["havePermission"] for k, v in bob.body["permissions"].items()}
    assert held == {"BROWSE_PROJECTS": True, "CREATE_ISSUES": False}
    assert bob.body["permissions"]["BROWSE_PROJECTS"]["id"] == "10"
    app = await jira.app("GET", "/rest/api/3/mypermissions", params=params)
    assert all(v["havePermission"] for v in app.body["permissions"].values())


async def test_create_metadata_lists_no_types_without_create_issues(jira: JiraClient) -> None:
    """alice gets Task, Bug, Story; bob (browse only) gets none."""
    path = "/rest/api/3/issue/createmeta/DEMO/issuetypes"
    alice = await jira.as_user("alice", "GET", path)
    assert [t["name"] for t in alice.body["issueTypes"]] == ["Task", "Bug", "Story"]
    bob = await jira.as_user("bob", "GET", path)
    assert bob.body["issueTypes"] == []
    assert bob.body["total"] == 0
