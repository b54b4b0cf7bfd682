"""The jira-worker against the Jira simulator: the real client, real HTTP, real JWTs.

A simulated site ``acme`` has the project DEMO, Alice (a member), Bob (may browse, nothing
else) and Mallory (may not even browse). The installation row carries the site's shared
secret sealed under a real KEK, so the worker signs app JWTs and JWT-bearer assertions with
it exactly as it would for Jira Cloud.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from commands.harness import ALICE, BOB, CAROL, GUILD, InteractionEvents
from dfj_common.bus import DISCORD_OUTBOX
from dfj_common.bus.local import LocalBus
from dfj_common.clock import ManualClock
from dfj_common.envelope import Envelope
from dfj_common.runtime import HandlerContext
from dfj_common.secrets import EnvelopeCipher, EnvSecretStore, make_aad
from dfj_common.storage import Database, InstallationState, Repositories, create_engine, migrate
from dfj_common.testing import drain
from dfj_jira_worker.commands import Commands
from dfj_jira_worker.jira import JiraClient
from dfj_sandbox.jira_sim import JiraSimulator, Site

ACC_ALICE = "5b10a2844c20165700ede21a"
ACC_BOB = "5b10a2844c20165700ede21b"
ACC_MALLORY = "5b10a2844c20165700ede21c"
MALLORY = CAROL  # a linked Discord member who may not browse DEMO


@dataclass
class World:
    clock: ManualClock
    sim: JiraSimulator
    site: Site
    db: Database
    bus: LocalBus
    repos: Repositories
    jira: JiraClient
    commands: Commands
    events: InteractionEvents

    async def run(self, envelope: Envelope, *, delivery: int = 1) -> None:
        ctx = HandlerContext(
            queue="jira-commands",
            message_id=envelope.id,
            delivery_count=delivery,
            max_deliveries=10,
            enqueued_at=self.clock.now(),
        )
        await self.commands.handle(envelope, ctx)

    async def replies(self) -> list[Envelope]:
        return await drain(self.bus, DISCORD_OUTBOX)

    async def answer(self, envelope: Envelope) -> dict[str, Any]:
        await self.run(envelope)
        [reply] = await self.replies()
        message: dict[str, Any] = reply.data["message"]
        return message

    def calls_by(self, account_id: str) -> list[str]:
        return [f"{c.method} {c.template}" for c in self.sim.calls if c.account_id == account_id]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "dfj.sqlite"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
async def world(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[World]:
    import time

    clock = ManualClock(time.time())
    async with JiraSimulator(clock=clock, validate_responses=True) as sim:
        site = sim.add_site("acme")
        site.add_user(ACC_ALICE, "Alice Example")
        site.add_user(ACC_BOB, "Bob Example", permissions={"BROWSE_PROJECTS"})
        site.add_user(ACC_MALLORY, "Mallory Example", permissions=())
        path = tmp_path / "dfj.sqlite"
        await asyncio.to_thread(shutil.copyfile, sqlite_template, path)
        db = Database(create_engine(f"sqlite:///{path}"), clock=clock, owns_engine=True)
        bus = await LocalBus.open(tmp_path / "bus.sqlite")
        repos = Repositories(db)
        store = EnvSecretStore(
            {"DFJ_KEK": base64.b64encode(os.urandom(32)).decode()}, env_file=None
        )
        cipher = EnvelopeCipher(store, clock=clock)
        sealed = await cipher.seal(
            site.shared_secret.encode(), aad=make_aad(site.client_key, "connect-shared-secret")
        )
        await repos.installations.save_connect(
            site.client_key,
            base_url=site.base_url,
            shared_secret_ciphertext=sealed,
            app_key=site.app_key,
            oauth_client_id=site.oauth_client_id,
            state=InstallationState.ENABLED,
        )
        await repos.guild_connections.connect(GUILD, site.client_key, connected_by=ALICE)
        for member, account in ((ALICE, ACC_ALICE), (BOB, ACC_BOB), (MALLORY, ACC_MALLORY)):
            await repos.user_links.link(site.client_key, account_id=account, discord_user_id=member)
        jira = JiraClient(app_key=site.app_key, oauth_url=sim.oauth_url, cipher=cipher, clock=clock)
        commands = Commands.build(db, bus=bus, jira=jira)
        events = InteractionEvents(clock=clock, site=site.client_key)
        try:
            yield World(clock, sim, site, db, bus, repos, jira, commands, events)
            assert sim.spec_violations == [], sim.spec_violations
            assert sim.response_violations == [], sim.response_violations
        finally:
            await jira.close()
            await bus.close()
            await db.close()


__all__ = ["ACC_ALICE", "ACC_BOB", "ACC_MALLORY", "ALICE", "BOB", "MALLORY", "World"]
