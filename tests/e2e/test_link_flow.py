"""The whole account-link flow, across the gateway, the bus and the linker, with a browser.

Alice runs ``/jira link`` in a connected server (a signed interaction from the Discord
simulator to the gateway), the linker answers with a button to the link page inside Jira; the
"browser" — an HTTP client that follows redirects, as a browser does — opens that page the way
Jira frames it (a page JWT for the signed-in Jira user), follows *Continue to Discord* to the
simulator's authorize page, clicks Authorize, is redirected to the gateway's callback, and
polls the status endpoint until the linker, consuming the callback event from the bus, has
exchanged the code, checked Alice is the one who asked, revoked the token and stored the link.
"""

from __future__ import annotations

import asyncio
import base64
import html
import os
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from dfj_common.bus import DISCORD_OUTBOX
from dfj_common.bus.local import LocalBus
from dfj_common.config import Settings
from dfj_common.envelope import Envelope
from dfj_common.secrets import EnvelopeCipher, EnvSecretStore, make_aad
from dfj_common.service import serve
from dfj_common.storage import Database, GuildConnections, Installations, UserLinks
from dfj_common.storage.migrate import upgrade
from dfj_gateway.app import create_app
from dfj_linker.bootstrap import bootstrap
from dfj_sandbox.discord_sim import DiscordSimulator
from dfj_sandbox.jira_signing import sign_request

CLIENT_KEY = "e2e-link-site-0001"
SITE = "https://e2e-link.atlassian.net"
SECRET = "e2e-link-shared-secret-long-enough-0000"
ACCOUNT = "557058:alice-in-jira"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    sim: DiscordSimulator
    public_url: str
    bus: LocalBus
    database: Database
    guild_id: str
    channel_id: str
    alice: str
    mallory: str


@pytest.fixture(name="world")
async def _world(tmp_path: Path) -> AsyncIterator[World]:
    url = f"sqlite:///{tmp_path / 'dfj.sqlite'}"
    await asyncio.to_thread(upgrade, url)
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    async with DiscordSimulator(redirect_uris=[public_url + "/oauth/discord/callback"]) as sim:
        guild = sim.add_guild("Acme")
        alice = guild.add_member(username="alice").user_id
        mallory = guild.add_member(username="mallory").user_id
        environ = {
            "DFJ_KEK": base64.b64encode(os.urandom(32)).decode(),
            "DFJ_STATE_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
        }
        settings = Settings.from_env(
            {
                **sim.environ(),
                "DFJ_PUBLIC_URL": public_url,
                "DFJ_LINKER_PORT": "0",
                "DFJ_DRAIN_GRACE_SECONDS": "2",
            },
            env_file=None,
        )
        secrets = EnvSecretStore(environ, env_file=None)
        bus = await LocalBus.open(tmp_path / "bus.sqlite", poll_interval=0.05)
        database = Database.open(url)
        sealed = await EnvelopeCipher(secrets).seal(
            SECRET.encode(), aad=make_aad(CLIENT_KEY, "connect-shared-secret")
        )
        await Installations(database).save_connect(
            CLIENT_KEY, base_url=SITE, shared_secret_ciphertext=sealed
        )
        await GuildConnections(database).connect(guild.id, CLIENT_KEY, connected_by=alice)
        linker = await bootstrap(
            settings, bus=bus, database=database, secrets=secrets, environ=environ
        )
        stop = asyncio.Event()
        running = asyncio.ensure_future(serve(linker, stop))
        app = create_app(settings, bus=bus, database=database, secrets=secrets, environ=environ)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield World(
                sim=sim,
                public_url=public_url,
                bus=bus,
                database=database,
                guild_id=guild.id,
                channel_id=guild.channel_ids[0],
                alice=alice,
                mallory=mallory,
            )
        finally:
            await runner.cleanup()
            stop.set()
            await asyncio.wait_for(running, 10)
            await bus.close()
            await database.close()


async def next_outbox(world: World, timeout: float = 10.0) -> Envelope:
    receiver = world.bus.receiver(DISCORD_OUTBOX)
    try:
        got = await receiver.receive(1, timeout=timeout)
        assert got, "the linker said nothing"
        await got[0].complete()
        return Envelope.decode(got[0].body)
    finally:
        await receiver.close()


async def link_button(world: World, user_id: str) -> str:
    """``/jira link`` as ``user_id``: the URL of the button the linker answers with."""
    body = world.sim.interactions.slash(world.channel_id, user_id, subcommand="link")
    result = await world.sim.send_interaction(world.public_url + "/discord/interactions", body)
    assert result.status == 200 and result.body == {"type": 5, "data": {"flags": 64}}
    reply = await next_outbox(world)
    [row] = reply.data["message"]["components"]
    return str(row["components"][0]["url"])


async def open_in_jira(browser: aiohttp.ClientSession, world: World, button_url: str) -> str:
    """What Jira does with the button: frame our page with a page JWT for the Jira user."""
    button = urlsplit(button_url)
    assert f"{button.scheme}://{button.netloc}" == SITE
    request = parse_qs(button.query)["ac.request"][0]
    query = [("request", request), ("xdm_e", SITE), ("cp", "")]
    token = sign_request(
        SECRET,
        client_key=CLIENT_KEY,
        method="GET",
        path="/jira/pages/link",
        query=query,
        now=world.sim.clock.now(),
        account_id=ACCOUNT,
    )
    async with browser.get(
        world.public_url + "/jira/pages/link", params=[*query, ("jwt", token)]
    ) as page:
        assert page.status == 200, await page.text()
        found = re.search(r'id="continue" href="([^"]+)"', await page.text())
    assert found is not None
    return html.unescape(found.group(1))


