"""The pure half: parsing interactions, the routing tables, answers and event data."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from dfj_common.bus.topology import JIRA_COMMANDS, LINKER
from dfj_common.envelope import deterministic_id
from dfj_gateway.discord import interactions as ix
from dfj_gateway.discord import responses as rs
from dfj_gateway.events import DISCORD_COMMAND, DISCORD_COMPONENT, DISCORD_MODAL_SUBMIT
from dfj_sandbox.discord_signing import InteractionFactory

SpecCheck = Callable[[str, Mapping[str, Any]], None]


@pytest.fixture(name="factory")
def _factory() -> InteractionFactory:
    return InteractionFactory(clock=lambda: 1_750_000_000.0)


def _classify(body: dict[str, Any]) -> ix.Action:
    return ix.classify(ix.parse_interaction(body))


@pytest.mark.parametrize(
    ("subcommand", "queue"),
    [
        ("link", LINKER),
        ("unlink", LINKER),
        ("connect", LINKER),
        ("privacy", LINKER),
        ("issue", JIRA_COMMANDS),
        ("search", JIRA_COMMANDS),
        ("assign", JIRA_COMMANDS),
        ("transition", JIRA_COMMANDS),
        ("comment", JIRA_COMMANDS),
        ("watch", JIRA_COMMANDS),
        ("subscribe", JIRA_COMMANDS),
    ],
)
def test_command_routing_table(factory: InteractionFactory, subcommand: str, queue: str) -> None:
    """Linking, connecting and privacy go to the linker; the Jira commands to jira-commands."""
    options = {"text": "looks good", "issue": "ABC-1"} if subcommand == "comment" else {}
    action = _classify(factory.slash(subcommand=subcommand, options=options))
    assert action == ix.Publish(
        queue, DISCORD_COMMAND, ephemeral=ix.COMMAND_ROUTES[subcommand].ephemeral
    )


def test_privacy_group_routes_by_group(factory: InteractionFactory) -> None:
    """``/jira privacy export`` (a group with a subcommand) is routed by its group: linker."""
    body = factory.slash(group="privacy", subcommand="export")
    assert _classify(body) == ix.Publish(LINKER, DISCORD_COMMAND, ephemeral=True)
    command = ix.parse_command(ix.parse_interaction(body))
    assert (command.group, command.subcommand) == ("privacy", "export")


def test_personal_answers_are_ephemeral() -> None:
    """Everything but channel subscriptions answers only the user who asked."""
    public = {name for name, route in ix.COMMAND_ROUTES.items() if not route.ephemeral}
    assert public == {"subscribe", "unsubscribe", "subscriptions"}


@pytest.mark.parametrize(
    ("body_args", "expected"),
    [
        ({"subcommand": "help"}, ix.Reply(ix.HELP)),
        ({"subcommand": "dance"}, ix.Reply(ix.UNKNOWN_COMMAND)),
        ({}, ix.Reply(ix.UNKNOWN_COMMAND)),
        ({"name": "other"}, ix.Reply(ix.UNKNOWN_COMMAND)),
    ],
)
def test_help_and_unknown_commands(
    factory: InteractionFactory, body_args: dict[str, Any], expected: ix.Action
) -> None:
    """Help, unknown subcommands, a bare /jira and foreign commands get the help message."""
    assert _classify(factory.slash(**body_args)) == expected


def test_commands_in_dms_get_help() -> None:
    """Without a guild there is no Jira site: any command is answered with DM help."""
    dm = InteractionFactory(guild_id=None)
    assert _classify(dm.slash(subcommand="link")) == ix.Reply(ix.DM_HELP)
    assert _classify(dm.message_command()) == ix.Reply(ix.DM_HELP)


def test_create_opens_a_form_prefilled_from_options(factory: InteractionFactory) -> None:
    """/jira create opens the create form with the options the user already gave."""
    body = factory.slash(subcommand="create", options={"project": "abc", "summary": " Crash "})
    assert _classify(body) == ix.OpenForm("create", {"project": "abc", "summary": "Crash"})


def test_comment_without_text_opens_a_form(factory: InteractionFactory) -> None:
    """/jira comment KEY without text opens the comment form; with text it is deferred."""
    assert _classify(factory.slash(subcommand="comment", options={"issue": "abc-7"})) == (
        ix.OpenForm("comment", {"issue": "ABC-7"})
    )
    with_text = factory.slash(subcommand="comment", options={"issue": "ABC-7", "text": "hi"})
    assert isinstance(_classify(with_text), ix.Publish)


def test_message_command_keeps_text_but_not_the_author(factory: InteractionFactory) -> None:
    """Create issue from message: deferred ephemeral, message id and text kept, author dropped."""
    body = factory.message_command(content="Login fails with SSO", message_id="1300000000000000777")
    interaction = ix.parse_interaction(body)
    assert ix.classify(interaction) == ix.Publish(JIRA_COMMANDS, DISCORD_COMMAND, ephemeral=True)
    data = ix.event_data(interaction)
    assert data["message"] == {"id": "1300000000000000777", "text": "Login fails with SSO"}
    assert "bob_reporter" not in json.dumps(data)


def test_unknown_message_command(factory: InteractionFactory) -> None:
    """A message command we do not know gets the help message."""
    assert _classify(factory.message_command(name="Translate")) == ix.Reply(ix.UNKNOWN_COMMAND)


def test_components_route_by_custom_id_namespace(factory: InteractionFactory) -> None:
    """Clicks are deferred updates; link/privacy namespaces go to the linker."""
    assert _classify(factory.component("issue:watch:ABC-1")) == ix.Publish(
        JIRA_COMMANDS, DISCORD_COMPONENT, update=True
    )
    assert _classify(factory.component("privacy:erase:confirm")) == ix.Publish(
        LINKER, DISCORD_COMPONENT, update=True
    )


def test_review_button_reads_the_draft(factory: InteractionFactory) -> None:
    """The "Review and create" button asks for the draft, it publishes nothing."""
    assert _classify(factory.component("draft-review:d1")) == ix.ReviewDraft("d1")


@pytest.mark.parametrize("shape", ["label", "action_row"])
def test_modal_submit_both_shapes(factory: InteractionFactory, shape: str) -> None:
    """Label-wrapped and legacy Action Row submits give the same field values."""
    body = factory.modal_submit(
        "create-issue",
        {"summary": "Crash", "description": "On save", "project": ["ABC"]},
        shape="label" if shape == "label" else "action_row",
    )
    interaction = ix.parse_interaction(body)
    assert ix.classify(interaction) == ix.Publish(
        JIRA_COMMANDS, DISCORD_MODAL_SUBMIT, ephemeral=True
    )
    assert ix.event_data(interaction)["modal"] == {
        "custom_id": "create-issue",
        "fields": {"summary": "Crash", "description": "On save", "project": ["ABC"]},
    }


def test_modal_fields_skip_display_components_and_keep_checkboxes() -> None:
    """Text Displays carry nothing; a checkbox's boolean value is kept."""
    fields = ix.modal_field_values(
        [
            {"type": 10, "id": 1, "content": "Read me"},
            {"type": 18, "id": 2, "component": {"type": 23, "custom_id": "notify", "value": True}},
            "junk",
            {"type": 1, "components": [{"type": 4, "custom_id": "title", "value": "T"}]},
        ]
    )
    assert fields == {"notify": True, "title": "T"}


