"""The gates before Jira (tenant, role rules, link), the reply envelope, errors and settlement."""

from __future__ import annotations

from typing import Any

import pytest

from commands.harness import (
    ACC_ALICE,
    ACC_BOB,
    APPLICATION_ID,
    BOB,
    CAROL,
    CHANNEL,
    GUILD,
    MANAGE_SERVER,
    NOW,
    OTHER_GUILD,
    ROLE_DEV,
    ROLE_OTHER,
    SITE,
    STRING_SELECT,
    TOKEN,
    Harness,
    content,
    custom_ids,
)
from dfj_common.bus import DISCORD_OUTBOX
from dfj_common.envelope import Envelope, deterministic_id
from dfj_common.errors import MalformedMessage
from dfj_common.storage import InstallationState
from dfj_jira_worker.commands.handler import CONSUMER
from dfj_jira_worker.jira import (
    JiraRateLimited,
    JiraUnauthorized,
    JiraUnavailable,
)

# One event per capability, each calling Jira: (capability, how to build the event).
JIRA_COMMANDS: dict[str, Any] = {
    "view: /jira issue": ("view", lambda h: h.command("issue", key="ABC-1")),
    "view: /jira search": ("view", lambda h: h.command("search", jql="project = ABC")),
    "create: /jira create": (
        "create",
        lambda h: h.command("create", project="ABC", summary="A new one"),
    ),
    "create: from message": ("create", lambda h: h.message_command("The app crashes on start")),
    "act: /jira assign": ("act", lambda h: h.command("assign", key="ABC-1")),
    "act: assign-me button": ("act", lambda h: h.component("assign-me:ABC-1")),
    "act: /jira transition": ("act", lambda h: h.command("transition", key="ABC-1", to="Done")),
    "act: transition select": (
        "act",
        lambda h: h.component("transition:ABC-1", values=["31"], component_type=STRING_SELECT),
    ),
    "act: /jira comment": ("act", lambda h: h.command("comment", issue="ABC-1", text="Hi")),
    "act: comment form": ("act", lambda h: h.modal("comment:ABC-1", {"text": "Hi"})),
    "act: /jira watch": ("act", lambda h: h.command("watch", key="ABC-1")),
    "act: watch button": ("act", lambda h: h.component("watch:ABC-1")),
}


async def test_reply_envelope_edits_the_deferred_response(harness: Harness) -> None:
    """A command's answer: deterministic id, channel session, every field the outbox needs."""
    event = harness.command("issue", key="ABC-1")
    reply = await harness.reply(event)
    assert reply.type == "discord.interaction.reply"
    assert reply.id == deterministic_id("reply", event.id)
    assert reply.session_key == CHANNEL
    assert reply.tenant == SITE
    data = reply.data
    assert data["application_id"] == APPLICATION_ID
    assert data["token"] == TOKEN
    assert data["interaction_id"] == event.data["interaction_id"]
    assert (data["channel_id"], data["guild_id"]) == (CHANNEL, GUILD)
    assert data["ephemeral"] is True
    assert data["followup"] is False
    assert data["created_at"] == NOW
    assert data["message"]["allowed_mentions"] == {"parse": []}
    assert "flags" not in data["message"]


async def test_a_click_is_answered_with_an_ephemeral_followup(harness: Harness) -> None:
    """A component's deferred response is the message it sits on: answer beside it instead."""
    reply = await harness.reply(harness.component("watch:ABC-1"))
    assert reply.data["followup"] is True
    assert reply.data["ephemeral"] is True
    assert reply.data["message"]["flags"] == 64


async def test_subscription_commands_answer_publicly(harness: Harness) -> None:
    """subscribe/unsubscribe/subscriptions were deferred publicly; their answer says so."""
    reply = await harness.reply(harness.command("subscriptions", permissions=MANAGE_SERVER))
    assert reply.data["ephemeral"] is False
    assert reply.data["followup"] is False


@pytest.mark.parametrize("case", list(JIRA_COMMANDS))
async def test_every_jira_call_runs_as_the_linked_user(harness: Harness, case: str) -> None:
    """Each command reaches Jira only as the asking member's linked account, never the app."""
    _, build = JIRA_COMMANDS[case]
    harness.clock.advance(16 * 60)  # stale metadata: "from message" refreshes it first
    await harness.reply(build(harness))
    assert harness.calls, "the command should have called Jira"
    assert {c.actor for c in harness.calls} == {ACC_ALICE}


