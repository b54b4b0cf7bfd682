"""Every served operation, over HTTP, with Jira's request and response shapes.

The ``sim`` fixture validates each response against the spec's response schema and fails the
test at teardown on any mismatch; the last test walks every route in ``ROUTES`` so none is left
unchecked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dfj_sandbox.jira_sim import Limits, adf
from dfj_sandbox.jira_sim.routes import ROUTES

if TYPE_CHECKING:
    from libs.sandbox.tests.jira_sim.conftest import JiraClient


def _doc(text: str) -> dict[str, Any]:
    return adf.document(text)


async def test_get_issue_returns_every_field_with_jira_shapes(jira: JiraClient) -> None:
    """Users as accountId/displayName/active, status with category, ADF description."""
    issue = jira.site.create_issue(
        summary="Shapes", description="Line one", assignee="alice", reporter="dora", labels=["a"]
    )
    answer = await jira.as_user("alice", "GET", f"/rest/api/3/issue/{issue.key}")
    assert answer.status == 200
    body = answer.body
    assert (body["id"], body["key"]) == (issue.id, issue.key)
    assert body["self"] == jira.site.api_url(f"issue/{issue.id}")
    fields = body["fields"]
    assert fields["summary"] == "Shapes"
    assert fields["description"] == _doc("Line one")
    assert {k: fields["assignee"][k] for k in ("accountId", "displayName", "active")} == {
        "accountId": "alice",
        "displayName": "Alice Example",
        "active": True,
    }
    assert fields["reporter"]["accountId"] == "dora"
    assert fields["status"]["name"] == "To Do"
    assert fields["status"]["statusCategory"]["key"] == "new"
    assert fields["issuetype"]["name"] == "Task"
    assert fields["project"]["key"] == "DEMO"
    assert fields["priority"]["name"] == "Medium"
    assert fields["labels"] == ["a"]
    assert fields["security"] is None
    assert fields["created"].endswith("+0000")
    assert fields["watches"] == {
        "self": jira.site.api_url(f"issue/{issue.key}/watchers"),
        "watchCount": 1,
        "isWatching": False,
    }


async def test_get_issue_with_fields_and_rendered_fields(jira: JiraClient) -> None:
    """``fields`` narrows, ``-x`` excludes, ``expand=renderedFields`` adds HTML; any key case."""
    issue = jira.site.create_issue(summary="Narrow", description="<b>bold</b> text")
    path = f"/rest/api/3/issue/{issue.key.lower()}"
    narrow = await jira.app(
        "GET", path, params=[("fields", "summary,description"), ("expand", "renderedFields")]
    )
    assert set(narrow.body["fields"]) == {"summary", "description"}
    assert narrow.body["renderedFields"]["description"] == "<p>&lt;b&gt;bold&lt;/b&gt; text</p>"
    excluded = await jira.app(
        "GET", path, params=[("fields", "*all,-comment"), ("fields", "-watches")]
    )
    assert "comment" not in excluded.body["fields"]
    assert "watches" not in excluded.body["fields"]
    assert "summary" in excluded.body["fields"]


async def test_create_issue_with_its_fields(jira: JiraClient) -> None:
    """201 with id, key and self; the issue has what was sent."""
    body = {
        "fields": {
            "project": {"id": jira.site.project("DEMO").id},  # type: ignore[union-attr]
            "issuetype": {"id": jira.site.project("DEMO").issue_type("Bug").id},  # type: ignore[union-attr]
            "summary": "Created over REST",
            "description": _doc("Steps to reproduce"),
            "labels": ["from-discord"],
            "priority": {"name": "High"},
            "assignee": {"accountId": "dora"},
            "security": {"name": "Staff"},
        }
    }
    answer = await jira.as_user("alice", "POST", "/rest/api/3/issue", json=body)
    assert answer.status == 201
    assert set(answer.body) == {"id", "key", "self"}
    issue = jira.site.issue(answer.body["key"])
    assert issue is not None
    assert (issue.summary, issue.labels, issue.assignee, issue.reporter) == (
        "Created over REST",
        ("from-discord",),
        "dora",
        "alice",
    )
    assert jira.site.issue_type_of(issue).name == "Bug"
    assert jira.site.security_level_of(issue) is not None


async def test_create_issue_reports_every_bad_field(jira: JiraClient) -> None:
    """400 with an ``errors`` entry per field, in Jira's words."""
    body = {
        "fields": {
            "project": {"key": "DEMO"},
            "issuetype": {"name": "Epic"},
            "description": "not ADF",
            "labels": ["has space"],
            "customfield_10001": "x",
        }
    }
    answer = await jira.as_user("alice", "POST", "/rest/api/3/issue", json=body)
    assert answer.status == 400
    assert answer.body == {
        "errorMessages": [],
        "errors": {
            "issuetype": "The issue type selected is invalid.",
            "description": "Operation value must be an Atlassian Document (see the Atlassian"
            " Document Format)",
            "labels": "The label 'has space' contains spaces which is invalid.",
            "customfield_10001": "Field 'customfield_10001' cannot be set. It is not on the"
            " appropriate screen, or unknown.",
            "summary": "You must specify a summary of the issue.",
        },
    }
    no_project = await jira.as_user("alice", "POST", "/rest/api/3/issue", json={"fields": {}})
    assert no_project.body["errors"] == {"project": "Specify a valid project ID or key"}