def test_autocomplete_sources(factory: InteractionFactory) -> None:
    """Autocomplete reads the cache entry of the focused option (issue types per project)."""
    projects = factory.autocomplete(options={"project": "ab"}, focused="project")
    assert _classify(projects) == ix.Suggest(ix.CacheRef("projects", "all"), "ab")
    types = factory.autocomplete(options={"project": "abc", "type": "bu"}, focused="type")
    assert _classify(types) == ix.Suggest(ix.CacheRef("issuetypes", "ABC"), "bu")
    other = factory.autocomplete(options={"colour": "r"}, focused="colour")
    assert _classify(other) == ix.Suggest(None, "r")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "interaction is not a JSON object"),
        ({"type": "2"}, "interaction has no integer type"),
        ({"type": True}, "interaction has no integer type"),
        ({"type": 6}, "unknown interaction type"),
        ({"type": 99}, "unknown interaction type"),
        ({"type": 2, "token": "t", "data": {}}, "interaction lacks an id"),
        ({"type": 2, "id": "1\n", "token": "t", "data": {}}, "interaction lacks an id"),
        ({"type": 2, "id": "1²", "token": "t", "data": {}}, "interaction lacks an id"),
        ({"type": 2, "id": "1" * 33, "token": "t", "data": {}}, "interaction lacks an id"),
        ({"type": 2, "id": "", "token": "t", "data": {}}, "interaction lacks an id"),
        ({"type": 2, "id": "1", "data": {}}, "interaction lacks a token"),
        ({"type": 2, "id": "1", "token": "t"}, "interaction lacks data"),
    ],
)
def test_malformed_interactions(body: Any, reason: str) -> None:
    """Bodies that are not interactions we know are refused with a reason."""
    with pytest.raises(ix.MalformedInteraction) as caught:
        ix.parse_interaction(body)
    assert caught.value.reason == reason


