"""The whole system, every service in its own process, driven only through Jira and Discord.

One sandbox for the module (starting four processes costs seconds): the simulated site
installs the app, Alice connects the server from the configuration page in Jira, links her
account through both OAuth pages and subscribes #general — each step through the real
protocols (see ``dfj_sandbox.stack``). The tests then act as a Jira user or a Discord member
and look only at what the simulators received, as the people would see it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from dfj_common.storage import Database, Drafts, GuildConnections, Installations, UserLinks
from dfj_sandbox.discord_sim import Message
from dfj_sandbox.stack import Cast, Member, Sandbox, build_cast, file_sink, first_run
from dfj_sandbox.stack.page import SandboxPage, page_app

JSON = {"Content-Type": "application/json"}

pytestmark = [
    pytest.mark.crossprocess,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(120),
]

# An uninstalled site's data is kept this long before it is erased (the last test waits it out).
RETENTION_SECONDS = 6.0


class System:
    """The running sandbox and its cast, and what the channel shows."""

    def __init__(self, sandbox: Sandbox, cast: Cast) -> None:
        self.sandbox = sandbox
        self.cast = cast

    @property
    def site(self) -> Any:
        return self.cast.site

    def channel(self) -> list[Message]:
        return self.sandbox.discord.messages(self.cast.channel_id, ephemeral=False)

    def notifications(self, key: str) -> list[Message]:
        return self.sandbox.notifications(self.cast.channel_id, key)


@pytest_asyncio.fixture(name="system", scope="module", loop_scope="module")
async def _system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    workdir = tmp_path_factory.mktemp("whole-system")
    async with Sandbox(
        workdir=workdir,
        sink=file_sink(workdir / "logs"),
        sandbox_environ={"DFJ_UNINSTALL_RETENTION_DAYS": str(RETENTION_SECONDS / 86400)},
    ) as sandbox:
        cast = build_cast(sandbox)
        await first_run(sandbox, cast)
        yield System(sandbox, cast)


async def _database(system: System) -> Database:
    return Database.open(system.sandbox.environ["DFJ_DATABASE_URL"])


async def test_changes_in_jira_arrive_in_the_channel_in_order_exactly_once(system: System) -> None:
    site = system.site
    issue = site.create_issue(summary="Printer on fire", reporter=system.cast.bob.account_id)
    [created] = await system.sandbox.until(
        lambda: system.notifications(issue.key), "the created embed"
    )
    assert created.embeds[0]["url"].endswith(f"/browse/{issue.key}")
    start = site.project_of(issue).workflow.available(issue.status_id)[0]
    site.transition_issue(issue, start.id, by=system.cast.bob.account_id)
    site.add_comment(issue, "Extinguisher found.", author=system.cast.bob.account_id)
    await system.sandbox.until(
        lambda: len(system.notifications(issue.key)) >= 3 or None, "three notifications"
    )
    await system.sandbox.jira.webhooks_idle()
    await asyncio.sleep(1.0)  # anything duplicated or late would land by now
    embeds = [m.embeds[0] for m in system.notifications(issue.key)]
    descriptions = [str(e.get("description", "")) for e in embeds]
    assert len(embeds) == 3, descriptions
    assert "created" in descriptions[0].lower()
    fields = {f["name"]: f["value"] for f in embeds[1].get("fields", [])}
    assert start.name in " ".join(fields.values()) or start.name in descriptions[1]
    assert "Extinguisher found." in descriptions[2]
    assert system.sandbox.discord.duplicates(system.cast.channel_id) == {}


async def test_create_as_a_linked_member_makes_her_the_reporter(system: System) -> None:
    alice = system.cast.alice
    opened = await system.sandbox.send(
        system.sandbox.discord.interactions.slash(
            system.cast.channel_id, alice.discord_user_id, subcommand="create"
        )
    )
    assert opened.initial["type"] == 9, opened.initial
    form = opened.initial["data"]
    submit = system.sandbox.discord.interactions.modal_submit(
        system.cast.channel_id,
        alice.discord_user_id,
        form["custom_id"],
        {"summary": "Coffee machine leaks", "description": "", "project": "DEMO", "issuetype": ""},
    )
    answer = await system.sandbox.send(submit)

    def created() -> Any:
        return next(
            (i for i in system.site.issues.values() if i.summary == "Coffee machine leaks"), None
        )

    issue = await system.sandbox.until(created, "the issue in Jira")
    assert issue.reporter == alice.account_id
    assert issue.key in answer.content


async def test_an_unlinked_member_gets_the_link_prompt(system: System) -> None:
    bob = system.cast.bob
    before = len(system.site.issues)
    answer = await system.sandbox.run_command(
        system.cast.channel_id, bob, "issue", {"key": "DEMO-1"}
    )
    assert answer.message is not None and answer.message.ephemeral
    assert "link" in answer.content.lower()
    assert len(system.site.issues) == before


async def test_a_linked_member_without_permission_is_refused_clearly(system: System) -> None:
    sandbox, cast = system.sandbox, system.cast
    account = cast.site.add_user("557058:carol-viewer", "Carol Viewer")
    carol = Member("Carol", cast.guild.add_member(username="carol").user_id, account.account_id)
    await sandbox.link(cast.site, cast.channel_id, carol)
    cast.site.revoke(account.account_id, "CREATE_ISSUES")
    opened = await sandbox.send(
        sandbox.discord.interactions.slash(
            cast.channel_id, carol.discord_user_id, subcommand="create"
        )
    )
    before = len(cast.site.issues)
    answer = await sandbox.send(
        sandbox.discord.interactions.modal_submit(
            cast.channel_id,
            carol.discord_user_id,
            opened.initial["data"]["custom_id"],
            {"summary": "Not allowed", "description": "", "project": "DEMO", "issuetype": ""},
        )
    )
    assert answer.message is not None and answer.message.ephemeral
    assert "permission" in answer.content.lower(), answer.content
    assert len(cast.site.issues) == before


async def test_assign_to_me_button_changes_the_issue_in_jira(system: System) -> None:
    site, alice = system.site, system.cast.alice
    issue = site.create_issue(summary="Needs an owner")
    [message] = await system.sandbox.until(lambda: system.notifications(issue.key), "the embed")
    answer = await system.sandbox.send(
        system.sandbox.discord.interactions.click(
            message, alice.discord_user_id, f"assign-me:{issue.key}"
        )
    )
    assert answer.status == 200
    assert answer.message is not None and answer.message.ephemeral, "Alice hears back, alone"
    assert issue.key in answer.content, answer.content
    await system.sandbox.until(
        lambda: site.issue(issue.key).assignee == alice.account_id or None, "the assignment"
    )
    # The change comes back as a webhook, and the channel hears of it like any other.
    await system.sandbox.until(
        lambda: len(system.notifications(issue.key)) >= 2 or None, "the update"
    )


async def test_transition_button_offers_the_workflow_and_moves_the_issue(system: System) -> None:
    site, alice = system.site, system.cast.alice
    issue = site.create_issue(summary="Ready to start")
    [message] = await system.sandbox.until(lambda: system.notifications(issue.key), "the embed")
    offered = await system.sandbox.send(
        system.sandbox.discord.interactions.click(
            message, alice.discord_user_id, f"transition:{issue.key}"
        )
    )
    assert offered.message is not None, offered
    picker = offered.message
    select = next(
        c for row in picker.components for c in row.get("components", []) if c.get("type") == 3
    )
    wanted = site.project_of(issue).workflow.available(issue.status_id)[0]
    value = next(o["value"] for o in select["options"] if wanted.name in o["label"])
    await system.sandbox.send(
        system.sandbox.discord.interactions.click(
            picker, alice.discord_user_id, select["custom_id"], values=[value]
        )
    )
    await system.sandbox.until(
        lambda: site.issue(issue.key).status_id == wanted.to or None, "the transition"
    )


async def test_create_from_message_suggests_fields_and_removes_the_draft(system: System) -> None:
    sandbox, cast, alice = system.sandbox, system.cast, system.cast.alice
    said = sandbox.discord.add_message(
        cast.channel_id,
        cast.bob.discord_user_id,
        "The checkout page times out for every customer since the deploy",
    )
    offered = await sandbox.send(
        sandbox.discord.interactions.message_command(said, alice.discord_user_id)
    )
    assert offered.message is not None and offered.message.ephemeral, offered
    review = next(
        c["custom_id"]
        for row in offered.message.components
        for c in row.get("components", [])
        if str(c.get("custom_id", "")).startswith("draft-review:")
    )
    database = await _database(system)
    try:
        drafts = Drafts(database)
        assert len(await drafts.list_for_discord_user(alice.discord_user_id)) == 1
        opened = await sandbox.send(
            sandbox.discord.interactions.click(offered.message, alice.discord_user_id, review)
        )
        assert opened.initial["type"] == 9, opened.initial
        form = opened.initial["data"]
        prefilled = {
            c["custom_id"]: c.get("value", "")
            for c in _inputs(form["components"])
            if c.get("type") == 4
        }
        assert "checkout page times out" in prefilled["summary"] + prefilled["description"]
        values = {**prefilled, "project": "DEMO"}
        await sandbox.send(
            sandbox.discord.interactions.modal_submit(
                cast.channel_id,
                alice.discord_user_id,
                form["custom_id"],
                values,
                message=offered.message,
            )
        )
        issue = await system.sandbox.until(
            lambda: next(
                (i for i in cast.site.issues.values() if i.summary == prefilled["summary"]), None
            ),
            "the issue from the message",
        )
        assert issue.reporter == alice.account_id

        async def no_draft() -> bool:
            return not await drafts.list_for_discord_user(alice.discord_user_id)

        await sandbox.until(no_draft, "the draft to go once it became an issue", timeout=5)
    finally:
        await database.close()


def _inputs(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every input of a modal, in the Label-wrapped or the action-row shape."""
    found: list[dict[str, Any]] = []
    for node in components:
        if "component" in node:
            found.append(node["component"])
        found.extend(_inputs(node.get("components", [])))
        if node.get("type") in (3, 4):
            found.append(node)
    return found


