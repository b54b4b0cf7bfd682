"""Signed OAuth states, status tickets, PKCE and the authorize URL (pure, clock injected)."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from dfj_common.config import Settings
from dfj_common.errors import ConfigError
from dfj_gateway.browser import state as st

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
NOW = 1_750_000_000.0
SITE = "jira:site-1"
ACCOUNT = "5b10ac8d82e05b22cc7d4ef5"


def _issue(**overrides: object) -> tuple[str, st.LinkState]:
    kwargs: dict[str, object] = {"client_key": SITE, "account_id": ACCOUNT, "now": NOW}
    kwargs.update(overrides)
    return st.issue_state(KEY, **kwargs)  # type: ignore[arg-type]


def test_round_trip() -> None:
    """A fresh state verifies and says what it was issued for."""
    token, issued = _issue(discord_user_id="1300000000000000004")
    verified = st.verify_state(KEY, token, now=NOW + 1)
    assert verified == issued
    assert (verified.client_key, verified.account_id) == (SITE, ACCOUNT)
    assert verified.expires_at == NOW + st.DEFAULT_STATE_TTL
    assert verified.discord_user_id == "1300000000000000004"
    assert len(token) < 512 and token.startswith("v1.")


def test_states_are_unique() -> None:
    """Each state has its own id and nonce."""
    (_, a), (_, b) = _issue(), _issue()
    assert a.state_id != b.state_id and a.nonce != b.nonce


def test_expired() -> None:
    """At and after its expiry a state is refused as expired."""
    token, issued = _issue()
    assert st.verify_state(KEY, token, now=issued.expires_at - 1)
    with pytest.raises(st.StateError, match="expired"):
        st.verify_state(KEY, token, now=issued.expires_at)


def _retamper(token: str, change: dict[str, object]) -> str:
    version, payload, mac = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=="))
    data.update(change)
    raw = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{version}.{raw}.{mac}"


@pytest.mark.parametrize(
    "change", [{"acc": "attacker"}, {"ck": "jira:other"}, {"exp": int(NOW) + 10**6}]
)
def test_tampered_payload(change: dict[str, object]) -> None:
    """Changing any claim breaks the signature."""
    token, _ = _issue()
    with pytest.raises(st.StateError, match="bad signature"):
        st.verify_state(KEY, _retamper(token, change), now=NOW)


def test_other_key_and_other_purpose() -> None:
    """A state signed with another key, or a status ticket passed as a state, is refused."""
    token, issued = _issue()
    with pytest.raises(st.StateError, match="bad signature"):
        st.verify_state(OTHER_KEY, token, now=NOW)
    ticket = st.issue_status_ticket(KEY, issued, now=NOW, ttl=600)
    with pytest.raises(st.StateError, match="bad signature"):
        st.verify_state(KEY, ticket, now=NOW)
    with pytest.raises(st.StateError, match="bad signature"):
        st.verify_status_ticket(KEY, token, now=NOW)


@pytest.mark.parametrize(
    "token",
    ["", "v1", "v1.a.b.c", "v2.abc.def", "v1.!!!.abc", "v1.abc.$$$", "x" * 3000, "v1..", "v1.é.a"],
)
def test_malformed(token: str) -> None:
    """Junk is refused as malformed, never an exception of another kind."""
    with pytest.raises(st.StateError, match="malformed"):
        st.verify_state(KEY, token, now=NOW)


def test_signed_but_wrong_shape_is_malformed() -> None:
    """A correctly signed payload with a missing or mistyped claim is still refused."""
    for payload in (
        {"sid": "a"},
        {"sid": "a", "ck": "c", "acc": "x", "n": "n", "iat": "1", "exp": 2},
    ):
        token = st._seal(KEY, "oauth-state", dict(payload))
        with pytest.raises(st.StateError, match="malformed"):
            st.verify_state(KEY, token, now=NOW)


def test_future_and_overlong_states() -> None:
    """A state issued in the future, or living over 15 minutes, is refused."""
    future, _ = _issue(now=NOW + 3600)
    with pytest.raises(st.StateError, match="future"):
        st.verify_state(KEY, future, now=NOW)
    payload = {
        "sid": "s",
        "ck": SITE,
        "acc": ACCOUNT,
        "n": "n",
        "iat": int(NOW),
        "exp": int(NOW) + 3600,
    }
    with pytest.raises(st.StateError, match="lifetime"):
        st.verify_state(KEY, st._seal(KEY, "oauth-state", payload), now=NOW)
    with pytest.raises(ValueError, match="between"):
        _issue(ttl=3600)


def test_issue_validates_its_inputs() -> None:
    """A state needs a site, an account and a URL-safe id."""
    with pytest.raises(ValueError, match="clientKey"):
        _issue(client_key="")
    with pytest.raises(ValueError, match="state id"):
        _issue(state_id="has spaces")


def test_status_ticket() -> None:
    """A ticket carries the state id, site, account and request time, and expires."""
    _, issued = _issue()
    ticket = st.issue_status_ticket(KEY, issued, now=NOW + 5, ttl=1800)
    found = st.verify_status_ticket(KEY, ticket, now=NOW + 10)
    assert (found.state_id, found.client_key, found.account_id) == (
        issued.state_id,
        SITE,
        ACCOUNT,
    )
    assert found.requested_at == issued.issued_at and found.expires_at == NOW + 5 + 1800
    with pytest.raises(st.StateError, match="expired"):
        st.verify_status_ticket(KEY, ticket, now=NOW + 5 + 1800)


def test_pkce_rfc7636_appendix_b() -> None:
    """The S256 challenge matches RFC 7636's worked example."""
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert st.pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_pkce_verifier_is_derived_and_keyed() -> None:
    """The verifier is recomputable from the state with the key, and differs without it."""
    token, issued = _issue()
    verifier = st.pkce_verifier(KEY, issued)
    assert verifier == st.pkce_verifier(KEY, st.verify_state(KEY, token, now=NOW))
    assert len(verifier) == 43 and verifier.replace("-", "").replace("_", "").isalnum()
    assert st.pkce_verifier(OTHER_KEY, issued) != verifier
    _, other = _issue()
    assert st.pkce_verifier(KEY, other) != verifier
    assert verifier not in token and st.pkce_challenge(verifier) not in token