@pytest.mark.parametrize("bad", ["٣٤", "12\n", "1" * 33, "", "-1"])
def test_ids_that_are_not_snowflakes_are_dropped(factory: InteractionFactory, bad: str) -> None:
    """A guild or channel id that is not plain ASCII digits is not kept (as if absent)."""
    body = factory.slash(subcommand="search")
    body["guild_id"] = body["guild"]["id"] = bad
    body["channel_id"] = body["channel"]["id"] = bad
    interaction = ix.parse_interaction(body)
    assert (interaction.guild_id, interaction.channel_id) == (None, None)


def test_publishing_needs_a_user(factory: InteractionFactory) -> None:
    """A component click naming no user cannot be acted on: malformed."""
    body = factory.component("issue:watch:ABC-1")
    del body["member"]
    with pytest.raises(ix.MalformedInteraction, match="no user"):
        _classify(body)


def test_event_data_has_ids_not_people(factory: InteractionFactory) -> None:
    """Event data keeps ids, options, roles, permissions, locales and the token; no names."""
    body = factory.slash(subcommand="issue", options={"key": "ABC-1", "private": True})
    interaction = ix.parse_interaction(body)
    envelope = ix.build_envelope(interaction, DISCORD_COMMAND, tenant="site", now=1_750_000_000.0)
    data = dict(envelope.data)
    assert data["command"] == {
        "id": "1300000000000000100",
        "name": "jira",
        "type": 1,
        "group": None,
        "subcommand": "issue",
        "options": {"key": "ABC-1", "private": True},
        "target_id": None,
    }
    assert data["token"] == body["token"]
    assert data["user_id"] == factory.user_id and data["roles"] == list(factory.roles)
    assert data["permissions"] == factory.permissions
    assert (data["locale"], data["guild_locale"]) == ("en-US", "en-GB")
    raw = envelope.encode().decode()
    for private in (factory.username, "Alice", "a_1269e74af4df7417b13759eae50c83dc", "general"):
        assert private not in raw
    again = ix.build_envelope(interaction, DISCORD_COMMAND, tenant=None, now=0.0)
    assert again.id == envelope.id  # derived from the interaction id: the bus dedupes


def test_event_ids_follow_the_snowflakes_time() -> None:
    """An interaction's event id leads with its snowflake's time (Discord epoch 2015), so ids
    of later interactions sort after earlier ones; a digit string too large for a snowflake
    still gets a stable id."""
    # 175928847299117063 is Discord's documented example: 2016-04-30 11:18:25.796 UTC.
    made = ix.interaction_event_id("175928847299117063")
    assert uuid.UUID(made).int >> 80 == 1_462_015_105_796
    assert made == ix.interaction_event_id("175928847299117063")
    later = [ix.interaction_event_id(str(1300000000000000000 + (n << 22))) for n in range(50)]
    assert later == sorted(later)
    huge = "9" * 32
    assert ix.interaction_event_id(huge) == deterministic_id("discord-interaction", huge)


