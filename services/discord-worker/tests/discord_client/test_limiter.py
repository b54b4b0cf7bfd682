"""The rate limiter on its own: virtual time, no sockets, no sleeping.

Every test drives the limiter the way the client does — ``acquire``, then ``complete`` with
what an answer said — and reads the waits off a shared ``ManualClock`` that only the
:class:`VirtualTime` driver moves. Where an answer's headers are needed, a small fixed-window
bucket stands in for Discord (:class:`SimBucket`), written apart from the limiter.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from dfj_common.clock import ManualClock
from dfj_discord_worker.discord import (
    DiscordRateLimited,
    LimiterPolicy,
    RateLimiter,
    RateLimitInfo,
    Route,
    parse_rate_limit,
)
from dfj_discord_worker.discord.routes import CREATE_MESSAGE

if TYPE_CHECKING:
    from .conftest import VirtualTime

EXACT = LimiterPolicy(reset_margin=0.0, max_wait=10_000.0)


def message(channel: str = "1") -> Route:
    return CREATE_MESSAGE.compile(channel_id=channel)


def webhook(token: str) -> Route:
    return Route.of(
        "POST",
        "/webhooks/{application_id}/{interaction_token}",
        {"application_id": "77", "interaction_token": token},
    )


THREAD_FROM_MESSAGE = "/channels/{channel_id}/messages/{message_id}/threads"
THREAD = "/channels/{channel_id}/threads"


def ok(bucket: str, *, limit: int, remaining: int, reset_after: float) -> RateLimitInfo:
    return RateLimitInfo(bucket=bucket, limit=limit, remaining=remaining, reset_after=reset_after)


@dataclass
class SimBucket:
    """Discord's side of one bucket: ``limit`` per fixed ``window`` opened by a request."""

    clock: ManualClock
    limit: int
    window: float
    name: str = "sim-bucket"
    opened: float | None = None
    used: int = 0
    accepted: list[float] = field(default_factory=list)
    refused: int = 0

    def hit(self) -> tuple[int, RateLimitInfo]:
        now = self.clock.monotonic()
        if self.opened is None or now >= self.opened + self.window:
            self.opened, self.used = now, 0
        reset_after = self.opened + self.window - now
        if self.used >= self.limit:
            self.refused += 1
            return 429, RateLimitInfo(
                bucket=self.name,
                limit=self.limit,
                remaining=0,
                reset_after=reset_after,
                retry_after=reset_after,
                scope="user",
            )
        self.used += 1
        self.accepted.append(now)
        return 200, ok(
            self.name, limit=self.limit, remaining=self.limit - self.used, reset_after=reset_after
        )


def limiter_for(vt: VirtualTime, policy: LimiterPolicy = EXACT) -> RateLimiter:
    return RateLimiter(clock=vt.clock, sleep=vt.sleep, policy=policy)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def max_in_window(times: list[float], window: float) -> int:
    """The most events inside any half-open interval of ``window`` seconds."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window:
            start += 1
        best = max(best, end - start + 1)
    return best


# -- learning buckets --------------------------------------------------------------------------


async def test_an_unknown_bucket_lets_one_request_through_and_holds_the_rest(
    vt: VirtualTime,
) -> None:
    """Until the first answer tells the limit, a second request to the route waits."""
    limiter = limiter_for(vt)
    first = await limiter.acquire(message(), bot=True)
    second = asyncio.ensure_future(limiter.acquire(message(), bot=True))
    await settle()
    assert not second.done()
    limiter.complete(first, status=200, info=ok("h", limit=5, remaining=4, reset_after=5.0))
    await settle()
    assert second.done()
    limiter.complete(second.result(), status=200, info=ok("h", limit=5, remaining=3, reset_after=5))
    assert vt.clock.monotonic() == 0.0


async def test_remaining_zero_blocks_until_reset_after(vt: VirtualTime) -> None:
    """A learnt empty bucket waits exactly Reset-After before the next send."""
    limiter = limiter_for(vt)
    permit = await limiter.acquire(message(), bot=True)
    limiter.complete(permit, status=200, info=ok("h", limit=5, remaining=0, reset_after=2.5))
    assert limiter.expected_wait(message(), bot=True) == pytest.approx(2.5)
    [permit] = await vt.run(limiter.acquire(message(), bot=True))
    assert vt.clock.monotonic() == pytest.approx(2.5)
    assert vt.slept == [pytest.approx(2.5)]
    limiter.complete(permit, status=200, info=ok("h", limit=5, remaining=4, reset_after=5.0))
    assert limiter.expected_wait(message(), bot=True) == 0.0


async def test_reset_margin_is_added_to_every_reset(vt: VirtualTime) -> None:
    """The default margin covers the answer's travel time: the wait is a little longer."""
    limiter = limiter_for(vt, LimiterPolicy(reset_margin=0.05))
    permit = await limiter.acquire(message(), bot=True)
    limiter.complete(permit, status=200, info=ok("h", limit=1, remaining=0, reset_after=1.0))
    await vt.run(limiter.acquire(message(), bot=True))
    assert vt.clock.monotonic() == pytest.approx(1.05)