async def test_edit_issue_records_a_changelog(jira: JiraClient) -> None:
    """PUT fields and label updates: 204, and the site's changelog says what changed."""
    issue = jira.site.create_issue(summary="Before", labels=["old"])
    answer = await jira.as_user(
        "alice",
        "PUT",
        f"/rest/api/3/issue/{issue.key}",
        json={
            "fields": {"summary": "After", "priority": {"id": "1"}},
            "update": {"labels": [{"add": "new"}, {"remove": "old"}]},
        },
    )
    assert answer.status == 204
    changelog = jira.site.changelogs[-1]
    assert changelog.author == "alice"
    assert {i.field_id: (i.from_string, i.to_string) for i in changelog.items} == {
        "summary": ("Before", "After"),
        "priority": ("Medium", "Highest"),
        "labels": ("old", "new"),
    }
    refused = await jira.as_user(
        "bob", "PUT", f"/rest/api/3/issue/{issue.key}", json={"fields": {"summary": "x"}}
    )
    assert refused.status == 403


async def test_assign_and_unassign(jira: JiraClient) -> None:
    """``{"accountId": null}`` unassigns (a spec relaxation), ``"-1"`` is the default (none)."""
    issue = jira.site.create_issue(summary="Assign", assignee="alice")
    path = f"/rest/api/3/issue/{issue.key}/assignee"
    assert (await jira.as_user("alice", "PUT", path, json={"accountId": "dora"})).status == 204
    assert jira.site.issue(issue.id).assignee == "dora"  # type: ignore[union-attr]
    assert (await jira.as_user("alice", "PUT", path, json={"accountId": None})).status == 204
    assert jira.site.issue(issue.id).assignee is None  # type: ignore[union-attr]
    unassigned = jira.site.changelogs[-1].items[0]
    assert (unassigned.from_, unassigned.to, unassigned.to_string) == ("dora", None, None)
    assert (await jira.app("PUT", path, json={"accountId": "dora"})).status == 204
    assert (await jira.app("PUT", path, json={"accountId": "-1"})).status == 204
    assert jira.site.issue(issue.id).assignee is None  # type: ignore[union-attr]
    assert jira.sim.spec_violations == []


async def test_transitions_are_listed_and_taken_with_a_comment(jira: JiraClient) -> None:
    """From To Do: In Progress and Done; taking 21 moves the issue and adds the comment."""
    issue = jira.site.create_issue(summary="Flow")
    path = f"/rest/api/3/issue/{issue.key}/transitions"
    listed = await jira.as_user("alice", "GET", path)
    assert [(t["id"], t["name"], t["to"]["name"]) for t in listed.body["transitions"]] == [
        ("21", "In Progress", "In Progress"),
        ("31", "Done", "Done"),
    ]
    one = await jira.as_user("alice", "GET", path, params=[("transitionId", "31")])
    assert [t["id"] for t in one.body["transitions"]] == ["31"]
    taken = await jira.as_user(
        "alice",
        "POST",
        path,
        json={
            "transition": {"id": "21"},
            "update": {"comment": [{"add": {"body": _doc("Started")}}]},
        },
    )
    assert taken.status == 204
    fresh = jira.site.issue(issue.id)
    assert fresh is not None
    assert jira.site.status_of(fresh).name == "In Progress"
    assert adf.to_text(fresh.comments[-1].body) == "Started"
    assert fresh.comments[-1].author == "alice"
    invalid = await jira.as_user("alice", "POST", path, json={"transition": {"id": "21"}})
    assert invalid.status == 400
    assert invalid.body["errorMessages"] == ["Transition id '21' is not valid for this issue."]
    missing = await jira.as_user("alice", "POST", path, json={"fields": {}})
    assert missing.body["errorMessages"] == ["Missing 'transition' identifier"]


