"""The OAuth callback and the link-status poll over real HTTP."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import pytest

from dfj_common.bus.topology import LINKER
from dfj_common.envelope import deterministic_id
from dfj_gateway.browser import state as st
from dfj_gateway.events import LINK_OAUTH_CALLBACK

Browser = Any  # conftest.Browser (conftest modules are not importable under importlib mode)
SITE = "jira:0b4f3c6e-2d9a-4c55-9a4e-5b8f6a1d2c3e"
ACCOUNT = "5b10ac8d82e05b22cc7d4ef5"
DISCORD_USER = "1300000000000000004"
CODE = "NhhvTDYsFcdgNLnnLijcl7Ku7bEEeee"
CALLBACK = "/oauth/discord/callback"


def _state(browser: Browser, **overrides: Any) -> tuple[str, st.LinkState]:
    kwargs: dict[str, Any] = {
        "client_key": SITE,
        "account_id": ACCOUNT,
        "now": browser.clock.now(),
        "discord_user_id": DISCORD_USER,
    }
    kwargs.update(overrides)
    return st.issue_state(browser.key, **kwargs)


def _status_url(page: str) -> str:
    found = re.search(r'const url = "([^"]+)"', page)
    assert found, page
    return found.group(1)


async def test_valid_callback_publishes_and_answers_a_polling_page(browser: Browser) -> None:
    """A good code and state: link.oauth_callback on the linker, and a page that polls."""
    token, issued = _state(browser)
    response = await browser.client.get(CALLBACK, params={"code": CODE, "state": token})
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    page = await response.text()
    assert CODE not in page and token not in page
    assert _status_url(page).startswith(f"/oauth/discord/status/{issued.state_id}?ticket=")
    [event] = await browser.take(LINKER)
    assert event.type == LINK_OAUTH_CALLBACK
    assert event.id == deterministic_id("link-oauth-callback", issued.state_id)
    assert event.tenant == SITE
    assert event.data == {
        "code": CODE,
        "state_id": issued.state_id,
        "client_key": SITE,
        "account_id": ACCOUNT,
        "discord_user_id": DISCORD_USER,
        "nonce": issued.nonce,
        "issued_at": issued.issued_at,
        "expires_at": issued.expires_at,
        "redirect_uri": "https://gateway.example.test/oauth/discord/callback",
    }
    # The linker can recompute the PKCE verifier from the event with the shared key.
    assert st.pkce_verifier(browser.key, issued) == st.pkce_verifier(
        browser.key, st.verify_state(browser.key, token, now=browser.clock.now())
    )


async def test_reloading_the_callback_publishes_once(browser: Browser) -> None:
    """The message id derives from the state id, so a reload is dropped by the bus."""
    token, _ = _state(browser)
    for _ in range(2):
        response = await browser.client.get(CALLBACK, params={"code": CODE, "state": token})
        assert response.status == 200
    assert len(await browser.take(LINKER, expect=2)) == 1


async def test_expired_state_is_400(browser: Browser) -> None:
    """A state past its 10 minutes is a 400 page saying so; nothing published."""
    token, _ = _state(browser)
    browser.clock.advance(601)
    response = await browser.client.get(CALLBACK, params={"code": CODE, "state": token})
    assert response.status == 400
    assert "expired" in await response.text()
    assert await browser.published() == 0


async def test_tampered_state_is_400(browser: Browser) -> None:
    """A state with a changed character, or signed with another key, is a 400 page."""
    token, _ = _state(browser)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    foreign, _ = st.issue_state(
        b"f" * 32, client_key=SITE, account_id=ACCOUNT, now=browser.clock.now()
    )
    for bad in (flipped, foreign, "v1.abc.def", "nonsense"):
        response = await browser.client.get(CALLBACK, params={"code": CODE, "state": bad})
        assert response.status == 400
        assert "not valid" in await response.text()
    assert await browser.published() == 0


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"code": CODE},
        {"state": "v1.a.b"},
        {"code": "", "state": "v1.a.b"},
        {"code": "x" * 600, "state": "v1.a.b"},
        {"code": "has spaces", "state": "v1.a.b"},
    ],
)
async def test_missing_or_malformed_params_are_400(
    browser: Browser, params: dict[str, str]
) -> None:
    """A callback without a usable code and state is a 400 page; nothing published."""
    response = await browser.client.get(CALLBACK, params=params)
    assert response.status == 400
    assert response.content_type == "text/html"
    assert await browser.published() == 0


async def test_user_cancelled_is_400_with_the_reason(browser: Browser) -> None:
    """Discord's error redirect (the user pressed Cancel) is a 400 page; nothing published."""
    token, _ = _state(browser)
    response = await browser.client.get(CALLBACK, params={"error": "access_denied", "state": token})
    assert response.status == 400
    text = await response.text()
    assert "cancelled" in text and "access_denied" in text
    hostile = await browser.client.get(CALLBACK, params={"error": "<script>alert(1)</script>"})
    assert hostile.status == 400 and "<script>alert" not in await hostile.text()
    assert await browser.published() == 0


