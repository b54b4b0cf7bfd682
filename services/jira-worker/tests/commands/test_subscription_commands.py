"""/jira subscribe, unsubscribe and subscriptions: checks as the user, rows in Subscriptions."""

from __future__ import annotations

from typing import Any

from commands.harness import (
    ACC_ALICE,
    ALICE,
    CHANNEL,
    GUILD,
    MANAGE_SERVER,
    OTHER_GUILD,
    ROLE_DEV,
    SITE,
    Harness,
    content,
)
from dfj_common.envelope import deterministic_id


async def test_subscribe_with_defaults(harness: Harness) -> None:
    """A browsable project, default events, message delivery; the answer is public."""
    event = harness.command("subscribe", project="abc", permissions=MANAGE_SERVER)
    reply = await harness.reply(event)
    assert reply.data["ephemeral"] is False
    (row,) = await harness.repos.subscriptions.list_for_channel(GUILD, CHANNEL)
    assert row.id == deterministic_id("subscription", event.id)
    assert (row.client_key, row.project_key) == (SITE, "ABC")
    assert row.event_types == ("issue_created", "issue_updated", "comment_created")
    assert (row.issue_types, row.jql, row.delivery_mode) == ((), None, "message")
    assert row.created_by == ALICE
    assert f"id `{row.id}`" in content(reply.data["message"])
    (check,) = harness.jira.site.calls_to("my_permissions")
    assert check.actor == ACC_ALICE
    assert check.args == (("BROWSE_PROJECTS",),)
    assert check.kwargs == {"project_key": "ABC"}


async def test_subscribe_with_every_option(harness: Harness) -> None:
    """events, issue_types, a valid JQL (parsed as the user) and thread delivery."""
    event = harness.command(
        "subscribe",
        project="ABC",
        events="issue_created, comment_deleted issue_created",
        issue_types="Bug, New Feature",
        jql="priority = High",
        thread=True,
        permissions=MANAGE_SERVER,
    )
    await harness.reply(event)
    (row,) = await harness.repos.subscriptions.list_for_channel(GUILD, CHANNEL)
    assert row.event_types == ("issue_created", "comment_deleted")
    assert row.issue_types == ("Bug", "New Feature")
    assert row.jql == "priority = High"
    assert row.delivery_mode == "thread"
    (parse,) = harness.jira.site.calls_to("parse_jql")
    assert (parse.actor, parse.args) == (ACC_ALICE, (("priority = High",),))


async def test_subscribe_refuses_jql_with_errors(harness: Harness) -> None:
    """A JQL filter Jira cannot parse is refused with Jira's message; nothing is stored."""
    event = harness.command("subscribe", project="ABC", jql="broken = x", permissions=MANAGE_SERVER)
    message = await harness.answer(event)
    assert content(message) == "Jira refused that JQL: Error in the JQL Query: 'broken'."
    assert await harness.repos.subscriptions.list_for_guild(GUILD) == []


async def test_subscribe_refuses_a_project_the_user_cannot_browse(harness: Harness) -> None:
    message = await harness.answer(
        harness.command("subscribe", project="XYZ", permissions=MANAGE_SERVER)
    )
    assert "can't browse project **XYZ**" in content(message)
    assert await harness.repos.subscriptions.list_for_guild(GUILD) == []


async def test_subscribe_refuses_unknown_event_types(harness: Harness) -> None:
    message = await harness.answer(
        harness.command("subscribe", project="ABC", events="everything", permissions=MANAGE_SERVER)
    )
    assert content(message).startswith("Unknown event type `everything`")
    assert harness.calls == []


async def test_subscribe_needs_manage(harness: Harness) -> None:
    """Without Manage Server or a "manage" role: refused before Jira is asked."""
    message = await harness.answer(harness.command("subscribe", project="ABC"))
    assert "Manage Server" in content(message)
    assert harness.calls == []
    await harness.repos.role_rules.put(GUILD, "manage", [ROLE_DEV])
    await harness.answer(harness.command("subscribe", project="ABC", roles=[ROLE_DEV]))
    assert len(await harness.repos.subscriptions.list_for_guild(GUILD)) == 1