async def test_comments_add_list_page_get_edit_delete(jira: JiraClient) -> None:
    """The comment lifecycle, with ``renderedBody`` and paging."""
    issue = jira.site.create_issue(summary="Chatty")
    path = f"/rest/api/3/issue/{issue.key}/comment"
    ids = []
    for n in range(3):
        added = await jira.as_user(
            "alice", "POST", path, params=[("expand", "renderedBody")], json={"body": _doc(f"c{n}")}
        )
        assert added.status == 201
        assert added.body["author"]["accountId"] == "alice"
        assert added.body["renderedBody"] == f"<p>c{n}</p>"
        ids.append(added.body["id"])
    page = await jira.as_user("alice", "GET", path, params=[("startAt", "1"), ("maxResults", "1")])
    assert (page.body["startAt"], page.body["maxResults"], page.body["total"]) == (1, 1, 3)
    assert [c["id"] for c in page.body["comments"]] == [ids[1]]
    newest = await jira.as_user("alice", "GET", path, params=[("orderBy", "-created")])
    assert [c["id"] for c in newest.body["comments"]] == ids[::-1]
    one = await jira.as_user("alice", "GET", f"{path}/{ids[0]}")
    assert one.body["body"] == _doc("c0")
    edited = await jira.as_user("alice", "PUT", f"{path}/{ids[0]}", json={"body": _doc("edited")})
    assert edited.status == 200
    assert edited.body["body"] == _doc("edited")
    assert (
        await jira.as_user("bob", "PUT", f"{path}/{ids[0]}", json={"body": _doc("x")})
    ).status == 403
    assert (await jira.as_user("alice", "DELETE", f"{path}/{ids[0]}")).status == 204
    assert (await jira.as_user("alice", "GET", f"{path}/{ids[0]}")).status == 404
    not_adf = await jira.as_user("alice", "POST", path, json={"body": "plain text"})
    assert not_adf.status == 400
    assert list(not_adf.body["errors"]) == ["comment"]


async def test_watchers_add_list_remove(jira: JiraClient) -> None:
    """The body of addWatcher is a bare JSON string."""
    issue = jira.site.create_issue(summary="Watched", reporter="alice")
    path = f"/rest/api/3/issue/{issue.key}/watchers"
    assert (await jira.as_user("dora", "POST", path, json="dora")).status == 204
    listed = await jira.as_user("dora", "GET", path)
    assert listed.body["watchCount"] == 2
    assert listed.body["isWatching"] is True
    assert [w["accountId"] for w in listed.body["watchers"]] == ["alice", "dora"]
    assert (
        await jira.as_user("dora", "DELETE", path, params=[("accountId", "dora")])
    ).status == 204
    assert jira.site.issue(issue.id).watchers == ("alice",)  # type: ignore[union-attr]
    unknown = await jira.as_user("dora", "POST", path, json="nobody")
    assert unknown.status == 404


async def test_search_pages_with_next_page_tokens(jira: JiraClient) -> None:
    """Five issues, two per page: three pages, the last without a token."""
    for n in range(5):
        jira.site.create_issue(summary=f"Issue {n}")
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        body: dict[str, Any] = {
            "jql": "project = DEMO ORDER BY key",
            "maxResults": 2,
            "fields": ["summary"],
        }
        if token:
            body["nextPageToken"] = token
        answer = await jira.as_user("alice", "POST", "/rest/api/3/search/jql", json=body)
        assert answer.status == 200
        pages += 1
        seen += [i["key"] for i in answer.body["issues"]]
        if answer.body["isLast"]:
            assert "nextPageToken" not in answer.body
            break
        token = answer.body["nextPageToken"]
    assert pages == 3
    assert seen == [f"DEMO-{n}" for n in range(1, 6)]