async def test_reset_epoch_is_used_when_reset_after_is_missing(vt: VirtualTime) -> None:
    """``X-RateLimit-Reset`` (epoch seconds) converts on the wall clock."""
    limiter = limiter_for(vt)
    headers = {
        "X-RateLimit-Bucket": "h",
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{vt.clock.now() + 3.25:.3f}",
    }
    info = parse_rate_limit(headers, status=200, now=vt.clock.now())
    permit = await limiter.acquire(message(), bot=True)
    limiter.complete(permit, status=200, info=info)
    await vt.run(limiter.acquire(message(), bot=True))
    assert vt.clock.monotonic() == pytest.approx(3.25)


async def test_different_channels_are_different_buckets(vt: VirtualTime) -> None:
    """The same route in another channel is not held up by an exhausted one."""
    limiter = limiter_for(vt)
    permit = await limiter.acquire(message("1"), bot=True)
    limiter.complete(permit, status=200, info=ok("h", limit=5, remaining=0, reset_after=5.0))
    other = await limiter.acquire(message("2"), bot=True)
    limiter.complete(other, status=200, info=ok("h", limit=5, remaining=4, reset_after=5.0))
    assert vt.clock.monotonic() == 0.0
    assert limiter.expected_wait(message("1"), bot=True) == pytest.approx(5.0)
    assert limiter.expected_wait(message("2"), bot=True) == 0.0
    assert limiter.stats().buckets == 2


async def test_two_routes_with_one_bucket_hash_share_its_budget(vt: VirtualTime) -> None:
    """Discord names the bucket: once both routes report hash ``t``, they draw from one."""
    limiter = limiter_for(vt)
    from_message = Route.of("POST", THREAD_FROM_MESSAGE, {"channel_id": "1", "message_id": "5"})
    bare = Route.of("POST", THREAD, {"channel_id": "1"})
    permit = await limiter.acquire(from_message, bot=True)
    limiter.complete(permit, status=201, info=ok("t", limit=3, remaining=2, reset_after=10.0))
    permit = await limiter.acquire(bare, bot=True)  # its first request: provisional bucket
    limiter.complete(permit, status=201, info=ok("t", limit=3, remaining=1, reset_after=9.0))
    assert limiter.stats().buckets == 1  # the provisional bucket was merged into ("t", 1)
    permit = await limiter.acquire(from_message, bot=True)
    limiter.complete(permit, status=201, info=ok("t", limit=3, remaining=0, reset_after=9.0))
    assert limiter.expected_wait(bare, bot=True) == pytest.approx(9.0)
    await vt.run(limiter.acquire(bare, bot=True))
    assert vt.clock.monotonic() == pytest.approx(9.0)


