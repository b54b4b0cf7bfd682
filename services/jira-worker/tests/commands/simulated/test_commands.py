"""Every command against the simulated Jira, as a permitted and as a forbidden user.

Jira's permissions decide: the worker always calls as the member's linked account, so what
Bob or Mallory may not do in Jira they may not do from Discord either — and nothing changes.
"""

from __future__ import annotations

from typing import Any

from commands.harness import MANAGE_SERVER, STRING_SELECT
from commands.simulated.conftest import ACC_ALICE, ACC_BOB, ACC_MALLORY, ALICE, BOB, MALLORY, World


def text(message: dict[str, Any]) -> str:
    parts = [str(message.get("content", ""))]
    for embed in message.get("embeds", []):
        parts += [str(embed.get("title", "")), str(embed.get("description", ""))]
    return "\n".join(parts)


def only_as(world: World, account: str) -> None:
    """Every Jira REST call ran as ``account`` (token requests aside), never as the app."""
    rest = [c for c in world.sim.calls if (c.template or "").startswith("/rest/")]
    assert rest, "no Jira call was made"
    assert {c.account_id for c in rest} == {account}
    assert all(c.auth == "bearer" for c in rest), {c.auth for c in rest}


async def test_create_as_member_and_refused_without_create_permission(world: World) -> None:
    message = await world.answer(
        world.events.command("create", project="DEMO", summary="Checkout is down", member=ALICE)
    )
    [created] = [i for i in world.site.issues.values() if i.summary == "Checkout is down"]
    assert created.key in text(message)
    assert created.reporter == ACC_ALICE
    only_as(world, ACC_ALICE)

    world.sim.reset_records()
    before = len(world.site.issues)
    message = await world.answer(
        world.events.command("create", project="DEMO", summary="Not allowed", member=BOB)
    )
    assert len(world.site.issues) == before
    assert "permission" in text(message).lower()
    only_as(world, ACC_BOB)


async def test_view_shows_transitions_and_hides_what_the_user_cannot_browse(world: World) -> None:
    issue = world.site.create_issue("DEMO", "Login is slow")
    message = await world.answer(world.events.command("issue", key=issue.key, member=ALICE))
    assert "Login is slow" in text(message)
    selects = [
        c for row in message["components"] for c in row["components"] if c["type"] == STRING_SELECT
    ]
    assert selects and selects[0]["custom_id"] == f"transition:{issue.key}"
    only_as(world, ACC_ALICE)

    world.sim.reset_records()
    message = await world.answer(world.events.command("issue", key=issue.key, member=MALLORY))
    assert "Login is slow" not in text(message)
    assert "not found" in text(message)
    only_as(world, ACC_MALLORY)


async def test_search_lists_only_visible_issues(world: World) -> None:
    world.site.create_issue("DEMO", "Visible to members")
    message = await world.answer(world.events.command("search", jql="project = DEMO", member=ALICE))
    assert "Visible to members" in text(message)
    world.sim.reset_records()
    message = await world.answer(
        world.events.command("search", jql="project = DEMO", member=MALLORY)
    )
    assert "Visible to members" not in text(message)
    only_as(world, ACC_MALLORY)


async def test_assign_to_me_needs_assign_permission(world: World) -> None:
    issue = world.site.create_issue("DEMO", "Assign me")
    await world.answer(world.events.component(f"assign-me:{issue.key}", member=ALICE))
    assert world.site.issue(issue.key).assignee == ACC_ALICE  # type: ignore[union-attr]
    only_as(world, ACC_ALICE)
    world.sim.reset_records()
    message = await world.answer(world.events.command("assign", key=issue.key, member=BOB))
    assert world.site.issue(issue.key).assignee == ACC_ALICE  # type: ignore[union-attr]
    assert "permission" in text(message).lower()
    only_as(world, ACC_BOB)


async def test_transition_by_select_and_refused(world: World) -> None:
    issue = world.site.create_issue("DEMO", "Move me")
    start = world.site.status_of(issue).name
    message = await world.answer(world.events.command("transition", key=issue.key, member=ALICE))
    options = [
        o for row in message["components"] for c in row["components"] for o in c.get("options", [])
    ]
    assert options
    await world.answer(
        world.events.component(
            f"transition:{issue.key}",
            values=[options[0]["value"]],
            component_type=STRING_SELECT,
            member=ALICE,
        )
    )
    moved = world.site.issue(issue.key)
    assert moved is not None and world.site.status_of(moved).name != start
    world.sim.reset_records()
    await world.answer(
        world.events.component(
            f"transition:{issue.key}",
            values=[options[0]["value"]],
            component_type=STRING_SELECT,
            member=BOB,
        )
    )
    after = world.site.issue(issue.key)
    assert (
        after is not None and world.site.status_of(after).name == world.site.status_of(moved).name
    )
    only_as(world, ACC_BOB)


