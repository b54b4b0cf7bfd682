"""POST /discord/interactions over real HTTP: every acceptance and rejection path."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import pytest

from dfj_common.bus.topology import JIRA_COMMANDS, LINKER
from dfj_common.clock import ManualClock
from dfj_common.envelope import Envelope
from dfj_gateway.discord.interactions import interaction_event_id
from dfj_gateway.events import DISCORD_COMMAND, DISCORD_COMPONENT, DISCORD_MODAL_SUBMIT
from dfj_sandbox.discord_signing import DiscordSigner, InteractionFactory

Harness = Any  # conftest.Harness (conftest modules are not importable under importlib mode)
HarnessFactory = Callable[..., Awaitable[Any]]
SpecCheck = Callable[[str, Mapping[str, Any]], None]
SITE = "jira:0b4f3c6e-2d9a-4c55-9a4e-5b8f6a1d2c3e"
PATH = "/discord/interactions"

# What each valid vector leads to once verified (the vectors' bodies are minimal: no guild, and
# only the ping has everything an interaction needs, so some are refused as malformed — 400,
# never 401).
VALID_VECTOR_ANSWERS = {
    "valid_ping": (200, {"type": 1}),
    "valid_signature_uppercase_hex": (200, {"type": 1}),
    "valid_application_command": (200, 4),  # no guild: the DM help message
    "valid_autocomplete": (200, {"type": 8, "data": {"choices": []}}),
    "valid_message_component": (400, None),  # names no user
    "valid_utf8_body": (400, None),  # has no id
}


async def test_vector_over_http(
    vector_name: str, vectors: dict[str, dict[str, Any]], start_gateway: HarnessFactory
) -> None:
    """Each shared vector, sent as-is to an app with its key: invalid → 401, valid → not 401."""
    vector = vectors[vector_name]
    gateway = await start_gateway(
        public_key=vector["public_key"], clock=ManualClock(1_700_000_000.0)
    )
    response = await gateway.client.post(
        PATH,
        data=bytes.fromhex(vector["body_hex"]),
        headers={
            "Content-Type": "application/json",
            "X-Signature-Ed25519": vector["signature"],
            "X-Signature-Timestamp": vector["timestamp"],
        },
    )
    if not vector["expected_valid"]:
        assert response.status == 401
        assert await gateway.published() == 0
        return
    status, answer = VALID_VECTOR_ANSWERS[vector_name]
    assert response.status == status, await response.text()
    if isinstance(answer, dict):
        assert await response.json() == answer
    elif answer is not None:
        body = await response.json()
        assert body["type"] == answer and body["data"]["flags"] == 64
    assert await gateway.published() == 0


async def test_ping_is_answered_pong(gateway: Harness, spec_valid: SpecCheck) -> None:
    """A signed PING gets PONG as application/json."""
    response = await gateway.post(gateway.factory.ping())
    assert response.status == 200
    assert response.content_type == "application/json"
    body = await response.json()
    assert body == {"type": 1}
    spec_valid("PongInteractionCallbackRequest", body)


@pytest.mark.parametrize(
    "drop",
    [
        ("X-Signature-Ed25519",),
        ("X-Signature-Timestamp",),
        ("X-Signature-Ed25519", "X-Signature-Timestamp"),
    ],
)
async def test_missing_headers_are_401(gateway: Harness, drop: tuple[str, ...]) -> None:
    """A request without either signature header is 401, even a PING."""
    response = await gateway.post(gateway.factory.ping(), drop=drop)
    assert response.status == 401
    assert await gateway.published() == 0


@pytest.mark.parametrize(
    "signature", ["", "00", "not hex at all", "ab" * 63, "ab" * 65, "zz" * 64, "ab" * 64]
)
async def test_bad_signatures_are_401_never_500(gateway: Harness, signature: str) -> None:
    """Malformed, short, long, non-hex or wrong signatures are 401 (Discord's probes)."""
    body = gateway.factory.slash(subcommand="link")
    response = await gateway.post(body, headers={"X-Signature-Ed25519": signature})
    assert response.status == 401
    assert await response.json() == {"error": "invalid request signature"}
    assert await gateway.published() == 0


async def test_another_keys_signature_is_401(gateway: Harness) -> None:
    """A correct Ed25519 signature by a key that is not the app's is 401."""
    raw, headers = DiscordSigner.generate().signed(
        gateway.factory.slash(subcommand="link"), timestamp=int(gateway.clock.now())
    )
    response = await gateway.client.post(PATH, data=raw, headers=headers)
    assert response.status == 401
    assert await gateway.published() == 0


async def test_tampered_body_is_401(gateway: Harness) -> None:
    """A body changed after signing (here: re-serialised with spaces) is 401."""
    body = gateway.factory.slash(subcommand="link")
    raw, headers = gateway.signer.signed(body, timestamp=int(gateway.clock.now()))
    respaced = json.dumps(json.loads(raw)).encode()
    response = await gateway.client.post(PATH, data=respaced, headers=headers)
    assert response.status == 401
    assert await gateway.published() == 0


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
async def test_stale_or_future_timestamps_are_401(gateway: Harness, offset: int) -> None:
    """A validly signed request whose timestamp is > 5 minutes from now is 401."""
    body = gateway.factory.slash(subcommand="link")
    response = await gateway.post(body, timestamp=int(gateway.clock.now()) + offset)
    assert response.status == 401
    assert await gateway.published() == 0


async def test_timestamp_at_the_window_edge_is_accepted(gateway: Harness) -> None:
    """Five minutes of skew, either way, is still fresh."""
    response = await gateway.post(gateway.factory.ping(), timestamp=int(gateway.clock.now()) - 300)
    assert response.status == 200


async def test_window_comes_from_the_environment(
    start_gateway: HarnessFactory, make_environ: Callable[..., dict[str, str]]
) -> None:
    """DFJ_DISCORD_TIMESTAMP_WINDOW_SECONDS narrows the window."""
    gateway = await start_gateway(environ=make_environ(DFJ_DISCORD_TIMESTAMP_WINDOW_SECONDS="10"))
    stale = await gateway.post(gateway.factory.ping(), timestamp=int(gateway.clock.now()) - 11)
    assert stale.status == 401
    fresh = await gateway.post(gateway.factory.ping(), timestamp=int(gateway.clock.now()) - 9)
    assert fresh.status == 200


async def test_replayed_interaction_is_401_and_published_once(gateway: Harness) -> None:
    """The same signed interaction sent twice is accepted once; the replay is 401."""
    await gateway.install()
    body = gateway.factory.slash(subcommand="search", options={"jql": "project = ABC"})
    first = await gateway.post(body)
    assert first.status == 200
    replay = await gateway.post(body)
    assert replay.status == 401
    assert len(await gateway.take(JIRA_COMMANDS, expect=2)) == 1


async def test_replay_cache_forgets_after_the_token_lifetime(gateway: Harness) -> None:
    """After 15 minutes the id is forgotten (the timestamp is then stale anyway)."""
    body = gateway.factory.ping()
    assert (await gateway.post(body)).status == 200
    gateway.clock.advance(901)
    again = await gateway.post(body)  # re-signed now: fresh, and no longer remembered
    assert again.status == 200


async def test_unconfigured_public_key_is_503(start_gateway: HarnessFactory) -> None:
    """Without DFJ_DISCORD_PUBLIC_KEY nothing can be verified: 503, nothing published."""
    gateway = await start_gateway(public_key=None)
    response = await gateway.post(gateway.factory.ping())
    assert response.status == 503
    assert await gateway.published() == 0


async def test_body_over_the_limit_is_413(gateway: Harness) -> None:
    """A body over the route's 128 KiB limit is refused before verification."""
    body = gateway.factory.message_command(content="x" * (130 * 1024))
    response = await gateway.post(body)
    assert response.status == 413
    assert await gateway.published() == 0


async def test_wrong_content_type_is_415(gateway: Harness) -> None:
    """A signed body sent as anything but application/json is 415."""
    response = await gateway.post(
        gateway.factory.ping(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status == 415
    assert await gateway.published() == 0


async def test_a_streamed_body_is_read_whole_before_it_is_verified(gateway: Harness) -> None:
    """Chunked transfer (no Content-Length), in pieces: all of it is signed, all is read."""
    body = gateway.factory.slash(subcommand="search")
    raw, signed = gateway.signer.signed(body, timestamp=int(gateway.clock.now()))

    async def pieces() -> Any:
        for start in range(0, len(raw), 100):
            yield raw[start : start + 100]
            await asyncio.sleep(0)

    response = await gateway.client.post("/discord/interactions", data=pieces(), headers=signed)
    assert response.status == 200
    [event] = await gateway.take(JIRA_COMMANDS)
    assert event.data["interaction_id"] == body["id"]


async def test_missing_content_type_is_415(gateway: Harness) -> None:
    """A signed body without any Content-Type is not taken for JSON either."""
    raw, signed = gateway.signer.signed(gateway.factory.ping(), timestamp=int(gateway.clock.now()))
    headers = {k: v for k, v in signed.items() if k.lower() != "content-type"}
    response = await gateway.client.post(
        "/discord/interactions", data=raw, headers=headers, skip_auto_headers=("Content-Type",)
    )
    assert response.status == 415
    assert await gateway.published() == 0


@pytest.mark.parametrize("value", ["Application/JSON", "application/json; charset=utf-8"])
async def test_json_content_type_in_any_case_with_parameters_is_accepted(
    gateway: Harness, value: str
) -> None:
    response = await gateway.post(gateway.factory.ping(), headers={"Content-Type": value})
    assert response.status == 200
    assert await response.json() == {"type": 1}


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"type": 6}',
        b'{"type": 99}',
        b'"ping"',
        b"[" * 50_000 + b"]" * 50_000,
    ],
)
async def test_signed_garbage_is_400(gateway: Harness, raw: bytes) -> None:
    """Signed bodies that are not JSON, not objects or of unknown type are 400, not 500."""
    response = await gateway.post(raw)
    assert response.status == 400
    assert "error" in await response.json()
    assert await gateway.published() == 0


