"""The linker against real parts: a migrated SQLite database, the local bus, and the Discord
simulator's OAuth2 server on loopback.

:class:`Rig` builds link callbacks the way the gateway publishes them — a state id and nonce,
the S256 challenge derived from the shared signing key, and a code the simulator issued for
that challenge after a simulated user clicked Authorize — and hands them to the handler
tables as the runtime would.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import pytest

from dfj_common.bus import DISCORD_OUTBOX, LINKER
from dfj_common.bus.local import LocalBus
from dfj_common.clock import ManualClock
from dfj_common.config import Secret
from dfj_common.derived_keys import master_key, pkce_challenge, pkce_verifier
from dfj_common.envelope import Envelope, deterministic_id
from dfj_common.runtime import HandlerContext, HandlerTable
from dfj_common.storage import Database, GuildConnections, Installations, create_engine, migrate
from dfj_common.testing import drain
from dfj_linker.handlers import LINK_OAUTH_CALLBACK, build_tables
from dfj_linker.oauth import DiscordOAuth
from dfj_sandbox.discord_sim import DiscordSimulator

PUBLIC_URL: Final = "https://dfj.example.test"
REDIRECT: Final = PUBLIC_URL + "/oauth/discord/callback"
SITE: Final = "jira:site-1"
SITE_URL: Final = "https://acme.atlassian.net"
ACCOUNT: Final = "557058:alice"
SIGNING_KEY: Final = "a-state-signing-key-of-at-least-32-bytes!"
MANAGE_GUILD: Final = 1 << 5


def context(delivery_count: int = 1) -> HandlerContext:
    return HandlerContext(
        queue=LINKER,
        message_id="m",
        delivery_count=delivery_count,
        max_deliveries=10,
        enqueued_at=0.0,
    )


@dataclass
class Rig:
    sim: DiscordSimulator
    db: Database
    bus: LocalBus
    clock: ManualClock
    table: HandlerTable
    guild_id: str
    alice: str
    mallory: str
    site: str = SITE
    site_url: str = SITE_URL
    account: str = ACCOUNT
    signing_key: str = SIGNING_KEY

    def callback(
        self,
        user_id: str,
        *,
        asked_by: str | None = None,
        account_id: str = ACCOUNT,
        ttl: int = 600,
        verifier_nonce: str | None = None,
    ) -> Envelope:
        """What the gateway publishes after ``user_id`` authorized a state ``asked_by`` asked for.

        ``verifier_nonce`` puts a challenge for another nonce into the authorize request, so the
        verifier the linker derives does not match it (a PKCE mismatch).
        """
        state_id, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(12)
        key = master_key(SIGNING_KEY)
        challenge = pkce_challenge(pkce_verifier(key, state_id, verifier_nonce or nonce))
        location = self.sim.authorize(
            user_id, state=state_id, redirect_uri=REDIRECT, code_challenge=challenge
        )
        code = parse_qs(urlsplit(location).query)["code"][0]
        now = int(self.clock.now())
        return Envelope(
            id=deterministic_id("link-oauth-callback", state_id),
            source="dfj-gateway",
            type=LINK_OAUTH_CALLBACK,
            tenant=SITE,
            data={
                "code": code,
                "state_id": state_id,
                "client_key": SITE,
                "account_id": account_id,
                "discord_user_id": asked_by,
                "nonce": nonce,
                "issued_at": now,
                "expires_at": now + ttl,
                "redirect_uri": REDIRECT,
            },
        )

    def command(
        self,
        subcommand: str,
        *,
        user_id: str,
        guild: bool = True,
        guild_id: str | None = None,
        options: Mapping[str, Any] | None = None,
        manage_server: bool = False,
    ) -> Envelope:
        """A ``/jira <subcommand>`` event as the gateway publishes it."""
        where = (guild_id or self.guild_id) if guild else None
        interaction_id = str(1_300_000_000_000_000_000 + secrets.randbelow(10**9))
        return Envelope(
            id=deterministic_id("discord-interaction", interaction_id),
            source="dfj-gateway",
            type="discord.command",
            tenant=SITE if guild else None,
            data={
                "interaction_id": interaction_id,
                "interaction_type": 2,
                "application_id": self.sim.application.id,
                "token": "interaction-token-" + interaction_id,
                "guild_id": where,
                "channel_id": "1200000000000000001",
                "user_id": user_id,
                "roles": [],
                "permissions": str(MANAGE_GUILD if manage_server else 0),
                "command": {
                    "name": "jira",
                    "subcommand": subcommand,
                    "options": dict(options or {}),
                },
            },
        )

    def context(self, delivery_count: int = 1) -> HandlerContext:
        """What the runtime tells a handler about the delivery."""
        return context(delivery_count)

    async def send(
        self, envelope: Envelope, *, delivery_count: int = 1, oauth: DiscordOAuth | None = None
    ) -> None:
        """Hand ``envelope`` to the linker as the runtime would (through ``oauth`` if given)."""
        table = self.table if oauth is None else self.tables(oauth)[LINKER]
        await table[envelope.type](envelope, context(delivery_count))

    def tables(self, oauth: DiscordOAuth) -> Mapping[str, HandlerTable]:
        async def key() -> bytes:
            return master_key(SIGNING_KEY)

        return build_tables(
            self.db, self.bus, oauth=oauth, master_key=key, public_url=PUBLIC_URL, clock=self.clock
        )

    async def outbox(self) -> list[Envelope]:
        """Every message waiting on ``discord-outbox`` (completed as they are read)."""
        return await drain(self.bus, DISCORD_OUTBOX)

    def revoked(self) -> int:
        return len(self.sim.oauth.revocations)

    def message_text(self, envelope: Envelope) -> str:
        message: Any = envelope.data["message"]
        return str(message["content"])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "dfj.sqlite"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
async def rig(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Rig]:
    path = tmp_path / "dfj.sqlite"
    await asyncio.to_thread(shutil.copyfile, sqlite_template, path)
    clock = ManualClock(time.time())
    db = Database(create_engine(f"sqlite:///{path}"), clock=clock, owns_engine=True)
    bus = await LocalBus.open(tmp_path / "bus.sqlite")
    sim = DiscordSimulator(clock=clock, redirect_uris=[REDIRECT])
    await sim.start()
    guild = sim.add_guild("Acme")
    alice = sim.add_user(username="alice").id
    mallory = sim.add_user(username="mallory").id
    await Installations(db).save_connect(
        SITE, base_url=SITE_URL, shared_secret_ciphertext=b"sealed", display_url=SITE_URL
    )
    await GuildConnections(db).connect(guild.id, client_key=SITE, connected_by=alice)
    oauth = DiscordOAuth(
        api_url=sim.api_url,
        client_id=sim.application.id,
        client_secret=Secret(sim.application.client_secret),
    )

    async def key() -> bytes:
        return master_key(SIGNING_KEY)

    tables = build_tables(db, bus, oauth=oauth, master_key=key, public_url=PUBLIC_URL, clock=clock)
    try:
        yield Rig(
            sim=sim,
            db=db,
            bus=bus,
            clock=clock,
            table=tables[LINKER],
            guild_id=guild.id,
            alice=alice,
            mallory=mallory,
        )
    finally:
        await oauth.close()
        await sim.close()
        await bus.close()
        await db.close()