async def test_comment_as_the_user_and_refused(world: World) -> None:
    issue = world.site.create_issue("DEMO", "Discuss")
    await world.answer(world.events.command("comment", key=issue.key, text="On it", member=ALICE))
    comments = world.site.issue(issue.key).comments  # type: ignore[union-attr]
    assert [c.author for c in comments] == [ACC_ALICE]
    world.sim.reset_records()
    message = await world.answer(
        world.events.modal(f"comment:{issue.key}", {"text": "Me too"}, member=BOB)
    )
    assert len(world.site.issue(issue.key).comments) == 1  # type: ignore[union-attr]
    assert "permission" in text(message).lower()
    only_as(world, ACC_BOB)


async def test_watch_as_the_user_and_refused(world: World) -> None:
    issue = world.site.create_issue("DEMO", "Watch me")
    await world.answer(world.events.command("watch", key=issue.key, member=ALICE))
    assert ACC_ALICE in world.site.issue(issue.key).watchers  # type: ignore[union-attr]
    world.sim.reset_records()
    await world.answer(world.events.command("watch", key=issue.key, member=MALLORY))
    assert ACC_MALLORY not in world.site.issue(issue.key).watchers  # type: ignore[union-attr]
    only_as(world, ACC_MALLORY)


async def test_subscribe_validates_jql_and_browse_permission(world: World) -> None:
    client_key = world.site.client_key
    await world.answer(
        world.events.command(
            "subscribe",
            project="DEMO",
            jql="priority = High",
            member=ALICE,
            permissions=MANAGE_SERVER,
        )
    )
    [sub] = await world.repos.subscriptions.list_for_project(client_key, "DEMO")
    assert sub.jql == "priority = High"
    message = await world.answer(
        world.events.command(
            "subscribe",
            project="DEMO",
            jql="priority = = High",
            member=ALICE,
            permissions=MANAGE_SERVER,
        )
    )
    assert len(await world.repos.subscriptions.list_for_project(client_key, "DEMO")) == 1
    assert "jql" in text(message).lower() or "error" in text(message).lower()
    world.sim.reset_records()
    await world.answer(
        world.events.command("subscribe", project="DEMO", member=MALLORY, permissions=MANAGE_SERVER)
    )
    assert len(await world.repos.subscriptions.list_for_project(client_key, "DEMO")) == 1
    only_as(world, ACC_MALLORY)


async def test_user_tokens_are_cached_until_near_expiry(world: World) -> None:
    issue = world.site.create_issue("DEMO", "Token")
    for _ in range(3):
        await world.answer(world.events.command("issue", key=issue.key, member=ALICE))
    assert len(world.sim.token_requests) == 1
    world.clock.advance(world.sim.token_lifetime)
    await world.answer(world.events.command("issue", key=issue.key, member=ALICE))
    assert len(world.sim.token_requests) == 2


async def test_redelivered_create_makes_one_issue_and_one_reply(world: World) -> None:
    envelope = world.events.command("create", project="DEMO", summary="Exactly once", member=ALICE)
    await world.run(envelope)
    await world.run(envelope, delivery=2)
    assert [i.summary for i in world.site.issues.values()].count("Exactly once") == 1
    assert len(await world.replies()) == 1  # the same reply id: the bus keeps one


def _draft_id(message: dict[str, Any]) -> str:
    [button] = [
        c["custom_id"]
        for row in message["components"]
        for c in row["components"]
        if str(c.get("custom_id", "")).startswith("draft-review:")
    ]
    return str(button).removeprefix("draft-review:")


async def test_issue_from_message_links_back_and_is_refused_without_permission(
    world: World,
) -> None:
    """Message → draft (suggestions) → reviewed form → the issue, linking the message."""
    offer = await world.answer(
        world.events.message_command(
            "The export button crashes on Safari. Happens every time.", member=ALICE
        )
    )
    draft = _draft_id(offer)
    await world.answer(
        world.events.modal(
            f"draft-create:{draft}",
            {"summary": "Export crashes on Safari", "project": "DEMO", "description": "Steps"},
            member=ALICE,
        )
    )
    [issue] = [i for i in world.site.issues.values() if i.summary == "Export crashes on Safari"]
    assert "discord.com/channels/" in str(issue.description)
    assert issue.reporter == ACC_ALICE
    world.sim.reset_records()
    offer = await world.answer(world.events.message_command("Another crash", member=BOB))
    before = len(world.site.issues)
    message = await world.answer(
        world.events.modal(
            f"draft-create:{_draft_id(offer)}",
            {"summary": "Not allowed", "project": "DEMO"},
            member=BOB,
        )
    )
    assert len(world.site.issues) == before
    assert "permission" in text(message).lower()
    only_as(world, ACC_BOB)