@pytest.mark.parametrize("case", list(JIRA_COMMANDS))
async def test_an_unlinked_member_is_asked_to_link(harness: Harness, case: str) -> None:
    """Not linked → "Link your Jira account" with the linker's button; Jira is not called."""
    _, build = JIRA_COMMANDS[case]
    event = build(harness)
    event = Envelope.from_dict({**event.to_dict(), "data": {**event.data, "user_id": CAROL}})
    message = (await harness.reply(event)).data["message"]
    assert "Link your Jira account" in content(message)
    assert custom_ids(message) == ["link:start"]
    assert harness.calls == []


@pytest.mark.parametrize("case", list(JIRA_COMMANDS))
async def test_a_role_rule_keeps_other_members_out(harness: Harness, case: str) -> None:
    """With a rule for the capability, a member without one of its roles is refused."""
    capability, build = JIRA_COMMANDS[case]
    await harness.repos.role_rules.put(GUILD, capability, [ROLE_DEV])
    event = build(harness)
    message = (await harness.reply(event)).data["message"]
    assert content(message).startswith("You can't")
    assert harness.calls == []


@pytest.mark.parametrize("case", list(JIRA_COMMANDS))
async def test_a_role_rule_lets_its_roles_in(harness: Harness, case: str) -> None:
    """A member holding one of the rule's roles passes the gate."""
    capability, build = JIRA_COMMANDS[case]
    await harness.repos.role_rules.put(GUILD, capability, [ROLE_DEV])
    event = build(harness)
    event = Envelope.from_dict(
        {**event.to_dict(), "data": {**event.data, "roles": [ROLE_OTHER, ROLE_DEV]}}
    )
    message = (await harness.reply(event)).data["message"]
    assert not content(message).startswith("You can't")
    assert "rejected" not in content(message)


async def test_manage_defaults_to_manage_server(harness: Harness) -> None:
    """Without a rule, only Manage Server (or Administrator) may manage subscriptions."""
    refused = await harness.answer(harness.command("subscriptions"))
    assert "Manage Server" in content(refused)
    allowed = await harness.answer(harness.command("subscriptions", permissions=MANAGE_SERVER))
    assert "no Jira subscriptions" in content(allowed)
    admin = await harness.answer(harness.command("subscriptions", permissions=str(1 << 3)))
    assert "no Jira subscriptions" in content(admin)


async def test_a_manage_rule_adds_roles_and_keeps_manage_server(harness: Harness) -> None:
    """A "manage" rule admits its roles; Manage Server still may, so admins cannot be locked out."""
    await harness.repos.role_rules.put(GUILD, "manage", [ROLE_DEV])
    by_role = await harness.answer(harness.command("subscriptions", roles=[ROLE_DEV]))
    assert "no Jira subscriptions" in content(by_role)
    by_permission = await harness.answer(
        harness.command("subscriptions", permissions=MANAGE_SERVER)
    )
    assert "no Jira subscriptions" in content(by_permission)
    neither = await harness.answer(harness.command("subscriptions", roles=[ROLE_OTHER]))
    assert content(neither).startswith("You can't")


async def test_a_rule_for_one_capability_leaves_the_others_open(harness: Harness) -> None:
    """A "create" rule does not gate viewing."""
    await harness.repos.role_rules.put(GUILD, "create", [ROLE_DEV])
    message = await harness.answer(harness.command("issue", key="ABC-1"))
    assert message["embeds"][0]["title"].startswith("ABC-1")


async def test_a_guild_that_is_not_connected_is_told_how(harness: Harness) -> None:
    """No connection → a pointer to `/jira connect` for a Manage Server member; no Jira call."""
    event = harness.command("issue", key="ABC-1", guild=OTHER_GUILD)
    reply = await harness.reply(event)
    assert "/jira connect" in content(reply.data["message"])
    assert "Manage Server" in content(reply.data["message"])
    assert reply.tenant is None
    assert harness.calls == []


@pytest.mark.parametrize("state", [InstallationState.DISABLED, InstallationState.UNINSTALLED])
async def test_a_site_that_is_not_live_is_not_called(
    harness: Harness, state: InstallationState
) -> None:
    """A disabled or uninstalled app answers that the site is unavailable."""
    await harness.repos.installations.set_state(SITE, state)
    message = await harness.answer(harness.command("issue", key="ABC-1"))
    assert "disabled or removed" in content(message)
    assert harness.calls == []