async def test_odd_values_in_a_signed_body_are_not_a_500(gateway: Harness) -> None:
    """A member that is not an object is a 400 naming the field; an option value too long
    for 64 bits is dropped from the event, which is published, not a 500 at encoding."""
    body = gateway.factory.slash(subcommand="issue", options={"key": "ABC-1"})
    body["member"] = []
    response = await gateway.post(body)
    assert response.status == 400
    assert "$.member" in (await response.json())["error"]
    assert await gateway.published() == 0
    await gateway.install()
    body = gateway.factory.slash(subcommand="issue", options={"key": "ABC-1", "n": 1})
    body["data"]["options"][0]["options"][1]["value"] = 10**30
    assert await gateway.answer(body) == {"type": 5, "data": {"flags": 64}}
    [event] = await gateway.take(JIRA_COMMANDS)
    assert event.data["command"]["options"] == {"key": "ABC-1", "n": None}


async def test_command_in_dm_gets_ephemeral_help(start_gateway: HarnessFactory) -> None:
    """/jira link in a DM is answered with help, only for the user, and nothing published."""
    gateway = await start_gateway(guild_id=None)
    body = await gateway.answer(gateway.factory.slash(subcommand="link"))
    assert body["type"] == 4 and body["data"]["flags"] == 64
    assert "server" in body["data"]["content"]
    assert await gateway.published() == 0


