"""The Discord client against the Discord simulator: real HTTP on loopback, the real clock.

The unit tests in ``discord_client/`` run the client against a small fake of our own; here
it meets the simulator, which keeps Discord's buckets, global limit and invalid-request count
independently of our limiter (its windows scaled down ten times, see ``conftest.py``). Every
test decides on what the simulator recorded — the requests it answered, their status, scope,
time and ``Authorization`` — and what it stored, not on what the client believes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import pytest

from dfj_discord_worker.discord import (
    DiscordError,
    DiscordForbidden,
    DiscordNotFound,
    DiscordUnavailable,
    LimiterPolicy,
    Upload,
)
from dfj_discord_worker.discord.routes import (
    CREATE_MESSAGE,
    START_THREAD,
    START_THREAD_FROM_MESSAGE,
)
from dfj_sandbox.discord_sim import Scope, bucket_hash
from dfj_sandbox.discord_sim.permissions import VIEW_CHANNEL

from .conftest import scaled_limits

if TYPE_CHECKING:
    from .conftest import DeferringEndpoint, MakeDiscordClient, SimDiscord

MESSAGES: Final = "/channels/{channel_id}/messages"
THREADS_FROM_MESSAGE: Final = "/channels/{channel_id}/messages/{message_id}/threads"
THREADS: Final = "/channels/{channel_id}/threads"
CHANNEL: Final = "/channels/{channel_id}"
ORIGINAL: Final = "/webhooks/{webhook_id}/{webhook_token}/messages/@original"
FOLLOWUP: Final = "/webhooks/{webhook_id}/{webhook_token}"
WINDOW: Final = scaled_limits().buckets["messages.create"].window  # 5 creates per WINDOW
RETRY_AFTER: Final = 0.3


async def _until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.002)


# -- buckets -----------------------------------------------------------------------------------


async def test_the_first_answer_teaches_the_bucket_and_a_burst_of_twelve_meets_no_429(
    discord_sim: SimDiscord, make_discord_client: MakeDiscordClient
) -> None:
    """One create tells the limiter the channel's bucket (Remaining 4 of 5); twelve
    concurrent creates then reach the simulator one request each, in order, no 429."""
    channel = discord_sim.channel_id
    client = make_discord_client()
    route = CREATE_MESSAGE.compile(channel_id=channel)
    assert client.limiter.headroom(route) is None, "nothing known before the first answer"

    await client.create_message(channel, {"content": "first"})
    (first,) = discord_sim.calls
    assert (first.status, first.bucket) == (200, bucket_hash("messages.create"))
    assert client.limiter.headroom(route) == 4

    texts = [f"burst {i}" for i in range(12)]
    answers = await asyncio.gather(*(client.create_message(channel, {"content": t}) for t in texts))

    assert discord_sim.rate_limited() == []
    assert discord_sim.contents(channel) == ["first", *texts]
    assert [a["content"] for a in answers] == texts
    created = discord_sim.calls_to("POST", MESSAGES, major=channel)
    assert [c.status for c in created] == [200] * 13, "one request per message"
    # 13 messages at 5 per window span three windows: the bucket really was the limit.
    assert created[-1].at - created[0].at >= 2 * WINDOW


async def test_two_channels_have_their_own_buckets_and_proceed_side_by_side(
    discord_sim: SimDiscord, make_discord_client: MakeDiscordClient
) -> None:
    """Same route, two channels (the major parameter): each gets its full 5 in the first
    window, where one shared bucket would have let 5 through for both together."""
    one, two = discord_sim.channel_id, discord_sim.add_channel("other")
    client = make_discord_client()

    await asyncio.gather(
        *(
            client.create_message(channel, {"content": f"{channel}:{i}"})
            for i in range(10)
            for channel in (one, two)
        )
    )

    assert discord_sim.rate_limited() == []
    for channel in (one, two):
        assert discord_sim.contents(channel) == [f"{channel}:{i}" for i in range(10)]
    created = discord_sim.calls_to("POST", MESSAGES)
    opened = created[0].at
    first_window = Counter(c.major for c in created if c.at < opened + WINDOW)
    assert first_window == {one: 5, two: 5}


async def test_routes_sharing_a_bucket_hash_share_the_limiters_bucket(
    discord_sim: SimDiscord, make_discord_client: MakeDiscordClient
) -> None:
    """Both thread routes answer with one bucket hash; a cold burst of 3 + 3 against a
    limit of 3 per window is paced as one bucket: no 429, 3 requests per window."""
    window = 0.5
    discord_sim.set_limits(scaled_limits().with_bucket("threads.create", 3, window))
    channel = discord_sim.channel_id
    client = make_discord_client()
    posts = [await client.create_message(channel, {"content": f"DEV-{i}"}) for i in range(3)]

    await asyncio.gather(
        *(client.start_thread_from_message(channel, p["id"], f"from {p['id']}") for p in posts),
        *(client.start_thread(channel, f"loose {i}") for i in range(3)),
    )

    from_message = discord_sim.calls_to("POST", THREADS_FROM_MESSAGE)
    loose = discord_sim.calls_to("POST", THREADS)
    assert {c.bucket for c in from_message + loose} == {bucket_hash("threads.create")}
    assert discord_sim.rate_limited() == []
    assert [c.status for c in from_message + loose] == [201] * 6
    threads = sorted(from_message + loose, key=lambda c: c.at)
    per_window = Counter(int((c.at - threads[0].at) // window) for c in threads)
    assert sorted(per_window.values()) == [3, 3], "paced as one bucket of 3 per window"
    assert len(discord_sim.guild.channels) == 1 + 6, "six threads made"
    # The limiter holds one bucket for the pair (and one for the creates before them).
    limiter = client.limiter
    assert limiter.stats().buckets == 2
    with_message = START_THREAD_FROM_MESSAGE.compile(channel_id=channel, message_id=posts[0]["id"])
    without = START_THREAD.compile(channel_id=channel)
    assert limiter.headroom(with_message) == limiter.headroom(without)


async def test_many_channels_at_once_stay_under_the_global_limit(
    discord_sim: SimDiscord, make_discord_client: MakeDiscordClient
) -> None:
    """40 creates over 20 channels against a global 10 per 0.25 s: none is refused."""
    per_window, window = 10, 0.25
    discord_sim.set_limits(scaled_limits(global_limit=per_window, global_window=window))
    channels = [discord_sim.add_channel(f"c{i}") for i in range(20)]
    client = make_discord_client(
        policy=LimiterPolicy(global_per_second=per_window, global_window=window)
    )

    await asyncio.gather(
        *(client.create_message(c, {"content": f"{c}:{n}"}) for n in range(2) for c in channels)
    )

    assert discord_sim.rate_limited(scope="global") == []
    assert discord_sim.rate_limited() == []
    for channel in channels:
        assert discord_sim.contents(channel) == [f"{channel}:0", f"{channel}:1"]
    created = discord_sim.calls_to("POST", MESSAGES)
    assert len(created) == 40
    # 40 requests at 10 per window need four windows: the global limit was what held them.
    assert created[-1].at - created[0].at >= 3 * window


# -- 429s --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scope", "invalid"), [("user", 1), ("shared", 0)])
async def test_a_429_is_waited_out_then_the_message_is_posted(
    discord_sim: SimDiscord, make_discord_client: MakeDiscordClient, scope: Scope, invalid: int
) -> None:
    """The body's ``retry_after`` (0.3 s, not ``Retry-After: 1``) is waited out, then the
    message is posted once. A ``user`` 429 is an invalid request; a ``shared`` one (the
    resource is busy for everyone) is not — for the simulator, nor for the limiter."""
    channel = discord_sim.channel_id
    client = make_discord_client()
    discord_sim.sim.fail_next("POST " + MESSAGES, 429, scope=scope, retry_after=RETRY_AFTER)

    await client.create_message(channel, {"content": "after the wait"})

    refused, accepted = discord_sim.calls_to("POST", MESSAGES)
    assert (refused.status, refused.scope, refused.injected) == (429, scope, True)
    assert accepted.status == 200
    assert RETRY_AFTER <= accepted.at - refused.at < 1.0
    assert discord_sim.contents(channel) == ["after the wait"]
    assert discord_sim.sim.invalid_requests == invalid
    stats = client.limiter.stats()
    assert (stats.rate_limited, stats.shared_rate_limited) == (1, 1 - invalid)
    assert stats.invalid_in_window == invalid


async def test_a_global_429_holds_every_bot_route_for_its_retry_after(
    discord_sim: SimDiscord, make_discord_client: MakeDiscordClient
) -> None:
    """After a global 429 on one channel, a call on another route and channel waits too."""
    channel, other = discord_sim.channel_id, discord_sim.add_channel("other")
    client = make_discord_client()
    discord_sim.sim.fail_next("POST " + MESSAGES, 429, scope="global", retry_after=RETRY_AFTER)

    posting = asyncio.create_task(client.create_message(channel, {"content": "held"}))
    await _until(lambda: client.limiter.stats().global_rate_limited == 1)
    fetched = await client.get_channel(other)
    await posting

    (refused,) = discord_sim.rate_limited()
    assert (refused.scope, refused.injected) == ("global", True)
    (fetch,) = discord_sim.calls_to("GET", CHANNEL)
    assert fetched["id"] == other and fetch.status == 200
    assert fetch.at - refused.at >= RETRY_AFTER, "the other route waited out the global block"
    (_, posted) = discord_sim.calls_to("POST", MESSAGES)
    assert posted.status == 200 and posted.at - refused.at >= RETRY_AFTER
    assert discord_sim.contents(channel) == ["held"]


# -- 5xx and permanent refusals ----------------------------------------------------------------


async def test_a_502_and_a_503_are_retried_into_one_message(
    discord_sim: SimDiscord, make_discord_client: MakeDiscordClient
) -> None:
    channel = discord_sim.channel_id
    client = make_discord_client()
    discord_sim.sim.fail_next("POST " + MESSAGES, 502)
    discord_sim.sim.fail_next("POST " + MESSAGES, 503)

    made = await client.create_message(channel, {"content": "third time lucky"})

    assert [c.status for c in discord_sim.calls_to("POST", MESSAGES)] == [502, 503, 200]
    (stored,) = discord_sim.sim.messages(channel)
    assert (stored.id, stored.content) == (made["id"], "third time lucky")


async def test_a_persistent_5xx_ends_in_discord_unavailable_after_the_retries(
    discord_sim: SimDiscord, make_discord_client: MakeDiscordClient
) -> None:
    channel = discord_sim.channel_id
    client = make_discord_client(max_attempts=3)
    discord_sim.sim.fail_next("POST " + MESSAGES, 500, count=10)

    with pytest.raises(DiscordUnavailable) as caught:
        await client.create_message(channel, {"content": "never"})

    assert caught.value.status == 500
    assert [c.status for c in discord_sim.calls_to("POST", MESSAGES)] == [500, 500, 500]
    assert discord_sim.contents(channel) == []


async def test_an_unknown_channel_is_not_found_once_with_code_10003(
    discord_sim: SimDiscord, make_discord_client: MakeDiscordClient
) -> None:
    missing = "1100000000000000001"
    client = make_discord_client()

    with pytest.raises(DiscordNotFound) as caught:
        await client.create_message(missing, {"content": "lost"})

    assert (caught.value.status, caught.value.code) == (404, 10003)
    assert [(c.status, c.major) for c in discord_sim.calls] == [(404, missing)], "no retry"


async def test_a_channel_the_bot_cannot_see_is_missing_access_for_the_admin(
    discord_sim: SimDiscord, make_discord_client: MakeDiscordClient
) -> None:
    hidden = discord_sim.add_channel("secret", deny_bot=VIEW_CHANNEL)
    client = make_discord_client()

    with pytest.raises(DiscordForbidden) as caught:
        await client.create_message(hidden, {"content": "psst"})

    assert (caught.value.status, caught.value.code) == (403, 50001)
    assert caught.value.tell_admin
    assert [(c.status, c.major) for c in discord_sim.calls] == [(403, hidden)], "no retry"
    assert discord_sim.sim.invalid_requests == client.limiter.stats().invalid_in_window == 1


# -- idempotency -------------------------------------------------------------------------------


async def test_a_nonce_makes_a_retried_create_return_the_message_already_made(
    discord_sim: SimDiscord, make_discord_client: MakeDiscordClient
) -> None:
    """The first answer is lost after Discord made the message (500 with the work done);
    the client's retry and a later re-send carry the same nonce: one message, one id."""
    channel = discord_sim.channel_id
    client = make_discord_client()
    body = {"content": "DEV-1 created", "nonce": "dev-1-created", "enforce_nonce": True}
    discord_sim.sim.fail_next("POST " + MESSAGES, 500, applied=True)

    made = await client.create_message(channel, body)
    again = await client.create_message(channel, body)

    assert [c.status for c in discord_sim.calls_to("POST", MESSAGES)] == [500, 200, 200]
    assert made["id"] == again["id"]
    assert [m.id for m in discord_sim.sim.messages(channel)] == [made["id"]]
    assert discord_sim.sim.duplicates() == {}