async def test_an_installed_site_is_live(harness: Harness) -> None:
    """INSTALLED (not yet ENABLED) sites are served too."""
    await harness.repos.installations.set_state(SITE, InstallationState.INSTALLED)
    message = await harness.answer(harness.command("issue", key="ABC-1"))
    assert message["embeds"]


async def test_outside_a_guild_the_answer_says_where_it_works(harness: Harness) -> None:
    """A command from a DM is answered, not dead-lettered."""
    message = await harness.answer(harness.command("issue", key="ABC-1", guild=None))
    assert "inside a server" in content(message)


async def test_bad_input_is_answered(harness: Harness) -> None:
    """An issue key that is not one is explained; nothing is called."""
    message = await harness.answer(harness.command("issue", key="not a key"))
    assert "doesn't look like an issue key" in content(message)
    assert harness.calls == []


async def test_an_unknown_subcommand_or_button_is_answered(harness: Harness) -> None:
    """Something we do not handle gets a polite answer (and completes)."""
    unknown = await harness.answer(harness.command("dance"))
    assert "can't handle /jira dance" in content(unknown)
    button = await harness.answer(harness.component("mystery:thing"))
    assert "can't handle this button" in content(button)


@pytest.mark.parametrize(
    "change",
    [
        {"token": None},
        {"token": ""},
        {"user_id": None},
        {"channel_id": None},
        {"interaction_id": "not-a-snowflake"},
        {"application_id": None},
        {"command": None},
    ],
)
async def test_an_event_that_cannot_be_answered_is_malformed(
    harness: Harness, change: dict[str, Any]
) -> None:
    """Without what a reply needs, the event is a MalformedMessage (dead-lettered)."""
    event = harness.command("issue", key="ABC-1")
    broken = Envelope.from_dict({**event.to_dict(), "data": {**event.data, **change}})
    with pytest.raises(MalformedMessage):
        await harness.send(broken)
    assert await harness.replies() == []


async def test_an_unknown_event_type_is_malformed(harness: Harness) -> None:
    """Only the three command event types are ours."""
    event = harness.command("issue", key="ABC-1")
    other = Envelope.from_dict({**event.to_dict(), "type": "discord.something"})
    with pytest.raises(MalformedMessage):
        await harness.send(other)


async def test_jira_refusing_is_answered_and_completes(harness: Harness) -> None:
    """A 403 from Jira is shown to the user; the handler returns (the message completes)."""
    harness.jira.site.forbid(ACC_ALICE, "get_issue")
    message = await harness.answer(harness.command("issue", key="ABC-1"))
    assert content(message) == "You don't have permission to do that in Jira."


async def test_jira_not_accepting_the_user_asks_to_link_again(harness: Harness) -> None:
    """A 401 / refused impersonation suggests linking again, with the button."""
    harness.jira.site.fail(
        "get_issue", JiraUnauthorized("token endpoint refused", status=401), times=1
    )
    message = await harness.answer(harness.command("issue", key="ABC-1"))
    assert "linking your Jira account again" in content(message)
    assert custom_ids(message) == ["link:start"]


@pytest.mark.parametrize(
    "error",
    [
        JiraRateLimited("Jira answered 429", retry_after=3.0),
        JiraUnavailable("Jira answered 502", status=502),
    ],
)
async def test_a_busy_jira_is_retried_then_explained(harness: Harness, error: Exception) -> None:
    """Transient errors propagate (the runtime retries); on the last attempt the user is told."""
    harness.jira.site.fail("get_issue", error, times=2)
    event = harness.command("issue", key="ABC-1")
    with pytest.raises(type(error)):
        await harness.send(event)
    assert await harness.replies() == []
    await harness.send(event, last_attempt=True)
    message = (await harness.reply()).data["message"]
    assert content(message) == "Jira is busy, try again in a moment."


async def test_redelivery_gives_the_same_reply_id(harness: Harness) -> None:
    """The same event twice → one reply on the outbox (the bus drops the duplicate id)."""
    event = harness.command("issue", key="ABC-1")
    await harness.send(event)
    await harness.send(event)
    replies = await harness.replies()
    assert [r.id for r in replies] == [deterministic_id("reply", event.id)]
    assert len(harness.jira.site.calls_to("get_issue")) == 2  # reads simply run again