async def test_unknown_command_gets_ephemeral_help(gateway: Harness, spec_valid: SpecCheck) -> None:
    """An unknown subcommand gets the help message (type 4, flags 64), not an error."""
    body = await gateway.answer(gateway.factory.slash(subcommand="dance"))
    assert body["type"] == 4 and body["data"]["flags"] == 64
    assert "/jira link" in body["data"]["content"]
    assert body["data"]["allowed_mentions"] == {"parse": []}
    spec_valid("CreateMessageInteractionCallbackRequest", body)
    assert await gateway.published() == 0


async def test_personal_command_is_deferred_ephemeral_to_linker(
    gateway: Harness, spec_valid: SpecCheck
) -> None:
    """/jira link: deferred (5, flags 64) and a discord.command on linker with the tenant."""
    await gateway.install()
    body = gateway.factory.slash(subcommand="link")
    answer = await gateway.answer(body)
    assert answer == {"type": 5, "data": {"flags": 64}}
    spec_valid("CreateMessageInteractionCallbackRequest", answer)
    [event] = await gateway.take(LINKER)
    assert event.type == DISCORD_COMMAND
    assert event.id == interaction_event_id(body["id"])
    assert event.tenant == SITE
    assert event.data["command"]["subcommand"] == "link"
    assert event.data["interaction_id"] == body["id"]
    assert event.data["token"] == body["token"]
    assert await gateway.published() == 0  # nothing went to jira-commands