async def test_requests_queued_on_a_provisional_bucket_move_to_the_shared_one(
    vt: VirtualTime,
) -> None:
    """Waiters behind a route's first request follow it into the bucket it turned out to be."""
    limiter = limiter_for(vt)
    from_message = Route.of("POST", THREAD_FROM_MESSAGE, {"channel_id": "1", "message_id": "5"})
    bare = Route.of("POST", THREAD, {"channel_id": "1"})
    permit = await limiter.acquire(from_message, bot=True)
    limiter.complete(permit, status=201, info=ok("t", limit=2, remaining=1, reset_after=4.0))
    first_bare = await limiter.acquire(bare, bot=True)
    queued = [asyncio.ensure_future(limiter.acquire(bare, bot=True)) for _ in range(2)]
    await settle()
    assert not any(task.done() for task in queued)
    # The first bare request learns it is in "t", which is now empty until t=4.
    limiter.complete(first_bare, status=201, info=ok("t", limit=2, remaining=0, reset_after=4.0))

    async def drain() -> list[float]:
        times = []
        for task in queued:
            got = await task
            times.append(vt.clock.monotonic())
            limiter.complete(got, status=201, info=ok("t", limit=2, remaining=1, reset_after=4))
        return times

    [times] = await vt.run(drain())
    assert times[0] == pytest.approx(4.0)  # not sent early from the retired bucket


# -- the global limit --------------------------------------------------------------------------


async def test_bot_routes_are_paced_at_fifty_per_second(vt: VirtualTime) -> None:
    """120 sends to 120 channels: 50 at t=0, 50 at t=1, 20 at t=2 — never 51 in a second."""
    limiter = limiter_for(vt)
    sent: list[float] = []

    async def one(channel: int) -> None:
        permit = await limiter.acquire(message(str(channel)), bot=True)
        sent.append(vt.clock.monotonic())
        limiter.complete(permit, status=200, info=RateLimitInfo())

    await vt.run(*(one(n) for n in range(120)))
    assert max_in_window(sent, 1.0) == 50
    assert sorted(sent) == [0.0] * 50 + [pytest.approx(1.0)] * 50 + [pytest.approx(2.0)] * 20


async def test_interaction_webhooks_are_exempt_from_the_global_limit(vt: VirtualTime) -> None:
    """``bot=False`` routes (one bucket per interaction) all go at once."""
    limiter = limiter_for(vt)

    async def one(n: int) -> None:
        permit = await limiter.acquire(webhook(f"token-{n}"), bot=False)
        limiter.complete(permit, status=200, info=RateLimitInfo())

    await vt.run(*(one(n) for n in range(120)))
    assert vt.clock.monotonic() == 0.0
    assert limiter.stats().requests == 120


# -- 429s ---------------------------------------------------------------------------------------


def too_many(
    body: bytes, headers: dict[str, str] | None = None, *, now: float = 0.0
) -> RateLimitInfo:
    return parse_rate_limit(headers or {}, status=429, body=body, now=now)


async def test_a_429_blocks_its_bucket_for_the_body_retry_after(vt: VirtualTime) -> None:
    """The body's float wins over the rounded-up ``Retry-After`` header."""
    limiter = limiter_for(vt)
    info = too_many(
        b'{"message": "You are being rate limited.", "retry_after": 64.57, "global": false}',
        {"Retry-After": "65", "X-RateLimit-Scope": "user", "X-RateLimit-Bucket": "h"},
    )
    assert info.retry_after == pytest.approx(64.57) and not info.edge_ban
    permit = await limiter.acquire(message(), bot=True)
    limiter.complete(permit, status=429, info=info)
    await vt.run(limiter.acquire(message(), bot=True))
    assert vt.clock.monotonic() == pytest.approx(64.57)
    assert limiter.stats().rate_limited == 1
    assert limiter.stats().invalid_in_window == 1