def test_authorize_url() -> None:
    """The authorize URL asks for identify with state, redirect URI, S256 PKCE, prompt=none."""
    url = st.authorize_url(
        web_url="https://discord.com/",
        client_id="1300000000000000001",
        public_url="https://gw.example.test/",
        state="v1.abc.def",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    )
    assert url == (
        "https://discord.com/oauth2/authorize?response_type=code&client_id=1300000000000000001"
        "&scope=identify&state=v1.abc.def"
        "&redirect_uri=https%3A%2F%2Fgw.example.test%2Foauth%2Fdiscord%2Fcallback"
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        "&code_challenge_method=S256&prompt=none"
    )
    query = parse_qs(urlsplit(url).query)
    assert query["redirect_uri"] == ["https://gw.example.test/oauth/discord/callback"]


def test_signing_key_needs_32_bytes() -> None:
    """A short state-signing key fails, naming the secret."""
    with pytest.raises(ConfigError, match="state-signing-key"):
        st.signing_key("short")
    assert st.signing_key("x" * 32) == b"x" * 32


def test_begin_link_builds_the_whole_url() -> None:
    """begin_link mints a state and puts it, with its S256 challenge, in the authorize URL."""
    settings = Settings.from_env(
        {
            "DFJ_DISCORD_APPLICATION_ID": "1300000000000000001",
            "DFJ_DISCORD_WEB_URL": "http://localhost:9000",
            "DFJ_PUBLIC_URL": "https://gw.example.test",
        },
        env_file=None,
    )
    url, issued = st.begin_link(KEY, settings, client_key=SITE, account_id=ACCOUNT, now=NOW)
    assert url.startswith("http://localhost:9000/oauth2/authorize?")
    query = parse_qs(urlsplit(url).query)
    assert st.verify_state(KEY, query["state"][0], now=NOW) == issued
    assert query["code_challenge"] == [st.pkce_challenge(st.pkce_verifier(KEY, issued))]
    assert query["client_id"] == ["1300000000000000001"]
    with pytest.raises(ConfigError, match="DFJ_DISCORD_APPLICATION_ID"):
        st.begin_link(
            KEY, Settings.from_env({}, env_file=None), client_key=SITE, account_id=ACCOUNT, now=NOW
        )