async def test_a_redelivered_action_is_not_repeated(harness: Harness) -> None:
    """A change is recorded once done; its redelivery answers "already done" and acts not."""
    event = harness.command("comment", key="ABC-1", text="Looks good")
    await harness.send(event)
    assert await harness.repos.processed_ids.is_processed(CONSUMER, event.id)
    first = await harness.replies()
    await harness.send(event)
    assert len(harness.jira.site.comments) == 1
    again = await harness.replies()
    assert again == []  # same reply id: dropped by the bus within its duplicate window
    assert [r.id for r in first] == [deterministic_id("reply", event.id)]


async def test_a_refused_action_is_not_recorded_as_done(harness: Harness) -> None:
    """Only what Jira accepted is marked processed."""
    harness.jira.site.forbid(ACC_ALICE, "add_comment")
    event = harness.command("comment", key="ABC-1", text="Looks good")
    await harness.send(event)
    assert not await harness.repos.processed_ids.is_processed(CONSUMER, event.id)


async def test_the_already_done_answer_replaces_a_lost_reply(harness: Harness) -> None:
    """If the first reply never went out, the redelivery still answers (under the same id)."""
    event = harness.command("watch", key="ABC-1")
    await harness.repos.processed_ids.mark_processed(CONSUMER, event.id)
    reply = await harness.reply(event)
    assert reply.id == deterministic_id("reply", event.id)
    assert content(reply.data["message"]).startswith("Already done")
    assert harness.calls == []


async def test_other_members_links_are_theirs(harness: Harness) -> None:
    """Bob's command runs as Bob's account."""
    await harness.reply(harness.command("issue", key="ABC-1", member=BOB))
    assert {c.actor for c in harness.calls} == {ACC_BOB}


async def test_the_outbox_is_the_only_output(harness: Harness) -> None:
    """Replies go to discord-outbox (sanity check of the queue the harness reads)."""
    await harness.send(harness.command("issue", key="ABC-1"))
    receiver = harness.bus.receiver(DISCORD_OUTBOX)
    got = await receiver.receive(10, timeout=0)
    assert len(got) == 1
    await got[0].complete()
    await receiver.close()


async def test_forbidden_by_jira_for_every_command(harness: Harness) -> None:
    """Each Jira-calling command relays Jira's 403 as its answer."""
    every = [
        "get_issue",
        "get_transitions",
        "search_jql",
        "create_issue",
        "assign_issue",
        "transition_issue",
        "add_comment",
        "add_watcher",
        "search_projects",
    ]
    harness.jira.site.forbid(ACC_ALICE, *every)
    for case, (_, build) in JIRA_COMMANDS.items():
        if case == "create: from message":
            continue  # only reads metadata, and tolerates failures (tested on its own)
        message = await harness.answer(build(harness))
        assert "permission" in content(message), case


async def test_everyone_may_manage_when_the_server_says_so(harness: Harness) -> None:
    """/jira permissions capability:manage who:everyone opens subscriptions to every member."""
    from dfj_common.storage import AccessMode

    await harness.repos.feature_access.put(GUILD, "manage", AccessMode.ALL)
    message = await harness.answer(harness.command("subscriptions", member=CAROL))
    assert "no Jira subscriptions" in content(message)


async def test_linked_users_only_asks_an_unlinked_member_to_link(harness: Harness) -> None:
    """who:linked on "manage": Bob (linked) may, Carol (not linked) is asked to link first."""
    from dfj_common.storage import AccessMode

    await harness.repos.feature_access.put(GUILD, "manage", AccessMode.LINKED)
    allowed = await harness.answer(harness.command("subscriptions", member=BOB))
    assert "no Jira subscriptions" in content(allowed)
    carol = await harness.reply(harness.command("subscriptions", member=CAROL))
    assert "link:start" in custom_ids(carol.data["message"])
    assert harness.calls == []


async def test_a_role_rule_wins_over_an_access_mode(harness: Harness) -> None:
    from dfj_common.storage import AccessMode

    await harness.repos.feature_access.put(GUILD, "view", AccessMode.ALL)
    await harness.repos.role_rules.put(GUILD, "view", [ROLE_DEV])
    message = await harness.answer(harness.command("issue", key="ABC-1"))
    assert content(message).startswith("You can't")
