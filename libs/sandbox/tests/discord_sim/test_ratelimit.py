"""Rate limits like Discord's: buckets and their headers, the global limit, 429s, faults, bans."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

import pytest

from dfj_common.clock import ManualClock
from dfj_sandbox.discord_sim import DiscordSimulator, Guild, RateLimits, bucket_hash

if TYPE_CHECKING:
    from libs.sandbox.tests.discord_sim.conftest import Api

MESSAGES = "/channels/{channel_id}/messages"
START = 1_800_000_000.0


async def _post(api: Api, channel: str, text: str = "x") -> int:
    return (await api.post_message(channel, {"content": text})).status


async def test_bucket_headers_count_down_on_the_clock(
    api: Api, general: str, clock: ManualClock
) -> None:
    """Limit 5, Remaining 4…0, Reset (epoch) and Reset-After from the window's start."""
    first = await api.post_message(general, {"content": "1"})
    headers = first.headers
    assert headers["X-RateLimit-Limit"] == "5"
    assert headers["X-RateLimit-Remaining"] == "4"
    assert headers["X-RateLimit-Reset-After"] == "5.000"
    assert headers["X-RateLimit-Reset"] == f"{START + 5:.3f}"
    assert headers["X-RateLimit-Bucket"] == bucket_hash("messages.create")
    clock.advance(1.5)
    second = await api.post_message(general, {"content": "2"})
    assert second.headers["X-RateLimit-Remaining"] == "3"
    assert second.headers["X-RateLimit-Reset-After"] == "3.500"
    assert second.headers["X-RateLimit-Reset"] == f"{START + 5:.3f}"


async def test_five_messages_per_five_seconds_per_channel(
    api: Api, sim: DiscordSimulator, guild: Guild, general: str, clock: ManualClock
) -> None:
    """The sixth within the window is a user-scope 429; another channel is not affected."""
    assert [await _post(api, general) for _ in range(5)] == [200] * 5
    refused = await api.post_message(general, {"content": "6"})
    assert refused.status == 429
    assert refused.body == {
        "message": "You are being rate limited.",
        "retry_after": 5.0,
        "global": False,
    }
    assert refused.headers["X-RateLimit-Scope"] == "user"
    assert refused.headers["Retry-After"] == "5"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    other = guild.add_channel("other").id
    assert await _post(api, other) == 200
    clock.advance(4.2)
    late = await api.post_message(general, {"content": "7"})
    assert late.status == 429
    assert late.body["retry_after"] == pytest.approx(0.8)
    assert late.headers["Retry-After"] == "1"
    clock.advance(0.8)
    assert await _post(api, general) == 200
    assert len(sim.messages(general)) == 6
    limited = sim.rate_limited()
    assert [(c.scope, c.major, c.template) for c in limited] == [("user", general, MESSAGES)] * 2
    assert sim.invalid_requests == 2


async def test_a_client_that_obeys_the_headers_never_sees_a_429(
    api: Api, sim: DiscordSimulator, general: str, clock: ManualClock
) -> None:
    """Waiting ``Reset-After`` whenever ``Remaining`` is 0 gets 23 messages through cleanly."""
    for index in range(23):
        answer = await api.post_message(general, {"content": str(index)})
        assert answer.status == 200
        if answer.headers["X-RateLimit-Remaining"] == "0":
            clock.advance(float(answer.headers["X-RateLimit-Reset-After"]))
    assert sim.rate_limited() == []
    assert len(sim.messages(general)) == 23


async def test_bucket_hash_is_the_same_for_every_channel(
    api: Api, guild: Guild, general: str
) -> None:
    """The hash names the bucket; the major parameter keeps the counts apart."""
    other = guild.add_channel("other").id
    one = await api.post_message(general, {"content": "x"})
    two = await api.post_message(other, {"content": "x"})
    assert one.headers["X-RateLimit-Bucket"] == two.headers["X-RateLimit-Bucket"]
    assert one.headers["X-RateLimit-Remaining"] == two.headers["X-RateLimit-Remaining"] == "4"
    edit = await api.call(
        "PATCH", f"/channels/{general}/messages/{one.body['id']}", json={"content": "y"}
    )
    assert edit.headers["X-RateLimit-Bucket"] != one.headers["X-RateLimit-Bucket"]


