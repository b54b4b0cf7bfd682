"""``dfj discord register-commands`` and ``invite-url``, over real HTTP against the simulator.

The command runs as an operator would run it — ``dfj_common.cli.run`` with the plugins found
through the installed ``dfj.cli`` entry points, in a thread with its own event loop — while the
Discord simulator serves the test's loop on loopback. What Discord stored is read back over
REST (``GET …/commands``) with the bot token.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from dfj_common.cli import PLUGIN_GROUP, load_plugins, run
from dfj_discord_worker import cli as discord_cli
from dfj_discord_worker.command_definitions import definitions
from dfj_discord_worker.permissions import BOT_PERMISSIONS, Permission
from dfj_sandbox.discord_sim import DiscordSimulator, DiscordSpec, Guild, locate_spec
from dfj_sandbox.discord_sim.permissions import DEFAULT_BOT_PERMISSIONS

USER_AGENT: Final = "DiscordBot (https://github.com/example/discord-for-jira, 0.1.0)"
GLOBAL: Final = "/applications/{application_id}/commands"
GUILD: Final = "/applications/{application_id}/guilds/{guild_id}/commands"

# Discord's bits (``topics/permissions``), written out here rather than imported, so the test
# checks the integer against the documented values and not against itself.
EXPECTED_BITS: Final = {
    "VIEW_CHANNEL": 10,
    "SEND_MESSAGES": 11,
    "EMBED_LINKS": 14,
    "READ_MESSAGE_HISTORY": 16,
    "CREATE_PUBLIC_THREADS": 35,
    "SEND_MESSAGES_IN_THREADS": 38,
}
NOT_ASKED: Final = {"ADMINISTRATOR": 3, "ATTACH_FILES": 15, "MANAGE_THREADS": 34}


@dataclass(frozen=True)
class Outcome:
    """What one ``dfj`` run left: exit status, stdout, stderr."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture(name="spec", scope="module")
def _spec() -> DiscordSpec:
    return DiscordSpec.load(locate_spec(environ=os.environ))


@pytest.fixture(name="sim")
async def _sim(spec: DiscordSpec) -> AsyncIterator[DiscordSimulator]:
    async with DiscordSimulator(spec=spec, validate_responses=True) as sim:
        yield sim
        assert sim.spec_violations == []
        assert sim.response_violations == []


@pytest.fixture(name="dfj")
def _dfj(capfd: pytest.CaptureFixture[str]) -> Iterator[Any]:
    async def dfj(environ: dict[str, str], *argv: str) -> Outcome:
        out = io.StringIO()
        capfd.readouterr()
        code = await asyncio.to_thread(
            run, ["discord", *argv], environ=environ, out=out, env_file=None
        )
        return Outcome(code, out.getvalue(), capfd.readouterr().err)

    yield dfj


async def _read_back(sim: DiscordSimulator, guild_id: str | None = None) -> list[dict[str, Any]]:
    """``GET`` the commands as Discord has them."""
    path = (GLOBAL if guild_id is None else GUILD).format(
        application_id=sim.application.id, guild_id=guild_id
    )
    headers = {"Authorization": f"Bot {sim.application.bot_token}", "User-Agent": USER_AGENT}
    async with (
        aiohttp.ClientSession() as http,
        http.get(sim.api_url + path, headers=headers) as answer,
    ):
        assert answer.status == 200
        body: list[dict[str, Any]] = await answer.json()
        return body


def _shape(command: dict[str, Any]) -> tuple[Any, ...]:
    """Name, type, and per subcommand its option names, types and required flags."""
    options = tuple(
        (
            sub["name"],
            tuple((o["name"], o["type"], o.get("required", False)) for o in sub.get("options", [])),
        )
        for sub in command.get("options", [])
    )
    return command["name"], command.get("type", 1), options


async def test_register_globally(sim: DiscordSimulator, dfj: Any) -> None:
    """Every defined command is stored globally, as defined; the summary names them."""
    done = await dfj(sim.environ(), "register-commands")
    assert (done.code, done.err) == (0, "")
    stored = await _read_back(sim)
    wanted = definitions()
    assert [_shape(c) for c in stored] == [_shape(c) for c in wanted]
    assert [c["name"] for c in stored] == ["jira", "Create issue from message", "Add to Jira issue"]
    # Unset on purpose (who may do what is decided per capability at run time): open to all.
    assert [c["default_member_permissions"] for c in stored] == [None, None, None]
    assert all(c["integration_types"] == [0] and c["contexts"] == [0] for c in stored)
    assert sim.count("PUT", GLOBAL, status=200) == 1
    app_id = sim.application.id
    assert done.out.splitlines() == [
        f"registered 3 command(s) globally for application {app_id}:",
        f"  /jira (slash command, {len(wanted[0]['options'])} subcommands)",
        "  Create issue from message (message menu)",
        "  Add to Jira issue (message menu)",
    ]
    assert sim.application.bot_token not in done.text


async def test_register_for_a_guild_and_again(sim: DiscordSimulator, dfj: Any) -> None:
    """``--guild`` overwrites that guild's list only; a second run keeps the command ids."""
    guild = sim.add_guild("Acme")
    done = await dfj(sim.environ(), "register-commands", "--guild", guild.id)
    assert done.code == 0, done.err
    assert done.out.startswith(f"registered 3 command(s) in guild {guild.id} for application ")
    stored = await _read_back(sim, guild.id)
    assert [_shape(c) for c in stored] == [_shape(c) for c in definitions()]
    assert {c["guild_id"] for c in stored} == {guild.id}
    assert [c["default_member_permissions"] for c in stored] == [None, None, None]
    assert await _read_back(sim) == []
    # The global-only fields stay out of a guild's body.
    assert all("contexts" not in c for c in discord_cli.command_body(guild.id))
    again = await dfj(sim.environ(), "register-commands", "--guild", guild.id)
    assert again.code == 0
    assert [c["id"] for c in await _read_back(sim, guild.id)] == [c["id"] for c in stored]
    assert sim.count("PUT", GUILD, status=200) == 2
    assert sim.application.bot_token not in done.text + again.text


