"""/jira connect CODE and /jira disconnect."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dfj_common.derived_keys import master_key, short_code
from dfj_common.storage import GuildConnections, Installations, InstallationState, Subscriptions

if TYPE_CHECKING:
    from services.linker.tests.conftest import Rig


def code_for(rig: Rig, site: str | None = None, *, ttl: int = 600) -> str:
    """What the configuration page inside Jira shows the admin."""
    expires = int(rig.clock.now()) + ttl
    return short_code(
        master_key(rig.signing_key), "connect-code", site or rig.site, expires_at=expires
    )


async def connect(rig: Rig, guild_id: str, code: str, *, manage: bool = True) -> str:
    await rig.send(
        rig.command(
            "connect",
            user_id=rig.alice,
            guild_id=guild_id,
            options={"code": code},
            manage_server=manage,
        )
    )
    [reply] = await rig.outbox()
    return rig.message_text(reply)


async def test_a_code_from_jira_connects_a_server_once(rig: Rig) -> None:
    guild = rig.sim.add_guild("Other").id
    code = code_for(rig)
    assert "Connected this server to " + rig.site_url in await connect(rig, guild, code)
    connection = await GuildConnections(rig.db).get(guild)
    assert connection is not None
    assert (connection.client_key, connection.connected_by) == (rig.site, rig.alice)
    third = rig.sim.add_guild("Third").id
    assert "used already" in await connect(rig, third, code)
    assert await GuildConnections(rig.db).get(third) is None
    # A site may have many servers: a new code connects the third one.
    assert "Connected" in await connect(rig, third, code_for(rig))


async def test_connect_needs_manage_server_and_keeps_the_code_unspent(rig: Rig) -> None:
    guild = rig.sim.add_guild("Other").id
    code = code_for(rig)
    assert "Manage Server" in await connect(rig, guild, code, manage=False)
    assert "Connected" in await connect(rig, guild, code)


async def test_expired_forged_and_unknown_site_codes_are_refused(rig: Rig) -> None:
    guild = rig.sim.add_guild("Other").id
    expired = code_for(rig, ttl=60)
    rig.clock.advance(61)
    assert "expired" in await connect(rig, guild, expired)
    assert "not valid" in await connect(rig, guild, code_for(rig, "jira:not-installed"))
    assert "not valid" in await connect(rig, guild, "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH")
    assert "not valid" in await connect(rig, guild, "short")
    await Installations(rig.db).set_state(rig.site, InstallationState.UNINSTALLED)
    assert "not valid" in await connect(rig, guild, code_for(rig))
    assert await GuildConnections(rig.db).get(guild) is None


async def test_a_server_is_connected_to_one_site(rig: Rig) -> None:
    await Installations(rig.db).save_connect(
        "jira:site-2", base_url="https://beta.atlassian.net", shared_secret_ciphertext=b"s"
    )
    code = code_for(rig, "jira:site-2")
    assert "another Jira site" in await connect(rig, rig.guild_id, code)
    assert "already connected" in await connect(rig, rig.guild_id, code_for(rig))
    # The refused code was not spent: after a disconnect it still works.
    await rig.send(rig.command("disconnect", user_id=rig.alice, manage_server=True))
    await rig.outbox()
    assert "beta.atlassian.net" in await connect(rig, rig.guild_id, code)


async def test_disconnect_removes_the_connection_and_its_subscriptions(rig: Rig) -> None:
    subscriptions = Subscriptions(rig.db)
    await subscriptions.add(
        guild_id=rig.guild_id,
        channel_id="1200000000000000001",
        client_key=rig.site,
        project_key="ABC",
        event_types=["issue_created"],
        created_by=rig.alice,
    )
    await rig.send(rig.command("disconnect", user_id=rig.mallory))
    [reply] = await rig.outbox()
    assert "Manage Server" in rig.message_text(reply)
    assert await GuildConnections(rig.db).get(rig.guild_id) is not None
    await rig.send(rig.command("disconnect", user_id=rig.alice, manage_server=True))
    [reply] = await rig.outbox()
    assert "1 subscription(s) removed" in rig.message_text(reply)
    assert await GuildConnections(rig.db).get(rig.guild_id) is None
    assert await subscriptions.list_for_guild(rig.guild_id) == []
    await rig.send(rig.command("disconnect", user_id=rig.alice, manage_server=True))
    [reply] = await rig.outbox()
    assert "not connected" in rig.message_text(reply)