async def test_a_429_without_a_json_body_is_an_edge_ban_on_every_route(vt: VirtualTime) -> None:
    """Cloudflare answers in HTML: ``Retry-After`` then holds bot routes and webhooks alike."""
    limiter = limiter_for(vt)
    info = too_many(b"<html>error 1015</html>", {"Retry-After": "30"})
    assert info.edge_ban and info.retry_after == 30.0
    permit = await limiter.acquire(message(), bot=True)
    limiter.complete(permit, status=429, info=info)
    assert limiter.expected_wait(webhook("w"), bot=False) == pytest.approx(30.0)
    await vt.run(limiter.acquire(webhook("w"), bot=False))
    assert vt.clock.monotonic() == pytest.approx(30.0)


async def test_a_global_429_blocks_every_bot_route_but_not_webhooks(vt: VirtualTime) -> None:
    """``global: true`` holds other channels too; interaction webhooks carry on."""
    limiter = limiter_for(vt)
    info = too_many(
        b'{"message": "You are being rate limited.", "retry_after": 3.5, "global": true}',
        {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global", "Retry-After": "4"},
    )
    assert info.is_global
    permit = await limiter.acquire(message("1"), bot=True)
    limiter.complete(permit, status=429, info=info)
    hook = await limiter.acquire(webhook("w"), bot=False)
    limiter.complete(hook, status=200, info=RateLimitInfo())
    assert vt.clock.monotonic() == 0.0
    await vt.run(limiter.acquire(message("2"), bot=True))
    assert vt.clock.monotonic() == pytest.approx(3.5)
    assert limiter.stats().global_rate_limited == 1


async def test_a_shared_scope_429_is_waited_out_but_not_counted(vt: VirtualTime) -> None:
    """``X-RateLimit-Scope: shared`` is not our fault: it does not count as invalid."""
    limiter = limiter_for(vt)
    shared = too_many(
        b'{"message": "The resource is being rate limited.", "retry_after": 2.0, "global": false}',
        {"X-RateLimit-Scope": "shared", "X-RateLimit-Remaining": "9", "X-RateLimit-Bucket": "h"},
    )
    permit = await limiter.acquire(message(), bot=True)
    limiter.complete(permit, status=429, info=shared)
    assert limiter.stats().invalid_in_window == 0
    assert limiter.stats().shared_rate_limited == 1
    [permit] = await vt.run(limiter.acquire(message(), bot=True))
    assert vt.clock.monotonic() == pytest.approx(2.0)
    user = too_many(
        b'{"message": "x", "retry_after": 1.0, "global": false}', {"X-RateLimit-Scope": "user"}
    )
    limiter.complete(permit, status=429, info=user)
    assert limiter.stats().invalid_in_window == 1


async def test_a_request_retried_after_a_429_keeps_its_place(vt: VirtualTime) -> None:
    """``requeue`` keeps the bucket's turn through the wait, so per-channel order holds."""
    limiter = limiter_for(vt)
    order: list[str] = []
    first = await limiter.acquire(message(), bot=True)

    async def later(name: str) -> None:
        permit = await limiter.acquire(message(), bot=True)
        order.append(name)
        limiter.complete(permit, status=200, info=ok("h", limit=5, remaining=4, reset_after=5))

    waiting = [asyncio.ensure_future(later(name)) for name in ("b", "c")]
    await settle()
    refused = too_many(b'{"retry_after": 1.0, "global": false}')

    async def retry() -> None:
        permit = await limiter.requeue(first, status=429, info=refused)
        order.append("a")
        limiter.complete(permit, status=200, info=ok("h", limit=5, remaining=4, reset_after=5))

    await vt.run(retry(), *waiting)
    assert order == ["a", "b", "c"]
    assert vt.clock.monotonic() == pytest.approx(1.0)


async def test_a_request_retried_after_a_failure_queues_at_the_front(vt: VirtualTime) -> None:
    """``front=True`` (the client's re-queue after a 5xx back-off) goes before later waiters."""
    limiter = limiter_for(vt)
    order: list[str] = []
    holder = await limiter.acquire(message(), bot=True)

    async def take(name: str, *, front: bool = False) -> None:
        permit = await limiter.acquire(message(), bot=True, front=front)
        order.append(name)
        limiter.release(permit)

    waiting = [asyncio.ensure_future(take(name)) for name in ("b", "c")]
    await settle()
    retried = asyncio.ensure_future(take("a", front=True))
    await settle()
    limiter.release(holder)
    await vt.run(retried, *waiting)
    assert order == ["a", "b", "c"]


# -- invalid requests --------------------------------------------------------------------------


async def forbid(limiter: RateLimiter, times: int) -> None:
    for n in range(times):
        permit = await limiter.acquire(message(f"9{n}"), bot=True)
        limiter.complete(permit, status=403, info=RateLimitInfo())


async def test_invalid_requests_slow_us_down_before_the_stop_mark(vt: VirtualTime) -> None:
    """Past ``invalid_slow_at`` sends are spaced, more the closer the count is to the stop."""
    policy = LimiterPolicy(
        reset_margin=0.0,
        max_wait=10_000.0,
        invalid_slow_at=10,
        invalid_stop_at=20,
        invalid_max_delay=1.0,
    )
    limiter = limiter_for(vt, policy)
    await vt.run(forbid(limiter, 9))
    assert vt.clock.monotonic() == 0.0  # below the mark: no delay at all
    await vt.run(forbid(limiter, 1))  # the tenth: the count reaches the mark only after it
    sent: list[float] = []

    async def three_more() -> None:
        for n in range(3):
            permit = await limiter.acquire(message(f"ok{n}"), bot=True)
            sent.append(vt.clock.monotonic())
            limiter.complete(permit, status=403, info=RateLimitInfo())

    await vt.run(three_more())
    # Spacing after a send with count c is (c - 10 + 1) / 10 seconds: 0.1, then 0.2.
    assert sent == [0.0, pytest.approx(0.1), pytest.approx(0.3)]


async def test_at_the_stop_mark_requests_wait_for_old_invalid_ones_to_age_out(
    vt: VirtualTime,
) -> None:
    """At ``invalid_stop_at`` nothing is sent until the count drops below it again."""
    policy = LimiterPolicy(
        reset_margin=0.0,
        max_wait=10_000.0,
        invalid_slow_at=2,
        invalid_stop_at=4,
        invalid_max_delay=0.0,
        invalid_window=600.0,
    )
    limiter = limiter_for(vt, policy)
    await vt.run(forbid(limiter, 4))
    assert limiter.stats().invalid_in_window == 4
    await vt.run(limiter.acquire(webhook("w"), bot=False))  # webhooks count against the IP too
    assert vt.clock.monotonic() == pytest.approx(600.0)


async def test_a_wait_beyond_max_wait_raises_rate_limited_and_frees_the_turn(
    vt: VirtualTime,
) -> None:
    """The message goes back to the bus instead of holding its lock for minutes."""
    limiter = limiter_for(vt, LimiterPolicy(reset_margin=0.0, max_wait=30.0))
    permit = await limiter.acquire(message(), bot=True)
    limiter.complete(permit, status=200, info=ok("h", limit=5, remaining=0, reset_after=120.0))
    with pytest.raises(DiscordRateLimited) as caught:
        await limiter.acquire(message(), bot=True)
    assert caught.value.retry_after == pytest.approx(120.0)
    assert caught.value.scope == "local"
    vt.clock.advance(120.0)
    permit = await limiter.acquire(message(), bot=True)  # the bucket was not left locked
    limiter.release(permit)


async def test_a_cancelled_waiter_does_not_block_the_bucket(vt: VirtualTime) -> None:
    """Cancelling a queued acquire (a worker draining) leaves the queue usable."""
    limiter = limiter_for(vt)
    first = await limiter.acquire(message(), bot=True)
    doomed = asyncio.ensure_future(limiter.acquire(message(), bot=True))
    await settle()
    doomed.cancel()
    await settle()
    limiter.complete(first, status=200, info=ok("h", limit=5, remaining=4, reset_after=5.0))
    permit = await asyncio.wait_for(limiter.acquire(message(), bot=True), timeout=1.0)
    limiter.release(permit)


# -- concurrency --------------------------------------------------------------------------------


@pytest.mark.parametrize("margin", [0.0, 0.05])
async def test_many_coroutines_on_one_bucket_never_exceed_its_limit(
    vt: VirtualTime, margin: float
) -> None:
    """23 concurrent sends into a 5-per-5-s channel: no 429, windows full, ~20 s in all."""
    limiter = limiter_for(vt, LimiterPolicy(reset_margin=margin, max_wait=10_000.0))
    server = SimBucket(vt.clock, limit=5, window=5.0)

    async def send() -> None:
        while True:
            permit = await limiter.acquire(message(), bot=True)
            status, info = server.hit()
            limiter.complete(permit, status=status, info=info)
            if status != 429:
                return

    await vt.run(*(send() for _ in range(23)))
    assert server.refused == 0
    assert len(server.accepted) == 23
    assert max_in_window(server.accepted, 5.0) == 5
    assert vt.clock.monotonic() == pytest.approx(20.0 + 4 * margin)


async def test_a_bucket_whose_limit_shrinks_is_obeyed_from_the_next_answer(
    vt: VirtualTime,
) -> None:
    """Limits are never hard-coded: the window after a change follows the new headers."""
    limiter = limiter_for(vt)
    server = SimBucket(vt.clock, limit=5, window=5.0)

    async def send(count: int) -> None:
        for _ in range(count):
            permit = await limiter.acquire(message(), bot=True)
            status, info = server.hit()
            limiter.complete(permit, status=status, info=info)

    await vt.run(send(5))
    server.limit = 2
    await vt.run(send(4))
    assert server.refused == 0
    assert vt.clock.monotonic() == pytest.approx(10.0)


async def test_headroom_says_how_many_more_the_bucket_takes_now(vt: VirtualTime) -> None:
    """Delivery packs when the channel's bucket cannot take every waiting post: headroom is
    unknown before the first answer, the remaining count less requests in flight, and the
    full limit again once the window has reset."""
    limiter = limiter_for(vt)
    assert limiter.headroom(message()) is None
    permit = await limiter.acquire(message(), bot=True)
    assert limiter.headroom(message()) is None, "still not known while the first is out"
    limiter.complete(permit, status=200, info=ok("h", limit=5, remaining=3, reset_after=5.0))
    assert limiter.headroom(message()) == 3
    assert limiter.headroom(message("2")) is None, "another channel is another bucket"
    in_flight = await limiter.acquire(message(), bot=True)
    assert limiter.headroom(message()) == 2
    limiter.complete(in_flight, status=200, info=ok("h", limit=5, remaining=0, reset_after=5.0))
    assert limiter.headroom(message()) == 0
    vt.clock.advance(5.0)
    assert limiter.headroom(message()) == 5


async def test_global_headroom_counts_the_bots_sends_in_the_window(vt: VirtualTime) -> None:
    """Delivery also packs when the bot's global budget, shared by every channel, is short:
    50 per second less what went out in the last second, 0 while a global 429 blocks."""
    limiter = limiter_for(vt)
    assert limiter.global_headroom() == 50
    for channel in range(30):
        permit = await limiter.acquire(message(str(channel)), bot=True)
        limiter.complete(permit, status=200, info=RateLimitInfo())
    assert limiter.global_headroom() == 20
    webhook_permit = await limiter.acquire(webhook("t1"), bot=False)
    limiter.complete(webhook_permit, status=200, info=RateLimitInfo())
    assert limiter.global_headroom() == 20, "interaction webhooks do not count"
    vt.clock.advance(1.0)
    assert limiter.global_headroom() == 50
    permit = await limiter.acquire(message(), bot=True)
    limiter.complete(
        permit,
        status=429,
        info=RateLimitInfo(retry_after=2.0, is_global=True, scope="global"),
    )
    assert limiter.global_headroom() == 0
    vt.clock.advance(2.5)
    assert limiter.global_headroom() == 50