async def authorize_as(
    browser: aiohttp.ClientSession, authorize_url: str, user_id: str
) -> aiohttp.ClientResponse:
    """Discord's authorize page, then Authorize as ``user_id``; redirects are followed."""
    async with browser.get(authorize_url) as consent:
        assert consent.status == 200
        form = await consent.text()
    fields = dict(re.findall(r"<input type='hidden' name='([^']+)' value='([^']*)'>", form))
    fields = {k: html.unescape(v) for k, v in fields.items()}
    base = urlsplit(authorize_url)
    return await browser.post(
        f"{base.scheme}://{base.netloc}/oauth2/authorize",
        data={**fields, "user_id": user_id, "decision": "authorize"},
    )


async def poll_status(browser: aiohttp.ClientSession, world: World, page: str) -> dict[str, Any]:
    found = re.search(r'const url = "([^"]+)"', page)
    assert found is not None, page
    status_url = world.public_url + found.group(1).replace("\\u0026", "&")
    for _ in range(100):
        async with browser.get(status_url) as answer:
            body: dict[str, Any] = await answer.json()
        if body["status"] != "pending":
            return body
        await asyncio.sleep(0.1)
    return body


@pytest.mark.slow
async def test_link_from_discord_to_jira_and_back(world: World) -> None:
    async with aiohttp.ClientSession() as browser:
        authorize_url = await open_in_jira(browser, world, await link_button(world, world.alice))
        async with await authorize_as(browser, authorize_url, world.alice) as landed:
            assert landed.status == 200
            assert str(landed.url).startswith(world.public_url + "/oauth/discord/callback")
            assert [r.status for r in landed.history] == [302]
            page = await landed.text()
        assert (await poll_status(browser, world, page))["status"] == "linked"
    link = await UserLinks(world.database).get_by_discord_user(CLIENT_KEY, world.alice)
    assert link is not None and link.account_id == ACCOUNT
    assert len(world.sim.oauth.revocations) == 1  # no Discord token outlived the exchange
    dm = await next_outbox(world)
    assert dm.data["dm_user_id"] == world.alice


@pytest.mark.slow
async def test_someone_else_finishing_alices_link_links_nobody(world: World) -> None:
    async with aiohttp.ClientSession() as browser:
        authorize_url = await open_in_jira(browser, world, await link_button(world, world.alice))
        async with await authorize_as(browser, authorize_url, world.mallory) as landed:
            assert landed.status == 200
            page = await landed.text()
        status = await poll_status(browser, world, page)
        assert status["status"] == "refused" and "another account" in status["message"]
        dm = await next_outbox(world)
    assert dm.data["dm_user_id"] == world.alice
    links = UserLinks(world.database)
    assert await links.get_by_discord_user(CLIENT_KEY, world.alice) is None
    assert await links.get_by_discord_user(CLIENT_KEY, world.mallory) is None


@pytest.mark.slow
async def test_a_reloaded_callback_does_not_link_twice(world: World) -> None:
    async with aiohttp.ClientSession() as browser:
        authorize_url = await open_in_jira(browser, world, await link_button(world, world.alice))
        async with await authorize_as(browser, authorize_url, world.alice) as landed:
            callback = str(landed.url)
            page = await landed.text()
        assert (await poll_status(browser, world, page))["status"] == "linked"
        await next_outbox(world)  # the DM
        async with browser.get(callback) as again:  # the browser reloads the callback
            assert again.status == 200
    await asyncio.sleep(0.5)
    receiver = world.bus.receiver(DISCORD_OUTBOX)
    try:
        assert await receiver.receive(1, timeout=0.2) == []  # nothing said twice
    finally:
        await receiver.close()
    assert len(world.sim.oauth.grants) == 1


@pytest.mark.slow
async def test_connect_a_server_with_the_code_from_the_page_in_jira(world: World) -> None:
    guild = world.sim.add_guild("Beta", owner_id=world.alice)  # the owner may Manage Server
    token = sign_request(
        SECRET,
        client_key=CLIENT_KEY,
        method="GET",
        path="/jira/pages/config",
        now=world.sim.clock.now(),
        account_id=ACCOUNT,
    )
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(world.public_url + "/jira/pages/config", params=[("jwt", token)]) as page,
    ):
        found = re.search(r"/jira connect code:([A-Z0-9-]+)<", await page.text())
    assert found is not None
    body = world.sim.interactions.slash(
        guild.channel_ids[0],
        world.alice,
        subcommand="connect",
        options={"code": found.group(1)},
    )
    result = await world.sim.send_interaction(world.public_url + "/discord/interactions", body)
    assert result.status == 200
    reply = await next_outbox(world)
    assert "Connected this server" in reply.data["message"]["content"]
    connection = await GuildConnections(world.database).get(guild.id)
    assert connection is not None and connection.client_key == CLIENT_KEY
