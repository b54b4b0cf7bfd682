"""Finishing a link: the OAuth callback against the Discord simulator, unlink and me."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from dfj_common.config import Secret
from dfj_common.derived_keys import master_key
from dfj_common.errors import MalformedMessage, RateLimited, TransientError
from dfj_common.storage import UserLinks
from dfj_linker.oauth import DiscordOAuth

if TYPE_CHECKING:
    from services.linker.tests.conftest import Rig


async def refusals(rig: Rig) -> list[dict[str, str]]:
    from sqlalchemy import select

    from dfj_common.storage.schema import metadata_cache

    rows = await rig.db.run(
        lambda conn: conn.execute(
            select(metadata_cache.c.value).where(metadata_cache.c.kind == "link-outcome")
        ).all(),
        write=False,
    )
    return [dict(r.value) for r in rows]


async def link_of(rig: Rig, user_id: str) -> str | None:
    link = await UserLinks(rig.db).get_by_discord_user(rig.site, user_id)
    return link.account_id if link is not None else None


async def test_a_completed_flow_links_revokes_and_confirms_by_dm(rig: Rig) -> None:
    await rig.send(rig.callback(rig.alice, asked_by=rig.alice))
    assert await link_of(rig, rig.alice) == rig.account
    assert rig.revoked() == 1  # the token lived only for the exchange and /users/@me
    [dm] = await rig.outbox()
    assert dm.type == "discord.message.post"
    assert dm.data["dm_user_id"] == rig.alice
    assert rig.site_url in rig.message_text(dm)


async def test_a_flow_begun_in_jira_without_a_discord_user_links_whoever_authorized(
    rig: Rig,
) -> None:
    await rig.send(rig.callback(rig.mallory, asked_by=None))
    assert await link_of(rig, rig.mallory) == rig.account


async def test_another_discord_user_completing_the_flow_is_refused(rig: Rig) -> None:
    """Mallory signs in to Discord to finish the link Alice asked for: nothing is linked."""
    await rig.send(rig.callback(rig.mallory, asked_by=rig.alice))
    assert await link_of(rig, rig.mallory) is None
    assert await link_of(rig, rig.alice) is None
    assert rig.revoked() == 1  # Mallory's grant does not survive either
    [dm] = await rig.outbox()
    assert dm.data["dm_user_id"] == rig.alice
    assert "another account" in rig.message_text(dm)
    # The page that polls learns it too (the gateway reads this entry).
    [outcome] = await refusals(rig)
    assert outcome["status"] == "refused" and "another account" in outcome["message"]


async def test_a_replayed_state_is_refused(rig: Rig) -> None:
    first = rig.callback(rig.alice, asked_by=rig.alice)
    await rig.send(first)
    await rig.outbox()
    # The same callback again, as a fresh message (a replay past the bus's dedupe window):
    # the state was used, so nothing is exchanged and nothing is said.
    await UserLinks(rig.db).unlink(rig.site, rig.alice)
    await rig.send(first)
    assert await link_of(rig, rig.alice) is None
    assert await rig.outbox() == []


async def test_a_redelivery_of_the_same_message_is_answered_once(rig: Rig) -> None:
    event = rig.callback(rig.alice, asked_by=rig.alice)
    await rig.send(event)
    await rig.send(event, delivery_count=2)
    assert len(await rig.outbox()) == 1
    assert await link_of(rig, rig.alice) == rig.account


async def test_an_expired_state_is_refused(rig: Rig) -> None:
    event = rig.callback(rig.alice, asked_by=rig.alice, ttl=60)
    rig.clock.advance(61)
    await rig.send(event)
    assert await link_of(rig, rig.alice) is None
    [dm] = await rig.outbox()
    assert "expired" in rig.message_text(dm)


async def test_a_pkce_mismatch_is_refused_by_discord(rig: Rig) -> None:
    """The code was issued for another challenge: Discord refuses the exchange."""
    await rig.send(rig.callback(rig.alice, asked_by=rig.alice, verifier_nonce="other-nonce"))
    assert await link_of(rig, rig.alice) is None
    assert rig.revoked() == 0  # there never was a token
    [dm] = await rig.outbox()
    assert "did not accept" in rig.message_text(dm)


async def test_relinking_replaces_and_an_account_has_one_discord_user(rig: Rig) -> None:
    await rig.send(rig.callback(rig.alice, asked_by=rig.alice, account_id="557058:old"))
    await rig.send(rig.callback(rig.alice, asked_by=rig.alice))
    assert await link_of(rig, rig.alice) == rig.account
    await rig.send(rig.callback(rig.mallory, asked_by=rig.mallory))  # the same Jira account
    assert await link_of(rig, rig.mallory) == rig.account
    assert await link_of(rig, rig.alice) is None


async def test_discord_unreachable_is_retried_and_the_retry_completes(rig: Rig) -> None:
    event = rig.callback(rig.alice, asked_by=rig.alice)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/api/v10"
    unreachable = DiscordOAuth(api_url=dead, client_id="1", client_secret=Secret("s"))
    try:
        with pytest.raises(TransientError):
            await rig.send(event, oauth=unreachable)
    finally:
        await unreachable.close()
    await rig.send(event, delivery_count=2)  # the runtime's retry: the state is ours already
    assert await link_of(rig, rig.alice) == rig.account


async def test_a_failure_after_the_exchange_still_revokes_and_the_retry_says_try_again(
    rig: Rig,
) -> None:
    """/users/@me answers 503: the token is revoked anyway; the code is spent at Discord."""
    event = rig.callback(rig.alice, asked_by=rig.alice)
    rig.sim.fail_next("GET /users/@me", 503)
    with pytest.raises(TransientError):
        await rig.send(event)
    assert rig.revoked() == 1
    await rig.send(event, delivery_count=2)
    assert await link_of(rig, rig.alice) is None
    [dm] = await rig.outbox()
    assert "did not accept" in rig.message_text(dm)


async def test_discord_rate_limiting_the_exchange_backs_off(rig: Rig) -> None:
    rig.sim.fail_next("GET /users/@me", 429, retry_after=2.5)
    with pytest.raises(RateLimited) as limited:
        await rig.send(rig.callback(rig.alice, asked_by=rig.alice))
    assert limited.value.retry_after == pytest.approx(2.5)


async def test_a_malformed_callback_is_dead_lettered(rig: Rig) -> None:
    event = rig.callback(rig.alice, asked_by=rig.alice)
    broken = type(event)(**{**event.__dict__, "data": {**event.data, "code": "has spaces"}})
    with pytest.raises(MalformedMessage):
        await rig.send(broken)
    other = type(event)(
        **{**event.__dict__, "data": {**event.data, "redirect_uri": "https://evil.example/cb"}}
    )
    with pytest.raises(MalformedMessage):
        await rig.send(other)


async def test_unlink_and_me(rig: Rig) -> None:
    await rig.send(rig.command("me", user_id=rig.alice))
    [reply] = await rig.outbox()
    assert reply.type == "discord.interaction.reply"
    assert "not linked" in rig.message_text(reply)
    await rig.send(rig.callback(rig.alice, asked_by=rig.alice))
    await rig.outbox()
    await rig.send(rig.command("me", user_id=rig.alice))
    [reply] = await rig.outbox()
    assert rig.account in rig.message_text(reply) and rig.site_url in rig.message_text(reply)
    await rig.send(rig.command("me", user_id=rig.alice, guild=False))  # in DMs: every site
    [reply] = await rig.outbox()
    assert rig.account in rig.message_text(reply)
    await rig.send(rig.command("unlink", user_id=rig.alice))
    [reply] = await rig.outbox()
    assert "Unlinked" in rig.message_text(reply)
    assert await link_of(rig, rig.alice) is None
    await rig.send(rig.command("unlink", user_id=rig.alice))
    [reply] = await rig.outbox()
    assert "not linked" in rig.message_text(reply)


async def test_link_answers_with_a_button_to_the_page_inside_jira(rig: Rig) -> None:
    from urllib.parse import parse_qs, urlsplit

    from dfj_common.derived_keys import unseal
    from dfj_gateway.jira.link_request import verify_link_request

    await rig.send(rig.command("link", user_id=rig.alice))
    [reply] = await rig.outbox()
    message = reply.data["message"]
    [row] = message["components"]
    [button] = row["components"]
    assert button["style"] == 5  # a link button
    url = urlsplit(button["url"])
    assert f"{url.scheme}://{url.netloc}" == rig.site_url
    assert url.path == "/plugins/servlet/ac/discord-for-jira/dfj-link"
    token = parse_qs(url.query)["ac.request"][0]
    key = master_key(rig.signing_key)
    assert unseal(key, "link-request", token)["gid"] == rig.guild_id
    # The gateway's page accepts what the linker issued: same site, the user who asked.
    asked = verify_link_request(key, token, now=rig.clock.now())
    assert (asked.client_key, asked.discord_user_id) == (rig.site, rig.alice)
    assert len(button["url"]) <= 512  # Discord's limit for a button URL


async def test_link_outside_a_connected_server_says_what_to_do(rig: Rig) -> None:
    await rig.send(rig.command("link", user_id=rig.alice, guild=False))
    [reply] = await rig.outbox()
    assert "in a server" in rig.message_text(reply)
    assert "components" not in reply.data["message"]


async def test_a_callback_for_a_site_that_uninstalled_meanwhile_links_nobody(rig: Rig) -> None:
    from dfj_common.storage import Installations, InstallationState

    event = rig.callback(rig.alice, asked_by=rig.alice)
    await Installations(rig.db).set_state(rig.site, InstallationState.UNINSTALLED)
    await rig.send(event)
    assert await link_of(rig, rig.alice) is None
    [dm] = await rig.outbox()
    assert "no longer has the app" in rig.message_text(dm)
    assert rig.revoked() == 0  # the code was never exchanged


async def test_on_a_forge_site_link_opens_our_forge_global_page(rig: Rig) -> None:
    """Forge's ``jira:globalPage`` lives at ``{site}/jira/apps/{appId}/{environmentId}``."""
    from urllib.parse import parse_qs, urlsplit

    from dfj_common.config import Secret
    from dfj_common.storage import Installations
    from dfj_gateway.jira.link_request import verify_link_request
    from dfj_linker.handlers import build_tables
    from dfj_linker.oauth import DiscordOAuth

    app_id = "ari:cloud:ecosystem::app/5d2c8a1e-7b3f-4c6d-9e0a-1b2c3d4e5f60"
    environment = "ari:cloud:ecosystem::environment/5d2c8a1e-7b3f-4c6d-9e0a-1b2c3d4e5f60/e1"
    installations = Installations(rig.db)
    await installations.save_forge(
        "ari:cloud:ecosystem::installation/i-1", client_key=rig.site, environment_id=None
    )

    async def key() -> bytes:
        return master_key(rig.signing_key)

    oauth = DiscordOAuth(api_url=rig.sim.api_url, client_id="1", client_secret=Secret("unused"))
    table = build_tables(
        rig.db,
        rig.bus,
        oauth=oauth,
        master_key=key,
        public_url="https://dfj.example.test",
        clock=rig.clock,
        forge_app_id=app_id,
    )["linker"]
    event = rig.command("link", user_id=rig.alice)
    await table[event.type](event, rig.context())
    [reply] = await rig.outbox()
    assert "still being set up" in rig.message_text(reply)
    assert "components" not in reply.data["message"]

    await installations.save_forge(
        "ari:cloud:ecosystem::installation/i-1", environment_id=environment
    )
    await table[event.type](rig.command("link", user_id=rig.alice), rig.context())
    [reply] = await rig.outbox()
    [row] = reply.data["message"]["components"]
    [button] = row["components"]
    url = urlsplit(button["url"])
    assert f"{url.scheme}://{url.netloc}" == rig.site_url
    assert url.path == "/jira/apps/5d2c8a1e-7b3f-4c6d-9e0a-1b2c3d4e5f60/e1"
    token = parse_qs(url.query)["request"][0]
    asked = verify_link_request(master_key(rig.signing_key), token, now=rig.clock.now())
    assert (asked.client_key, asked.discord_user_id) == (rig.site, rig.alice)
    await oauth.close()