async def test_search_by_get_defaults_to_ids_only(jira: JiraClient) -> None:
    """Without ``fields`` each issue is just its id, as Jira answers."""
    issue = jira.site.create_issue(summary="Only an id")
    answer = await jira.app("GET", "/rest/api/3/search/jql", params=[("jql", f"key = {issue.key}")])
    assert answer.body == {"issues": [{"id": issue.id}], "isLast": True}
    keyed = await jira.app(
        "GET",
        "/rest/api/3/search/jql",
        params=[("jql", f"key = {issue.key}"), ("fields", "summary,status")],
    )
    assert set(keyed.body["issues"][0]["fields"]) == {"summary", "status"}


async def test_search_refuses_unbounded_invalid_and_tampered_queries(jira: JiraClient) -> None:
    """Unbounded, bad JQL and a token from another query are 400 with Jira's messages."""
    for n in range(3):
        jira.site.create_issue(summary=f"Issue {n}")
    unbounded = await jira.app("POST", "/rest/api/3/search/jql", json={"jql": "order by key"})
    assert unbounded.status == 400
    assert "Unbounded JQL queries are not allowed here" in unbounded.body["errorMessages"][0]
    bad = await jira.app("POST", "/rest/api/3/search/jql", json={"jql": "project = NOPE"})
    assert bad.body["errorMessages"] == ["The value 'NOPE' does not exist for the field 'project'."]
    syntax = await jira.app("POST", "/rest/api/3/search/jql", json={"jql": "project ="})
    assert syntax.body["errorMessages"][0].startswith("Error in the JQL Query:")
    first = await jira.app(
        "POST", "/rest/api/3/search/jql", json={"jql": "project = DEMO", "maxResults": 1}
    )
    tampered = await jira.app(
        "POST",
        "/rest/api/3/search/jql",
        json={"jql": "project = OPS", "nextPageToken": first.body["nextPageToken"]},
    )
    assert tampered.status == 400


async def test_jql_match_mixes_valid_and_invalid_queries(jira: JiraClient) -> None:
    """One result per JQL in order; invalid ones carry errors and match nothing."""
    bug = jira.site.create_issue(summary="Bug", issue_type="Bug")
    task = jira.site.create_issue(summary="Task")
    ops = jira.site.create_issue("OPS", "Ops task")
    answer = await jira.app(
        "POST",
        "/rest/api/3/jql/match",
        json={
            "issueIds": [int(bug.id), int(task.id), int(ops.id), 99999],
            "jqls": [
                "project = DEMO",
                "issuetype = Bug",
                "broken = value",
                "project = OPS",
                "project =",
            ],
        },
    )
    assert answer.status == 200
    matches = answer.body["matches"]
    assert [m["matchedIssues"] for m in matches] == [
        [int(bug.id), int(task.id)],
        [int(bug.id)],
        [],
        [int(ops.id)],
        [],
    ]
    assert matches[2]["errors"] == [
        "Field 'broken' does not exist or you do not have permission to view it."
    ]
    assert matches[4]["errors"][0].startswith("Error in the JQL Query:")
    assert all(m["errors"] == [] for m in (matches[0], matches[1], matches[3]))
    assert jira.sim.count("POST", "/rest/api/3/jql/match") == 1


async def test_jql_match_refuses_more_than_the_limits(jira: JiraClient) -> None:
    """The limits are configurable; beyond them the whole request is 400."""
    jira.sim.limits = Limits(max_match_jqls=2, max_match_issue_ids=3)
    too_many = await jira.app(
        "POST", "/rest/api/3/jql/match", json={"issueIds": [1], "jqls": ["a = b"] * 3}
    )
    assert too_many.status == 400
    too_many_ids = await jira.app(
        "POST", "/rest/api/3/jql/match", json={"issueIds": [1, 2, 3, 4], "jqls": []}
    )
    assert too_many_ids.status == 400


