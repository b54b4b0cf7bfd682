"""Creating issues: /jira create, the create form, and message → draft → reviewed form."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from commands.harness import (
    ACC_ALICE,
    BASE_URL,
    BOB,
    CHANNEL,
    GUILD,
    SITE,
    Harness,
    content,
    custom_ids,
)
from dfj_common.envelope import deterministic_id
from dfj_jira_worker.adf import adf_to_text
from dfj_jira_worker.commands.metadata import ALL, RECENT_ISSUES
from dfj_jira_worker.jira import JiraBadRequest


def _draft_id(message: dict[str, Any]) -> str:
    (button,) = [c for c in custom_ids(message) if c.startswith("draft-review:")]
    return button.removeprefix("draft-review:")


async def test_create_command_creates_as_the_user(harness: Harness) -> None:
    """/jira create: project key, issue type resolved to its id, ADF description; key + link."""
    event = harness.command(
        "create", project="abc", type="Bug", summary="Crash on save", description="Steps:\n1. save"
    )
    message = await harness.answer(event)
    (fields,) = harness.jira.site.created
    assert fields["project"] == {"key": "ABC"}
    assert fields["issuetype"] == {"id": "10002"}
    assert fields["summary"] == "Crash on save"
    assert adf_to_text(fields["description"]) == "Steps:\n1. save"
    assert "priority" not in fields
    assert content(message) == f"Created [ABC-2]({BASE_URL}/browse/ABC-2): Crash on save"
    assert message["components"][0]["components"][0]["url"] == f"{BASE_URL}/browse/ABC-2"
    assert {c.actor for c in harness.calls} == {ACC_ALICE}
    recent = await harness.repos.metadata_cache.get(SITE, RECENT_ISSUES, ALL)
    assert recent is not None
    assert recent.value == ["ABC-2"]


async def test_create_without_a_type_uses_task(harness: Harness) -> None:
    """No type given: the project's "Task" (from the cached issue types)."""
    await harness.answer(harness.command("create", project="ABC", summary="Something"))
    assert harness.jira.site.created[0]["issuetype"] == {"id": "10001"}


async def test_create_without_a_type_or_cache_asks_jira(harness: Harness) -> None:
    """With no cached issue types, they are read from Jira (as the user)."""
    await harness.repos.metadata_cache.invalidate(SITE, "issuetypes")
    await harness.answer(harness.command("create", project="ABC", summary="Something"))
    assert harness.jira.site.created[0]["issuetype"] == {"name": "Task"}
    (call,) = harness.jira.site.calls_to("issue_types_for_project")
    assert call.actor == ACC_ALICE


async def test_an_unknown_type_name_is_passed_by_name(harness: Harness) -> None:
    """A type not in the cache goes to Jira by name (Jira decides whether it exists)."""
    await harness.answer(harness.command("create", project="ABC", summary="x", type="Epic"))
    assert harness.jira.site.created[0]["issuetype"] == {"name": "Epic"}


async def test_create_form_with_a_project_select(harness: Harness) -> None:
    """The create-issue form (project as a select's values) creates the same way."""
    event = harness.modal(
        "create-issue",
        {"summary": "From the form", "description": "", "project": ["ABC"], "issuetype": ""},
    )
    message = await harness.answer(event)
    assert content(message).startswith("Created [ABC-2]")
    (fields,) = harness.jira.site.created
    assert fields["project"] == {"key": "ABC"}
    assert "description" not in fields


async def test_create_without_a_project_uses_the_guild_default(harness: Harness) -> None:
    """The guild connection's default_project fills a missing project."""
    await harness.repos.guild_connections.update_settings(GUILD, {"default_project": "abc"})
    await harness.answer(harness.command("create", summary="Defaulted"))
    assert harness.jira.site.created[0]["project"] == {"key": "ABC"}


async def test_create_without_any_project_asks_for_one(harness: Harness) -> None:
    message = await harness.answer(harness.command("create", summary="Nowhere"))
    assert content(message).startswith("Which project?")
    assert harness.jira.site.created == []


async def test_create_without_a_summary_is_refused(harness: Harness) -> None:
    message = await harness.answer(harness.command("create", project="ABC", summary="  "))
    assert content(message) == "An issue needs a summary."


async def test_create_refused_by_jira(harness: Harness) -> None:
    """Jira's 400 (e.g. an unknown project) is the answer."""
    message = await harness.answer(harness.command("create", project="NOPE", summary="x"))
    assert content(message) == "project: valid project is required"


async def test_create_is_not_repeated_on_redelivery(harness: Harness) -> None:
    """The same create event twice makes one issue and one reply."""
    event = harness.command("create", project="ABC", summary="Only once")
    await harness.send(event)
    await harness.send(event)
    assert len(harness.jira.site.created) == 1
    replies = await harness.replies()
    assert [r.id for r in replies] == [deterministic_id("reply", event.id)]
    assert content(replies[0].data["message"]).startswith("Created")


