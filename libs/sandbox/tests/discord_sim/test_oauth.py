"""OAuth2: authorize (page and programmatic), code + PKCE exchange, @me, refresh, revoke."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dfj_common.clock import ManualClock
from dfj_sandbox.discord_sim import DiscordSimulator, User, pkce_s256

if TYPE_CHECKING:
    from libs.sandbox.tests.discord_sim.conftest import Api

REDIRECT = "http://127.0.0.1:8080/oauth/discord/callback"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture(name="linked")
def _linked(sim: DiscordSimulator, alice: User) -> tuple[str, str]:
    """A code for alice with a PKCE challenge, and its verifier."""
    sim.allow_redirect(REDIRECT)
    verifier = secrets.token_urlsafe(48)
    url = sim.authorize(
        alice.id, state="st-1", redirect_uri=REDIRECT, code_challenge=_challenge(verifier)
    )
    assert url.startswith(REDIRECT + "?")
    query = _query(url)
    assert query["state"] == "st-1"
    return query["code"], verifier


async def _token(api: Api, form: Mapping[str, str], *, basic: bool = True) -> tuple[int, Any]:
    app = api.sim.application
    fields = dict(form)
    headers: dict[str, str] = {}
    if basic:
        headers = _basic(app.client_id, app.client_secret)
    else:
        fields.update(client_id=app.client_id, client_secret=app.client_secret)
    async with api.http.post(api.sim.api_url + "/oauth2/token", data=fields, headers=headers) as r:
        return r.status, await r.json()


async def test_code_exchange_with_pkce_then_users_me(
    api: Api, alice: User, linked: tuple[str, str]
) -> None:
    """The code and verifier give a Bearer token for ``identify``; @me is alice, no email."""
    code, verifier = linked
    status, token = await _token(
        api,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert status == 200
    assert (token["token_type"], token["scope"], token["expires_in"]) == (
        "Bearer",
        "identify",
        604800,
    )
    assert token["refresh_token"]
    me = await api.call("GET", "/users/@me", auth=f"Bearer {token['access_token']}")
    assert me.status == 200
    assert (me.body["id"], me.body["username"], me.body["global_name"]) == (
        alice.id,
        "alice",
        "Alice",
    )
    assert "email" not in me.body
    info = await api.call("GET", "/oauth2/@me", auth=f"Bearer {token['access_token']}")
    assert info.body["user"]["id"] == alice.id
    assert info.body["scopes"] == ["identify"]


async def test_client_credentials_may_come_in_the_form(api: Api, linked: tuple[str, str]) -> None:
    """``client_id``/``client_secret`` fields work as well as HTTP Basic."""
    code, verifier = linked
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    status, _ = await _token(api, form, basic=False)
    assert status == 200


async def test_wrong_verifier_wrong_redirect_and_reuse(
    api: Api, sim: DiscordSimulator, linked: tuple[str, str]
) -> None:
    """invalid_grant each time; a reused code also revokes what it produced."""
    code, verifier = linked
    base = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    status, body = await _token(api, {**base, "code_verifier": "a" * 43})
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await _token(
        api, {**base, "code_verifier": verifier, "redirect_uri": REDIRECT + "x"}
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await _token(api, base)
    assert (status, body["error"]) == (400, "invalid_grant")
    status, token = await _token(api, {**base, "code_verifier": verifier})
    assert status == 200
    status, body = await _token(api, {**base, "code_verifier": verifier})
    assert (status, body["error"]) == (400, "invalid_grant")
    me = await api.call("GET", "/users/@me", auth=f"Bearer {token['access_token']}")
    assert me.status == 401


async def test_codes_expire_after_ten_minutes(
    api: Api, clock: ManualClock, linked: tuple[str, str]
) -> None:
    """An old code is invalid_grant."""
    code, verifier = linked
    clock.advance(601)
    status, body = await _token(
        api,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_client_authentication_and_encoding(api: Api, sim: DiscordSimulator) -> None:
    """A wrong secret is 401 invalid_client; a JSON body is 400."""
    async with api.http.post(
        sim.api_url + "/oauth2/token",
        data={"grant_type": "authorization_code", "code": "x"},
        headers=_basic(sim.application.client_id, "wrong"),
    ) as response:
        assert (response.status, (await response.json())["error"]) == (401, "invalid_client")
    async with api.http.post(sim.api_url + "/oauth2/token", json={"grant_type": "x"}) as response:
        assert response.status == 400


async def test_revoke_ends_the_grant_and_is_recorded(
    api: Api, sim: DiscordSimulator, alice: User, linked: tuple[str, str]
) -> None:
    """After revoke, the token no longer works for @me."""
    code, verifier = linked
    _, token = await _token(
        api,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    app = sim.application
    async with api.http.post(
        sim.api_url + "/oauth2/token/revoke",
        data={"token": token["access_token"], "token_type_hint": "access_token"},
        headers=_basic(app.client_id, app.client_secret),
    ) as response:
        assert response.status == 200
    (revocation,) = sim.oauth.revocations
    assert (revocation.user_id, revocation.token_type_hint) == (alice.id, "access_token")
    me = await api.call("GET", "/users/@me", auth=f"Bearer {token['access_token']}")
    assert (me.status, me.body) == (401, {"message": "401: Unauthorized", "code": 0})
    assert sim.calls[-1].auth == "invalid"


async def test_refresh_gives_new_tokens(api: Api, linked: tuple[str, str]) -> None:
    """The refresh grant replaces both tokens; the old access token stops working."""
    code, verifier = linked
    _, token = await _token(
        api,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    status, fresh = await _token(
        api, {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    )
    assert status == 200
    assert fresh["access_token"] != token["access_token"]
    old = await api.call("GET", "/users/@me", auth=f"Bearer {token['access_token']}")
    new = await api.call("GET", "/users/@me", auth=f"Bearer {fresh['access_token']}")
    assert (old.status, new.status) == (401, 200)


async def test_bearer_tokens_do_not_open_bot_routes(
    api: Api, general: str, linked: tuple[str, str]
) -> None:
    """A user's token cannot post as the bot."""
    code, verifier = linked
    _, token = await _token(
        api,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    answer = await api.call(
        "POST",
        f"/channels/{general}/messages",
        json={"content": "x"},
        auth=f"Bearer {token['access_token']}",
    )
    assert answer.status == 401


async def test_the_authorize_page_and_its_buttons(
    api: Api, sim: DiscordSimulator, alice: User
) -> None:
    """GET shows a consent form; Authorize redirects with code and state; Cancel with an error."""
    sim.allow_redirect(REDIRECT)
    verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": sim.application.client_id,
        "scope": "identify",
        "state": "s-9",
        "redirect_uri": REDIRECT,
        "code_challenge": pkce_s256(verifier),
        "code_challenge_method": "S256",
    }
    async with api.http.get(sim.url + "/oauth2/authorize", params=params) as response:
        assert response.status == 200
        page = await response.text()
    assert "id='authorize'" in page and "alice" in page
    form = {**params, "user_id": alice.id, "decision": "authorize"}
    async with api.http.post(sim.url + "/oauth2/authorize", data=form, allow_redirects=False) as r:
        assert r.status == 302
        location = r.headers["Location"]
    query = _query(location)
    assert query["state"] == "s-9"
    status, _ = await _token(
        api,
        {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert status == 200
    cancel = {**params, "decision": "cancel"}
    async with api.http.post(
        sim.url + "/oauth2/authorize", data=cancel, allow_redirects=False
    ) as r:
        assert _query(r.headers["Location"]) == {
            "error": "access_denied",
            "error_description": "The resource owner or authorization server denied the request",
            "state": "s-9",
        }
    sim.sign_in(alice.id)
    silent = {**params, "prompt": "none"}
    async with api.http.get(
        sim.url + "/oauth2/authorize", params=silent, allow_redirects=False
    ) as r:
        assert r.status == 302
        assert "code" in _query(r.headers["Location"])


async def test_the_authorize_page_refuses_unregistered_redirects(
    api: Api, sim: DiscordSimulator
) -> None:
    """An unregistered redirect_uri is an error page, never a redirect."""
    params = {
        "response_type": "code",
        "client_id": sim.application.client_id,
        "scope": "identify",
        "redirect_uri": "https://evil.example/cb",
    }
    async with api.http.get(
        sim.url + "/oauth2/authorize", params=params, allow_redirects=False
    ) as r:
        assert r.status == 400
        assert "Invalid OAuth2 redirect_uri" in await r.text()


def test_programmatic_authorize_validates_like_the_page(sim: DiscordSimulator, alice: User) -> None:
    """Unknown redirect or scope, or a plain PKCE method, is refused."""
    from dfj_sandbox.discord_sim.oauth import AuthorizeError

    with pytest.raises(AuthorizeError, match="redirect_uri"):
        sim.authorize(alice.id, state="s", redirect_uri=REDIRECT)
    sim.allow_redirect(REDIRECT)
    with pytest.raises(AuthorizeError, match="scope"):
        sim.authorize(alice.id, state="s", redirect_uri=REDIRECT, scope="bot.everything")
    with pytest.raises(AuthorizeError, match="S256"):
        sim.authorize(
            alice.id,
            state="s",
            redirect_uri=REDIRECT,
            code_challenge="x",
            code_challenge_method="plain",
        )
