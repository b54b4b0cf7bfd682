"""Bulk overwrite and list of application commands, global and per guild."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dfj_sandbox.discord_sim import DiscordSimulator, Guild

if TYPE_CHECKING:
    from libs.sandbox.tests.discord_sim.conftest import Api

JIRA = {
    "name": "jira",
    "description": "Work with Jira",
    "type": 1,
    "options": [
        {
            "type": 1,
            "name": "create",
            "description": "Create an issue",
            "options": [
                {"type": 3, "name": "summary", "description": "Summary", "required": True},
                {"type": 3, "name": "project", "description": "Project", "autocomplete": True},
            ],
        },
        {"type": 1, "name": "connect", "description": "Connect this server"},
    ],
    "default_member_permissions": "0",
    "contexts": [0],
    "integration_types": [0],
}
MENU = {"name": "Create issue from message", "type": 3}


def _commands(sim: DiscordSimulator) -> str:
    return f"/applications/{sim.application.id}/commands"


async def test_bulk_overwrite_stores_and_returns(api: Api, sim: DiscordSimulator) -> None:
    """200 with the stored commands: ids, versions, string permissions, empty menu description."""
    answer = await api.call("PUT", _commands(sim), json=[JIRA, MENU])
    assert answer.status == 200
    jira, menu = answer.body
    assert (jira["name"], jira["default_member_permissions"], jira["contexts"]) == (
        "jira",
        "0",
        [0],
    )
    assert jira["application_id"] == sim.application.id
    assert (menu["type"], menu["description"], menu["default_member_permissions"]) == (3, "", None)
    assert menu["integration_types"] == [0] and menu["contexts"] == [0, 1, 2]
    listed = await api.call("GET", _commands(sim))
    assert listed.body == answer.body
    assert [c["name"] for c in sim.commands()] == ["jira", "Create issue from message"]
    again = await api.call("PUT", _commands(sim), json=[JIRA])
    assert again.body[0]["id"] == jira["id"]
    assert again.body[0]["version"] != jira["version"]
    assert len(sim.commands()) == 1


async def test_default_member_permissions_is_a_string_per_the_docs(
    api: Api, sim: DiscordSimulator
) -> None:
    """The spec wants an integer; the docs (and the simulator) a string bitset."""
    raw = sim.spec.check_body(
        "PUT", "/applications/{application_id}/commands", [JIRA], corrected=False
    )
    assert raw and raw[0].path == (0, "default_member_permissions")
    answer = await api.call("PUT", _commands(sim), json=[{**JIRA, "default_member_permissions": 8}])
    assert answer.status == 400
    assert "default_member_permissions" in answer.body["errors"]["0"]


async def test_documented_command_rules(api: Api, sim: DiscordSimulator) -> None:
    """Upper-case chat names, duplicates, menu descriptions, option order: each refused."""
    cases: list[tuple[list[dict[str, Any]], str]] = [
        ([{**JIRA, "name": "Jira"}], "APPLICATION_COMMAND_INVALID_NAME"),
        ([JIRA, JIRA], "APPLICATION_COMMANDS_DUPLICATE_NAME"),
        ([{**MENU, "description": "no"}], "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION"),
        (
            [
                {
                    "name": "x",
                    "description": "x",
                    "options": [
                        {"type": 3, "name": "a", "description": "a"},
                        {"type": 3, "name": "b", "description": "b", "required": True},
                    ],
                }
            ],
            "APPLICATION_COMMAND_OPTIONS_ORDER_INVALID",
        ),
        ([{"name": "x" * 33, "description": "x"}], "BASE_TYPE_MAX_LENGTH"),
    ]
    for body, code in cases:
        answer = await api.call("PUT", _commands(sim), json=body)
        assert answer.status == 400, body
        assert code in str(answer.body), (code, answer.body)
    assert sim.commands() == []


async def test_guild_commands(api: Api, sim: DiscordSimulator, guild: Guild) -> None:
    """A guild's list is its own; an unknown guild is 10004; another application 50001."""
    path = f"/applications/{sim.application.id}/guilds/{guild.id}/commands"
    answer = await api.call("PUT", path, json=[JIRA])
    assert answer.status == 200
    assert answer.body[0]["guild_id"] == guild.id
    assert sim.commands(guild.id)[0]["name"] == "jira"
    assert sim.commands() == []
    assert (await api.call("GET", path)).body == answer.body
    assert answer.headers["X-RateLimit-Bucket"]
    unknown = await api.call(
        "PUT", f"/applications/{sim.application.id}/guilds/1/commands", json=[]
    )
    assert (unknown.status, unknown.body["code"]) == (404, 10004)
    other = await api.call("GET", "/applications/1/commands")
    assert (other.status, other.body["code"]) == (403, 50001)
