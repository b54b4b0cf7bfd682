"""A site that runs the Connect app moves to Forge and keeps its subscriptions and links.

Connect reaches end of support on 31 January 2027; a site that installed the Connect app
moves by installing the Forge app that names the Connect key ("Connect on Forge"). The
manifest is written with ``scripts/forge_manifest.py --connect-key`` as a self-hoster would.
Before the move, #general gets notifications from Connect webhooks and Alice is linked;
after it, the same channel hears of changes once each, now from Forge events, and Alice acts
as herself with Forge offline user tokens, without linking again.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from dfj_common.storage import Database, InstallationKind, Installations
from dfj_sandbox.discord_sim import Message
from dfj_sandbox.stack import Cast, Sandbox, build_cast, file_sink, first_run
from dfj_sandbox.stack.sandbox import FORGE_APP_ID, FORGE_MANIFEST

pytestmark = [
    pytest.mark.crossprocess,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(120),
]

ROOT = Path(__file__).resolve().parents[2]


class System:
    def __init__(self, sandbox: Sandbox, cast: Cast, manifest: Path) -> None:
        self.sandbox = sandbox
        self.cast = cast
        self.manifest = manifest

    def notifications(self, key: str) -> list[Message]:
        return self.sandbox.notifications(self.cast.channel_id, key)


def _manifest_with_connect_key(workdir: Path, connect_key: str) -> Path:
    """forge/manifest.yml as a self-hoster adopting their Connect app writes it."""
    path = workdir / "manifest.yml"
    shutil.copyfile(FORGE_MANIFEST, path)
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "forge_manifest.py"),
            "--app-id",
            FORGE_APP_ID,
            "--public-url",
            "https://jira-bridge.example.org",
            "--connect-key",
            connect_key,
            "--manifest",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    return path


@pytest_asyncio.fixture(name="system", scope="module", loop_scope="module")
async def _system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    workdir = tmp_path_factory.mktemp("forge-migration")
    async with Sandbox(workdir=workdir, sink=file_sink(workdir / "logs")) as sandbox:
        cast = build_cast(sandbox, site_name="moving")
        await first_run(sandbox, cast)  # as Connect
        manifest = _manifest_with_connect_key(
            workdir, sandbox.environ.get("DFJ_APP_KEY", "discord-for-jira")
        )
        yield System(sandbox, cast, manifest)


async def _installations(system: System) -> list[Any]:
    database = Database.open(system.sandbox.environ["DFJ_DATABASE_URL"])
    try:
        installations = Installations(database)
        return [await installations.get(k) for k in await installations.client_keys()]
    finally:
        await database.close()


async def test_before_the_move_connect_notifies(system: System) -> None:
    issue = system.cast.site.create_issue(summary="Before the move")
    await system.sandbox.until(lambda: system.notifications(issue.key), "the Connect embed")


async def test_the_move_keeps_the_sites_tenant_subscriptions_and_links(system: System) -> None:
    sandbox, site, alice = system.sandbox, system.cast.site, system.cast.alice
    [before] = await _installations(system)
    installation = await sandbox.migrate_to_forge(site, alice, manifest=system.manifest)
    [after] = await _installations(system)
    assert after.client_key == before.client_key, "the Connect tenant key is kept"
    assert after.kind is InstallationKind.FORGE
    assert after.installation_id == installation.installation_id
    page = await sandbox.admin_page(site, alice)
    assert [c["guildId"] for c in page["connections"]] == [system.cast.guild.id]


async def test_after_the_move_forge_notifies_once_each(system: System) -> None:
    sandbox, site, bob = system.sandbox, system.cast.site, system.cast.bob
    connect_webhooks = len(sandbox.jira.webhooks_for(site))
    issue = site.create_issue(summary="After the move", reporter=bob.account_id)
    await sandbox.until(lambda: system.notifications(issue.key), "the embed after the move")
    site.add_comment(issue, "Still here.", author=bob.account_id)
    await sandbox.until(lambda: len(system.notifications(issue.key)) >= 2 or None, "the comment")
    await sandbox.jira.forge_idle()
    await sandbox.jira.webhooks_idle()
    await asyncio.sleep(1.0)
    assert len(system.notifications(issue.key)) == 2
    assert sandbox.discord.duplicates(system.cast.channel_id) == {}
    forge_events = [d for d in sandbox.jira.forge_deliveries if d.url.endswith("/forge/events")]
    assert len(forge_events) >= 2, "the changes came as Forge events"
    assert len(sandbox.jira.webhooks_for(site)) == connect_webhooks, "and no longer as webhooks"


async def test_alice_is_still_linked_and_acts_as_herself(system: System) -> None:
    sandbox, alice = system.sandbox, system.cast.alice
    opened = await sandbox.send(
        sandbox.discord.interactions.slash(
            system.cast.channel_id, alice.discord_user_id, subcommand="create"
        )
    )
    assert opened.initial["type"] == 9, opened.initial
    await sandbox.send(
        sandbox.discord.interactions.modal_submit(
            system.cast.channel_id,
            alice.discord_user_id,
            opened.initial["data"]["custom_id"],
            {"summary": "Moved and working", "description": "", "project": "DEMO", "issuetype": ""},
        )
    )
    issue = await sandbox.until(
        lambda: next(
            (i for i in system.cast.site.issues.values() if i.summary == "Moved and working"),
            None,
        ),
        "the issue in Jira",
    )
    assert issue.reporter == alice.account_id
    assert any(
        r.account_id == alice.account_id and r.success for r in sandbox.jira.offline_token_requests
    )
