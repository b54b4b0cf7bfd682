"""Every way Jira can say no becomes the error class the worker runtime settles correctly.

Permanent refusals (400, 401, 403, 404) are :class:`PermanentError` with a short ``reason``
and a ``user_message`` fit for Discord; throttling is :class:`RateLimited` with Jira's
``Retry-After``; failures on Jira's side, time-outs and refused connections are
:class:`TransientError`. Exception messages never carry Jira's wording (it can quote input).
"""

from __future__ import annotations

import socket
from email.utils import formatdate
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from dfj_common.clock import ManualClock
from dfj_common.errors import PermanentError, RateLimited, TransientError
from dfj_common.secrets import EnvelopeCipher
from dfj_common.storage import Installation
from dfj_jira_worker.jira import (
    JiraBadRequest,
    JiraClient,
    JiraError,
    JiraForbidden,
    JiraNotFound,
    JiraRateLimited,
    JiraUnauthorized,
    JiraUnavailable,
)
from dfj_jira_worker.jira.errors import (
    DEFAULT_RETRY_AFTER,
    MAX_RETRY_AFTER,
    jira_user_message,
    retry_after_seconds,
)

if TYPE_CHECKING:
    from conftest import FakeJira, MakeSite

ACCOUNT_ID = "5b10ac8d82e05b22cc7d4ef5"
ISSUE = "/rest/api/3/issue/ACME-1"


async def test_400_carries_jiras_messages_to_the_user_but_not_into_the_exception(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """``errorMessages`` and ``errors`` make the user message; ``str(exc)`` stays generic."""
    fake.respond(
        "POST",
        "/rest/api/3/issue",
        400,
        body={
            "errorMessages": ["Issue type is not valid for this project."],
            "errors": {"summary": "You must specify a summary of the issue."},
        },
    )
    with pytest.raises(JiraBadRequest) as caught:
        await client.as_user(site, ACCOUNT_ID).create_issue({"project": {"key": "ACME"}})
    error = caught.value
    assert isinstance(error, PermanentError)
    assert error.reason == "JiraBadRequest"
    assert error.status == 400
    assert error.user_message == (
        "Issue type is not valid for this project. "
        "summary: You must specify a summary of the issue."
    )
    assert str(error) == "Jira answered 400 to POST /rest/api/3/issue"


async def test_a_long_or_secret_bearing_400_is_capped_and_redacted(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """At most 300 characters, ending in an ellipsis; emails and tokens do not pass."""
    fake.respond(
        "POST",
        "/rest/api/3/issue",
        400,
        body={"errorMessages": ["ask ada@example.com " + "word " * 200]},
    )
    with pytest.raises(JiraBadRequest) as caught:
        await client.as_app(site).create_issue({})
    message = caught.value.user_message
    assert len(message) <= 300
    assert message.endswith("…")
    assert "ada@example.com" not in message


def test_a_400_without_jira_messages_falls_back_to_a_plain_sentence() -> None:
    """Non-JSON, empty or oddly shaped bodies give no message (the class default is used)."""
    assert jira_user_message(b"<html>bad</html>") is None
    assert jira_user_message(b'{"errorMessages": [], "errors": {}}') is None
    assert jira_user_message(b"[1, 2]") is None
    assert JiraBadRequest("x").user_message == "Jira rejected the request."


async def test_403_says_what_the_user_may_not_do(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """The message names the action, in Jira's words of permission."""
    fake.respond("PUT", ISSUE + "/assignee", 403, body={"errorMessages": ["denied"]})
    with pytest.raises(JiraForbidden) as caught:
        await client.as_user(site, ACCOUNT_ID).assign_issue("ACME-1", ACCOUNT_ID)
    assert caught.value.reason == "JiraForbidden"
    assert caught.value.user_message == "You don't have permission to assign this issue in Jira."


async def test_404_does_not_tell_missing_from_hidden(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """Jira answers 404 for both; so does the message."""
    fake.respond("GET", ISSUE, 404, body={"errorMessages": ["Issue does not exist"]})
    with pytest.raises(JiraNotFound) as caught:
        await client.as_user(site, ACCOUNT_ID).get_issue("ACME-1")
    assert caught.value.reason == "JiraNotFound"
    assert caught.value.user_message == "That issue was not found in Jira, or you can't see it."


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "0"}, 1.0),  # at least a second
        ({"Retry-After": "100000"}, MAX_RETRY_AFTER),
        ({}, DEFAULT_RETRY_AFTER),
        ({"Retry-After": "soon"}, DEFAULT_RETRY_AFTER),
    ],
)
async def test_429_is_rate_limited_for_as_long_as_jira_asks(
    client: JiraClient,
    site: Installation,
    fake: FakeJira,
    headers: dict[str, str],
    expected: float,
) -> None:
    """Delta seconds are taken as they are, within bounds."""
    fake.respond("GET", ISSUE, 429, headers=headers)
    with pytest.raises(JiraRateLimited) as caught:
        await client.as_app(site).get_issue("ACME-1")
    assert isinstance(caught.value, RateLimited)
    assert caught.value.retry_after == expected
    assert caught.value.status == 429


