"""The notification message: what each event shows, what it hides, and that it always fits.

The render is a pure function, so these tests build the typed inputs directly (the reads from
Jira-shaped JSON through the real readers) and check the output against an independent
reading of Discord's limits and Discord's pinned schema.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from dfj_jira_worker.notify import render
from dfj_jira_worker.notify.events import Change, CommentRef, EventKind, FieldChange
from dfj_jira_worker.notify.reads import CommentView, IssueView, comment_view, issue_view

if TYPE_CHECKING:
    from notify.conftest import SpecCheck

Violations = Callable[[Mapping[str, Any]], list[str]]
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SITE_URL = "https://acme.atlassian.net/"
NASTY = "*_~`|[]<>#-\\\n 🎉👩‍💻東京é\u0301\u200b"

ISSUE = IssueView(
    id="10001",
    key="ABC-7",
    summary="Checkout fails for guests",
    status_id="5",
    status_name="Done",
    status_category="done",
    assignee_id="acc-ann",
    assignee_name="Ann Lee",
    priority_id="2",
    priority_name="High",
    issue_type_id="10004",
    issue_type_name="Bug",
    project_key="ABC",
    project_name="Alphabet",
    reporter_name="Bo Chen",
)


def change(kind: EventKind, *items: FieldChange, **extra: Any) -> Change:
    values: dict[str, Any] = {
        "client_key": "c",
        "kind": kind,
        "issue_id": "10001",
        "issue_key": "ABC-7",
        "project_key": "ABC",
        "occurred_at": WHEN,
        "items": items,
    }
    values.update(extra)
    return Change(**values)


def embed_of(message: Mapping[str, Any]) -> dict[str, Any]:
    (embed,) = message["embeds"]
    assert isinstance(embed, dict)
    return embed


def fields_of(message: Mapping[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed_of(message).get("fields", [])}


@pytest.mark.parametrize(
    ("kind", "items", "colour"),
    [
        (EventKind.ISSUE_CREATED, (), render.CREATED),
        (EventKind.ISSUE_UPDATED, (FieldChange(field="labels", name="labels"),), render.UPDATED),
        (
            EventKind.ISSUE_UPDATED,
            (FieldChange(field="status", name="status", to_id="5"),),
            render.DONE,
        ),
        (EventKind.ISSUE_DELETED, (), render.DELETED),
        (EventKind.COMMENT_CREATED, (), render.COMMENT),
        (EventKind.COMMENT_UPDATED, (), render.COMMENT),
        (EventKind.COMMENT_DELETED, (), render.COMMENT),
    ],
)
def test_the_colour_says_what_happened(
    kind: EventKind, items: tuple[FieldChange, ...], colour: int
) -> None:
    """Created green, updated blue, into done teal, deleted grey, comments purple."""
    issue = None if kind is EventKind.ISSUE_DELETED else ISSUE
    message = render.render_notification(
        change(kind, *items), issue=issue, comment=None, site_url=SITE_URL
    )
    assert embed_of(message)["color"] == colour


def test_an_update_into_a_status_that_is_not_done_stays_blue() -> None:
    """Only a status change into a "done" category is coloured as done."""
    issue = replace(ISSUE, status_category="indeterminate")
    message = render.render_notification(
        change(EventKind.ISSUE_UPDATED, FieldChange(field="status", name="status", to_id="5")),
        issue=issue,
        comment=None,
        site_url=SITE_URL,
    )
    assert embed_of(message)["color"] == render.UPDATED


def test_the_title_links_to_the_issue_and_the_buttons_act_on_it(discord_spec: SpecCheck) -> None:
    """``KEY: summary`` → /browse/KEY; Open in Jira, Assign to me, Comment, Transition."""
    message = render.render_notification(
        change(EventKind.ISSUE_CREATED), issue=ISSUE, comment=None, site_url=SITE_URL
    )
    embed = embed_of(message)
    assert embed["title"] == "ABC-7: Checkout fails for guests"
    assert embed["url"] == "https://acme.atlassian.net/browse/ABC-7"
    assert embed["description"] == "New Bug created"
    assert embed["footer"] == {"text": "Alphabet · Bug"}
    assert embed["timestamp"] == "2024-05-01T12:00:00Z"
    (row,) = message["components"]
    assert row["components"] == [
        {"type": 2, "style": 5, "label": "Open in Jira", "url": embed["url"]},
        {"type": 2, "style": 2, "label": "Assign to me", "custom_id": "assign-me:ABC-7"},
        {"type": 2, "style": 2, "label": "Comment", "custom_id": "comment:ABC-7"},
        {"type": 2, "style": 2, "label": "Transition", "custom_id": "transition:ABC-7"},
    ]
    assert message["allowed_mentions"] == {"parse": []}
    discord_spec("MessageCreateRequest", message)


@pytest.mark.parametrize(
    ("item", "issue_values", "shown"),
    [
        (FieldChange(field="status", name="status", from_id="3", to_id="5"), {}, "→ Done"),
        (
            FieldChange(field="assignee", name="assignee", to_id="acc-ann"),
            {},
            "Unassigned → Ann Lee",
        ),
        (
            FieldChange(field="assignee", name="assignee", from_id="acc-ann"),
            {"assignee_id": None, "assignee_name": None},
            "→ Unassigned",
        ),
        (
            FieldChange(field="assignee", name="assignee", from_id="acc-bo"),
            {},
            "→ Unassigned (now Ann Lee)",
        ),
        (FieldChange(field="priority", name="priority", from_id="3", to_id="1"), {}, "→ now High"),
        (
            FieldChange(field="priority", name="priority", from_id="3", to_id="1"),
            {"priority_id": None, "priority_name": None},
            "→ now None",
        ),
        (
            FieldChange(field="status", name="status", from_id="3", to_id="5"),
            {"status_name": None},
            "→ 5",
        ),
    ],
)
def test_changes_read_from_old_to_new(
    item: FieldChange, issue_values: dict[str, Any], shown: str
) -> None:
    """The new name comes from the read; the old one is shown only when it was empty."""
    issue = replace(ISSUE, **issue_values)
    message = render.render_notification(
        change(EventKind.ISSUE_UPDATED, item), issue=issue, comment=None, site_url=SITE_URL
    )
    assert list(fields_of(message).values()) == [shown]


def test_other_changed_fields_are_listed_once_by_name() -> None:
    """Fields without a field of their own are named in the description, each once."""
    items = (
        FieldChange(field="summary", name="summary"),
        FieldChange(field="customfield_10020", name="Sprint"),
        FieldChange(field="summary", name="summary"),
        FieldChange(field="status", name="status", to_id="5"),
    )
    message = render.render_notification(
        change(EventKind.ISSUE_UPDATED, *items), issue=ISSUE, comment=None, site_url=SITE_URL
    )
    assert embed_of(message)["description"] == "Issue updated\nChanged: Summary, Sprint"
    assert list(fields_of(message)) == ["Status"]


def test_a_comment_is_quoted_with_its_author() -> None:
    """The excerpt is a Markdown quote of escaped text; the author's name heads it."""
    comment = comment_view(
        {
            "id": "1",
            "author": {"accountId": "a", "displayName": "Cy_Diaz"},
            "body": {
                "type": "doc",
                "version": 1,
                "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": "First *line*"}]},
                    {"type": "paragraph", "content": [{"type": "text", "text": "# not a heading"}]},
                ],
            },
        }
    )
    message = render.render_notification(
        change(EventKind.COMMENT_UPDATED), issue=ISSUE, comment=comment, site_url=SITE_URL
    )
    assert embed_of(message)["description"] == (
        "Cy\\_Diaz edited a comment\n\n> First \\*line\\*\n> \\# not a heading"
    )