async def test_jql_parse_in_each_validation_mode(jira: JiraClient) -> None:
    """strict drops the structure on errors, warn keeps it, none does not check the site."""
    queries = ["project = DEMO ORDER BY key", "project = NOPE", "project ="]
    results = {}
    for mode in ("strict", "warn", "none"):
        answer = await jira.app(
            "POST",
            "/rest/api/3/jql/parse",
            params=[("validation", mode)],
            json={"queries": queries},
        )
        assert answer.status == 200
        results[mode] = answer.body["queries"]
    good, unknown, broken = results["strict"]
    assert good["query"] == queries[0]
    assert good["structure"]["where"]["field"] == {"name": "project"}
    assert "errors" not in good
    assert unknown == {
        "query": "project = NOPE",
        "errors": ["The value 'NOPE' does not exist for the field 'project'."],
    }
    assert "structure" not in broken
    assert broken["errors"][0].startswith("Error in the JQL Query:")
    assert "structure" in results["warn"][1]
    assert results["warn"][1]["errors"]
    assert "errors" not in results["none"][1]
    assert "structure" in results["none"][1]


async def test_project_search_pages_and_filters(jira: JiraClient) -> None:
    """``query`` filters by key or name; pages carry ``nextPage`` until the last."""
    for key in ("ALPHA", "BETA", "GAMMA"):
        jira.site.add_project(key)
    first = await jira.app("GET", "/rest/api/3/project/search", params=[("maxResults", "2")])
    assert [p["key"] for p in first.body["values"]] == ["ALPHA", "BETA"]
    assert (first.body["total"], first.body["isLast"]) == (5, False)
    assert "startAt=2" in first.body["nextPage"]
    found = await jira.app(
        "GET", "/rest/api/3/project/search", params=[("query", "oper"), ("expand", "issueTypes")]
    )
    assert [p["key"] for p in found.body["values"]] == ["OPS"]
    assert [t["name"] for t in found.body["values"][0]["issueTypes"]] == ["Task", "Incident"]
    by_name = await jira.app("GET", "/rest/api/3/project/search", params=[("orderBy", "-name")])
    assert by_name.body["values"][0]["key"] == "OPS"
    one = await jira.app("GET", "/rest/api/3/project/OPS")
    assert one.body["name"] == "Operations"
    assert (await jira.as_user("carol", "GET", "/rest/api/3/project/DEMO")).status == 404


async def test_users_myself_bulk_and_single(jira: JiraClient) -> None:
    """Repeated ``accountId`` parameters; unknown ids left out."""
    me = await jira.as_user("dora", "GET", "/rest/api/3/myself")
    assert me.body["accountId"] == "dora"
    assert me.body["accountType"] == "atlassian"
    bulk = await jira.app(
        "GET",
        "/rest/api/3/user/bulk",
        params=[("accountId", "alice"), ("accountId", "nobody"), ("accountId", "gone")],
    )
    assert [(u["accountId"], u["active"]) for u in bulk.body["values"]] == [
        ("alice", True),
        ("gone", False),
    ]
    assert bulk.body["total"] == 2
    single = await jira.app("GET", "/rest/api/3/user", params=[("accountId", "bob")])
    assert single.body["displayName"] == "Bob Example"
    assert (
        await jira.app("GET", "/rest/api/3/user", params=[("accountId", "nobody")])
    ).status == 404


async def test_my_permissions_input_errors(jira: JiraClient) -> None:
    """No permissions, an unknown key, a hidden issue as context."""
    hidden = jira.site.create_issue(summary="Staff", security_level="Staff")
    missing = await jira.as_user("bob", "GET", "/rest/api/3/mypermissions")
    assert missing.status == 400
    unknown = await jira.as_user(
        "bob", "GET", "/rest/api/3/mypermissions", params=[("permissions", "FLY")]
    )
    assert unknown.status == 400
    context = await jira.as_user(
        "bob",
        "GET",
        "/rest/api/3/mypermissions",
        params=[("permissions", "BROWSE_PROJECTS"), ("issueKey", hidden.key)],
    )
    assert context.status == 404


async def test_delete_issue(jira: JiraClient) -> None:
    """alice (no DELETE_ISSUES) is refused; the app deletes."""
    issue = jira.site.create_issue(summary="Doomed")
    assert (await jira.as_user("alice", "DELETE", f"/rest/api/3/issue/{issue.key}")).status == 403
    assert (await jira.app("DELETE", f"/rest/api/3/issue/{issue.key}")).status == 204
    assert jira.site.issue(issue.id) is None