async def test_global_limit_is_50_per_second_for_bot_routes(
    api: Api, sim: DiscordSimulator, general: str, clock: ManualClock
) -> None:
    """The 51st bot request within a second is a global 429; a second later they pass."""
    sim.set_limits(RateLimits().with_bucket("channel.get", 1000, 1.0))
    statuses = await asyncio.gather(*(api.call("GET", f"/channels/{general}") for _ in range(50)))
    assert {a.status for a in statuses} == {200}
    refused = await api.call("GET", f"/channels/{general}")
    assert refused.status == 429
    assert refused.body == {
        "message": "You are being rate limited.",
        "retry_after": 1.0,
        "global": True,
    }
    assert refused.headers["X-RateLimit-Global"] == "true"
    assert refused.headers["X-RateLimit-Scope"] == "global"
    assert refused.headers["Retry-After"] == "1"
    assert sim.rate_limited(scope="global")[0].template == "/channels/{channel_id}"
    clock.advance(1.0)
    assert (await api.call("GET", f"/channels/{general}")).status == 200


async def test_lifted_limits_let_everything_through(
    api: Api, sim: DiscordSimulator, general: str
) -> None:
    """``RateLimits.lifted()``: no 429 at all, headers still present."""
    sim.set_limits(RateLimits.lifted())
    answers = [await api.post_message(general, {"content": str(i)}) for i in range(60)]
    assert {a.status for a in answers} == {200}
    assert answers[-1].headers["X-RateLimit-Remaining"] == "5"


async def test_injected_shared_429_is_not_our_fault(
    api: Api, sim: DiscordSimulator, general: str
) -> None:
    """A shared-scope 429 with the bucket's real Remaining; not counted as invalid."""
    await api.post_message(general, {"content": "1"})
    sim.fail_next("POST " + MESSAGES, 429, retry_after=2.5)
    refused = await api.post_message(general, {"content": "2"})
    assert refused.status == 429
    assert refused.body == {
        "message": "The resource is being rate limited.",
        "retry_after": 2.5,
        "global": False,
    }
    assert refused.headers["X-RateLimit-Scope"] == "shared"
    assert refused.headers["X-RateLimit-Remaining"] == "4"
    assert refused.headers["Retry-After"] == "3"
    assert sim.invalid_requests == 0
    (call,) = sim.rate_limited()
    assert (call.scope, call.injected) == ("shared", True)
    assert (await api.post_message(general, {"content": "3"})).status == 200
    assert [m.content for m in sim.messages(general)] == ["1", "3"]


async def test_injected_5xx_then_recovery(api: Api, sim: DiscordSimulator, general: str) -> None:
    """``fail_next`` answers the next N requests with the status, then the route works."""
    sim.fail_next(MESSAGES, 502, count=2)
    assert [await _post(api, general) for _ in range(3)] == [502, 502, 200]
    assert sim.calls[0].injected
    assert len(sim.messages(general)) == 1


async def test_a_lost_answer_is_made_good_by_the_nonce(
    api: Api, sim: DiscordSimulator, general: str
) -> None:
    """``applied=True``: the message is posted but the answer is a 500; the retry returns it."""
    sim.fail_next("POST " + MESSAGES, 500, applied=True)
    body = {"content": "DEMO-1", "nonce": "abc", "enforce_nonce": True}
    lost = await api.post_message(general, body)
    assert lost.status == 500
    assert lost.body == {"message": "500: Internal Server Error", "code": 0}
    retry = await api.post_message(general, body)
    assert retry.status == 200
    assert len(sim.messages(general)) == 1
    assert sim.duplicates() == {}


def test_fail_next_checks_its_arguments(sim: DiscordSimulator) -> None:
    """Unknown routes, applied 429s and other statuses are refused."""
    with pytest.raises(ValueError, match="no route"):
        sim.fail_next("POST /channels/{channel}/messages")
    with pytest.raises(ValueError, match="never applied"):
        sim.fail_next(MESSAGES, 429, applied=True)
    with pytest.raises(ValueError, match="429 or a 5xx"):
        sim.fail_next(MESSAGES, 404)


async def test_too_many_invalid_requests_bring_a_ban(
    api: Api, sim: DiscordSimulator, general: str, clock: ManualClock
) -> None:
    """Past the invalid-request limit: Cloudflare-style 429s (text, no Via) until it lifts."""
    sim.set_limits(RateLimits(invalid_limit=3, ban_seconds=60.0))
    for _ in range(3):
        assert (await api.call("GET", f"/channels/{general}", auth=None)).status == 401
    banned = await api.call("GET", f"/channels/{general}")
    assert banned.status == 429
    assert banned.body == "error code: 1015"
    assert "Via" not in banned.headers
    assert sim.calls[-1].scope == "cloudflare"
    clock.advance(61)
    assert (await api.call("GET", f"/channels/{general}")).status == 200


def test_retry_after_header_rounds_up() -> None:
    """Discord's ``Retry-After`` is whole seconds, rounded up from ``retry_after``."""
    from dfj_sandbox.discord_sim.ratelimit import Rejection

    rejection = Rejection(retry_after=64.57, scope="user")
    assert rejection.headers()["Retry-After"] == str(math.ceil(64.57))