def test_filter_choices_prefix_first_and_at_most_25() -> None:
    """Matching is case-insensitive on name or value, prefixes first, 25 at most."""
    many = [rs.Choice(f"P{i} — Project {i}", f"P{i}") for i in range(40)]
    assert len(rs.filter_choices(many, "")) == 25
    found = rs.filter_choices(
        [rs.Choice("XAB — Other", "XAB"), rs.Choice("ABC — Alpha", "ABC")], "ab"
    )
    assert [c.value for c in found] == ["ABC", "XAB"]
    assert rs.filter_choices(many, "nomatch") == []


def test_choices_from_cache_are_lenient() -> None:
    """Cache values in each documented shape become choices; junk entries are skipped."""
    projects = [{"key": "ABC", "name": "Alpha"}, "XYZ", {"name": "no key"}, 7, {"key": "ABC"}]
    assert [c.to_json() for c in rs.choices_from_cache("projects", projects)] == [
        {"name": "ABC — Alpha", "value": "ABC"},
        {"name": "XYZ", "value": "XYZ"},
    ]
    types = [{"id": "10001", "name": "Bug"}, {"name": "Task"}]
    assert [c.value for c in rs.choices_from_cache("issuetypes", types)] == ["10001", "Task"]
    assert rs.choices_from_cache("recent-issues", {"not": "a list"}) == []
    long_name = rs.choices_from_cache("projects", [{"key": "K", "name": "n" * 300}])
    assert len(long_name[0].name) == 100


def test_answers_match_the_spec(spec_valid: SpecCheck) -> None:
    """Every answer shape the gateway sends validates against Discord's OpenAPI spec."""
    spec_valid("PongInteractionCallbackRequest", rs.PONG)
    spec_valid("CreateMessageInteractionCallbackRequest", rs.deferred_message(ephemeral=True))
    spec_valid("CreateMessageInteractionCallbackRequest", rs.deferred_message(ephemeral=False))
    spec_valid("CreateMessageInteractionCallbackRequest", rs.ephemeral_message(ix.HELP))
    spec_valid("UpdateMessageInteractionCallbackRequest", rs.deferred_update())
    spec_valid("ApplicationCommandAutocompleteCallbackRequest", rs.autocomplete_result([]))
    projects = [rs.Choice("ABC — Alpha", "ABC"), rs.Choice("XYZ — Zed", "XYZ")]
    for modal in (
        rs.create_issue_modal(
            custom_id="create-issue", title="Create a Jira issue", prefill={}, projects=projects
        ),
        rs.create_issue_modal(
            custom_id="draft-create:" + "d" * 24,
            title="Review and create",
            prefill={"summary": "s" * 300, "description": "d" * 5000, "project": "ABC"},
        ),
        rs.comment_modal(custom_id="comment:ABC-1", issue_key="ABC-1"),
    ):
        spec_valid("ModalInteractionCallbackRequest", modal)
        assert 1 <= len(modal["data"]["components"]) <= 5  # the docs' limit, not the spec's 40
    assert len(rs.ephemeral_message("x" * 3000)["data"]["content"]) == 2000


def _bodies(factory: InteractionFactory) -> list[dict[str, Any]]:
    dm = InteractionFactory(clock=lambda: 1_750_000_000.0, guild_id=None)
    return [
        factory.ping(),
        factory.slash(subcommand="issue", options={"key": "ABC-1", "private": True}),
        factory.slash(group="privacy", subcommand="export"),
        factory.message_command(),
        factory.component("issue:watch:ABC-1"),
        factory.component("pick:1", component_type=3, values=["a", "b"]),
        factory.autocomplete(options={"project": "ab"}, focused="project"),
        factory.modal_submit("create-issue", {"summary": "Crash", "labels": ["a"]}),
        factory.modal_submit("comment:ABC-1", {"text": "hi"}, shape="action_row"),
        dm.slash(subcommand="link"),
    ]