# -- interaction webhooks ----------------------------------------------------------------------


async def test_interaction_webhooks_carry_no_authorization_and_skip_the_global_limit(
    discord_sim: SimDiscord,
    make_discord_client: MakeDiscordClient,
    interaction_endpoint: DeferringEndpoint,
) -> None:
    """With the global limit (4 per 0.5 s) used up by bot calls, editing ``@original`` and a
    follow-up still go at once, without ``Authorization``, while the fifth bot call waits."""
    per_window, window = 4, 0.5
    discord_sim.set_limits(scaled_limits(global_limit=per_window, global_window=window))
    interaction = await discord_sim.open_interaction(interaction_endpoint.url)
    channel, app = discord_sim.channel_id, discord_sim.application_id
    client = make_discord_client(
        policy=LimiterPolicy(global_per_second=per_window, global_window=window)
    )

    async def answer() -> None:
        await client.edit_original_response(app, interaction.token, {"content": "done"})
        await client.create_followup(app, interaction.token, {"content": "more"})

    for _ in range(per_window):  # the global window is full from here on
        await client.get_channel(channel)
    await asyncio.gather(client.get_channel(channel), answer())

    assert discord_sim.rate_limited() == []
    bot = discord_sim.calls_to("GET", CHANNEL)
    hooks = discord_sim.calls_to("PATCH", ORIGINAL) + discord_sim.calls_to("POST", FOLLOWUP)
    assert [c.auth for c in bot] == ["bot"] * (per_window + 1)
    assert [(c.status, c.auth) for c in hooks] == [(200, "none"), (200, "none")]
    assert bot[-1].at - bot[0].at >= window, "the last bot call waited for the global window"
    assert all(c.at < bot[0].at + window for c in hooks), "the webhooks did not wait"
    assert discord_sim.contents(channel) == ["done", "more"]