def _assert_no_people(event: Envelope, factory: InteractionFactory) -> None:
    raw = event.encode().decode()
    for private in (
        factory.username,
        "Alice",
        "Alice from QA",
        "a_1269e74af4df7417b13759eae50c83dc",
    ):
        assert private not in raw


async def test_channel_command_is_deferred_publicly_to_jira_commands(gateway: Harness) -> None:
    """/jira subscribe: deferred without flags; event fields are ids, options, roles, locales."""
    await gateway.install()
    factory = gateway.factory
    body = factory.slash(subcommand="subscribe", options={"project": "ABC", "events": "created"})
    assert await gateway.answer(body) == {"type": 5}
    [event] = await gateway.take(JIRA_COMMANDS)
    assert event.type == DISCORD_COMMAND and event.tenant == SITE
    assert event.data == {
        "interaction_id": body["id"],
        "interaction_type": 2,
        "application_id": factory.application_id,
        "token": body["token"],
        "guild_id": factory.guild_id,
        "channel_id": factory.channel_id,
        "user_id": factory.user_id,
        "roles": list(factory.roles),
        "permissions": factory.permissions,
        "app_permissions": body["app_permissions"],
        "locale": "en-US",
        "guild_locale": "en-GB",
        "context": 0,
        "command": {
            "id": body["data"]["id"],
            "name": "jira",
            "type": 1,
            "group": None,
            "subcommand": "subscribe",
            "options": {"project": "ABC", "events": "created"},
            "target_id": None,
        },
    }
    _assert_no_people(event, factory)


async def test_unconnected_guild_publishes_with_null_tenant(gateway: Harness) -> None:
    """/jira connect CODE in a guild no site is connected to: published, tenant null."""
    body = gateway.factory.slash(subcommand="connect", options={"code": "ABCD-1234"})
    assert await gateway.answer(body) == {"type": 5, "data": {"flags": 64}}
    [event] = await gateway.take(LINKER)
    assert event.tenant is None
    assert event.data["command"]["options"] == {"code": "ABCD-1234"}


async def test_message_command_publishes_the_message_text(gateway: Harness) -> None:
    """Create issue from message: deferred ephemeral; the event has the text and message id."""
    await gateway.install()
    body = gateway.factory.message_command(
        content="Checkout 500s since 09:00", message_id="1300000000000000888"
    )
    assert await gateway.answer(body) == {"type": 5, "data": {"flags": 64}}
    [event] = await gateway.take(JIRA_COMMANDS)
    assert event.data["message"] == {
        "id": "1300000000000000888",
        "text": "Checkout 500s since 09:00",
    }
    assert event.data["command"]["target_id"] == "1300000000000000888"
    raw = event.encode().decode()
    assert "bob_reporter" not in raw and "Bob" not in raw
    _assert_no_people(event, gateway.factory)


async def test_component_click_is_deferred_update(gateway: Harness, spec_valid: SpecCheck) -> None:
    """A button click: type 6 and a discord.component with custom id, values, message id."""
    await gateway.install()
    body = gateway.factory.component(
        "issue:transition:ABC-1", component_type=3, values=["31"], message_id="1300000000000000999"
    )
    answer = await gateway.answer(body)
    assert answer == {"type": 6}
    spec_valid("UpdateMessageInteractionCallbackRequest", answer)
    [event] = await gateway.take(JIRA_COMMANDS)
    assert event.type == DISCORD_COMPONENT and event.tenant == SITE
    assert event.data["component"] == {
        "custom_id": "issue:transition:ABC-1",
        "component_type": 3,
        "values": ["31"],
    }
    assert event.data["message_id"] == "1300000000000000999"
    assert "Suggested fields" not in event.encode().decode()  # the message's content stays out
    _assert_no_people(event, gateway.factory)


