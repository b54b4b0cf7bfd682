"""The subscription vocabulary, issue-type filters and the audience rule, decided in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dfj_common.storage import Subscription
from dfj_jira_worker.notify import routing
from dfj_jira_worker.notify.events import Change, CommentRef, EventKind, FieldChange
from dfj_jira_worker.notify.reads import CommentView, IssueView
from dfj_jira_worker.notify.routing import Presentation

WHEN = datetime(2024, 5, 1, tzinfo=UTC)


def sub(*event_types: str, issue_types: tuple[str, ...] = ()) -> Subscription:
    return Subscription(
        id="s1",
        guild_id="g",
        channel_id="ch",
        client_key="c",
        project_key="ABC",
        event_types=event_types,
        issue_types=issue_types,
        jql=None,
        delivery_mode="message",
        created_by="u",
        created_at=WHEN,
    )


def change(kind: EventKind, *fields: str, **extra: Any) -> Change:
    items = tuple(FieldChange(field=f, name=f, from_id="1", to_id="2") for f in fields)
    return Change(client_key="c", kind=kind, issue_id="1", occurred_at=WHEN, items=items, **extra)


@pytest.mark.parametrize(
    ("event", "kinds"),
    [
        (change(EventKind.ISSUE_CREATED), {"issue_created"}),
        (change(EventKind.ISSUE_DELETED), {"issue_deleted"}),
        (change(EventKind.COMMENT_CREATED), {"comment_created"}),
        (change(EventKind.COMMENT_UPDATED), {"comment_updated"}),
        (change(EventKind.COMMENT_DELETED), {"comment_deleted"}),
        (change(EventKind.ISSUE_UPDATED, "summary"), {"issue_updated"}),
        (change(EventKind.ISSUE_UPDATED, "status"), {"issue_updated", "status_changed"}),
        (change(EventKind.ISSUE_UPDATED, "assignee"), {"issue_updated", "assigned"}),
        (
            change(EventKind.ISSUE_UPDATED, "status", "assignee", "labels"),
            {"issue_updated", "status_changed", "assigned"},
        ),
        # Jira's companion of a comment event (issue_commented) has no changelog: nothing.
        (change(EventKind.ISSUE_UPDATED, event_type_name="issue_commented"), set()),
    ],
)
def test_event_kinds(event: Change, kinds: set[str]) -> None:
    """Each event counts as the documented vocabulary names."""
    assert routing.event_kinds(event) == kinds
    assert kinds <= routing.EVENT_TYPES


@pytest.mark.parametrize(
    ("event_types", "event", "wanted"),
    [
        (("issue_created",), change(EventKind.ISSUE_CREATED), True),
        (("issue_created",), change(EventKind.ISSUE_UPDATED, "status"), False),
        (("status_changed",), change(EventKind.ISSUE_UPDATED, "status"), True),
        (("status_changed",), change(EventKind.ISSUE_UPDATED, "priority"), False),
        (("assigned",), change(EventKind.ISSUE_UPDATED, "assignee"), True),
        (("issue_updated",), change(EventKind.ISSUE_UPDATED, "assignee"), True),
        ((" Jira:Issue_Created ",), change(EventKind.ISSUE_CREATED), True),
        (("comment_created", "restricted:key-only"), change(EventKind.COMMENT_CREATED), True),
        (("restricted:key-only",), change(EventKind.COMMENT_CREATED), False),
        (("everything",), change(EventKind.ISSUE_CREATED), False),
        ((), change(EventKind.ISSUE_CREATED), False),
    ],
)
def test_subscribed_to(event_types: tuple[str, ...], event: Change, wanted: bool) -> None:
    """Names match case-insensitively, a jira: prefix is ignored, the marker is no event type."""
    assert routing.subscribed_to(sub(*event_types), routing.event_kinds(event)) is wanted


@pytest.mark.parametrize(
    ("issue_types", "type_id", "type_name", "decided"),
    [
        ((), None, None, True),
        (("10004",), "10004", None, True),
        (("10004",), "10001", None, False),
        (("10004",), None, "Bug", False),
        (("Bug",), "10004", None, None),
        (("Bug",), "10004", "bug", True),
        (("Bug",), "10004", "Story", False),
        (("10001", "Bug"), "10001", None, True),
        (("10001", "Bug"), "10004", None, None),
        (("10001", "Bug"), "10004", "BUG", True),
        (("  ",), "10004", None, True),
    ],
)
def test_issue_type_matches(
    issue_types: tuple[str, ...], type_id: str | None, type_name: str | None, decided: bool | None
) -> None:
    """Ids decide at once; names wait for the issue read (None = undecided)."""
    assert (
        routing.issue_type_matches(
            sub("issue_created", issue_types=issue_types), type_id, type_name
        )
        is decided
    )


def test_restricted_by_the_event_or_the_reads() -> None:
    """A security level or comment visibility, from the webhook or the REST read, restricts."""
    plain = change(EventKind.ISSUE_UPDATED, "status")
    assert not routing.restricted(plain, IssueView(), CommentView())
    assert routing.restricted(change(EventKind.ISSUE_UPDATED, security_level_id="10100"))
    assert routing.restricted(plain, IssueView(security_level_id="10100"))
    hidden = CommentRef(id="9", visibility_type="group")
    assert routing.restricted(change(EventKind.COMMENT_CREATED, comment=hidden))
    assert routing.restricted(change(EventKind.COMMENT_DELETED, comment=hidden))
    internal = CommentView(jsd_public=False)
    assert routing.restricted(change(EventKind.COMMENT_CREATED), None, internal)
    assert routing.restricted(
        change(EventKind.COMMENT_UPDATED), None, CommentView(visibility_type="role")
    )


def test_presentation_follows_the_marker() -> None:
    """Open events go in full; restricted ones key-only with the marker, else withheld."""
    plain, marked = sub("issue_updated"), sub("issue_updated", "RESTRICTED:key-only")
    assert routing.presentation(plain, is_restricted=False) is Presentation.FULL
    assert routing.presentation(marked, is_restricted=False) is Presentation.FULL
    assert routing.presentation(plain, is_restricted=True) is Presentation.WITHHELD
    assert routing.presentation(marked, is_restricted=True) is Presentation.KEY_ONLY
    assert routing.key_only(marked) and not routing.key_only(plain)
