"""Reading rate-limit headers and 429 bodies, including the malformed ones."""

from __future__ import annotations

import pytest

from dfj_discord_worker.discord import parse_rate_limit

NOW = 1_800_000_000.0


def test_a_normal_answer_describes_its_bucket() -> None:
    info = parse_rate_limit(
        {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "4",
            "X-RateLimit-Reset": f"{NOW + 4.8:.3f}",
            "X-RateLimit-Reset-After": "4.800",
            "X-RateLimit-Bucket": "abcd1234",
        },
        status=200,
        now=NOW,
    )
    assert (info.bucket, info.limit, info.remaining) == ("abcd1234", 5, 4)
    assert info.reset_after == pytest.approx(4.8)
    assert info.has_bucket and info.retry_after is None and not info.is_global


def test_reset_after_wins_over_the_epoch_reset() -> None:
    """``Reset-After`` does not depend on our clock agreeing with Discord's."""
    info = parse_rate_limit(
        {"X-RateLimit-Reset": f"{NOW + 100:.3f}", "X-RateLimit-Reset-After": "1.5"},
        status=200,
        now=NOW,
    )
    assert info.reset_after == pytest.approx(1.5)


def test_an_answer_without_headers_says_nothing() -> None:
    info = parse_rate_limit({}, status=200, now=NOW)
    assert info.bucket is None and not info.has_bucket


@pytest.mark.parametrize(
    "headers",
    [
        {"X-RateLimit-Remaining": "-1", "X-RateLimit-Reset-After": "1"},
        {"X-RateLimit-Remaining": "many", "X-RateLimit-Reset-After": "1"},
        {"X-RateLimit-Remaining": "1", "X-RateLimit-Reset-After": "nan"},
        {"X-RateLimit-Remaining": "1", "X-RateLimit-Reset-After": "-3"},
        {"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "soon"},
    ],
)
def test_malformed_headers_count_as_absent(headers: dict[str, str]) -> None:
    assert not parse_rate_limit(headers, status=200, now=NOW).has_bucket


def test_an_absurd_reset_is_clamped_to_a_day() -> None:
    info = parse_rate_limit(
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1e12"}, status=200, now=NOW
    )
    assert info.reset_after == 86_400.0


def test_a_user_429_prefers_the_precise_body_value() -> None:
    info = parse_rate_limit(
        {"Retry-After": "65", "X-RateLimit-Scope": "user"},
        status=429,
        body=b'{"message": "You are being rate limited.", "retry_after": 64.57, "global": false}',
        now=NOW,
    )
    assert info.retry_after == pytest.approx(64.57)
    assert info.scope == "user" and not info.is_global and not info.edge_ban


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"X-RateLimit-Global": "true"}, b'{"retry_after": 1.0, "global": false}'),
        ({"X-RateLimit-Scope": "global"}, b'{"retry_after": 1.0, "global": false}'),
        ({}, b'{"retry_after": 1.0, "global": true}'),
    ],
)
def test_any_of_three_signs_makes_a_429_global(headers: dict[str, str], body: bytes) -> None:
    assert parse_rate_limit(headers, status=429, body=body, now=NOW).is_global


def test_a_429_from_the_edge_uses_the_header_and_is_marked_a_ban() -> None:
    info = parse_rate_limit({"Retry-After": "120"}, status=429, body=b"<html>1015</html>", now=NOW)
    assert info.edge_ban and info.retry_after == 120.0


def test_a_429_with_nothing_to_go_on_has_no_retry_after() -> None:
    """The limiter then applies its own default."""
    info = parse_rate_limit({}, status=429, body=b"", now=NOW)
    assert info.retry_after is None and info.edge_ban