async def test_subscribe_refused_by_jira(harness: Harness) -> None:
    harness.jira.site.forbid(ACC_ALICE, "my_permissions")
    message = await harness.answer(
        harness.command("subscribe", project="ABC", permissions=MANAGE_SERVER)
    )
    assert "permission" in content(message)


async def test_subscribe_redelivered_adds_one_row(harness: Harness) -> None:
    event = harness.command("subscribe", project="ABC", permissions=MANAGE_SERVER)
    await harness.send(event)
    await harness.send(event)
    assert len(await harness.repos.subscriptions.list_for_guild(GUILD)) == 1


async def test_the_same_subscription_twice_is_reported(harness: Harness) -> None:
    """An identical subscription in the channel is not duplicated."""
    await harness.answer(harness.command("subscribe", project="ABC", permissions=MANAGE_SERVER))
    message = await harness.answer(
        harness.command("subscribe", project="ABC", permissions=MANAGE_SERVER)
    )
    assert content(message).startswith("This channel already has that subscription")
    assert len(await harness.repos.subscriptions.list_for_guild(GUILD)) == 1


async def _subscribe(harness: Harness, project: str, **options: Any) -> str:
    await harness.answer(
        harness.command("subscribe", project=project, permissions=MANAGE_SERVER, **options)
    )
    rows = await harness.repos.subscriptions.list_for_channel(GUILD, CHANNEL)
    return rows[-1].id


async def test_unsubscribe_by_id(harness: Harness) -> None:
    first = await _subscribe(harness, "ABC")
    second = await _subscribe(harness, "ABC", events="issue_deleted")
    message = await harness.answer(
        harness.command("unsubscribe", subscription=first, permissions=MANAGE_SERVER)
    )
    assert content(message) == "Removed 1 subscription (ABC) from this channel."
    rows = await harness.repos.subscriptions.list_for_channel(GUILD, CHANNEL)
    assert [r.id for r in rows] == [second]


async def test_unsubscribe_by_project_removes_the_channels_subscriptions(
    harness: Harness,
) -> None:
    await _subscribe(harness, "ABC")
    await _subscribe(harness, "ABC", events="issue_deleted")
    calls_before = len(harness.calls)
    message = await harness.answer(
        harness.command("unsubscribe", subscription="abc", permissions=MANAGE_SERVER)
    )
    assert content(message) == "Removed 2 subscriptions (ABC) from this channel."
    assert await harness.repos.subscriptions.list_for_guild(GUILD) == []
    assert len(harness.calls) == calls_before  # no Jira call to remove


async def test_unsubscribe_cannot_touch_another_guilds_subscription(harness: Harness) -> None:
    """An id from another guild matches nothing here."""
    await harness.repos.guild_connections.connect(OTHER_GUILD, SITE, connected_by=ALICE)
    other = await harness.repos.subscriptions.add(
        guild_id=OTHER_GUILD,
        channel_id=CHANNEL,
        client_key=SITE,
        project_key="ABC",
        event_types=["issue_created"],
        created_by=ALICE,
    )
    message = await harness.answer(
        harness.command("unsubscribe", subscription=other.id, permissions=MANAGE_SERVER)
    )
    assert content(message).startswith("This channel has no subscription")
    assert await harness.repos.subscriptions.get(other.id) is not None


async def test_unsubscribe_needs_manage_but_no_link(harness: Harness) -> None:
    """Removing touches only our table: a Manage Server member who is not linked may do it."""
    sub = await _subscribe(harness, "ABC")
    refused = await harness.answer(harness.command("unsubscribe", subscription=sub))
    assert "Manage Server" in content(refused)
    unlinked = await harness.answer(
        harness.command(
            "unsubscribe",
            subscription=sub,
            permissions=MANAGE_SERVER,
            member="1400000000000000099",
        )
    )
    assert content(unlinked).startswith("Removed 1 subscription")


async def test_subscriptions_lists_the_channel(harness: Harness) -> None:
    await _subscribe(harness, "ABC", jql="priority = High", thread=True)
    message = await harness.answer(harness.command("subscriptions", permissions=MANAGE_SERVER))
    (embed,) = message["embeds"]
    (field,) = embed["fields"]
    assert field["name"].startswith("ABC · ")
    assert "JQL: `priority = High`" in field["value"]
    assert "one thread per issue" in field["value"]
