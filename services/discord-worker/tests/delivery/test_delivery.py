"""Delivery against the Discord simulator: packing, order, exactly once, threads, DMs, replies.

Each test runs the discord-worker its composition root builds, on the real local bus and
database, and asserts on what the simulator stored and answered.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest

from dfj_common.bus import DISCORD_OUTBOX
from dfj_discord_worker.delivery import INTERACTION_REPLY, MESSAGE_POST, nonce_for
from dfj_sandbox.discord_sim.permissions import CREATE_PUBLIC_THREADS, VIEW_CHANNEL

from .conftest import SITE, Rig, notification

if TYPE_CHECKING:
    from tests.conftest import DeferringEndpoint

pytestmark = pytest.mark.slow
CREATE = "POST /channels/{channel_id}/messages"


async def test_a_burst_into_one_channel_is_packed_in_order_without_429s(rig: Rig) -> None:
    keys = [f"DEV-{i}" for i in range(60)]
    ids = [await rig.post(rig.channel, notification(k)) for k in keys]
    await rig.start()
    await rig.wait_for(lambda: len(rig.titles(rig.channel)) >= 60)
    assert rig.titles(rig.channel) == [f"{k}: summary" for k in keys], "in order, once each"
    posts = rig.sim.messages(rig.channel)
    assert len(posts) <= 8, f"{len(posts)} posts for 60 notifications"
    assert all(len(m.embeds) <= 10 for m in posts)
    assert rig.sim.rate_limited() == []
    assert rig.sim.duplicates() == {}
    # A post is recorded sent before its messages are completed: once the queue is empty,
    # every record is written.
    await rig.wait_for_async(lambda s: s.active == 0 and s.locked == 0)
    for mid in ids:
        record = await rig.repos.delivery_log.get(mid)
        assert record is not None and record.status == "sent"


async def test_a_quiet_channel_gets_one_message_per_notification(rig: Rig) -> None:
    await rig.start()
    await rig.post(rig.channel, notification("DEV-1"))
    await rig.wait_for(lambda: len(rig.sim.messages(rig.channel)) == 1)
    await rig.post(rig.channel, notification("DEV-2"))
    await rig.post(rig.channel, notification("DEV-3"))
    await rig.wait_for(lambda: len(rig.titles(rig.channel)) == 3)
    messages = rig.sim.messages(rig.channel)
    assert [len(m.embeds) for m in messages] == [1, 1, 1], "the bucket had room: no packing"
    first = messages[0]
    assert first.nonce is not None and first.allowed_mentions == {"parse": []}
    assert first.components[0]["components"][1]["label"] == "Assign to me"


async def test_without_coalescing_every_notification_is_its_own_post(rig: Rig) -> None:
    for i in range(8):
        await rig.post(rig.channel, notification(f"DEV-{i}"))
    await rig.start(coalesce=False)
    await rig.wait_for(lambda: len(rig.sim.messages(rig.channel)) == 8)
    assert rig.titles(rig.channel) == [f"DEV-{i}: summary" for i in range(8)]
    assert rig.sim.rate_limited() == []


async def test_channels_do_not_wait_for_each_other(rig: Rig) -> None:
    other = rig.guild.add_channel("dev").id
    for i in range(30):
        await rig.post(rig.channel, notification(f"A-{i}"))
        await rig.post(other, notification(f"B-{i}"))
    await rig.start()
    await rig.wait_for(lambda: len(rig.titles(rig.channel)) == 30 and len(rig.titles(other)) == 30)
    assert rig.titles(rig.channel) == [f"A-{i}: summary" for i in range(30)]
    assert rig.titles(other) == [f"B-{i}: summary" for i in range(30)]
    assert rig.sim.rate_limited() == []


async def test_a_lost_answer_is_not_posted_twice(rig: Rig) -> None:
    """Discord stores the post but the answer is lost, again and again: the client's retries
    and then the bus's redelivery send the same nonce, and the channel holds one message."""
    rig.sim.fail_next(CREATE, 503, count=5, applied=True)
    mid = await rig.post(rig.channel, notification("DEV-1"))
    await rig.start()
    await rig.wait_for(
        lambda: rig.sim.count("POST", "/channels/{channel_id}/messages", status=200) == 1,
        timeout=30,
    )
    assert len(rig.sim.messages(rig.channel)) == 1
    assert rig.sim.messages(rig.channel)[0].nonce == nonce_for(mid)
    assert rig.sim.count("POST", "/channels/{channel_id}/messages") == 6
    await rig.wait_for_async(lambda s: s.active == 0 and s.locked == 0)
    record = await rig.repos.delivery_log.get(mid)
    assert record is not None and record.status == "sent"


