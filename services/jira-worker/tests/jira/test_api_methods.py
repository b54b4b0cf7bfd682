"""Each JiraApi method sends the request Jira's REST v3 documents and unwraps its answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dfj_common.storage import Installation
from dfj_jira_worker.jira import JiraApi, JiraClient

if TYPE_CHECKING:
    from conftest import FakeJira

ACCOUNT_ID = "5b10ac8d82e05b22cc7d4ef5"
ADF: dict[str, Any] = {
    "type": "doc",
    "version": 1,
    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "hi"}]}],
}


def _user(client: JiraClient, site: Installation) -> JiraApi:
    return client.as_user(site, ACCOUNT_ID)


async def test_get_issue_asks_for_fields_and_expand_as_comma_lists(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    fake.respond("GET", "/rest/api/3/issue/ACME-1", 200, body={"id": "10001", "key": "ACME-1"})
    issue = await _user(client, site).get_issue(
        "ACME-1", fields=["summary", "status"], expand=["renderedFields"]
    )
    assert issue == {"id": "10001", "key": "ACME-1"}
    assert fake.seen[0].query == [("fields", "summary,status"), ("expand", "renderedFields")]
    await _user(client, site).get_issue("ACME-1")
    assert fake.seen[1].query == []


async def test_create_issue_posts_the_fields(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    created = {"id": "10002", "key": "ACME-2", "self": "https://x/rest/api/3/issue/10002"}
    fake.respond("POST", "/rest/api/3/issue", 201, body=created)
    fields = {"project": {"key": "ACME"}, "issuetype": {"id": "1"}, "summary": "Hi"}
    assert await _user(client, site).create_issue(fields) == created
    assert fake.seen[0].body == {"fields": fields}


async def test_assign_transition_comment_and_watch_send_jiras_bodies(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    fake.respond("PUT", "/rest/api/3/issue/ACME-1/assignee", 204)
    fake.respond("POST", "/rest/api/3/issue/ACME-1/transitions", 204)
    fake.respond("POST", "/rest/api/3/issue/ACME-1/watchers", 204)
    fake.respond("POST", "/rest/api/3/issue/ACME-1/comment", 201, body={"id": "100"})
    api = _user(client, site)
    await api.assign_issue("ACME-1", ACCOUNT_ID)
    await api.transition_issue("ACME-1", "31")
    await api.add_watcher("ACME-1", ACCOUNT_ID)
    assert await api.add_comment("ACME-1", ADF) == {"id": "100"}
    assert [(s.method, s.path, s.body) for s in fake.seen] == [
        ("PUT", "/rest/api/3/issue/ACME-1/assignee", {"accountId": ACCOUNT_ID}),
        ("POST", "/rest/api/3/issue/ACME-1/transitions", {"transition": {"id": "31"}}),
        ("POST", "/rest/api/3/issue/ACME-1/watchers", ACCOUNT_ID),
        ("POST", "/rest/api/3/issue/ACME-1/comment", {"body": ADF}),
    ]


async def test_transitions_and_comments_are_read_back(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    transitions = [{"id": "31", "name": "Done"}, {"id": "21", "name": "In Progress"}]
    fake.respond(
        "GET", "/rest/api/3/issue/ACME-1/transitions", 200, body={"transitions": transitions}
    )
    fake.respond("GET", "/rest/api/3/issue/ACME-1/comment/100", 200, body={"id": "100"})
    api = _user(client, site)
    assert await api.get_transitions("ACME-1") == transitions
    assert await api.get_comment("ACME-1", "100") == {"id": "100"}


async def test_search_match_and_parse_jql(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    fake.respond("POST", "/rest/api/3/search/jql", 200, body={"issues": [], "isLast": True})
    matches = [{"matchedIssues": [10001], "errors": []}, {"matchedIssues": [], "errors": []}]
    fake.respond("POST", "/rest/api/3/jql/match", 200, body={"matches": matches})
    parsed = [{"query": "project = ACME", "structure": {}}]
    fake.respond("POST", "/rest/api/3/jql/parse", 200, body={"queries": parsed})
    api = client.as_app(site)
    found = await api.search_jql("project = ACME", fields=["summary"], max_results=5)
    assert found == {"issues": [], "isLast": True}
    assert await api.match_jql([10001, 10002], ["project = ACME", "type = Bug"]) == matches
    assert await api.parse_jql(["project = ACME"]) == parsed
    assert [(s.path, s.query, s.body) for s in fake.seen] == [
        (
            "/rest/api/3/search/jql",
            [],
            {"jql": "project = ACME", "fields": ["summary"], "maxResults": 5},
        ),
        (
            "/rest/api/3/jql/match",
            [],
            {"issueIds": [10001, 10002], "jqls": ["project = ACME", "type = Bug"]},
        ),
        ("/rest/api/3/jql/parse", [("validation", "strict")], {"queries": ["project = ACME"]}),
    ]


async def test_empty_batches_make_no_call(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """Nothing to ask about, nothing sent (a saving on the notification hot path)."""
    api = client.as_app(site)
    assert await api.match_jql([1], []) == []
    assert await api.match_jql([], ["a", "b"]) == [
        {"matchedIssues": [], "errors": []},
        {"matchedIssues": [], "errors": []},
    ]
    assert await api.parse_jql([]) == []
    assert await api.bulk_users([]) == []
    assert await api.my_permissions([]) == {}
    assert fake.seen == []


async def test_projects_issue_types_myself_and_users(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    fake.respond("GET", "/rest/api/3/project/search", 200, body={"values": [{"key": "ACME"}]})
    fake.respond(
        "GET",
        "/rest/api/3/issue/createmeta/ACME/issuetypes",
        200,
        body={"issueTypes": [{"id": "1", "name": "Bug"}]},
    )
    fake.respond("GET", "/rest/api/3/user/bulk", 200, body={"values": [{"accountId": "a"}]})
    api = _user(client, site)
    assert await api.search_projects(max_results=500) == [{"key": "ACME"}]
    assert await api.issue_types_for_project("ACME") == [{"id": "1", "name": "Bug"}]
    assert (await api.get_myself())["actor"] == ACCOUNT_ID
    assert await api.bulk_users(["a", "b"]) == [{"accountId": "a"}]
    assert fake.seen[0].query == [("maxResults", "100")]  # Jira's page maximum
    assert fake.seen[3].query == [("accountId", "a"), ("accountId", "b"), ("maxResults", "2")]


async def test_my_permissions_answers_a_bool_per_asked_permission(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    fake.respond(
        "GET",
        "/rest/api/3/mypermissions",
        200,
        body={
            "permissions": {
                "BROWSE_PROJECTS": {"key": "BROWSE_PROJECTS", "havePermission": True},
                "ASSIGN_ISSUES": {"key": "ASSIGN_ISSUES", "havePermission": False},
            }
        },
    )
    granted = await _user(client, site).my_permissions(
        ["BROWSE_PROJECTS", "ASSIGN_ISSUES", "EDIT_ISSUES"], project_key="ACME"
    )
    assert granted == {"BROWSE_PROJECTS": True, "ASSIGN_ISSUES": False, "EDIT_ISSUES": False}
    assert fake.seen[0].query == [
        ("permissions", "BROWSE_PROJECTS,ASSIGN_ISSUES,EDIT_ISSUES"),
        ("projectKey", "ACME"),
    ]