async def test_a_wrong_bot_token_registers_nothing(sim: DiscordSimulator, dfj: Any) -> None:
    """401 → a non-zero exit saying the token was refused, without showing any token."""
    wrong = "MTEx.wrong." + "x" * 27
    environ = {**sim.environ(), "DFJ_DISCORD_BOT_TOKEN": wrong}
    done = await dfj(environ, "register-commands")
    assert done.code == 2
    assert done.out == ""
    assert done.err == (
        "dfj: the bot token was refused (401 Unauthorized): check DFJ_DISCORD_BOT_TOKEN\n"
    )
    assert wrong not in done.text and sim.application.bot_token not in done.text
    assert sim.commands() == []
    assert sim.count("PUT", GLOBAL, status=401) == 1  # asked once: a 401 is not retried


async def test_a_missing_setting_is_named_before_calling_discord(
    sim: DiscordSimulator, dfj: Any
) -> None:
    """No bot token (or no application id): the variable is named, Discord is not called."""
    environ = sim.environ()
    del environ["DFJ_DISCORD_BOT_TOKEN"]
    done = await dfj(environ, "register-commands")
    assert (done.code, done.err) == (2, "dfj: missing required setting(s): DFJ_DISCORD_BOT_TOKEN\n")
    del environ["DFJ_DISCORD_APPLICATION_ID"]
    for argv in (("register-commands",), ("invite-url",)):
        done = await dfj(environ, *argv)
        assert done.code == 2
        assert "missing required setting(s): DFJ_DISCORD_APPLICATION_ID" in done.err
    assert sim.calls == []


async def test_refusals_for_a_guild_say_what_to_fix(sim: DiscordSimulator, dfj: Any) -> None:
    """An unknown guild (404) and a guild without the app (403) are told apart."""
    unknown = await dfj(sim.environ(), "register-commands", "--guild", "1234")
    assert (unknown.code, unknown.err) == (2, "dfj: Discord does not know guild 1234 (404)\n")
    outside: Guild = sim.add_guild("Elsewhere", bot_permissions=None)
    denied = await dfj(sim.environ(), "register-commands", "--guild", outside.id)
    assert denied.code == 2
    assert "(403)" in denied.err and f"installed in guild {outside.id}" in denied.err
    assert sim.commands(outside.id) == []


def test_a_guild_id_must_be_a_snowflake(capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed ``--guild`` is a usage error, before any setting is read."""
    with pytest.raises(SystemExit) as exited:
        run(["discord", "register-commands", "--guild", "12ab"], environ={}, out=io.StringIO())
    assert exited.value.code == 2
    assert "'12ab' is not a Discord id" in capsys.readouterr().err


async def test_invite_url_asks_for_exactly_the_needed_permissions(
    sim: DiscordSimulator, dfj: Any
) -> None:
    """client_id, both scopes, and the permission integer checked bit by bit."""
    environ = {"DFJ_DISCORD_APPLICATION_ID": sim.application.id}
    done = await dfj(environ, "invite-url")
    assert (done.code, done.err) == (0, "")
    url = done.out.strip()
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "discord.com", "/oauth2/authorize")
    assert "scope=bot+applications.commands" in parts.query
    query = parse_qs(parts.query, strict_parsing=True)
    assert query.keys() == {"client_id", "scope", "permissions"}
    assert query["client_id"] == [sim.application.id]
    assert query["scope"] == ["bot applications.commands"]
    (raw,) = query["permissions"]
    permissions = int(raw)
    for name, bit in EXPECTED_BITS.items():
        assert permissions & (1 << bit), f"{name} is missing"
    for name, bit in NOT_ASKED.items():
        assert not permissions & (1 << bit), f"{name} is asked for"
    assert permissions == sum(1 << bit for bit in EXPECTED_BITS.values()) == 309237730304
    assert permissions == DEFAULT_BOT_PERMISSIONS  # what the simulator gives an installed bot
    assert {flag.name for flag in Permission if flag in BOT_PERMISSIONS} == set(EXPECTED_BITS)
    assert sim.calls == []  # nothing to ask Discord


async def test_invite_url_for_one_guild(sim: DiscordSimulator, dfj: Any) -> None:
    """``--guild`` preselects the server and locks the choice; the web base is a setting."""
    done = await dfj(sim.environ(), "invite-url", "--guild", "42")
    query = parse_qs(urlsplit(done.out.strip()).query)
    assert done.out.startswith(sim.url + "/oauth2/authorize?")
    assert (query["guild_id"], query["disable_guild_select"]) == (["42"], ["true"])
    assert sim.application.bot_token not in done.text


def test_the_plugin_hook_finds_the_discord_commands() -> None:
    """The installed distribution declares ``discord`` in the ``dfj.cli`` group."""
    (point,) = [p for p in entry_points(group=PLUGIN_GROUP) if p.name == "discord"]
    assert point.value == "dfj_discord_worker.cli:register"
    assert ("discord", discord_cli.register) in load_plugins()


def test_dfj_help_lists_the_discord_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(["discord", "--help"], environ={}, out=io.StringIO(), env_file=None)
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert "register-commands" in shown and "invite-url" in shown