async def test_retry_after_as_an_http_date_counts_from_the_clock(
    client: JiraClient, site: Installation, fake: FakeJira, clock: ManualClock
) -> None:
    """An HTTP date 42 s after the (injected) now means 42 s."""
    fake.respond(
        "GET", ISSUE, 429, headers={"Retry-After": formatdate(clock.now() + 42, usegmt=True)}
    )
    with pytest.raises(JiraRateLimited) as caught:
        await client.as_app(site).get_issue("ACME-1")
    assert caught.value.retry_after == 42.0


def test_retry_after_dates_in_the_past_or_without_a_zone_are_bounded() -> None:
    """A past date waits the minimum; a zone-less obsolete date falls back to the default."""
    now = 1_800_000_000.0
    assert retry_after_seconds(formatdate(now - 60, usegmt=True), now=now) == 1.0
    assert retry_after_seconds("Sun, 06 Nov 1994 08:49:37", now=now) == DEFAULT_RETRY_AFTER
    assert retry_after_seconds("nan", now=now) == DEFAULT_RETRY_AFTER


async def test_503_is_rate_limited_too(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """An overloaded Jira is backed off from like a throttling one."""
    fake.respond("GET", ISSUE, 503, headers={"Retry-After": "3"})
    with pytest.raises(JiraRateLimited) as caught:
        await client.as_app(site).get_issue("ACME-1")
    assert caught.value.retry_after == 3.0
    assert caught.value.status == 503


@pytest.mark.parametrize("status", [500, 502, 504, 409])
async def test_server_failures_are_transient(
    client: JiraClient, site: Installation, fake: FakeJira, status: int
) -> None:
    """Other 5xx (and a 409 conflict) are worth retrying later."""
    fake.respond("GET", ISSUE, status, body={"errorMessages": ["oops"]})
    with pytest.raises(JiraUnavailable) as caught:
        await client.as_app(site).get_issue("ACME-1")
    assert isinstance(caught.value, TransientError)
    assert not isinstance(caught.value, RateLimited)
    assert caught.value.status == status


async def test_an_unexpected_status_is_permanent(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """A 405 or a redirect is not retried; redirects are not followed."""
    fake.respond("GET", ISSUE, 405)
    with pytest.raises(JiraError) as caught:
        await client.as_app(site).get_issue("ACME-1")
    assert caught.value.reason == "JiraUnexpectedStatus"
    fake.respond("GET", ISSUE, 302, headers={"Location": "http://elsewhere.invalid/"})
    with pytest.raises(JiraError):
        await client.as_app(site).get_issue("ACME-1")


async def test_a_2xx_that_is_not_json_is_transient(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """A maintenance page served with 200 is not an answer."""

    async def html(_request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    fake.scripted[("GET", "/rest/api/3/myself")] = html
    with pytest.raises(JiraUnavailable):
        await client.as_app(site).get_myself()


async def test_an_answer_of_the_wrong_shape_is_refused(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """``get_transitions`` needs an object with a ``transitions`` list."""
    fake.respond("GET", ISSUE + "/transitions", 200, body={"transitions": "none"})
    with pytest.raises(JiraError) as caught:
        await client.as_app(site).get_transitions("ACME-1")
    assert caught.value.reason == "JiraBadResponse"


async def test_a_slow_jira_times_out_as_unavailable(
    fake: FakeJira, cipher: EnvelopeCipher, clock: ManualClock, site: Installation
) -> None:
    """Every call has a time-out; a handler slower than it gives JiraUnavailable."""
    fake.respond("GET", ISSUE, 200, body={}, delay=2.0)
    async with JiraClient(
        app_key="discord-for-jira",
        oauth_url=fake.oauth_url,
        cipher=cipher,
        clock=clock,
        timeout=0.2,
    ) as client:
        with pytest.raises(JiraUnavailable) as caught:
            await client.as_app(site).get_issue("ACME-1")
    assert "timed out" in str(caught.value)
    assert caught.value.status is None


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_refused_connection_is_unavailable(client: JiraClient, make_site: MakeSite) -> None:
    """Nothing listening: JiraUnavailable, naming the kind of failure only."""
    site = await make_site(base_url=f"http://127.0.0.1:{_closed_port()}/sites/acme")
    with pytest.raises(JiraUnavailable) as caught:
        await client.as_app(site).get_myself()
    assert "unreachable" in str(caught.value)


async def test_401_maps_to_unauthorized_for_both_actors(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """As the app it is the site's credentials; as a user, the link."""
    fake.respond("GET", ISSUE, 401)
    with pytest.raises(JiraUnauthorized) as as_app:
        await client.as_app(site).get_issue("ACME-1")
    with pytest.raises(JiraUnauthorized) as as_user:
        await client.as_user(site, ACCOUNT_ID).get_issue("ACME-1")
    assert as_app.value.user_message != as_user.value.user_message