def test_a_deleted_comment_shows_no_text() -> None:
    """Even if a comment view were at hand, a deletion shows only that it happened."""
    message = render.render_notification(
        change(EventKind.COMMENT_DELETED),
        issue=ISSUE,
        comment=CommentView(excerpt="old words"),
        site_url=SITE_URL,
    )
    assert embed_of(message)["description"] == "Comment deleted"


def test_a_deleted_issue_has_no_link_and_no_buttons() -> None:
    """Rendered from ids and key: nothing to open or act on."""
    message = render.render_notification(
        change(EventKind.ISSUE_DELETED), issue=None, comment=None, site_url=SITE_URL
    )
    embed = embed_of(message)
    assert embed == {
        "title": "ABC-7",
        "description": "Issue deleted",
        "color": render.DELETED,
        "timestamp": "2024-05-01T12:00:00Z",
        "footer": {"text": "ABC"},
    }
    assert message["components"] == []


def test_without_any_key_the_issue_is_named_by_id() -> None:
    """A key Jira did not send (nor the read) leaves a title, but no link or buttons."""
    message = render.render_notification(
        change(EventKind.ISSUE_UPDATED, FieldChange(field="labels", name="labels"), issue_key=None),
        issue=IssueView(summary="s"),
        comment=None,
        site_url=SITE_URL,
    )
    assert embed_of(message)["title"] == "Issue 10001"
    assert "url" not in embed_of(message)
    assert message["components"] == []


@pytest.mark.parametrize("kind", list(EventKind))
def test_key_only_shows_the_key_a_link_and_nothing_read(kind: EventKind) -> None:
    """The minimal message of a restricted event: no summary, names, fields or text."""
    event = change(kind, comment=CommentRef(id="1", visibility_type="role"))
    message = render.render_key_only(event, issue_key="ABC-7", site_url=SITE_URL)
    embed = embed_of(message)
    assert embed["title"] == "ABC-7"
    assert embed["color"] == render.HIDDEN
    assert set(embed) <= {"title", "url", "description", "color", "timestamp"}
    assert "restricted" in embed["description"]
    if kind is EventKind.ISSUE_DELETED:
        assert message["components"] == [] and "url" not in embed
    else:
        (row,) = message["components"]
        assert row["components"] == [
            {"type": 2, "style": 5, "label": "Open in Jira", "url": embed["url"]}
        ]


