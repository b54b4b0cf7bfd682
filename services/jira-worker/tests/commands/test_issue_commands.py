"""The issue commands as the user: view, search, assign, transition, comment, watch."""

from __future__ import annotations

from commands.harness import (
    ACC_ALICE,
    ACC_BOB,
    BASE_URL,
    BOB,
    CAROL,
    CHANNEL,
    GUILD,
    SITE,
    STRING_SELECT,
    Harness,
    content,
    custom_ids,
)
from dfj_jira_worker.adf import adf_to_text
from dfj_jira_worker.commands.metadata import ALL, RECENT_ISSUES


async def test_view_shows_the_issue_with_its_actions(harness: Harness) -> None:
    """/jira issue: an embed of the issue, a select of the user's transitions, action buttons."""
    message = await harness.answer(harness.command("issue", key="abc-1"))
    (embed,) = message["embeds"]
    assert embed["title"] == "ABC-1: The login page is slow"
    assert embed["url"] == f"{BASE_URL}/browse/ABC-1"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields == {
        "Status": "To Do",
        "Assignee": "Unassigned",
        "Priority": "Medium",
        "Type": "Task",
    }
    assert embed["description"] == "Details."
    assert embed["footer"]["text"] == "Alpha (ABC)"
    assert custom_ids(message) == [
        "transition:ABC-1",
        "assign-me:ABC-1",
        "comment:ABC-1",
        "watch:ABC-1",
    ]
    select = message["components"][0]["components"][0]
    assert [(o["label"], o["value"]) for o in select["options"]] == [
        ("Start progress", "11"),
        ("Done", "31"),
    ]
    link = message["components"][1]["components"][-1]
    assert (link["style"], link["url"]) == (5, f"{BASE_URL}/browse/ABC-1")
    (get,) = harness.jira.site.calls_to("get_issue")
    assert get.args == ("ABC-1",)
    assert "summary" in get.kwargs["fields"]


async def test_view_remembers_the_issue_for_autocomplete(harness: Harness) -> None:
    """A viewed issue goes first in the recent-issues cache the gateway autocompletes from."""
    harness.jira.site.add_issue("ABC-9", "Another")
    await harness.answer(harness.command("issue", key="ABC-9"))
    await harness.answer(harness.command("issue", key="ABC-1"))
    await harness.answer(harness.command("issue", key="ABC-9"))
    cached = await harness.repos.metadata_cache.get(SITE, RECENT_ISSUES, ALL)
    assert cached is not None
    assert cached.value == ["ABC-9", "ABC-1"]


async def test_view_of_an_issue_the_user_cannot_see(harness: Harness) -> None:
    """Jira's 404 for a hidden issue is the answer (Jira does not say whether it exists)."""
    harness.jira.site.hidden[ACC_ALICE] = {"ABC-1"}
    message = await harness.answer(harness.command("issue", key="ABC-1"))
    assert content(message) == "That issue was not found in Jira, or you can't see it."


async def test_search_lists_the_first_page_with_links(harness: Harness) -> None:
    """/jira search: one line per issue with its link, status and assignee."""
    harness.jira.site.add_issue(
        "ABC-2", "Second", assignee={"accountId": ACC_BOB, "displayName": "Bob Example"}
    )
    message = await harness.answer(harness.command("search", jql="project = ABC"))
    (embed,) = message["embeds"]
    lines = embed["description"].split("\n")
    assert lines == [
        f"[ABC-1]({BASE_URL}/browse/ABC-1) The login page is slow · To Do",
        f"[ABC-2]({BASE_URL}/browse/ABC-2) Second · To Do · Bob Example",
    ]
    (call,) = harness.jira.site.calls_to("search_jql")
    assert call.args == ("project = ABC",)
    assert call.kwargs["max_results"] == 10


async def test_search_says_when_there_is_more(harness: Harness) -> None:
    """Past the first page, a footer and a link to the full search in Jira."""
    for n in range(2, 14):
        harness.jira.site.add_issue(f"ABC-{n}", f"Issue {n}")
    message = await harness.answer(harness.command("search", jql="project = ABC"))
    (embed,) = message["embeds"]
    assert len(embed["description"].split("\n")) == 10
    assert embed["footer"]["text"] == "The first 10 results."
    (button,) = message["components"][0]["components"]
    assert button["url"] == f"{BASE_URL}/issues/?jql=project%20%3D%20ABC"