async def test_linker_component_goes_to_linker(gateway: Harness) -> None:
    """A click in the privacy namespace is for the linker."""
    assert await gateway.answer(gateway.factory.component("privacy:erase:confirm")) == {"type": 6}
    [event] = await gateway.take(LINKER)
    assert event.data["component"]["custom_id"] == "privacy:erase:confirm"


async def test_autocomplete_from_cache_filtered(gateway: Harness, spec_valid: SpecCheck) -> None:
    """Autocomplete answers ≤ 25 cached projects matching what was typed; nothing published."""
    await gateway.install()
    projects = [{"key": f"P{i:02d}", "name": f"Project {i}"} for i in range(40)]
    projects.append({"key": "ABC", "name": "Alpha Beta"})
    await gateway.cache("projects", "all", projects)
    everything = await gateway.answer(
        gateway.factory.autocomplete(options={"project": ""}, focused="project")
    )
    assert everything["type"] == 8 and len(everything["data"]["choices"]) == 25
    spec_valid("ApplicationCommandAutocompleteCallbackRequest", everything)
    typed = await gateway.answer(
        gateway.factory.autocomplete(options={"project": "alpha"}, focused="project")
    )
    assert typed["data"]["choices"] == [{"name": "ABC — Alpha Beta", "value": "ABC"}]
    assert await gateway.published() == 0


async def test_autocomplete_issue_types_per_project(gateway: Harness) -> None:
    """Issue types are read from the cache of the project already chosen."""
    await gateway.install()
    await gateway.cache(
        "issuetypes", "ABC", [{"id": "1", "name": "Bug"}, {"id": "2", "name": "Task"}]
    )
    body = gateway.factory.autocomplete(options={"project": "ABC", "type": "ta"}, focused="type")
    answer = await gateway.answer(body)
    assert answer["data"]["choices"] == [{"name": "Task", "value": "2"}]


async def test_autocomplete_with_empty_cache_is_empty(gateway: Harness) -> None:
    """Nothing cached (or the guild not connected) is an empty choice list, not an error."""
    empty = await gateway.answer(
        gateway.factory.autocomplete(options={"project": "a"}, focused="project")
    )
    assert empty == {"type": 8, "data": {"choices": []}}
    await gateway.install()
    still = await gateway.answer(
        gateway.factory.autocomplete(options={"issue": "AB"}, focused="issue")
    )
    assert still == {"type": 8, "data": {"choices": []}}


async def test_autocomplete_survives_a_closed_database(gateway: Harness) -> None:
    """A failing database read degrades to no choices, never to a 500."""
    await gateway.install()
    await gateway.cache("projects", "all", ["ABC"])
    await gateway.db.close()
    answer = await gateway.answer(
        gateway.factory.autocomplete(options={"project": "a"}, focused="project")
    )
    assert answer == {"type": 8, "data": {"choices": []}}


async def test_create_opens_a_prefilled_modal(gateway: Harness, spec_valid: SpecCheck) -> None:
    """/jira create answers a modal (9) prefilled from its options and the cached projects."""
    await gateway.install()
    await gateway.cache(
        "projects", "all", [{"key": "ABC", "name": "Alpha"}, {"key": "OPS", "name": "Ops"}]
    )
    body = gateway.factory.slash(subcommand="create", options={"summary": "Printer on fire"})
    answer = await gateway.answer(body)
    spec_valid("ModalInteractionCallbackRequest", answer)
    data = answer["data"]
    assert answer["type"] == 9 and data["custom_id"] == "create-issue"
    fields = {c["component"]["custom_id"]: c["component"] for c in data["components"]}
    assert all(c["type"] == 18 for c in data["components"])
    assert fields["summary"]["value"] == "Printer on fire"
    project = fields["project"]
    assert project["type"] == 3  # a select of the cached projects
    assert [o["value"] for o in project["options"] if o.get("default")] == ["OPS"]  # guild default
    assert await gateway.published() == 0