def test_markdown_in_names_is_shown_literally_and_titles_stay_plain() -> None:
    """Fields and descriptions are escaped; the title (not Markdown) keeps the summary as is."""
    issue = replace(
        ISSUE,
        summary="Fix **all** the [things](https://evil.example)",
        assignee_name="@everyone <@123>",
        issue_type_name="Bug_Report",
    )
    message = render.render_notification(
        change(EventKind.ISSUE_CREATED), issue=issue, comment=None, site_url=SITE_URL
    )
    embed = embed_of(message)
    assert embed["title"] == "ABC-7: Fix **all** the [things](https://evil.example)"
    assert fields_of(message)["Assignee"] == "@everyone \\<@123>"
    assert embed["description"] == "New Bug\\_Report created"
    assert message["allowed_mentions"] == {"parse": []}


def test_a_key_too_long_for_a_custom_id_keeps_only_the_link() -> None:
    """An id that does not fit in 100 characters is dropped rather than cut."""
    key = "A" * 95 + "-1"
    message = render.render_notification(
        change(EventKind.ISSUE_CREATED, issue_key=key), issue=ISSUE, comment=None, site_url=SITE_URL
    )
    (row,) = message["components"]
    assert [c["style"] for c in row["components"]] == [5]


@pytest.mark.parametrize(
    ("key", "summary", "expected"),
    [
        ("ABC-7", "Short", "ABC-7: Short"),
        ("ABC-7", None, "ABC-7"),
        ("ABC-7", "  spaced\n\tout  ", "ABC-7: spaced out"),
        ("ABC-7", "x" * 200, "ABC-7: " + "x" * 92 + "…"),
    ],
)
def test_thread_names(key: str, summary: str | None, expected: str) -> None:
    """One line, at most 100 characters."""
    assert render.thread_name(key, summary) == expected
    assert len(render.thread_name(key, summary)) <= 100


def test_reads_tolerate_what_jira_leaves_out() -> None:
    """Null assignee, no security, no priority: absent, not errors; any security restricts."""
    view = issue_view(
        {
            "id": "10001",
            "key": "ABC-7",
            "fields": {
                "summary": "s",
                "assignee": None,
                "priority": "weird",
                "status": {"id": 3, "name": "Open", "statusCategory": {"key": "new"}},
            },
        }
    )
    assert view.assignee_id is None and view.priority_name is None
    assert view.status_id == "3" and view.status_category == "new"
    assert not view.restricted
    assert issue_view({"fields": {"security": {"name": "no id"}}}).restricted
    assert issue_view({}).key is None
    comment = comment_view({"body": "v2 wiki text", "visibility": {"identifier": "g-1"}})
    assert comment.excerpt == "v2 wiki text"
    assert comment.restricted
    assert not comment_view({"jsdPublic": True}).restricted


def _random_text(rng: random.Random) -> str:
    size = rng.choice([0, 1, 7, 99, 101, 257, 1025, 5000])
    return "".join(rng.choice(NASTY + "abcXYZ ") for _ in range(size))


@pytest.mark.parametrize("seed", range(80))
def test_any_input_renders_within_discords_limits(
    seed: int, violations: Violations, discord_spec: SpecCheck
) -> None:
    """Seeded random names, summaries, keys and comments of every size: always accepted."""
    rng = random.Random(seed)
    kind = rng.choice(list(EventKind))
    issue = IssueView(
        key=_random_text(rng) or None,
        summary=_random_text(rng) or None,
        status_id=rng.choice(["5", None]),
        status_name=_random_text(rng) or None,
        status_category=rng.choice(["done", "new", None]),
        assignee_id=rng.choice(["acc-1", None]),
        assignee_name=_random_text(rng) or None,
        priority_id=rng.choice(["1", None]),
        priority_name=_random_text(rng) or None,
        issue_type_name=_random_text(rng) or None,
        project_name=_random_text(rng) or None,
        reporter_name=_random_text(rng) or None,
    )
    items = tuple(
        FieldChange(
            field=rng.choice(["status", "assignee", "priority", "summary", "x"]),
            name=_random_text(rng) or "n",
            from_id=rng.choice([None, "1"]),
            to_id=rng.choice([None, "5", "acc-1"]),
        )
        for _ in range(rng.randint(0, 40))
    )
    key = rng.choice(["ABC-7", None, "K" * 120 + "-1"])
    event = change(kind, *items, issue_key=key)
    comment = CommentView(author_name=_random_text(rng) or None, excerpt=_random_text(rng)[:300])
    site = rng.choice([SITE_URL, "https://x.example/" + "p" * 600])
    for message in (
        render.render_notification(
            event,
            issue=None if kind is EventKind.ISSUE_DELETED else issue,
            comment=comment,
            site_url=site,
        ),
        render.render_key_only(event, issue_key=key, site_url=site),
    ):
        assert violations(message) == []
        discord_spec("MessageCreateRequest", message)
        json.dumps(message)
    assert len(render.thread_name(key or "x", issue.summary)) <= 100