async def test_without_a_bot_token_nothing_is_sent(
    discord_sim: SimDiscord, make_discord_client: MakeDiscordClient
) -> None:
    """No token configured (a sandbox without Discord): refused here, never a 401 there."""
    client = make_discord_client(bot_token=None)

    with pytest.raises(DiscordError) as caught:
        await client.create_message(discord_sim.channel_id, {"content": "hello"})

    assert caught.value.reason == "DiscordBotTokenMissing"
    assert discord_sim.calls == [], "no request reached Discord"


async def test_files_go_up_as_multipart_with_the_message(
    discord_sim: SimDiscord,
    make_discord_client: MakeDiscordClient,
    interaction_endpoint: DeferringEndpoint,
) -> None:
    """A file goes with the answer: named in ``payload_json``'s attachments, sent as files[0]."""
    interaction = await discord_sim.open_interaction(interaction_endpoint.url)
    client = make_discord_client()
    export = Upload(filename="export.json", content_type="application/json", data=b'{"a": 1}')
    await client.edit_original_response(
        discord_sim.application_id, interaction.token, {"content": "here"}, files=[export]
    )
    await client.create_followup(
        discord_sim.application_id, interaction.token, {"content": "again"}, files=[export]
    )
    uploads = discord_sim.sim.uploads
    assert [(u.filename, u.content_type, u.data) for u in uploads] == [
        ("export.json", "application/json", b'{"a": 1}')
    ] * 2
    assert discord_sim.contents(discord_sim.channel_id) == ["here", "again"]


async def test_a_malformed_upload_is_refused_by_discord(
    discord_sim: SimDiscord, interaction_endpoint: DeferringEndpoint
) -> None:
    """A file part no attachment names is a 400, and nothing is kept."""
    import aiohttp

    from dfj_discord_worker.discord.client import multipart_body

    interaction = await discord_sim.open_interaction(interaction_endpoint.url)
    export = Upload(filename="export.json", content_type="application/json", data=b"{}")
    content_type, body = multipart_body({"content": "x"}, [export])
    body = body.replace(b'"attachments":[{"id":"0","filename":"export.json"}]', b'"attachments":[]')
    url = f"{discord_sim.api_url}/webhooks/{discord_sim.application_id}/{interaction.token}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers={"Content-Type": content_type}) as answer,
    ):
        assert answer.status == 400
    assert discord_sim.sim.uploads == []
    with pytest.raises(ValueError, match="cannot upload"):
        multipart_body({}, [Upload(filename='a"b', content_type="text/plain", data=b"")])
