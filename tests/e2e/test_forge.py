"""A site that installed the app through Forge, every service in its own process.

Since Jira stopped installing private Connect apps, this is how every new site arrives. The
sandbox's Jira installs the app from ``forge/manifest.yml``: Forge Invocation Tokens signed
with keys from its JWKS, the system token handed over with each call, offline user tokens
minted over GraphQL for the linked member. Alice connects the server from our Forge admin
page, links her account through our Forge link page and both OAuth pages, and subscribes
#general. The tests then act as Jira users or Discord members and look only at what the
simulators received.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from dfj_sandbox.discord_sim import Message
from dfj_sandbox.stack import Cast, Sandbox, build_cast, file_sink, first_run

pytestmark = [
    pytest.mark.crossprocess,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(120),
]

RETENTION_SECONDS = 6.0


class System:
    """The running sandbox and its cast, and what the channel shows."""

    def __init__(self, sandbox: Sandbox, cast: Cast) -> None:
        self.sandbox = sandbox
        self.cast = cast

    @property
    def site(self) -> Any:
        return self.cast.site

    def notifications(self, key: str) -> list[Message]:
        return self.sandbox.notifications(self.cast.channel_id, key)


@pytest_asyncio.fixture(name="system", scope="module", loop_scope="module")
async def _system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    workdir = tmp_path_factory.mktemp("forge-site")
    async with Sandbox(
        workdir=workdir,
        sink=file_sink(workdir / "logs"),
        sandbox_environ={"DFJ_UNINSTALL_RETENTION_DAYS": str(RETENTION_SECONDS / 86400)},
    ) as sandbox:
        cast = build_cast(sandbox, site_name="forge-demo")
        await first_run(sandbox, cast, forge=True)
        yield System(sandbox, cast)


async def test_the_site_came_through_forge_only(system: System) -> None:
    """No Connect install happened; our admin page shows the site, the connect code worked."""
    assert system.site.app is None or not system.site.app.installed
    page = await system.sandbox.admin_page(system.site, system.cast.alice)
    assert page["site"]["url"] == system.site.base_url.rstrip("/")
    assert [c["guildId"] for c in page["connections"]] == [system.cast.guild.id]
    paths = {d.url.rsplit("/forge/", 1)[-1] for d in system.sandbox.jira.forge_deliveries}
    assert "lifecycle" in paths


async def test_changes_in_jira_arrive_in_order_exactly_once(system: System) -> None:
    site, bob = system.site, system.cast.bob
    issue = site.create_issue(summary="Printer on fire", reporter=bob.account_id)
    await system.sandbox.until(lambda: system.notifications(issue.key), "the created embed")
    start = site.project_of(issue).workflow.available(issue.status_id)[0]
    site.transition_issue(issue, start.id, by=bob.account_id)
    site.add_comment(issue, "Extinguisher found.", author=bob.account_id)
    await system.sandbox.until(
        lambda: len(system.notifications(issue.key)) >= 3 or None, "three notifications"
    )
    await system.sandbox.jira.forge_idle()
    await asyncio.sleep(1.0)  # anything duplicated or late would land by now
    embeds = [m.embeds[0] for m in system.notifications(issue.key)]
    descriptions = [str(e.get("description", "")) for e in embeds]
    assert len(embeds) == 3, descriptions
    assert "created" in descriptions[0].lower()
    assert "Extinguisher found." in descriptions[2]
    assert embeds[0]["url"] == f"{site.base_url.rstrip('/')}/browse/{issue.key}"
    assert system.sandbox.discord.duplicates(system.cast.channel_id) == {}


async def test_create_as_the_linked_member_uses_her_offline_token(system: System) -> None:
    sandbox, alice = system.sandbox, system.cast.alice
    minted = len(sandbox.jira.offline_token_requests)
    opened = await sandbox.send(
        sandbox.discord.interactions.slash(
            system.cast.channel_id, alice.discord_user_id, subcommand="create"
        )
    )
    assert opened.initial["type"] == 9, opened.initial
    answer = await sandbox.send(
        sandbox.discord.interactions.modal_submit(
            system.cast.channel_id,
            alice.discord_user_id,
            opened.initial["data"]["custom_id"],
            {
                "summary": "Coffee machine leaks",
                "description": "",
                "project": "DEMO",
                "issuetype": "",
            },
        )
    )

    def created() -> Any:
        return next(
            (i for i in system.site.issues.values() if i.summary == "Coffee machine leaks"), None
        )

    issue = await sandbox.until(created, "the issue in Jira")
    assert issue.reporter == alice.account_id
    assert issue.key in answer.content
    requests = sandbox.jira.offline_token_requests
    assert any(r.account_id == alice.account_id for r in requests if r.success), requests
    assert len(requests) - minted <= 1, "her token is cached, not minted per call"


async def test_an_unlinked_member_is_sent_to_our_forge_link_page(system: System) -> None:
    bob = system.cast.bob
    answer = await system.sandbox.run_command(
        system.cast.channel_id, bob, "issue", {"key": "DEMO-1"}
    )
    assert answer.message is not None and answer.message.ephemeral
    assert "link" in answer.content.lower()
    link = await system.sandbox.run_command(system.cast.channel_id, bob, "link")
    urls = [
        c.get("url", "")
        for row in (link.message.components if link.message else [])
        for c in row.get("components", [])
    ]
    assert any(u.startswith(f"{system.site.base_url.rstrip('/')}/jira/apps/") for u in urls), urls


async def test_assign_to_me_acts_in_jira_as_her(system: System) -> None:
    site, alice = system.site, system.cast.alice
    issue = site.create_issue(summary="Needs an owner")
    [message] = await system.sandbox.until(lambda: system.notifications(issue.key), "the embed")
    answer = await system.sandbox.send(
        system.sandbox.discord.interactions.click(
            message, alice.discord_user_id, f"assign-me:{issue.key}"
        )
    )
    assert answer.message is not None and answer.message.ephemeral
    await system.sandbox.until(
        lambda: site.issue(issue.key).assignee == alice.account_id or None, "the assignment"
    )
    # Her change comes back as a Forge event, and the channel hears of it like any other.
    await system.sandbox.until(
        lambda: len(system.notifications(issue.key)) >= 2 or None, "the update"
    )


async def test_an_expired_system_token_is_replaced_by_the_next_forge_call(system: System) -> None:
    """Forge's tokens lapse; the next event brings a fresh one and notifications go on."""
    sandbox, site = system.sandbox, system.site
    installation = sandbox.forge[site.name]
    assert sandbox.jira.expire_system_tokens(installation) > 0
    await sandbox.jira.run_scheduled_trigger(installation)
    issue = site.create_issue(summary="After the token lapsed")
    await sandbox.until(lambda: system.notifications(issue.key), "the created embed")


async def test_pre_uninstall_erases_the_sites_data_after_retention(system: System) -> None:
    sandbox, site = system.sandbox, system.site
    await sandbox.jira.uninstall_forge_app(sandbox.forge[site.name])
    await asyncio.sleep(RETENTION_SECONDS + 2)
    issue = site.create_issue(summary="After uninstall")
    await asyncio.sleep(1.0)
    assert system.notifications(issue.key) == []
    # The server's connection went with the site's data: the server is told to connect again.
    answer = await sandbox.run_command(
        system.cast.channel_id, system.cast.alice, "issue", {"key": issue.key}
    )
    assert "isn't connected to a jira site" in answer.content.lower(), answer.content
