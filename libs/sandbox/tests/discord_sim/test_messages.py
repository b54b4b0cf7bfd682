"""Create and edit messages: Discord's shapes, limits, nonce deduplication, permissions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dfj_common.clock import ManualClock
from dfj_sandbox.discord_sim import DiscordSimulator, Guild
from dfj_sandbox.discord_sim.permissions import SEND_MESSAGES, VIEW_CHANNEL

if TYPE_CHECKING:
    from libs.sandbox.tests.discord_sim.conftest import Api

EMBED = {"title": "DEMO-1 Export crashes", "description": "On Safari 17", "color": 0x0052CC}
ROW: dict[str, Any] = {
    "type": 1,
    "components": [
        {"type": 2, "style": 1, "custom_id": "assign-me:DEMO-1", "label": "Assign to me"},
        {
            "type": 2,
            "style": 5,
            "url": "https://example.atlassian.net/browse/DEMO-1",
            "label": "Open",
        },
    ],
}


def _errors(body: Any) -> Any:
    assert body["code"] == 50035, body
    assert body["message"] == "Invalid Form Body"
    return body["errors"]


async def test_create_message_answers_discords_message_object(
    api: Api, sim: DiscordSimulator, general: str
) -> None:
    """The answer is a full message: id, author = the bot, normalised embeds and components."""
    answer = await api.post_message(
        general, {"content": "New issue", "embeds": [EMBED], "components": [ROW]}
    )
    assert answer.status == 200
    body = answer.body
    assert body["channel_id"] == general
    assert body["author"]["id"] == sim.application.id
    assert body["author"]["bot"] is True
    assert body["embeds"][0]["type"] == "rich"
    buttons = body["components"][0]["components"]
    assert [b["id"] for b in [body["components"][0], *buttons]] == [1, 2, 3]
    assert body["edited_timestamp"] is None
    stored = sim.messages(general)
    assert [m.id for m in stored] == [body["id"]]
    assert stored[0].custom_ids() == {"assign-me:DEMO-1": 2}


async def test_messages_are_kept_in_order(api: Api, sim: DiscordSimulator, general: str) -> None:
    """``sim.messages`` lists a channel's messages in the order they were accepted."""
    for text in ("one", "two", "three"):
        assert (await api.post_message(general, {"content": text})).status == 200
    assert [m.content for m in sim.messages(general)] == ["one", "two", "three"]


async def test_content_over_2000_is_refused_per_the_docs(
    api: Api, sim: DiscordSimulator, general: str
) -> None:
    """The spec allows 4000 characters; the docs (and the simulator) 2000."""
    assert (
        sim.spec.check_body(
            "POST", "/channels/{channel_id}/messages", {"content": "x" * 2001}, corrected=False
        )
        == []
    )
    answer = await api.post_message(general, {"content": "é" * 2001})
    assert answer.status == 400
    assert _errors(answer.body) == {
        "content": {
            "_errors": [
                {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}
            ]
        }
    }
    assert (await api.post_message(general, {"content": "é" * 2000})).status == 200
    violation = sim.spec_violations[0]
    assert (violation.operation_id, violation.errors[0].path) == ("create_message", ("content",))


async def test_eleven_embeds_and_a_long_title_are_refused(api: Api, general: str) -> None:
    """Spec limits: at most 10 embeds, titles of at most 256 characters."""
    answer = await api.post_message(general, {"embeds": [EMBED] * 11})
    assert "embeds" in _errors(answer.body)
    answer = await api.post_message(general, {"embeds": [{"title": "t" * 257}]})
    assert _errors(answer.body)["embeds"]["0"]["title"]["_errors"][0]["code"] == (
        "BASE_TYPE_MAX_LENGTH"
    )


async def test_embed_text_over_6000_in_total_is_refused(api: Api, general: str) -> None:
    """Each embed within its limits, but together over 6000 characters."""
    embeds = [{"title": "t" * 200, "description": "d" * 1001} for _ in range(5)]
    answer = await api.post_message(general, {"embeds": embeds})
    assert answer.status == 400
    assert _errors(answer.body)["embeds"]["_errors"][0]["code"] == "MAX_EMBED_SIZE_EXCEEDED"
    embeds[0]["description"] = "d" * 996
    assert (await api.post_message(general, {"embeds": embeds})).status == 200


