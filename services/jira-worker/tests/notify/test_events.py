"""Webhook data becomes a typed Change; what the pipeline cannot work without is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dfj_common.envelope import Envelope
from dfj_common.errors import MalformedMessage
from dfj_jira_worker.notify.events import (
    WEBHOOK_EVENT_TYPE,
    CommentRef,
    EventKind,
    FieldChange,
    read_change,
)

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def envelope(**data: Any) -> Envelope:
    return Envelope(id="e1", source="tests", type=WEBHOOK_EVENT_TYPE, data=data, time=WHEN)


def test_a_full_update_event_is_read_whole() -> None:
    """Every id the gateway keeps lands in its typed place."""
    change = read_change(
        envelope(
            clientKey="site-1",
            event="jira:issue_updated",
            issueEventTypeName="issue_generic",
            timestamp=1_714_564_800_000,
            actorAccountId="acc-1",
            delivery={"identifier": "w1"},
            issue={
                "id": "10001",
                "key": "ABC-7",
                "projectKey": "ABC",
                "issueTypeId": "10004",
                "statusId": "3",
                "securityLevelId": "10100",
                "updated": "2024-05-01T12:00:00.000+0000",
            },
            changelog={
                "id": "5",
                "items": [
                    {"field": "status", "fieldId": "status", "from": "1", "to": "3"},
                    {"field": "Sprint", "fieldId": "customfield_10020", "to": "7"},
                    {"field": "Labels"},
                    {"fieldtype": "jira"},
                ],
            },
        )
    )
    assert change.client_key == "site-1"
    assert change.kind is EventKind.ISSUE_UPDATED
    assert (change.issue_id, change.issue_key, change.project_key) == ("10001", "ABC-7", "ABC")
    assert (change.issue_type_id, change.status_id, change.security_level_id) == (
        "10004",
        "3",
        "10100",
    )
    assert change.updated == "2024-05-01T12:00:00.000+0000"
    assert change.actor_account_id == "acc-1"
    assert change.event_type_name == "issue_generic"
    assert change.occurred_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert change.items == (
        FieldChange(field="status", name="status", from_id="1", to_id="3"),
        FieldChange(field="customfield_10020", name="Sprint", to_id="7"),
        FieldChange(field="labels", name="Labels"),
    )
    assert change.item("status") == change.items[0]
    assert change.item("priority") is None
    assert change.comment is None
    assert change.numeric_issue_id == 10001


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ("jira:issue_created", EventKind.ISSUE_CREATED),
        ("jira:issue_updated", EventKind.ISSUE_UPDATED),
        ("jira:issue_deleted", EventKind.ISSUE_DELETED),
        ("comment_created", EventKind.COMMENT_CREATED),
        ("comment_updated", EventKind.COMMENT_UPDATED),
        ("comment_deleted", EventKind.COMMENT_DELETED),
    ],
)
def test_each_webhook_event_has_its_kind(event: str, kind: EventKind) -> None:
    """The six webhook events the gateway publishes map one to one."""
    change = read_change(envelope(clientKey="c", event=event, issue={"id": "1"}))
    assert change.kind is kind
    assert change.kind.is_comment == event.startswith("comment_")


def test_the_comment_and_its_audience_are_read() -> None:
    """A restricted comment (role or group) and an internal JSM note are both restricted."""
    change = read_change(
        envelope(
            clientKey="c",
            event="comment_created",
            issue={"id": "1"},
            comment={
                "id": "100",
                "authorAccountId": "a",
                "visibility": {"type": "role", "value": "Developers"},
                "jsdPublic": True,
            },
        )
    )
    assert change.comment == CommentRef(
        id="100",
        author_account_id="a",
        visibility_type="role",
        visibility_value="Developers",
        jsd_public=True,
    )
    assert change.comment.restricted
    assert CommentRef(id="1", jsd_public=False).restricted
    assert not CommentRef(id="1", jsd_public=True).restricted
    assert CommentRef(id="1", visibility_value="only a value").restricted is False
    odd = read_change(
        envelope(
            clientKey="c",
            event="comment_created",
            issue={"id": "1"},
            comment={"id": "2", "visibility": {"value": "no type"}},
        )
    )
    assert odd.comment is not None and odd.comment.restricted


def test_without_a_timestamp_the_envelope_time_is_used() -> None:
    """The embed's time falls back to when the gateway saw the event."""
    change = read_change(envelope(clientKey="c", event="comment_deleted", issue={"id": "1"}))
    assert change.occurred_at == WHEN


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"event": "jira:issue_created", "issue": {"id": "1"}}, "WebhookField"),
        ({"clientKey": "", "event": "jira:issue_created", "issue": {"id": "1"}}, "WebhookField"),
        (
            {"clientKey": "c", "event": "worklog_created", "issue": {"id": "1"}},
            "UnknownWebhookEvent",
        ),
        ({"clientKey": "c", "issue": {"id": "1"}}, "UnknownWebhookEvent"),
        ({"clientKey": "c", "event": "jira:issue_created"}, "WebhookField"),
        (
            {"clientKey": "c", "event": "jira:issue_created", "issue": {"id": "ABC-1"}},
            "WebhookField",
        ),
        ({"clientKey": "c", "event": "jira:issue_created", "issue": "10001"}, "WebhookField"),
    ],
)
def test_unusable_events_are_malformed(data: dict[str, Any], reason: str) -> None:
    """No tenant, no known event or no issue id: dead-lettered with a reason, kept for replay."""
    with pytest.raises(MalformedMessage) as info:
        read_change(envelope(**data))
    assert info.value.reason == reason


def test_wrong_types_read_as_absent() -> None:
    """Optional fields of the wrong type are dropped, never trusted."""
    change = read_change(
        envelope(
            clientKey="c",
            event="jira:issue_updated",
            timestamp="yesterday",
            actorAccountId=5,
            issue={"id": 10001, "key": 7, "projectKey": ["ABC"], "securityLevelId": True},
            changelog={"items": "not a list"},
            comment={"id": "x"},
        )
    )
    assert change.issue_id == "10001"
    assert change.issue_key is None and change.project_key is None
    assert change.security_level_id is None
    assert change.actor_account_id is None
    assert change.items == ()
    assert change.comment is None
    assert change.occurred_at == WHEN