async def test_search_with_invalid_jql_shows_jiras_message(harness: Harness) -> None:
    """Jira's 400 explains the JQL error to the user."""
    message = await harness.answer(harness.command("search", jql="broken query"))
    assert content(message) == "Error in the JQL Query: 'broken' is a reserved word."


async def test_search_with_no_results(harness: Harness) -> None:
    harness.jira.site.hidden[ACC_ALICE] = {"ABC-1"}
    message = await harness.answer(harness.command("search", jql="project = ABC"))
    assert content(message).startswith("No issues match")


async def test_assign_to_me_by_command_and_by_button(harness: Harness) -> None:
    """/jira assign KEY and the "Assign to me" button assign the asking user's account."""
    message = await harness.answer(harness.command("assign", key="ABC-1"))
    assert content(message) == f"Assigned [ABC-1]({BASE_URL}/browse/ABC-1) to you."
    await harness.answer(harness.component("assign-me:ABC-1", member=BOB))
    calls = harness.jira.site.calls_to("assign_issue")
    assert [(c.actor, c.args) for c in calls] == [
        (ACC_ALICE, ("ABC-1", ACC_ALICE)),
        (ACC_BOB, ("ABC-1", ACC_BOB)),
    ]


async def test_assign_to_another_linked_member(harness: Harness) -> None:
    """user: a member → their linked Jira account, assigned by the asking user."""
    message = await harness.answer(harness.command("assign", key="ABC-1", user=BOB))
    assert content(message).endswith(f"to <@{BOB}>.")
    (call,) = harness.jira.site.calls_to("assign_issue")
    assert (call.actor, call.args) == (ACC_ALICE, ("ABC-1", ACC_BOB))


async def test_assign_to_an_unlinked_member_is_explained(harness: Harness) -> None:
    message = await harness.answer(harness.command("assign", key="ABC-1", user=CAROL))
    assert "hasn't linked a Jira account" in content(message)
    assert harness.jira.site.calls_to("assign_issue") == []


async def test_unassign(harness: Harness) -> None:
    """user: none → unassigned (accountId null)."""
    message = await harness.answer(harness.command("assign", key="ABC-1", user="none"))
    assert "nobody" in content(message)
    (call,) = harness.jira.site.calls_to("assign_issue")
    assert call.args == ("ABC-1", None)


async def test_assign_refused_by_jira(harness: Harness) -> None:
    harness.jira.site.forbid(ACC_ALICE, "assign_issue")
    message = await harness.answer(harness.command("assign", key="ABC-1"))
    assert content(message) == "You don't have permission to do that in Jira."


async def test_transition_without_a_target_offers_the_choices(harness: Harness) -> None:
    """/jira transition KEY: a select of the transitions Jira offers this user."""
    message = await harness.answer(harness.command("transition", key="ABC-1"))
    assert content(message) == "Move ABC-1 to:"
    (select,) = message["components"][0]["components"]
    assert select["custom_id"] == "transition:ABC-1"
    assert [o["description"] for o in select["options"]] == ["→ In Progress", "→ Done"]
    assert harness.jira.site.calls_to("transition_issue") == []


async def test_transition_by_name_id_or_status(harness: Harness) -> None:
    """to: the transition's name, its id, or the target status name (case-insensitive)."""
    for wanted in ("start progress", "31", "in progress"):
        await harness.answer(harness.command("transition", key="ABC-1", to=wanted))
    calls = harness.jira.site.calls_to("transition_issue")
    assert [c.args for c in calls] == [("ABC-1", "11"), ("ABC-1", "31"), ("ABC-1", "11")]
    assert harness.jira.site.issues["ABC-1"]["fields"]["status"]["name"] == "In Progress"


async def test_transition_reply_names_the_new_status(harness: Harness) -> None:
    message = await harness.answer(harness.command("transition", key="ABC-1", to="Done"))
    assert content(message) == f"Moved [ABC-1]({BASE_URL}/browse/ABC-1) to **Done**."