async def test_legacy_component_layout_rules(api: Api, general: str) -> None:
    """Six rows, a select beside a button, a duplicate custom_id: each is refused."""
    answer = await api.post_message(general, {"components": [ROW] * 6})
    assert "components" in _errors(answer.body)
    select = {
        "type": 3,
        "custom_id": "transition:DEMO-1",
        "options": [{"label": "Done", "value": "31"}],
    }
    mixed = {"type": 1, "components": [select, ROW["components"][0]]}
    answer = await api.post_message(general, {"components": [mixed]})
    assert _errors(answer.body)["components"]["0"]["components"]["_errors"][0]["code"] == (
        "COMPONENT_LAYOUT_WIDTH_EXCEEDED"
    )
    twice = {"type": 1, "components": [ROW["components"][0], ROW["components"][0]]}
    answer = await api.post_message(general, {"components": [twice]})
    assert "COMPONENT_CUSTOM_ID_DUPLICATED" in str(answer.body)
    alone = await api.post_message(general, {"components": [{"type": 1, "components": [select]}]})
    assert alone.status == 200
    assert alone.body["components"][0]["components"][0]["min_values"] == 1


async def test_a_button_without_style_names_the_field(api: Api, general: str) -> None:
    """The error points at the button of the Action Row variant, not another union branch."""
    row = {"type": 1, "components": [{"type": 2, "custom_id": "x", "label": "L"}]}
    answer = await api.post_message(general, {"components": [row]})
    errors = _errors(answer.body)
    assert errors["components"]["0"]["components"]["0"]["style"]["_errors"][0]["code"] == (
        "BASE_TYPE_REQUIRED"
    )


async def test_an_empty_message_is_refused(api: Api, general: str) -> None:
    """Nothing to show: 50006."""
    answer = await api.post_message(general, {"content": "", "embeds": []})
    assert answer.status == 400
    assert answer.body == {"code": 50006, "message": "Cannot send an empty message"}


async def test_allowed_mentions_parse_and_ids_are_exclusive(api: Api, general: str) -> None:
    """``parse: ["users"]`` with ``users: [...]`` is refused."""
    mentions = {"parse": ["users"], "users": ["1"]}
    answer = await api.post_message(general, {"content": "hi", "allowed_mentions": mentions})
    assert "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE" in str(answer.body)
    ok = await api.post_message(general, {"content": "hi", "allowed_mentions": {"parse": []}})
    assert ok.status == 200


async def test_enforced_nonce_returns_the_existing_message(
    api: Api, sim: DiscordSimulator, general: str
) -> None:
    """A retried create with the same nonce posts nothing new and answers the first message."""
    body = {"content": "DEMO-1 created", "nonce": "evt-1:sub-1", "enforce_nonce": True}
    first = await api.post_message(general, body)
    second = await api.post_message(general, {**body, "content": "changed on retry"})
    assert first.status == second.status == 200
    assert second.body["id"] == first.body["id"]
    assert second.body["content"] == "DEMO-1 created"
    assert len(sim.messages(general)) == 1
    assert sim.nonce_counts(general) == {"evt-1:sub-1": 1}
    assert sim.duplicates() == {}


async def test_nonce_without_enforcement_duplicates(
    api: Api, sim: DiscordSimulator, general: str
) -> None:
    """Without ``enforce_nonce`` Discord posts twice, and the duplicate is detectable."""
    body = {"content": "twice", "nonce": 42}
    await api.post_message(general, body)
    await api.post_message(general, body)
    assert len(sim.messages(general)) == 2
    assert sim.duplicates(general) == {"42": 2}
    assert sim.duplicates() == {f"{general}:42": 2}


async def test_nonce_is_remembered_per_channel_and_for_minutes(
    api: Api, sim: DiscordSimulator, guild: Guild, general: str, clock: ManualClock
) -> None:
    """Another channel, or the same channel after the window, gets a new message."""
    other = guild.add_channel("jira").id
    body = {"content": "x", "nonce": "n", "enforce_nonce": True}
    first = await api.post_message(general, body)
    elsewhere = await api.post_message(other, body)
    assert elsewhere.body["id"] != first.body["id"]
    clock.advance(sim.options.nonce_window + 1)
    later = await api.post_message(general, body)
    assert later.body["id"] != first.body["id"]