async def test_a_redelivered_message_already_sent_is_not_posted_again(rig: Rig) -> None:
    """The delivery log says sent (the completion was lost): nothing is posted."""
    mid = await rig.post(rig.channel, notification("DEV-1"), message_id="done-before")
    await rig.repos.delivery_log.record(
        mid, channel_id=rig.channel, status="sent", discord_message_id="1"
    )
    await rig.post(rig.channel, notification("DEV-2"))
    await rig.start()
    await rig.wait_for(lambda: len(rig.sim.messages(rig.channel)) == 1)
    await rig.wait_for_async(lambda s: s.active == 0 and s.locked == 0)
    assert rig.titles(rig.channel) == ["DEV-2: summary"]


async def test_per_issue_threads_are_started_once_and_reused(rig: Rig) -> None:
    one = {"key": f"{SITE}:10001", "name": "DEV-1: The login page"}
    two = {"key": f"{SITE}:10002", "name": "DEV-2: Logout"}
    await rig.start()
    await rig.post(rig.channel, notification("DEV-1", text="created"), thread=one)
    await rig.wait_for(lambda: len(rig.sim.messages(rig.channel)) == 1)
    mapping = await rig.wait_for_thread(one["key"])
    thread = rig.sim.channel(mapping)
    assert thread.name == "DEV-1: The login page"
    assert rig.sim.messages(rig.channel)[0].id == mapping, "started on the first message"
    await rig.post(rig.channel, notification("DEV-1", text="updated"), thread=one)
    await rig.post(rig.channel, notification("DEV-2", text="created"), thread=two)
    await rig.post(rig.channel, notification("DEV-1", text="commented"), thread=one)
    await rig.wait_for(lambda: len(rig.sim.messages(mapping)) == 2)
    await rig.wait_for(lambda: len(rig.sim.messages(rig.channel)) == 2)
    in_thread = [e["description"] for m in rig.sim.messages(mapping) for e in m.embeds]
    assert in_thread == ["updated", "commented"]
    assert await rig.wait_for_thread(two["key"]) != mapping


async def test_a_dm_goes_through_the_users_dm_channel(rig: Rig) -> None:
    user = rig.sim.user(rig.guild.add_member(username="alice").user_id)
    await rig.publish(
        MESSAGE_POST,
        {"client_key": SITE, "dm_user_id": user.id, "message": notification("DEV-7")},
        session=f"dm:{user.id}",
        message_id="dm-1",
    )
    await rig.start()
    await rig.wait_for(lambda: rig.sim.world.dm_channel(user.id) is not None)
    dm = rig.sim.world.dm_channel(user.id)
    assert dm is not None
    await rig.wait_for(lambda: len(rig.sim.messages(dm.id)) == 1)
    assert rig.sim.messages(dm.id)[0].embeds[0]["title"] == "DEV-7: summary"


async def test_missing_access_dead_letters_and_tells_the_admin_once(rig: Rig) -> None:
    admin = rig.sim.user(rig.guild.add_member(username="admin").user_id)
    hidden = rig.guild.add_channel("secret", deny_bot=VIEW_CHANNEL).id
    await rig.repos.guild_connections.connect(rig.guild.id, SITE, connected_by=admin.id)
    await rig.repos.subscriptions.add(
        guild_id=rig.guild.id,
        channel_id=hidden,
        client_key=SITE,
        project_key="DEV",
        event_types=["jira:issue_created"],
        created_by=admin.id,
    )
    await rig.post(hidden, notification("DEV-1"))
    await rig.post(hidden, notification("DEV-2"))
    await rig.start()
    await rig.wait_for_async(lambda s: s.dead_lettered == 2)
    dead = await rig.bus.dead_letters(DISCORD_OUTBOX)
    assert {d.reason for d in dead} == {"DiscordMissingAccess"}
    assert all("50001" in d.description for d in dead)
    dm = rig.sim.world.dm_channel(admin.id)
    assert dm is not None
    notices = rig.sim.messages(dm.id)
    assert len(notices) == 1, "told once, not once per message"
    assert f"<#{hidden}>" in notices[0].embeds[0]["description"]
    assert rig.sim.messages(hidden) == []


async def test_a_message_over_discords_limits_is_dead_lettered_unsent(rig: Rig) -> None:
    message = notification("DEV-1")
    message["embeds"] = message["embeds"] * 11
    await rig.post(rig.channel, message)
    await rig.post(rig.channel, notification("DEV-2"))
    await rig.start()
    await rig.wait_for(lambda: len(rig.sim.messages(rig.channel)) == 1)
    await rig.wait_for_async(lambda s: s.dead_lettered == 1)
    (dead,) = await rig.bus.dead_letters(DISCORD_OUTBOX)
    assert dead.reason == "BadOutboxMessage" and "11 embeds" in dead.description
    assert rig.titles(rig.channel) == ["DEV-2: summary"], "the next one still went out"