async def test_head_does_not_publish(browser: Browser) -> None:
    """HEAD is not routed to the callback (a link prefetcher cannot publish)."""
    token, _ = _state(browser)
    response = await browser.client.head(CALLBACK, params={"code": CODE, "state": token})
    assert response.status == 405
    assert await browser.published() == 0


async def test_without_signing_key_is_503(
    start_browser: Callable[..., Awaitable[Browser]],
) -> None:
    """Without the state-signing key nothing can be checked: a 503 page, nothing published."""
    browser = await start_browser(with_signing_key=False)
    response = await browser.client.get(CALLBACK, params={"code": CODE, "state": "v1.a.b"})
    assert response.status == 503
    assert await browser.published() == 0


async def test_status_pending_then_linked(browser: Browser) -> None:
    """The status poll says pending until the linker stores the link, then linked."""
    await browser.install()
    token, _ = _state(browser)
    page = await (await browser.client.get(CALLBACK, params={"code": CODE, "state": token})).text()
    url = _status_url(page)
    pending = await browser.client.get(url)
    assert pending.status == 200
    assert await pending.json() == {"status": "pending", "retry_after": 2.0}
    assert pending.headers["Retry-After"] == "2"
    assert pending.headers["Cache-Control"] == "no-store"
    browser.clock.advance(1)
    await browser.repos.user_links.link(
        SITE, account_id=ACCOUNT, discord_user_id="1300000000000000777"
    )
    cached = await browser.client.get(url)  # within the poll interval: the cached answer
    assert (await cached.json())["status"] == "pending"
    browser.clock.advance(2.5)
    linked = await browser.client.get(url)
    assert linked.status == 200
    assert await linked.json() == {"status": "linked"}
    assert "Retry-After" not in linked.headers


async def test_status_says_why_the_linker_refused(browser: Browser) -> None:
    """The linker leaves its reason for the page; the poll stops with it (text, capped)."""
    from datetime import timedelta

    await browser.install()
    token, state = _state(browser)
    page = await (await browser.client.get(CALLBACK, params={"code": CODE, "state": token})).text()
    await browser.repos.metadata_cache.put(
        SITE,
        "link-outcome",
        state.state_id,
        {"status": "refused", "message": "<b>Nope</b> " + "x" * 400},
        ttl=timedelta(minutes=30),
    )
    response = await browser.client.get(_status_url(page))
    body = await response.json()
    assert body["status"] == "refused"
    assert body["message"].startswith("<b>Nope</b>") and len(body["message"]) == 300
    assert "Retry-After" not in response.headers
    assert 'body.status === "refused"' in page  # the page shows it, as text


async def test_status_ignores_a_link_older_than_the_request(browser: Browser) -> None:
    """A link stored before the state was issued (to someone else) is not this request's."""
    await browser.install()
    await browser.repos.user_links.link(
        SITE, account_id=ACCOUNT, discord_user_id="1300000000000000777"
    )
    browser.clock.advance(60)
    token, _ = _state(browser)
    page = await (await browser.client.get(CALLBACK, params={"code": CODE, "state": token})).text()
    response = await browser.client.get(_status_url(page))
    assert (await response.json())["status"] == "pending"


async def test_status_rejects_bad_tickets(browser: Browser) -> None:
    """No ticket, a forged one, one for another state → 400; an expired one → 410."""
    token, issued = _state(browser)
    page = await (await browser.client.get(CALLBACK, params={"code": CODE, "state": token})).text()
    url = _status_url(page)
    path = f"/oauth/discord/status/{issued.state_id}"
    assert (await browser.client.get(path)).status == 400
    assert (await browser.client.get(path, params={"ticket": "v1.abc.def"})).status == 400
    forged = st.issue_status_ticket(b"f" * 32, issued, now=browser.clock.now(), ttl=600)
    assert (await browser.client.get(path, params={"ticket": forged})).status == 400
    ticket = url.split("ticket=", 1)[1]
    other = await browser.client.get(
        "/oauth/discord/status/another-state", params={"ticket": ticket}
    )
    assert other.status == 400
    bad_id = await browser.client.get(
        f"/oauth/discord/status/{quote('a b')}", params={"ticket": ticket}
    )
    assert bad_id.status == 400
    browser.clock.advance(1801)
    expired = await browser.client.get(url)
    assert expired.status == 410
    assert await expired.json() == {"status": "expired"}


async def test_code_never_logged(
    browser: Browser, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Neither the authorization code nor the state reaches a log line."""
    caplog.set_level(logging.DEBUG)
    token, _ = _state(browser)
    assert (await browser.client.get(CALLBACK, params={"code": CODE, "state": token})).status == 200
    browser.clock.advance(601)
    assert (await browser.client.get(CALLBACK, params={"code": CODE, "state": token})).status == 400
    captured = capsys.readouterr()
    logged = caplog.text + captured.out + captured.err
    assert "oauth/discord/callback" in logged  # the request lines were captured
    assert CODE not in logged and token not in logged
