"""Answers within Discord's limits, whatever Jira returned (pure, table-driven)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from dfj_common.storage import Subscription
from dfj_jira_worker.commands import replies
from dfj_jira_worker.commands.suggest import Suggestion

SITE_URL = "https://acme.atlassian.net"
HUGE = "ü" * 10_000
WIDE = "🙂" * 3_000


def assert_within_limits(message: Mapping[str, Any]) -> None:
    """Every limit the discord-worker relies on."""
    assert message["allowed_mentions"] == {"parse": []}
    assert len(message.get("content", "")) <= 2000
    embeds = message["embeds"]
    assert len(embeds) <= 10
    total = 0
    for embed in embeds:
        total += len(embed.get("title", "")) + len(embed.get("description", ""))
        assert len(embed.get("title", "")) <= 256
        assert len(embed.get("description", "")) <= 4096
        assert len(embed.get("fields", [])) <= 25
        for f in embed.get("fields", []):
            assert 0 < len(f["name"]) <= 256
            assert 0 < len(f["value"]) <= 1024
            total += len(f["name"]) + len(f["value"])
        footer = embed.get("footer", {}).get("text", "")
        assert len(footer) <= 2048
        total += len(footer)
    assert total <= 6000
    rows = message["components"]
    assert len(rows) <= 5
    for row in rows:
        assert row["type"] == 1
        assert 0 < len(row["components"]) <= 5
        for component in row["components"]:
            if "custom_id" in component:
                assert 0 < len(component["custom_id"]) <= 100
            if "label" in component:
                assert len(component["label"]) <= 80
            for option in component.get("options", []):
                assert 0 < len(option["label"]) <= 100
                assert 0 < len(option["value"]) <= 100
                assert len(option.get("description", "")) <= 100
            assert len(component.get("options", [])) <= 25


def _issue(summary: str, description: str, key: str = "ABC-1") -> dict[str, Any]:
    paragraph = {"type": "paragraph", "content": [{"type": "text", "text": description}]}
    return {
        "key": key,
        "fields": {
            "summary": summary,
            "status": {"name": HUGE[:300], "statusCategory": {"key": "done"}},
            "assignee": {"displayName": WIDE},
            "priority": {"name": "High"},
            "issuetype": {"name": "Bug"},
            "project": {"key": "ABC", "name": HUGE},
            "description": {"type": "doc", "version": 1, "content": [paragraph] * 20},
        },
    }


def _transitions(count: int, name: str = "Go") -> list[dict[str, Any]]:
    return [{"id": str(n), "name": f"{name} {n}", "to": {"name": name * 50}} for n in range(count)]


@pytest.mark.parametrize(
    "message",
    [
        replies.issue_view(_issue(HUGE, HUGE), _transitions(300, HUGE[:200]), site_url=SITE_URL),
        replies.issue_view(_issue(WIDE, WIDE), [], site_url=SITE_URL),
        replies.issue_view({"key": "X-1"}, [{"id": 5}], site_url=SITE_URL),
        replies.issue_view({}, [], site_url=SITE_URL),
        replies.transition_picker("ABC-1", _transitions(60)),
        replies.unknown_transition("ABC-1", HUGE, _transitions(60, HUGE[:150])),
        replies.search_results(
            HUGE, {"issues": [_issue(HUGE, "", f"ABC-{n}") for n in range(50)]}, site_url=SITE_URL
        ),
        replies.created("ABC-1", HUGE, f"{SITE_URL}/browse/ABC-1"),
        replies.text(HUGE),
        replies.link_prompt(HUGE),
        replies.draft_offered(
            "d" * 36,
            Suggestion(summary=HUGE, description=HUGE, issue_type=HUGE, priority=WIDE, source="x"),
            project=HUGE,
            minutes=10,
        ),
    ],
)
def test_answers_respect_discord_limits(message: dict[str, Any]) -> None:
    assert_within_limits(message)


def test_fit_trims_a_crowd_of_embeds_to_the_total() -> None:
    """Fifteen full embeds: at most ten, 6000 characters in all, spent in reading order."""
    embed = {
        "title": HUGE,
        "description": HUGE,
        "fields": [{"name": HUGE, "value": HUGE}] * 40,
        "footer": {"text": HUGE},
    }
    message = replies.fit({"content": HUGE, "embeds": [embed] * 15, "components": []})
    assert_within_limits(message)
    first = message["embeds"][0]
    assert len(first["title"]) == 256
    assert len(first["description"]) == 4096


def test_fit_keeps_small_embeds_whole() -> None:
    embeds = [{"title": f"t{n}", "description": "d" * 100} for n in range(12)]
    message = replies.fit({"embeds": embeds})
    assert message["embeds"] == embeds[:10]


def test_fit_drops_what_cannot_be_clipped() -> None:
    """A custom id over 100 or an option value over 100 would change meaning: drop it."""
    rows = [
        {
            "type": 1,
            "components": [
                {"type": 2, "style": 2, "label": "ok", "custom_id": "watch:ABC-1"},
                {"type": 2, "style": 2, "label": "too long", "custom_id": "x" * 101},
            ],
        },
        {
            "type": 1,
            "components": [
                {
                    "type": 3,
                    "custom_id": "transition:A-1",
                    "options": [{"label": "a", "value": "v" * 101}],
                }
            ],
        },
    ] + [
        {"type": 1, "components": [{"type": 2, "style": 2, "label": "b", "custom_id": "b"}] * 9}
    ] * 6
    message = replies.fit({"components": rows})
    assert_within_limits(message)
    assert message["components"][0]["components"] == [
        {"type": 2, "style": 2, "label": "ok", "custom_id": "watch:ABC-1"}
    ]
    assert len(message["components"]) == 5


def test_issue_view_colour_follows_the_status_category() -> None:
    done = replies.issue_view(_issue("s", "d"), [], site_url=SITE_URL)
    assert done["embeds"][0]["color"] == replies.GREEN
    assert "transition:ABC-1" not in str(done["components"])  # no transitions: no select


def test_links_escape_brackets_and_keys() -> None:
    message = replies.created("AB]C-1", "x", "https://h/browse/AB%5DC-1")
    assert message["content"].startswith("Created [AB)C-1](")
    assert replies.browse_url("https://h/", "A B") == "https://h/browse/A%20B"


def _subscription(n: int) -> Subscription:
    return Subscription(
        id=f"sub-{n}",
        guild_id="g",
        channel_id="c",
        client_key="k",
        project_key="ABC",
        event_types=("issue_created",),
        issue_types=("Bug",),
        jql=HUGE,
        delivery_mode="thread",
        created_by="u",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_subscription_list_is_bounded() -> None:
    message = replies.subscription_list([_subscription(n) for n in range(40)])
    assert_within_limits(message)
    assert message["embeds"][0]["footer"]["text"] == "15 more not shown."
    assert_within_limits(replies.subscribed(_subscription(1)))
    assert_within_limits(replies.unsubscribed([_subscription(1)] * 3, HUGE))
    assert_within_limits(replies.unsubscribed([], HUGE))