async def test_comment_without_text_opens_a_modal(gateway: Harness, spec_valid: SpecCheck) -> None:
    """/jira comment ABC-1 with no text asks for it in a modal bound to the issue."""
    answer = await gateway.answer(
        gateway.factory.slash(subcommand="comment", options={"issue": "abc-1"})
    )
    spec_valid("ModalInteractionCallbackRequest", answer)
    assert answer["data"]["custom_id"] == "comment:ABC-1"
    assert await gateway.published() == 0


async def test_comment_by_key_option_opens_the_modal(gateway: Harness) -> None:
    """The registered option is ``key``; the form opens the same way."""
    answer = await gateway.answer(
        gateway.factory.slash(subcommand="comment", options={"key": "abc-2"})
    )
    assert answer["type"] == 9 and answer["data"]["custom_id"] == "comment:ABC-2"


async def test_comment_button_opens_the_comment_modal(
    gateway: Harness, spec_valid: SpecCheck
) -> None:
    """The "Comment" button on a notification: the gateway answers with the form itself."""
    answer = await gateway.answer(gateway.factory.component("comment:ABC-7"))
    spec_valid("ModalInteractionCallbackRequest", answer)
    assert answer["data"]["custom_id"] == "comment:ABC-7"
    assert await gateway.published() == 0


async def test_add_to_issue_opens_a_form_with_the_message_text(
    gateway: Harness, spec_valid: SpecCheck
) -> None:
    """*Add to Jira issue*: a form for the issue key, the message text editable as the comment."""
    body = gateway.factory.message_command(
        "Add to Jira issue", content="Seen again on Safari 17", message_id="1300000000000000777"
    )
    answer = await gateway.answer(body)
    spec_valid("ModalInteractionCallbackRequest", answer)
    assert answer["data"]["custom_id"] == "add-to-issue:1300000000000000777"
    inputs = {c["component"]["custom_id"]: c["component"] for c in answer["data"]["components"]}
    assert inputs["text"]["value"] == "Seen again on Safari 17"
    assert "value" not in inputs["issue"]
    assert await gateway.published() == 0


async def test_subscriptions_list_is_public(gateway: Harness) -> None:
    """/jira subscriptions shows the channel's subscriptions to the channel."""
    await gateway.install()
    answer = await gateway.answer(gateway.factory.slash(subcommand="subscriptions"))
    assert answer == {"type": 5}
    [event] = await gateway.take(JIRA_COMMANDS)
    assert event.data["command"]["subcommand"] == "subscriptions"


async def _draft(gateway: Harness, *, user_id: str | None = None) -> str:
    draft = await gateway.repos.drafts.put(
        client_key=SITE,
        discord_user_id=user_id or gateway.factory.user_id,
        payload={
            "summary": "Checkout returns 500",
            "description": "Since 09:00, see thread",
            "project": "ABC",
            "issuetype": "Bug",
        },
        ttl=timedelta(minutes=10),
    )
    return str(draft.id)


async def test_review_button_opens_the_draft_in_a_modal(
    gateway: Harness, spec_valid: SpecCheck
) -> None:
    """ "Review and create" answers a modal prefilled from the stored draft; nothing published."""
    await gateway.install()
    draft_id = await _draft(gateway)
    answer = await gateway.answer(gateway.factory.component(f"draft-review:{draft_id}"))
    spec_valid("ModalInteractionCallbackRequest", answer)
    assert answer["type"] == 9
    assert answer["data"]["custom_id"] == f"draft-create:{draft_id}"
    fields = {c["component"]["custom_id"]: c["component"] for c in answer["data"]["components"]}
    assert fields["summary"]["value"] == "Checkout returns 500"
    assert fields["description"]["value"] == "Since 09:00, see thread"
    assert fields["project"]["value"] == "ABC"  # no cached projects: a text input
    assert fields["issuetype"]["value"] == "Bug"
    assert await gateway.published() == 0
    assert await gateway.repos.drafts.get(draft_id, discord_user_id=gateway.factory.user_id)