async def test_message_command_stores_a_draft_and_offers_a_review(harness: Harness) -> None:
    """Suggestions from the text are kept as the user's draft; the answer has the button."""
    text = "The app crashes when I upload a file. It is urgent!\nMore details here."
    event = harness.message_command(text, message_id="1800000000000000042")
    message = await harness.answer(event)
    draft_id = _draft_id(message)
    assert draft_id == deterministic_id("draft", event.id)
    (embed,) = message["embeds"]
    assert embed["title"] == "The app crashes when I upload a file."
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields == {"Project": "ABC", "Type": "Bug", "Priority": "High"}
    draft = await harness.repos.drafts.get(draft_id, discord_user_id=event.data["user_id"])
    assert draft is not None
    assert dict(draft.payload) == {
        "summary": "The app crashes when I upload a file.",
        "description": text,
        "project": "ABC",
        "issuetype": "Bug",
        "priority": "High",
        "message_link": f"https://discord.com/channels/{GUILD}/{CHANNEL}/1800000000000000042",
    }
    assert draft.expires_at.timestamp() == harness.clock.now() + 600
    assert harness.jira.site.created == []


async def test_a_draft_is_only_its_users(harness: Harness) -> None:
    message = await harness.answer(harness.message_command("Fix the typo"))
    assert await harness.repos.drafts.get(_draft_id(message), discord_user_id=BOB) is None


async def test_a_redelivered_message_command_keeps_one_draft(harness: Harness) -> None:
    """The draft id derives from the event: a redelivery finds the stored draft."""
    event = harness.message_command("Please add dark mode, as a user I would like it")
    await harness.send(event)
    await harness.send(event)
    (reply,) = await harness.replies()
    assert "Story" in str(reply.data["message"]["embeds"][0]["fields"])


async def test_a_message_without_text(harness: Harness) -> None:
    message = await harness.answer(harness.message_command("   "))
    assert content(message) == "That message has no text I could turn into an issue."


async def test_the_reviewed_draft_creates_the_issue_and_is_deleted(harness: Harness) -> None:
    """draft-create: the form's fields, a link back to the message, the draft's priority."""
    offer = await harness.answer(harness.message_command("Login is broken. Outage!"))
    draft_id = _draft_id(offer)
    submit = harness.modal(
        f"draft-create:{draft_id}",
        {
            "summary": "Login broken",
            "description": "Users cannot log in.",
            "project": "ABC",
            "issuetype": "Bug",
        },
    )
    message = await harness.answer(submit)
    assert content(message) == f"Created [ABC-2]({BASE_URL}/browse/ABC-2): Login broken"
    (fields,) = harness.jira.site.created
    assert fields["summary"] == "Login broken"
    assert fields["issuetype"] == {"id": "10002"}
    assert fields["priority"] == {"name": "Highest"}
    description = adf_to_text(fields["description"])
    assert description.startswith("Users cannot log in.\n\nFrom Discord: https://discord.com/")
    assert await harness.repos.drafts.get(draft_id, discord_user_id=submit.data["user_id"]) is None
    await harness.send(submit)  # redelivered submit: no second issue
    assert len(harness.jira.site.created) == 1


async def test_an_expired_draft_is_explained(harness: Harness) -> None:
    """After ten minutes the draft is gone; the submit says so and creates nothing."""
    offer = await harness.answer(harness.message_command("Something is off"))
    harness.clock.advance(11 * 60)
    submit = harness.modal(
        f"draft-create:{_draft_id(offer)}",
        {"summary": "x", "description": "", "project": "ABC", "issuetype": ""},
    )
    message = await harness.answer(submit)
    assert content(message).startswith("This draft has expired")
    assert harness.jira.site.created == []


async def test_a_refused_draft_create_keeps_the_draft(harness: Harness) -> None:
    """If Jira refuses, the draft stays, so the user can review and try again."""
    offer = await harness.answer(harness.message_command("Something is off"))
    draft_id = _draft_id(offer)
    submit = harness.modal(
        f"draft-create:{draft_id}",
        {"summary": "x", "description": "", "project": "NOPE", "issuetype": "Task"},
    )
    message = await harness.answer(submit)
    assert content(message) == "project: valid project is required"
    assert await harness.repos.drafts.get(draft_id, discord_user_id=submit.data["user_id"])


async def test_a_priority_the_screen_refuses_is_dropped(harness: Harness) -> None:
    """A suggested priority Jira will not take is retried once without it."""
    offer = await harness.answer(harness.message_command("Critical outage in checkout"))
    harness.jira.site.fail(
        "create_issue",
        JiraBadRequest(
            "Jira answered 400",
            status=400,
            user_message="priority: Field 'priority' cannot be set. It is not on the screen.",
        ),
    )
    submit = harness.modal(
        f"draft-create:{_draft_id(offer)}",
        {"summary": "Checkout down", "description": "", "project": "ABC", "issuetype": ""},
    )
    message = await harness.answer(submit)
    assert content(message).startswith("Created")
    attempts = harness.jira.site.calls_to("create_issue")
    assert [("priority" in c.args[0]) for c in attempts] == [True, False]


async def test_suggestions_use_the_site_issue_types(harness: Harness) -> None:
    """A suggested type the project lacks falls back to one it has."""
    await harness.repos.metadata_cache.put(
        SITE, "issuetypes", "ABC", [{"id": "7", "name": "Task"}], ttl=timedelta(minutes=5)
    )
    offer = await harness.answer(harness.message_command("There is a bug in search"))
    fields = {f["name"]: f["value"] for f in offer["embeds"][0]["fields"]}
    assert fields["Type"] == "Task"