def test_decoding_the_bytes_reads_what_parsing_the_dict_reads(factory: InteractionFactory) -> None:
    """The route decodes raw bytes straight into the fields it reads; that gives the same
    interaction, and the same event, as parsing the decoded dict."""
    for body in _bodies(factory):
        raw = json.dumps(body).encode()
        decoded, parsed = ix.decode_interaction(raw), ix.parse_interaction(body)
        assert decoded == parsed
        assert decoded.token == parsed.token and decoded.data == parsed.data  # repr/compare off
        action = ix.classify(decoded)
        assert action == ix.classify(parsed)
        if isinstance(action, ix.Publish):
            made = [
                ix.build_envelope(i, action.event_type, tenant="t", now=1.0).encode()
                for i in (decoded, parsed)
            ]
            assert made[0] == made[1]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b'{"type": 2,}', "body is not JSON"),
        (b'{"type": 2} trailing', "body is not JSON"),
        (b'{"type": 2, "token": "\xff"}', "body is not JSON"),  # a field we read: UTF-8 checked
        (b'{"type": 2, "token": "\\ud800"}', "body is not JSON"),  # a lone surrogate
        (b'{"type": 2, "data": {"x": [' + b"[" * 5_000 + b"]" * 5_000 + b"]}}", "body is not JSON"),
    ],
)
def test_bytes_that_are_not_json(raw: bytes, reason: str) -> None:
    with pytest.raises(ix.MalformedJson) as caught:
        ix.decode_interaction(raw)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[]", "interaction is not a JSON object"),
        (b'"ping"', "interaction is not a JSON object"),
        (b"null", "interaction is not a JSON object"),
        (b'{"type": "2"}', "interaction has no integer type"),
        (b'{"type": true}', "interaction has no integer type"),
        (
            b'{"type": 1e400}',
            "interaction has a malformed field: Number out of range - at `$.type`",
        ),
        (b'{"type": ' + b"9" * 40 + b"}", "unknown interaction type"),
        (
            b'{"type": 2, "id": "1", "token": "t", "data": {}, "member": 5}',
            "interaction has a malformed field: "
            "Expected `object | null`, got `int` - at `$.member`",
        ),
        (
            b'{"type": 2, "id": "1", "token": "t", "data": {}, "member": {"user": []}}',
            "interaction has a malformed field: "
            "Expected `object | null`, got `array` - at `$.member.user`",
        ),
        (b'{"type": 2, "id": "1", "token": "t", "data": []}', "interaction lacks data"),
    ],
)
def test_decoded_bodies_that_are_not_interactions(raw: bytes, reason: str) -> None:
    """The reasons are those of the dict parser; an object where an object must be names its
    path (never a value)."""
    with pytest.raises(ix.MalformedInteraction) as caught:
        ix.decode_interaction(raw)
    assert not isinstance(caught.value, ix.MalformedJson)
    assert caught.value.reason == reason


def test_fields_we_do_not_read_are_skipped_whatever_they_hold(factory: InteractionFactory) -> None:
    """Discord adds fields over time; one we do not read never makes a body malformed, even
    with bytes we would refuse in a field we read."""
    body = factory.slash(subcommand="search")
    raw = json.dumps(body).encode()[:-1] + b', "new_thing": {"a": [1e999, "\xff"]}}'
    assert ix.decode_interaction(raw) == ix.parse_interaction(body)


def test_integers_beyond_64_bits_never_reach_the_event(factory: InteractionFactory) -> None:
    """JSON integers decode whole; one too long for the event (an option value, a context, a
    command type) is dropped, and a component type that long is refused."""
    huge = 10**30
    body = factory.slash(subcommand="issue", options={"key": "ABC-1", "count": 1})
    body["context"] = huge
    body["data"]["type"] = huge
    body["data"]["options"][0]["options"][1]["value"] = huge
    interaction = ix.decode_interaction(json.dumps(body).encode())
    action = ix.classify(interaction)
    assert isinstance(action, ix.Publish)
    envelope = ix.build_envelope(
        interaction, action.event_type, tenant=None, now=1.0, detail=action.detail
    )
    data = json.loads(envelope.encode())["data"]
    assert data["context"] is None and data["command"]["type"] == 1
    assert data["command"]["options"] == {"key": "ABC-1", "count": None}
    click = factory.component("issue:watch:ABC-1", component_type=huge)
    with pytest.raises(ix.MalformedInteraction, match="component_type"):
        ix.classify(ix.decode_interaction(json.dumps(click).encode()))
