"""The link page inside Jira: a verified page JWT plus the linker's sealed link request."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from dfj_common.derived_keys import master_key, pkce_challenge, pkce_verifier, seal
from dfj_gateway.browser.state import verify_state
from dfj_gateway.jira.descriptor import build_descriptor
from dfj_gateway.jira.link_request import LINK_REQUEST

if TYPE_CHECKING:
    from services.gateway.tests.jira.conftest import Harness

CLIENT_KEY = "8d4f7a52-1f0e-4c3b-9a6d-2b5e9c7f1a03"
ACCOUNT_ID = "5b10ac8d82e05b22cc7d4ef5"
SIGNING_KEY = "a-state-signing-key-for-the-jira-page-tests"
PAGE = "/jira/pages/link"
APP_ID = "1300000000000000099"
ASKER = "1200000000000000042"
DISCORD = {"DFJ_DISCORD_APPLICATION_ID": APP_ID, "DFJ_DISCORD_WEB_URL": "https://discord.test"}


def link_request(h: Harness, **changes: Any) -> str:
    now = int(h.clock.now())
    payload = {"ck": CLIENT_KEY, "du": ASKER, "gid": "1100", "iat": now, "exp": now + 600}
    return seal(master_key(SIGNING_KEY), LINK_REQUEST, {**payload, **changes})


async def load(h: Harness, request: str | None = None, **claims: Any) -> tuple[int, str]:
    query = [("request", request)] if request is not None else []
    token = h.sign("GET", PAGE, query=query, claims=claims or None)
    response = await h.client.get(PAGE, params=[*query, ("jwt", token)])
    return response.status, await response.text()


def authorize_url(page: str) -> str:
    match = re.search(r'id="continue" href="([^"]+)"', page)
    assert match is not None, page
    return html.unescape(match.group(1))


async def test_a_link_request_becomes_a_state_for_that_user_and_account(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(env=DISCORD)
    await h.seed()
    status, page = await load(h, link_request(h))
    assert status == 200
    url = urlsplit(authorize_url(page))
    assert (url.scheme, url.netloc, url.path) == ("https", "discord.test", "/oauth2/authorize")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert (query["client_id"], query["scope"], query["code_challenge_method"]) == (
        APP_ID,
        "identify",
        "S256",
    )
    state = verify_state(master_key(SIGNING_KEY), query["state"], now=h.clock.now())
    assert (state.client_key, state.account_id, state.discord_user_id) == (
        CLIENT_KEY,
        ACCOUNT_ID,
        ASKER,
    )
    key = master_key(SIGNING_KEY)
    assert query["code_challenge"] == pkce_challenge(
        pkce_verifier(key, state.state_id, state.nonce)
    )


async def test_without_a_request_the_state_names_no_discord_user(make_harness: Any) -> None:
    h: Harness = await make_harness(env=DISCORD)
    await h.seed()
    status, page = await load(h)
    assert status == 200
    state_token = parse_qs(urlsplit(authorize_url(page)).query)["state"][0]
    state = verify_state(master_key(SIGNING_KEY), state_token, now=h.clock.now())
    assert state.discord_user_id is None


async def test_bad_link_requests_are_refused_with_a_page(make_harness: Any) -> None:
    h: Harness = await make_harness(env=DISCORD)
    await h.seed()
    now = int(h.clock.now())
    forged = seal(b"another-key-of-at-least-32-bytes-long!!", LINK_REQUEST, {"ck": CLIENT_KEY})
    cases = {
        "expired": link_request(h, iat=now - 700, exp=now - 100),
        "another site": link_request(h, ck="another-site"),
        "forged": forged,
        "not a token": "garbage",
        "no user": link_request(h, du=None),
    }
    for case, token in cases.items():
        status, page = await load(h, token)
        assert status == 400, case
        assert 'id="continue"' not in page, case
    status, page = await load(h, link_request(h, iat=now - 700, exp=now - 100))
    assert "expired" in page


async def test_a_page_without_a_jira_user_cannot_link(make_harness: Any) -> None:
    h: Harness = await make_harness(env=DISCORD)
    await h.seed()
    status, page = await load(h, link_request(h), sub=None)
    assert status == 400
    assert "Sign in to Jira" in page


async def test_linking_without_a_discord_application_is_unavailable(h: Harness) -> None:
    await h.seed()
    status, page = await load(h, link_request(h))
    assert status == 503
    assert 'id="continue"' not in page


async def test_the_page_is_framed_by_the_site_only_and_never_cached(make_harness: Any) -> None:
    h: Harness = await make_harness(env=DISCORD)
    await h.seed()
    token = h.sign("GET", PAGE)
    response = await h.client.get(PAGE, params=[("jwt", token)])
    assert (
        "frame-ancestors https://acme.atlassian.net" in response.headers["Content-Security-Policy"]
    )
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert token not in await response.text()


def test_the_descriptor_declares_the_link_page_outside_every_menu() -> None:
    from dfj_common.config import Settings

    descriptor = build_descriptor(Settings.from_env({}, env_file=None))
    [page] = descriptor["modules"]["generalPages"]
    assert page["key"] == "dfj-link"
    assert page["location"] == "none"
    assert page["url"] == "/jira/pages/link?request={ac.request}"


CONFIG = "/jira/pages/config"


async def test_the_configuration_page_offers_the_bot_and_a_connect_code(make_harness: Any) -> None:
    from dfj_common.derived_keys import open_short_code
    from dfj_common.storage import GuildConnections

    h: Harness = await make_harness(env=DISCORD)
    await h.seed()
    await GuildConnections(h.db).connect("1100000000000000001", CLIENT_KEY, connected_by="1")
    token = h.sign("GET", CONFIG)
    response = await h.client.get(CONFIG, params=[("jwt", token)])
    assert response.status == 200
    page = await response.text()
    install = re.search(r'id="install" href="([^"]+)"', page)
    assert install is not None
    query = parse_qs(urlsplit(html.unescape(install.group(1))).query)
    assert query == {
        "client_id": [APP_ID],
        "scope": ["bot applications.commands"],
        "permissions": ["309237730304"],
    }
    command = re.search(r'<pre id="command">/jira connect code:([A-Z0-9-]+)</pre>', page)
    assert command is not None and len(command.group(1)) <= 64
    opened = open_short_code(
        master_key(SIGNING_KEY), "connect-code", command.group(1), [CLIENT_KEY], now=h.clock.now()
    )
    assert opened.subject == CLIENT_KEY
    assert "1100000000000000001" in page


async def test_the_configuration_page_without_discord_says_so(h: Harness) -> None:
    await h.seed()
    response = await h.client.get(CONFIG, params=[("jwt", h.sign("GET", CONFIG))])
    page = await response.text()
    assert response.status == 200
    assert "not set up" in page and 'id="command"' not in page


def test_the_bot_permissions_match_the_discord_workers() -> None:
    from dfj_discord_worker.permissions import BOT_PERMISSIONS as WORKER
    from dfj_gateway.jira.config_page import BOT_PERMISSIONS

    assert int(WORKER) == BOT_PERMISSIONS