async def test_every_served_operation_answers_within_the_spec(jira: JiraClient) -> None:
    """One successful call per route in ROUTES; responses are checked against the spec."""
    site = jira.site
    issue = site.create_issue(summary="Walk", reporter="alice")
    comment = site.add_comment(issue, "hello", author="alice")
    doomed = site.create_issue(summary="Walk away")
    key, cid = issue.key, comment.id
    calls: list[tuple[str, str, list[tuple[str, str]], Any]] = [
        ("GET", f"/rest/api/3/issue/{key}", [], None),
        ("PUT", f"/rest/api/3/issue/{key}", [], {"fields": {"summary": "Walked"}}),
        (
            "POST",
            "/rest/api/3/issue",
            [],
            {
                "fields": {
                    "project": {"key": "OPS"},
                    "issuetype": {"name": "Incident"},
                    "summary": "New",
                }
            },
        ),
        ("PUT", f"/rest/api/3/issue/{key}/assignee", [], {"accountId": "alice"}),
        ("GET", f"/rest/api/3/issue/{key}/transitions", [("expand", "transitions.fields")], None),
        ("POST", f"/rest/api/3/issue/{key}/transitions", [], {"transition": {"id": "31"}}),
        ("GET", f"/rest/api/3/issue/{key}/comment", [], None),
        ("POST", f"/rest/api/3/issue/{key}/comment", [], {"body": _doc("more")}),
        ("GET", f"/rest/api/3/issue/{key}/comment/{cid}", [("expand", "renderedBody")], None),
        ("PUT", f"/rest/api/3/issue/{key}/comment/{cid}", [], {"body": _doc("changed")}),
        ("DELETE", f"/rest/api/3/issue/{key}/comment/{cid}", [], None),
        ("POST", f"/rest/api/3/issue/{key}/watchers", [], "dora"),
        ("GET", f"/rest/api/3/issue/{key}/watchers", [], None),
        ("DELETE", f"/rest/api/3/issue/{key}/watchers", [("accountId", "dora")], None),
        (
            "GET",
            "/rest/api/3/search/jql",
            [("jql", "project = DEMO"), ("fields", "*all"), ("expand", "renderedFields")],
            None,
        ),
        (
            "POST",
            "/rest/api/3/search/jql",
            [],
            {"jql": "project = DEMO", "fields": ["*navigable"], "maxResults": 1},
        ),
        (
            "POST",
            "/rest/api/3/jql/match",
            [],
            {"issueIds": [int(issue.id)], "jqls": ["project = DEMO", "x ="]},
        ),
        (
            "POST",
            "/rest/api/3/jql/parse",
            [("validation", "warn")],
            {"queries": ["assignee in (currentUser(), EMPTY) ORDER BY key", "project = NOPE"]},
        ),
        ("GET", "/rest/api/3/project/search", [("expand", "issueTypes")], None),
        ("GET", "/rest/api/3/project/DEMO", [], None),
        ("GET", "/rest/api/3/issue/createmeta/DEMO/issuetypes", [], None),
        ("GET", "/rest/api/3/myself", [], None),
        ("GET", "/rest/api/3/user", [("accountId", "alice")], None),
        ("GET", "/rest/api/3/user/bulk", [("accountId", "alice")], None),
        (
            "GET",
            "/rest/api/3/mypermissions",
            [("permissions", "BROWSE_PROJECTS"), ("issueKey", key)],
            None,
        ),
        ("GET", "/rest/api/3/serverInfo", [], None),
        ("DELETE", f"/rest/api/3/issue/{doomed.key}", [], None),
    ]
    for method, path, params, body in calls:
        answer = await jira.app(method, path, params=params, json=body)
        assert 200 <= answer.status < 300, (method, path, answer.body)
    assert jira.sim.spec_violations == []
    assert jira.sim.unserved == []
    covered = {(c.method, c.template) for c in jira.sim.calls}
    # Only a Forge installation that adopted a Connect one has an app property to read
    # (tests/jira_sim/forge/test_migration.py reads it).
    forge_only = {("GET", "/rest/atlassian-connect/1/addons/{addonKey}/properties/{propertyKey}")}
    assert covered == set(ROUTES) - forge_only