async def test_an_unavailable_transition_lists_the_available_ones(harness: Harness) -> None:
    message = await harness.answer(harness.command("transition", key="ABC-1", to="Reopen"))
    assert "no transition `Reopen`" in content(message)
    assert "`Start progress`, `Done`" in content(message)
    assert harness.jira.site.calls_to("transition_issue") == []


async def test_transition_from_the_select(harness: Harness) -> None:
    """The issue view's select sends the chosen transition id."""
    event = harness.component("transition:ABC-1", values=["31"], component_type=STRING_SELECT)
    message = await harness.answer(event)
    assert "**Done**" in content(message)
    (call,) = harness.jira.site.calls_to("transition_issue")
    assert call.args == ("ABC-1", "31")


async def test_a_transition_button_asks_for_the_target(harness: Harness) -> None:
    """A notification's "Transition" button answers with the select."""
    message = await harness.answer(harness.component("transition:ABC-1"))
    assert custom_ids(message) == ["transition:ABC-1"]


async def test_comment_by_command_and_by_form(harness: Harness) -> None:
    """/jira comment KEY text and the comment form both add an ADF comment as the user."""
    message = await harness.answer(
        harness.command("comment", issue="ABC-1", text="See https://example.org/x")
    )
    assert content(message).startswith("Comment added to [ABC-1]")
    assert "focusedCommentId=10201" in content(message)
    await harness.answer(harness.modal("comment:ABC-1", {"text": "Second\nline"}))
    bodies = [body for _, body in harness.jira.site.comments]
    assert bodies[0]["type"] == "doc"
    paragraph = bodies[0]["content"][0]["content"]
    assert paragraph[-1]["marks"][0]["attrs"]["href"] == "https://example.org/x"
    assert [n["type"] for n in bodies[1]["content"][0]["content"]] == ["text", "hardBreak", "text"]


async def test_add_to_issue_form_comments_with_a_link_back(harness: Harness) -> None:
    """*Add to Jira issue*: the (edited) message text as a comment, linked to the message."""
    message = await harness.answer(
        harness.modal(
            "add-to-issue:1800000000000000042", {"issue": "abc-1", "text": "Seen again on Safari"}
        )
    )
    assert content(message).startswith("Comment added to [ABC-1]")
    [(issue, body)] = harness.jira.site.comments
    assert issue == "ABC-1"
    text = adf_to_text(body)
    assert text.startswith("Seen again on Safari")
    assert f"https://discord.com/channels/{GUILD}/{CHANNEL}/1800000000000000042" in text


async def test_add_to_issue_form_needs_an_issue_and_text(harness: Harness) -> None:
    message = await harness.answer(
        harness.modal("add-to-issue:1800000000000000042", {"issue": "", "text": "x"})
    )
    assert harness.calls == [] and "issue" in content(message).lower()
    message = await harness.answer(
        harness.modal("add-to-issue:1800000000000000042", {"issue": "ABC-1", "text": " "})
    )
    assert content(message) == "A comment needs some text."


async def test_comment_without_text_is_refused(harness: Harness) -> None:
    message = await harness.answer(harness.command("comment", key="ABC-1", text="   "))
    assert content(message) == "A comment needs some text."
    assert harness.calls == []


async def test_comment_button_points_to_the_form(harness: Harness) -> None:
    """A "Comment" click that reaches the worker explains how to open the form; no Jira call."""
    message = await harness.answer(harness.component("comment:ABC-1"))
    assert "/jira comment key:ABC-1" in content(message)
    assert harness.calls == []


async def test_watch_by_command_and_button(harness: Harness) -> None:
    """The asking user's account becomes a watcher."""
    message = await harness.answer(harness.command("watch", key="ABC-1"))
    assert content(message).startswith("You're now watching [ABC-1]")
    await harness.answer(harness.component("watch:ABC-1", member=BOB))
    assert harness.jira.site.watchers == [("ABC-1", ACC_ALICE), ("ABC-1", ACC_BOB)]


async def test_watch_refused_by_jira(harness: Harness) -> None:
    harness.jira.site.forbid(ACC_ALICE, "add_watcher")
    message = await harness.answer(harness.command("watch", key="ABC-1"))
    assert "permission" in content(message)
    assert harness.jira.site.watchers == []
