"""Site observers: every change through the Site API is reported as a typed record."""

from __future__ import annotations

from dfj_sandbox.jira_sim import (
    Change,
    CommentAdded,
    CommentDeleted,
    CommentUpdated,
    IssueCreated,
    IssueDeleted,
    IssueUpdated,
    Site,
    webhooks,
)


def test_every_change_reaches_the_observers(site: Site) -> None:
    """One record per change, in order; a change that changes nothing reports nothing."""
    seen: list[Change] = []
    site.observers.append(seen.append)
    issue = site.create_issue(summary="Observed")
    site.update_issue(issue, summary="Observed")  # no change
    changelog = site.transition_issue(issue, "31", by="dora")
    comment = site.add_comment(issue, "Hello", author="alice")
    site.update_comment(issue, comment.id, "Hello again", by="alice")
    site.delete_comment(issue, comment.id, by="dora")
    site.delete_issue(issue, by="dora")
    assert [type(change) for change in seen] == [
        IssueCreated,
        IssueUpdated,
        CommentAdded,
        CommentUpdated,
        CommentDeleted,
        IssueDeleted,
    ]
    _, updated, added, _, removed, deleted = seen
    assert isinstance(updated, IssueUpdated)
    assert updated.changelog == changelog
    assert site.status_of(updated.issue).name == "Done"  # the issue as it is after
    assert isinstance(added, CommentAdded)
    assert added.issue.comments == (comment,)
    assert isinstance(removed, CommentDeleted)
    assert removed.issue.comments == ()
    assert removed.by == "dora"
    assert isinstance(deleted, IssueDeleted)
    assert deleted.issue.id == issue.id
    assert site.issue(issue.id) is None


def test_each_change_maps_to_jiras_webhooks(site: Site) -> None:
    """A new comment is two webhooks (comment_created, issue_commented), the rest one each."""
    seen: list[Change] = []
    site.observers.append(seen.append)
    issue = site.create_issue(summary="Mapped")
    comment = site.add_comment(issue, "Two events")
    site.delete_comment(issue, comment.id)
    mapped = [
        (event, body.get("issue_event_type_name"))
        for change in seen
        for event, body in webhooks.bodies_for(site, change)
    ]
    assert mapped == [
        ("jira:issue_created", "issue_created"),
        ("comment_created", None),
        ("jira:issue_updated", "issue_commented"),
        ("comment_deleted", None),
    ]