async def test_the_sandbox_page_refuses_bad_input_with_a_reason(system: System) -> None:
    """The page's API answers 400 with a reason for anything it cannot act on, and acts on
    what it can (an issue created through it notifies like any other)."""
    cast = system.cast
    page = SandboxPage(system.sandbox, site=cast.site, guild=cast.guild, members=cast.members)
    alice, channel = cast.alice.discord_user_id, cast.channel_id
    refused = [
        ("/api/jira/issues", {"summary": "x", "as": "nobody"}, "members"),
        ("/api/jira/issues", {"as": alice}, "summary is required"),
        ("/api/jira/issues", {"summary": "x" * 256, "as": alice}, "longer than 255"),
        ("/api/jira/issues", {"summary": "x", "type": "Nonsense", "as": alice}, "no issue type"),
        ("/api/jira/issues/DEMO-999/comment", {"text": "hi", "as": alice}, "DEMO-999"),
        ("/api/discord/command", {"subcommand": "issue", "channel": "1", "as": alice}, "channel"),
        (
            "/api/discord/command",
            {"subcommand": "issue", "channel": channel, "options": [1], "as": alice},
            "options",
        ),
        ("/api/discord/click", {"message": "1", "custom_id": "x", "as": alice}, "no message"),
        ("/api/discord/submit", {"custom_id": "x", "fields": "no", "as": alice}, "fields"),
    ]
    async with TestClient(TestServer(page_app(page))) as client:
        for path, body, reason in refused:
            async with client.post(path, json=body) as answer:
                assert answer.status == 400, (path, body)
                assert reason in (await answer.json())["error"], (path, body)
        async with client.post("/api/jira/issues", data=b"{", headers=JSON) as answer:
            assert answer.status == 400 and "JSON" in (await answer.json())["error"]
        async with client.post("/api/jira/issues", data=b"[]", headers=JSON) as answer:
            assert answer.status == 400 and "object" in (await answer.json())["error"]
        async with client.post("/api/jira/issues", json={"summary": "Via page", "as": alice}) as ok:
            assert ok.status == 200
            key = (await ok.json())["key"]
    await system.sandbox.until(lambda: system.notifications(key), "the page's issue notified")


async def test_uninstall_keeps_the_data_for_the_retention_then_erases_it(
    system: System,
) -> None:
    """Runs last: the site is gone afterwards."""
    sandbox, cast = system.sandbox, system.cast
    await sandbox.jira.webhooks_idle()
    await sandbox.jira.uninstall_app(cast.site)
    database = await _database(system)
    try:
        installations = Installations(database)
        links = UserLinks(database)
        client_key = cast.site.client_key
        await asyncio.sleep(1.0)
        # Within the retention period everything is still there (a re-install would restore it).
        assert await installations.get(client_key) is not None
        assert await GuildConnections(database).get(cast.guild.id) is not None
        assert await links.get_by_discord_user(client_key, cast.alice.discord_user_id) is not None

        async def erased() -> bool:
            return await installations.get(client_key) is None

        await sandbox.until(erased, "the site to be erased", timeout=RETENTION_SECONDS + 20)
        assert await GuildConnections(database).get(cast.guild.id) is None
        assert await links.get_by_discord_user(client_key, cast.alice.discord_user_id) is None
    finally:
        await database.close()
