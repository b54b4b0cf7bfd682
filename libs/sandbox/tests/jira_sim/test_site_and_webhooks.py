"""The builder API's defaults and changelogs, and the webhook bodies built from them."""

from __future__ import annotations

import pytest

from dfj_sandbox.jira_sim import DEFAULT_PROJECT_KEY, Site, adf, webhooks


def test_a_new_site_has_jiras_defaults(site: Site) -> None:
    """DEMO with Task/Bug/Story, To Do → In Progress → Done, Highest … Lowest."""
    project = site.project(DEFAULT_PROJECT_KEY)
    assert project is not None
    assert [t.name for t in project.issue_types] == ["Task", "Bug", "Story"]
    assert [s.name for s in project.workflow.statuses] == ["To Do", "In Progress", "Done"]
    assert [s.category.key for s in project.workflow.statuses] == ["new", "indeterminate", "done"]
    assert [p.name for p in site.priorities] == ["Highest", "High", "Medium", "Low", "Lowest"]
    issue = site.create_issue(summary="Defaults")
    assert issue.key == "DEMO-1"
    assert site.status_of(issue).name == "To Do"
    assert site.priority_of(issue).name == "Medium"  # type: ignore[union-attr]
    ops = site.project("OPS")
    assert ops is not None
    assert ops.issue_type("Task").id == project.issue_type("Task").id  # type: ignore[union-attr]


def test_update_issue_returns_the_changelog(site: Site) -> None:
    """Ids in from/to, names in the strings; nothing changed means nothing recorded."""
    issue = site.create_issue(summary="Track me", assignee="alice")
    changelog = site.update_issue(
        issue, by="dora", assignee="dora", status="In Progress", summary="Tracked"
    )
    assert changelog.author == "dora"
    assert [i.to_json() for i in changelog.items] == [
        {
            "field": "summary",
            "fieldtype": "jira",
            "fieldId": "summary",
            "from": None,
            "fromString": "Track me",
            "to": None,
            "toString": "Tracked",
        },
        {
            "field": "assignee",
            "fieldtype": "jira",
            "fieldId": "assignee",
            "from": "alice",
            "fromString": "Alice Example",
            "to": "dora",
            "toString": "Dora Example",
        },
        {
            "field": "status",
            "fieldtype": "jira",
            "fieldId": "status",
            "from": "10000",
            "fromString": "To Do",
            "to": "3",
            "toString": "In Progress",
        },
    ]
    assert site.changelogs == [changelog]
    same = site.update_issue(issue, summary="Tracked")
    assert same.items == ()
    assert site.changelogs == [changelog]


def test_transition_issue_follows_the_workflow(site: Site) -> None:
    """Only available transitions can be taken."""
    issue = site.create_issue(summary="Flow")
    site.transition_issue(issue, "31")
    with pytest.raises(LookupError):
        site.transition_issue(issue, "31")
    done = site.issue(issue.id)
    assert done is not None
    assert site.status_of(done).name == "Done"


def test_builders_refuse_what_does_not_exist(site: Site) -> None:
    """Unknown projects, types, users, levels fail loudly instead of building nonsense."""
    with pytest.raises(LookupError):
        site.create_issue("NOPE")
    with pytest.raises(LookupError):
        site.create_issue(issue_type="Epic")
    with pytest.raises(LookupError):
        site.create_issue(assignee="nobody")
    with pytest.raises(LookupError):
        site.create_issue(security_level="Secret")
    with pytest.raises(ValueError, match="exists"):
        site.add_user("alice")


def test_issue_updated_webhook_carries_the_changelog(site: Site) -> None:
    """The body Jira posts for an update, in the v2 representation."""
    issue = site.create_issue(summary="Hook", description="Some *text*", reporter="alice")
    changelog = site.update_issue(issue, by="alice", assignee="dora")
    fresh = site.issue(issue.id)
    assert fresh is not None
    body = webhooks.issue_updated(site, fresh, changelog)
    assert body["webhookEvent"] == "jira:issue_updated"
    assert body["issue_event_type_name"] == "issue_assigned"
    assert body["timestamp"] == 1_800_000_000_000
    assert body["user"]["accountId"] == "alice"
    assert body["issue"]["key"] == issue.key
    assert body["issue"]["self"] == site.api_url(f"issue/{issue.id}", "2")
    assert "/rest/api/2/issue/" in body["issue"]["self"]
    assert body["issue"]["fields"]["description"] == "Some *text*"
    assert body["issue"]["fields"]["assignee"]["accountId"] == "dora"
    assert body["changelog"] == {
        "id": changelog.id,
        "items": [
            {
                "field": "assignee",
                "fieldtype": "jira",
                "fieldId": "assignee",
                "from": None,
                "fromString": None,
                "to": "dora",
                "toString": "Dora Example",
            }
        ],
    }
    moved = site.transition_issue(issue, "21", by="alice")
    assert webhooks.issue_updated(site, fresh, moved)["issue_event_type_name"] == "issue_generic"
    renamed = site.update_issue(issue, summary="Renamed")
    assert webhooks.event_type_name(renamed) == "issue_updated"


def test_issue_created_and_deleted_webhooks(site: Site) -> None:
    """Created names the reporter as the user; deleted carries the issue as it was."""
    issue = site.create_issue(summary="Born", reporter="bob", security_level="Staff")
    created = webhooks.issue_created(site, issue)
    assert (created["webhookEvent"], created["issue_event_type_name"]) == (
        "jira:issue_created",
        "issue_created",
    )
    assert created["user"]["accountId"] == "bob"
    assert created["issue"]["fields"]["security"]["name"] == "Staff"
    assert "changelog" not in created
    removed = site.delete_issue(issue)
    deleted = webhooks.issue_deleted(site, removed, user="dora")
    assert deleted["webhookEvent"] == "jira:issue_deleted"
    assert deleted["user"]["accountId"] == "dora"
    assert deleted["issue"]["key"] == issue.key


def test_comment_webhooks_carry_author_and_visibility(site: Site) -> None:
    """comment_* bodies: the comment in v2 form and only the issue fields comment events carry."""
    issue = site.create_issue(summary="Talk", assignee="alice")
    comment = site.add_comment(
        issue, "Admins, look", author="dora", visibility=("role", "Administrators")
    )
    fresh = site.issue(issue.id)
    assert fresh is not None
    created = webhooks.comment_created(site, fresh, comment)
    assert created["webhookEvent"] == "comment_created"
    assert created["comment"]["author"]["accountId"] == "dora"
    assert created["comment"]["body"] == "Admins, look"
    assert created["comment"]["visibility"] == {
        "type": "role",
        "value": "Administrators",
        "identifier": "Administrators",
    }
    assert set(created["issue"]["fields"]) == {
        "summary",
        "issuetype",
        "project",
        "assignee",
        "priority",
        "status",
    }
    edited = site.update_comment(fresh, comment.id, adf.document("Admins, look again"), by="dora")
    updated = webhooks.comment_updated(site, fresh, edited)
    assert (updated["webhookEvent"], updated["comment"]["body"]) == (
        "comment_updated",
        "Admins, look again",
    )
    removed = site.delete_comment(fresh, comment.id)
    assert webhooks.comment_deleted(site, fresh, removed)["webhookEvent"] == "comment_deleted"
    commented = webhooks.issue_commented(site, fresh, comment)
    assert (commented["webhookEvent"], commented["issue_event_type_name"]) == (
        "jira:issue_updated",
        "issue_commented",
    )
    assert commented["comment"]["id"] == comment.id