async def test_expired_draft_gets_an_ephemeral_message(gateway: Harness) -> None:
    """A draft past its expiry is answered "expired, try again" (4, flags 64)."""
    await gateway.install()
    draft_id = await _draft(gateway)
    gateway.clock.advance(11 * 60)
    answer = await gateway.answer(gateway.factory.component(f"draft-review:{draft_id}"))
    assert answer["type"] == 4 and answer["data"]["flags"] == 64
    assert "expired" in answer["data"]["content"]
    assert await gateway.published() == 0


async def test_someone_elses_draft_is_not_shown(gateway: Harness) -> None:
    """A draft of another user reads as absent: the expired message, not their text."""
    await gateway.install()
    draft_id = await _draft(gateway, user_id="1300000000000000555")
    answer = await gateway.answer(gateway.factory.component(f"draft-review:{draft_id}"))
    assert answer["type"] == 4 and "Checkout" not in json.dumps(answer)


@pytest.mark.parametrize("shape", ["label", "action_row"])
async def test_modal_submit_is_published(gateway: Harness, shape: str) -> None:
    """A modal submit (both shapes) is deferred ephemeral and published with its fields."""
    await gateway.install()
    body = gateway.factory.modal_submit(
        "draft-create:abc123",
        {"summary": "Checkout 500", "description": "", "project": ["ABC"]},
        shape="label" if shape == "label" else "action_row",
    )
    assert await gateway.answer(body) == {"type": 5, "data": {"flags": 64}}
    [event] = await gateway.take(JIRA_COMMANDS)
    assert event.type == DISCORD_MODAL_SUBMIT and event.tenant == SITE
    assert event.data["modal"] == {
        "custom_id": "draft-create:abc123",
        "fields": {"summary": "Checkout 500", "description": "", "project": ["ABC"]},
    }


async def test_publish_failure_is_503(gateway: Harness) -> None:
    """When the bus refuses the publish the answer is 503, not a deferred promise."""
    await gateway.bus.close()
    response = await gateway.post(gateway.factory.slash(subcommand="search"))
    assert response.status == 503


async def test_publish_past_its_deadline_is_503_and_never_published(
    start_gateway: HarnessFactory, make_environ: Callable[..., dict[str, str]]
) -> None:
    """A bus file locked past the publish timeout: 503 in time, and no late event after.

    Discord shows "interaction failed" for the 503; an event published later anyway would
    make a worker answer a follow-up nobody waits for. The same interaction, sent again once
    the bus is free, is accepted (the refused one was not remembered as seen).
    """
    gateway = await start_gateway(environ=make_environ(DFJ_GATEWAY_PUBLISH_TIMEOUT_SECONDS="0.2"))
    body = gateway.factory.slash(subcommand="search")
    other = sqlite3.connect(gateway.bus.path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")  # another process is writing, and keeps at it
    try:
        started = time.monotonic()
        response = await gateway.post(body)
        assert response.status == 503
        assert await response.json() == {"error": "temporarily unavailable"}
        assert time.monotonic() - started < 2.0
    finally:
        other.execute("ROLLBACK")
        other.close()
    await asyncio.sleep(0.1)  # a publish still queued would be committed by now
    assert await gateway.published() == 0
    assert (await gateway.post(body)).status == 200
    [event] = await gateway.take(JIRA_COMMANDS)
    assert event.data["interaction_id"] == body["id"]


async def test_interaction_token_never_logged(
    gateway: Harness, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """No log line (ours or aiohttp's) shows an interaction token, accepted or refused."""
    caplog.set_level(logging.DEBUG)
    await gateway.install()
    bodies = [
        gateway.factory.slash(subcommand="link"),
        gateway.factory.component("issue:watch:ABC-1"),
        gateway.factory.modal_submit("create-issue", {"summary": "x"}),
        gateway.factory.message_command(),
    ]
    for body in bodies:
        assert (await gateway.post(body)).status == 200
    refused = gateway.factory.slash(subcommand="link")
    assert (await gateway.post(refused, headers={"X-Signature-Ed25519": "ab" * 64})).status == 401
    captured = capsys.readouterr()
    logged = caplog.text + captured.out + captured.err
    assert "request" in logged  # the canonical request lines were captured
    for body in [*bodies, refused]:
        assert body["token"] not in logged