async def test_nonce_longer_than_25_characters_is_refused(api: Api, general: str) -> None:
    """The spec's nonce: an int64 or a string of at most 25 characters."""
    answer = await api.post_message(general, {"content": "x", "nonce": "n" * 26})
    assert _errors(answer.body)["nonce"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"


async def test_edit_message_changes_only_what_is_named(
    api: Api, sim: DiscordSimulator, general: str, clock: ManualClock
) -> None:
    """PATCH keeps the other fields and stamps ``edited_timestamp``."""
    created = await api.post_message(general, {"content": "first", "embeds": [EMBED]})
    clock.advance(2)
    answer = await api.call(
        "PATCH", f"/channels/{general}/messages/{created.body['id']}", json={"content": "second"}
    )
    assert answer.status == 200
    assert answer.body["content"] == "second"
    assert answer.body["embeds"][0]["title"] == EMBED["title"]
    assert answer.body["edited_timestamp"] is not None
    assert [m.content for m in sim.messages(general)] == ["second"]


async def test_edit_refusals(api: Api, sim: DiscordSimulator, general: str, alice: Any) -> None:
    """Unknown message 10008; someone else's message 50005; content too long 50035."""
    missing = await api.call("PATCH", f"/channels/{general}/messages/1", json={"content": "x"})
    assert (missing.status, missing.body["code"]) == (404, 10008)
    theirs = sim.add_message(general, alice.id, "I wrote this")
    answer = await api.call(
        "PATCH", f"/channels/{general}/messages/{theirs.id}", json={"content": "x"}
    )
    assert (answer.status, answer.body) == (
        403,
        {"code": 50005, "message": "Cannot edit a message authored by another user"},
    )
    mine = await api.post_message(general, {"content": "ok"})
    too_long = await api.call(
        "PATCH", f"/channels/{general}/messages/{mine.body['id']}", json={"content": "x" * 2001}
    )
    assert too_long.status == 400


async def test_unknown_channel_is_10003(api: Api, guild: Guild) -> None:
    """A channel that does not exist."""
    answer = await api.post_message("123456789012345678", {"content": "x"})
    assert (answer.status, answer.body) == (404, {"code": 10003, "message": "Unknown Channel"})


async def test_permissions_missing_access_and_missing_permissions(
    api: Api, sim: DiscordSimulator, guild: Guild
) -> None:
    """Without VIEW_CHANNEL: 50001; with it but without SEND_MESSAGES: 50013; both count."""
    hidden = guild.add_channel("hidden", deny_bot=VIEW_CHANNEL).id
    readonly = guild.add_channel("announcements", deny_everyone=SEND_MESSAGES).id
    answer = await api.post_message(hidden, {"content": "x"})
    assert (answer.status, answer.body) == (403, {"code": 50001, "message": "Missing Access"})
    answer = await api.post_message(readonly, {"content": "x"})
    assert (answer.status, answer.body) == (403, {"code": 50013, "message": "Missing Permissions"})
    assert sim.invalid_requests == 2
    assert (await api.call("GET", f"/channels/{readonly}")).status == 200


async def test_a_role_overwrite_can_grant_back(api: Api, guild: Guild) -> None:
    """A bot-role allow overrides an @everyone deny (role overwrites come after)."""
    channel = guild.add_channel("ops", deny_everyone=SEND_MESSAGES).id
    bot_role = guild.bot_role
    assert bot_role is not None
    assert (await api.post_message(channel, {"content": "x"})).status == 403
    guild.set_overwrite(channel, bot_role.id, allow=SEND_MESSAGES)
    assert (await api.post_message(channel, {"content": "x"})).status == 200


async def test_a_guild_without_the_bot_is_missing_access(api: Api, sim: DiscordSimulator) -> None:
    """The app was never installed in this guild."""
    elsewhere = sim.add_guild("Globex", bot_permissions=None)
    answer = await api.post_message(elsewhere.channels[0].id, {"content": "x"})
    assert answer.body["code"] == 50001
