"""Parsing command events into typed requests (pure): options, custom ids, forms, mistakes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dfj_common.envelope import Envelope
from dfj_common.errors import MalformedMessage
from dfj_jira_worker.commands.requests import (
    DEFAULT_EVENT_TYPES,
    AssignIssue,
    Capability,
    CommentHint,
    CommentIssue,
    CreateFromDraft,
    CreateFromMessage,
    CreateIssue,
    InvalidInput,
    ListSubscriptions,
    Request,
    SearchIssues,
    Subscribe,
    TransitionIssue,
    Unsubscribe,
    Unsupported,
    ViewIssue,
    WatchIssue,
    issue_key,
    parse_invocation,
    parse_request,
    project_key,
)

BASE = {
    "interaction_id": "1600000000000000001",
    "application_id": "1300000000000000001",
    "token": "tok",
    "guild_id": "1100000000000000001",
    "channel_id": "1200000000000000001",
    "user_id": "1400000000000000001",
    "roles": ["1500000000000000001", 7],
    "permissions": "40",
}


def _event(event_type: str, **data: Any) -> Envelope:
    return Envelope(
        id="e1",
        source="tests",
        type=event_type,
        time=datetime(2026, 1, 2, tzinfo=UTC),
        data={**BASE, **data},
    )


def _slash(sub: str, **options: Any) -> Request:
    command = {"name": "jira", "type": 1, "subcommand": sub, "options": options}
    return parse_request(_event("discord.command", command=command))


def test_invocation() -> None:
    """Ids, roles (strings only), permissions, answer mode, receipt time."""
    got = parse_invocation(_event("discord.command", command={"subcommand": "issue"}))
    assert got.user_id == "1400000000000000001"
    assert got.roles == ("1500000000000000001",)
    assert got.permissions == 40
    assert got.may_manage_guild  # 40 = Manage Server (32) + Administrator (8)
    assert (got.ephemeral, got.followup) == (True, False)
    assert got.created_at == datetime(2026, 1, 2, tzinfo=UTC).timestamp()
    assert "tok" not in repr(got)


@pytest.mark.parametrize(
    ("event_type", "extra", "ephemeral", "followup"),
    [
        ("discord.command", {"command": {"subcommand": "subscribe"}}, False, False),
        ("discord.command", {"command": {"subcommand": "subscriptions"}}, False, False),
        ("discord.component", {"component": {}}, True, True),
        ("discord.modal_submit", {"modal": {}}, True, False),
    ],
)
def test_answer_modes(
    event_type: str, extra: dict[str, Any], ephemeral: bool, followup: bool
) -> None:
    got = parse_invocation(_event(event_type, **extra))
    assert (got.ephemeral, got.followup) == (ephemeral, followup)


def test_a_member_without_permissions() -> None:
    got = parse_invocation(_event("discord.command", permissions=None, roles=None))
    assert (got.permissions, got.roles, got.may_manage_guild) == (0, (), False)


@pytest.mark.parametrize(
    ("sub", "options", "expected"),
    [
        ("issue", {"key": "abc-12"}, ViewIssue(key="ABC-12")),
        ("issue", {"issue": "10042"}, ViewIssue(key="10042")),
        ("search", {"jql": " project = X "}, SearchIssues(jql="project = X")),
        ("assign", {"key": "A-1"}, AssignIssue(key="A-1", assignee="me")),
        (
            "assign",
            {"key": "A-1", "user": "1400000000000000002"},
            AssignIssue(key="A-1", assignee="1400000000000000002"),
        ),
        (
            "assign",
            {"key": "A-1", "user": "<@!1400000000000000002>"},
            AssignIssue(key="A-1", assignee="1400000000000000002"),
        ),
        ("assign", {"key": "A-1", "user": "Unassigned"}, AssignIssue(key="A-1", assignee="none")),
        ("transition", {"key": "A-1"}, TransitionIssue(key="A-1", to=None)),
        ("transition", {"key": "A-1", "to": " Done "}, TransitionIssue(key="A-1", to="Done")),
        ("comment", {"issue": "A-1", "text": " hi "}, CommentIssue(key="A-1", text="hi")),
        ("watch", {"key": "a_b-3"}, WatchIssue(key="A_B-3")),
        ("subscribe", {"project": "abc"}, Subscribe(project="ABC")),
        (
            "subscribe",
            {
                "project": "ABC",
                "events": "Issue_Deleted,comment_created",
                "issue_types": "Bug, New Feature,,Bug",
                "jql": "x = y",
                "thread": True,
            },
            Subscribe(
                project="ABC",
                event_types=("issue_deleted", "comment_created"),
                issue_types=("Bug", "New Feature"),
                jql="x = y",
                thread=True,
            ),
        ),
        ("unsubscribe", {"subscription": "d2c1"}, Unsubscribe(target="d2c1")),
        ("unsubscribe", {"project": "abc"}, Unsubscribe(target="abc")),
        ("subscriptions", {}, ListSubscriptions()),
        (
            "create",
            {"project": "abc", "type": "Bug", "summary": "  two   spaces ", "description": "d"},
            CreateIssue(project="ABC", issue_type="Bug", summary="two spaces", description="d"),
        ),
        ("create", {"summary": "s"}, CreateIssue(summary="s")),
        ("dance", {}, Unsupported(what="/jira dance")),
    ],
)
def test_slash_commands(sub: str, options: dict[str, Any], expected: Request) -> None:
    assert _slash(sub, **options) == expected


def test_default_event_types() -> None:
    assert Subscribe(project="A").event_types == DEFAULT_EVENT_TYPES


@pytest.mark.parametrize(
    ("sub", "options", "message"),
    [
        ("issue", {}, "Tell me which issue"),
        ("issue", {"key": "ABC"}, "doesn't look like an issue key"),
        ("issue", {"key": "A-1; DROP"}, "doesn't look like an issue key"),
        ("search", {"jql": "  "}, "Give me a JQL query"),
        ("search", {"jql": "x" * 4001}, "too long"),
        ("comment", {"key": "A-1"}, "needs some text"),
        ("assign", {"key": "A-1", "user": "bob"}, "Pick a member"),
        ("create", {"summary": ""}, "needs a summary"),
        ("create", {"summary": "s", "project": "not a key"}, "doesn't look like a project key"),
        ("subscribe", {}, "Tell me which project"),
        (
            "subscribe",
            {"project": "A", "events": "issue_created,nope"},
            "Unknown event type `nope`",
        ),
        ("unsubscribe", {}, "which subscription"),
    ],
)
def test_user_mistakes_are_invalid_input(sub: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        _slash(sub, **options)
    assert message in info.value.user_message


def test_a_long_summary_is_clipped() -> None:
    request = _slash("create", summary="s" * 300)
    assert isinstance(request, CreateIssue)
    assert len(request.summary) == 255


def test_message_command() -> None:
    command = {"name": "Create issue from message", "type": 3, "target_id": "18"}
    request = parse_request(
        _event("discord.command", command=command, message={"id": "18", "text": "hello"})
    )
    assert request == CreateFromMessage(message_id="18", text="hello")
    with pytest.raises(MalformedMessage):
        parse_request(_event("discord.command", command=command))


@pytest.mark.parametrize(
    ("custom_id", "component_type", "values", "expected"),
    [
        ("assign-me:ABC-1", 2, [], AssignIssue(key="ABC-1", assignee="me")),
        ("transition:ABC-1", 3, ["31"], TransitionIssue(key="ABC-1", to="31")),
        ("transition:ABC-1", 2, [], TransitionIssue(key="ABC-1", to=None)),
        ("comment:ABC-1", 2, [], CommentHint(key="ABC-1")),
        ("watch:abc-1", 2, [], WatchIssue(key="ABC-1")),
        ("later:thing", 2, [], Unsupported(what="this button")),
    ],
)
def test_components(
    custom_id: str, component_type: int, values: list[str], expected: Request
) -> None:
    component = {"custom_id": custom_id, "component_type": component_type, "values": values}
    assert parse_request(_event("discord.component", component=component)) == expected


def test_a_component_with_a_bad_key_is_invalid_input() -> None:
    component = {"custom_id": "watch:", "component_type": 2, "values": []}
    with pytest.raises(InvalidInput):
        parse_request(_event("discord.component", component=component))


@pytest.mark.parametrize(
    ("custom_id", "fields", "expected"),
    [
        (
            "create-issue",
            {"summary": "S", "description": "D", "project": ["abc"], "issuetype": "10002"},
            CreateIssue(summary="S", description="D", project="ABC", issue_type="10002"),
        ),
        (
            "create-issue",
            {"summary": "S", "description": None, "project": [], "issuetype": None},
            CreateIssue(summary="S"),
        ),
        (
            "draft-create:abc123",
            {"summary": "S", "project": "ABC", "issuetype": "Bug"},
            CreateFromDraft(draft_id="abc123", summary="S", project="ABC", issue_type="Bug"),
        ),
        ("comment:ABC-1", {"text": "hello"}, CommentIssue(key="ABC-1", text="hello")),
        ("survey", {}, Unsupported(what="this form")),
    ],
)
def test_modals(custom_id: str, fields: dict[str, Any], expected: Request) -> None:
    modal = {"custom_id": custom_id, "fields": fields}
    assert parse_request(_event("discord.modal_submit", modal=modal)) == expected


@pytest.mark.parametrize(
    "data",
    [
        {"component": {"custom_id": "", "component_type": 2}},
        {"component": "nope"},
        {"modal": {"custom_id": "x"}},
        {"modal": {"custom_id": "draft-create:", "fields": {}}},
    ],
)
def test_broken_payloads_are_malformed(data: dict[str, Any]) -> None:
    event_type = "discord.component" if "component" in data else "discord.modal_submit"
    with pytest.raises(MalformedMessage):
        parse_request(_event(event_type, **data))


def test_capabilities() -> None:
    """Each request names the capability its role rule is looked up by."""
    assert ViewIssue.capability is Capability.VIEW
    assert CreateFromMessage.capability is Capability.CREATE
    assert TransitionIssue.capability is Capability.ACT
    assert Unsubscribe.capability is Capability.MANAGE
    assert not Unsubscribe.calls_jira
    assert CreateIssue.mutates and not ViewIssue.mutates


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc-1", "ABC-1"), (" X_Y-22 ", "X_Y-22"), ("12345", "12345"), (["K-1"], "K-1")],
)
def test_issue_keys(value: Any, expected: str) -> None:
    assert issue_key(value) == expected


def test_project_keys() -> None:
    assert project_key("abc") == "ABC"
    assert project_key("10000") == "10000"
    with pytest.raises(InvalidInput):
        project_key("A-1")