# --- interaction answers --------------------------------------------------------------------


async def _interaction(
    rig: Rig, endpoint: DeferringEndpoint, *, ephemeral: bool
) -> tuple[str, str]:
    endpoint.ephemeral = ephemeral
    user = rig.sim.user(rig.guild.add_member(username=f"user{time.monotonic_ns()}").user_id)
    body = rig.sim.interactions.slash(rig.channel, user.id, subcommand="issue")
    result = await rig.sim.send_interaction(endpoint.url, body)
    assert result.acknowledged
    return result.interaction_id, result.token


def reply(
    rig: Rig, interaction_id: str, token: str, message: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    return {
        "application_id": rig.sim.application.id,
        "token": token,
        "interaction_id": interaction_id,
        "channel_id": rig.channel,
        "guild_id": rig.guild.id,
        "message": message,
        "ephemeral": False,
        "followup": False,
        "created_at": time.time(),
        **fields,
    }


async def test_the_deferred_response_is_edited_and_a_followup_is_ephemeral(
    rig: Rig, interaction_endpoint: DeferringEndpoint
) -> None:
    interaction_id, token = await _interaction(rig, interaction_endpoint, ephemeral=True)
    await rig.publish(
        INTERACTION_REPLY,
        reply(rig, interaction_id, token, {"content": "DEV-1 is In Progress"}, ephemeral=True),
        session=rig.channel,
        message_id="reply-1",
    )
    await rig.publish(
        INTERACTION_REPLY,
        reply(
            rig,
            interaction_id,
            token,
            {"content": "and one more thing"},
            ephemeral=True,
            followup=True,
        ),
        session=rig.channel,
        message_id="reply-2",
    )
    await rig.start()
    await rig.wait_for(lambda: bool(_record(rig, interaction_id).followup_ids))
    record = _record(rig, interaction_id)
    assert record.original_message_id is not None
    original = rig.sim.message(record.original_message_id)
    assert original is not None and original.content == "DEV-1 is In Progress"
    (followup_id,) = record.followup_ids
    followup = rig.sim.message(followup_id)
    assert followup is not None and followup.ephemeral and followup.content == "and one more thing"
    webhook_calls = [c for c in rig.sim.calls if c.template and c.template.startswith("/webhooks")]
    assert webhook_calls and all(c.auth == "none" for c in webhook_calls)


async def test_an_answer_with_a_file_uploads_it(
    rig: Rig, interaction_endpoint: DeferringEndpoint
) -> None:
    interaction_id, token = await _interaction(rig, interaction_endpoint, ephemeral=True)
    file = {"name": "export.json", "content_type": "application/json", "text": '{"links": []}'}
    await rig.publish(
        INTERACTION_REPLY,
        reply(rig, interaction_id, token, {"content": "attached"}, ephemeral=True, files=[file]),
        session=rig.channel,
        message_id="reply-file",
    )
    await rig.start()
    await rig.wait_for(lambda: bool(rig.sim.uploads))
    [upload] = rig.sim.uploads
    assert (upload.filename, upload.data) == ("export.json", b'{"links": []}')
    record = _record(rig, interaction_id)
    assert record.original_message_id is not None
    original = rig.sim.message(record.original_message_id)
    assert original is not None and original.content == "attached"


async def test_a_late_public_answer_falls_back_to_the_channel(
    rig: Rig, interaction_endpoint: DeferringEndpoint
) -> None:
    interaction_id, token = await _interaction(rig, interaction_endpoint, ephemeral=False)
    old = time.time() - 16 * 60
    await rig.publish(
        INTERACTION_REPLY,
        reply(rig, interaction_id, token, {"content": "late news"}, created_at=old),
        session=rig.channel,
        message_id="late-1",
    )
    await rig.publish(
        INTERACTION_REPLY,
        reply(rig, interaction_id, token, {"content": "private"}, created_at=old, ephemeral=True),
        session=rig.channel,
        message_id="late-2",
    )
    await rig.start()
    await rig.wait_for(lambda: any(m.content == "late news" for m in rig.sim.messages(rig.channel)))
    await rig.wait_for_async(lambda s: s.active == 0 and s.locked == 0)
    contents = [m.content for m in rig.sim.messages(rig.channel)]
    assert "private" not in contents, "a private answer is never shown to the channel"
    assert not any(c.template and c.template.startswith("/webhooks") for c in rig.sim.calls)


async def test_an_answer_that_outruns_discords_acknowledgement_is_retried(
    rig: Rig, interaction_endpoint: DeferringEndpoint
) -> None:
    """The answer is ready before Discord has taken the deferral: 10015 then, not expiry."""
    interaction_endpoint.delay = 0.6
    user = rig.sim.user(rig.guild.add_member(username="quick").user_id)
    body = rig.sim.interactions.slash(rig.channel, user.id, subcommand="issue")
    sending = asyncio.ensure_future(rig.sim.send_interaction(interaction_endpoint.url, body))
    await asyncio.sleep(0.1)  # the interaction is out; its deferral is not in yet
    await rig.publish(
        INTERACTION_REPLY,
        reply(rig, body["id"], body["token"], {"content": "quick answer"}, ephemeral=True),
        session=rig.channel,
        message_id="quick-1",
    )
    await rig.start()
    assert (await sending).acknowledged
    await rig.wait_for(lambda: _record(rig, body["id"]).original_message_id is not None)

    def answered() -> bool:
        original = rig.sim.message(_record(rig, body["id"]).original_message_id)
        return original is not None and original.content == "quick answer"

    await rig.wait_for(answered)
    early = [
        c
        for c in rig.sim.calls
        if c.template and c.template.startswith("/webhooks") and c.status == 404
    ]
    assert early, "the first attempt came before the acknowledgement"


async def test_a_token_discord_calls_invalid_falls_back_too(rig: Rig) -> None:
    await rig.publish(
        INTERACTION_REPLY,
        reply(rig, "1500000000000000001", "bm90LWEtdG9rZW4", {"content": "hello"}),
        session=rig.channel,
        message_id="invalid-1",
    )
    await rig.start()
    await rig.wait_for(lambda: any(m.content == "hello" for m in rig.sim.messages(rig.channel)))


def _record(rig: Rig, interaction_id: str) -> Any:
    record = rig.sim.interaction(interaction_id)
    assert record is not None
    return record


async def test_a_deleted_thread_is_forgotten_and_started_again(rig: Rig) -> None:
    key = {"key": f"{SITE}:10001", "name": "DEV-1: The login page"}
    await rig.start()
    await rig.post(rig.channel, notification("DEV-1", text="created"), thread=key)
    first = await rig.wait_for_thread(key["key"])
    del rig.sim.world.channels[first]  # a moderator deleted the thread
    await rig.post(rig.channel, notification("DEV-1", text="updated"), thread=key)
    await rig.wait_for(lambda: len(rig.sim.messages(rig.channel)) == 2)
    again = await rig.wait_for_thread_other_than(key["key"], first)
    assert rig.sim.channel(again).name == "DEV-1: The login page"
    assert rig.sim.messages(rig.channel)[1].id == again, "started on the new post"
    assert rig.sim.count("POST", "/channels/{channel_id}/messages", status=404) == 1


async def test_a_thread_the_bot_may_not_start_still_delivers_and_tells_the_admin(
    rig: Rig,
) -> None:
    admin = rig.sim.user(rig.guild.add_member(username="admin").user_id)
    no_threads = rig.guild.add_channel("no-threads", deny_bot=CREATE_PUBLIC_THREADS).id
    await rig.repos.guild_connections.connect(rig.guild.id, SITE, connected_by=admin.id)
    await rig.repos.subscriptions.add(
        guild_id=rig.guild.id,
        channel_id=no_threads,
        client_key=SITE,
        project_key="DEV",
        event_types=["jira:issue_created"],
        created_by=admin.id,
        delivery_mode="thread",
    )
    key = {"key": f"{SITE}:10001", "name": "DEV-1"}
    mid = await rig.post(no_threads, notification("DEV-1"), thread=key)
    await rig.start()
    await rig.wait_for(lambda: rig.sim.world.dm_channel(admin.id) is not None)
    assert [m.embeds[0]["title"] for m in rig.sim.messages(no_threads)] == ["DEV-1: summary"]
    assert await rig.repos.issue_threads.get(no_threads, key["key"]) is None
    # The admin's DM goes out before the post is recorded as sent: wait for the record too.
    for _ in range(100):
        record = await rig.repos.delivery_log.get(mid)
        if record is not None and record.status == "sent":
            break
        await asyncio.sleep(0.05)
    assert record is not None and record.status == "sent", "the notification went out"
    await rig.wait_for_async(lambda s: s.active == 0 and s.locked == 0)
    assert (await rig.outbox()).dead_lettered == 0
