"""Channels, threads and DMs: Get Channel, both thread routes, Create DM, posting in them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dfj_sandbox.discord_sim import PRIVATE_THREAD, PUBLIC_THREAD, DiscordSimulator, Guild, User
from dfj_sandbox.discord_sim.permissions import (
    CREATE_PRIVATE_THREADS,
    CREATE_PUBLIC_THREADS,
    SEND_MESSAGES_IN_THREADS,
)

if TYPE_CHECKING:
    from libs.sandbox.tests.discord_sim.conftest import Api


async def test_get_channel_of_a_text_channel(api: Api, guild: Guild, general: str) -> None:
    """A guild text channel with its overwrites."""
    answer = await api.call("GET", f"/channels/{general}")
    assert answer.status == 200
    assert (answer.body["id"], answer.body["type"], answer.body["guild_id"]) == (
        general,
        0,
        guild.id,
    )
    assert answer.body["name"] == "general"


async def test_thread_from_message_has_the_message_id(
    api: Api, sim: DiscordSimulator, general: str
) -> None:
    """201 with a public thread whose id is the message's; the message points at it."""
    message = await api.post_message(general, {"content": "DEMO-1 created"})
    message_id = message.body["id"]
    answer = await api.call(
        "POST",
        f"/channels/{general}/messages/{message_id}/threads",
        json={"name": "DEMO-1 Export crashes", "auto_archive_duration": 1440},
    )
    assert answer.status == 201
    thread = answer.body
    assert (thread["id"], thread["type"], thread["parent_id"]) == (message_id, 11, general)
    assert thread["owner_id"] == sim.application.id
    assert thread["thread_metadata"]["auto_archive_duration"] == 1440
    starter = sim.message(message_id)
    assert starter is not None and starter.thread_id == message_id
    posted = await api.post_message(message_id, {"content": "DEMO-1 moved to Done"})
    assert posted.status == 200
    assert [m.content for m in sim.messages(message_id)] == ["DEMO-1 moved to Done"]
    got = await api.call("GET", f"/channels/{message_id}")
    assert got.body["message_count"] == 1


async def test_one_thread_per_message(api: Api, general: str) -> None:
    """The second thread on a message is 160004; an unknown message 10008."""
    message = await api.post_message(general, {"content": "x"})
    path = f"/channels/{general}/messages/{message.body['id']}/threads"
    assert (await api.call("POST", path, json={"name": "t"})).status == 201
    again = await api.call("POST", path, json={"name": "t"})
    assert (again.status, again.body["code"]) == (400, 160004)
    missing = await api.call("POST", f"/channels/{general}/messages/1/threads", json={"name": "t"})
    assert missing.body["code"] == 10008


async def test_thread_name_is_validated(api: Api, general: str) -> None:
    """``name`` is required and at most 100 characters."""
    message = await api.post_message(general, {"content": "x"})
    path = f"/channels/{general}/messages/{message.body['id']}/threads"
    long = await api.call("POST", path, json={"name": "n" * 101})
    assert long.body["code"] == 50035
    missing = await api.call("POST", path, json={})
    assert missing.body["errors"]["name"]["_errors"][0]["code"] == "BASE_TYPE_REQUIRED"


async def test_thread_without_message_defaults_to_private(
    api: Api, sim: DiscordSimulator, guild: Guild, general: str
) -> None:
    """No ``type``: a private thread (12), which needs CREATE_PRIVATE_THREADS."""
    guild.set_permissions(guild.id, guild.everyone.permissions & ~CREATE_PRIVATE_THREADS)
    answer = await api.call("POST", f"/channels/{general}/threads", json={"name": "p"})
    assert answer.status == 403
    assert answer.body["code"] == 50013
    public = await api.call(
        "POST", f"/channels/{general}/threads", json={"name": "DEMO-2", "type": PUBLIC_THREAD}
    )
    assert public.status == 201
    assert public.body["type"] == PUBLIC_THREAD
    assert public.body["member"]["user_id"] == sim.application.id
    bot_role = guild.bot_role
    assert bot_role is not None
    guild.set_permissions(bot_role.id, bot_role.permissions | CREATE_PRIVATE_THREADS)
    private = await api.call("POST", f"/channels/{general}/threads", json={"name": "p"})
    assert (private.status, private.body["type"]) == (201, PRIVATE_THREAD)


async def test_both_thread_routes_share_one_bucket(api: Api, general: str) -> None:
    """The same ``X-RateLimit-Bucket`` and one count across the two routes."""
    message = await api.post_message(general, {"content": "x"})
    first = await api.call(
        "POST", f"/channels/{general}/messages/{message.body['id']}/threads", json={"name": "a"}
    )
    second = await api.call(
        "POST", f"/channels/{general}/threads", json={"name": "b", "type": PUBLIC_THREAD}
    )
    assert first.headers["X-RateLimit-Bucket"] == second.headers["X-RateLimit-Bucket"]
    remaining = int(first.headers["X-RateLimit-Remaining"])
    assert int(second.headers["X-RateLimit-Remaining"]) == remaining - 1


async def test_thread_permissions_come_from_the_parent(api: Api, guild: Guild) -> None:
    """CREATE_PUBLIC_THREADS missing: 50013; posting needs SEND_MESSAGES_IN_THREADS."""
    channel = guild.add_channel("no-threads", deny_bot=CREATE_PUBLIC_THREADS).id
    message = await api.post_message(channel, {"content": "x"})
    refused = await api.call(
        "POST", f"/channels/{channel}/messages/{message.body['id']}/threads", json={"name": "t"}
    )
    assert refused.body["code"] == 50013
    quiet = guild.add_channel("quiet", deny_bot=SEND_MESSAGES_IN_THREADS).id
    starter = await api.post_message(quiet, {"content": "x"})
    thread = await api.call(
        "POST", f"/channels/{quiet}/messages/{starter.body['id']}/threads", json={"name": "t"}
    )
    posted = await api.post_message(thread.body["id"], {"content": "in thread"})
    assert posted.body["code"] == 50013


async def test_dm_channel_is_opened_once_and_takes_messages(
    api: Api, sim: DiscordSimulator, alice: User
) -> None:
    """The same DM channel both times, with the user as recipient; the message lands in it."""
    first = await api.call("POST", "/users/@me/channels", json={"recipient_id": alice.id})
    second = await api.call("POST", "/users/@me/channels", json={"recipient_id": alice.id})
    assert first.status == 200
    assert first.body["id"] == second.body["id"]
    assert first.body["type"] == 1
    assert [r["id"] for r in first.body["recipients"]] == [alice.id]
    posted = await api.post_message(first.body["id"], {"content": "You were assigned DEMO-1"})
    assert posted.status == 200
    assert sim.messages(first.body["id"])[0].content == "You were assigned DEMO-1"
    got = await api.call("GET", f"/channels/{first.body['id']}")
    assert got.body["recipients"][0]["username"] == "alice"


async def test_dm_refusals(api: Api, sim: DiscordSimulator, guild: Guild) -> None:
    """Unknown recipient: 50033; closed DMs or no shared guild: 50007 on send."""
    unknown = await api.call("POST", "/users/@me/channels", json={"recipient_id": "42"})
    assert (unknown.status, unknown.body["code"]) == (400, 50033)
    closed = guild.add_member(username="private", accepts_dms=False)
    stranger = sim.add_user(username="stranger")
    for user_id in (closed.user_id, stranger.id):
        dm = await api.call("POST", "/users/@me/channels", json={"recipient_id": user_id})
        posted = await api.post_message(dm.body["id"], {"content": "hi"})
        assert (posted.status, posted.body["code"]) == (403, 50007)
