"""The framework-free verifiers: JWT rules, the site allow-list, the key cache's memory."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import jwt
import pytest

from dfj_gateway.jira.connect_jwt import (
    JiraAuthError,
    UnverifiedToken,
    read_unverified,
    verify_hs256,
    verify_rs256,
)
from dfj_gateway.jira.sites import site_allowed
from dfj_sandbox.jira_signing import InstallKeyPair, installed_payload, sign_install

if TYPE_CHECKING:
    from services.gateway.tests.jira.conftest import Harness

NOW = 1_800_000_000
SECRET = b"a-shared-secret-of-at-least-32-bytes!"
BASE = "https://dfj.example.test"


def hs256(**claims: Any) -> str:
    """An HS256 token with sensible claims, changed by ``claims`` (None drops one)."""
    payload = {"iss": "tenant-1", "iat": NOW, "exp": NOW + 180, "qsh": "q", **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, SECRET, "HS256")


def check(token: str, now: float = NOW, expected_qsh: str = "q") -> str:
    """The reason verify_hs256 refuses ``token`` ('ok' when it accepts)."""
    try:
        verify_hs256(
            read_unverified(token, expect_alg="HS256"), SECRET, now=now, expected_qsh=expected_qsh
        )
    except JiraAuthError as exc:
        return exc.reason
    return "ok"


def test_a_good_token_verifies_with_its_claims() -> None:
    """The claims come back typed: issuer, account id, times."""
    token = read_unverified(hs256(sub="557058:abc"), expect_alg="HS256")
    claims = verify_hs256(token, SECRET, now=NOW, expected_qsh="q")
    assert (claims.issuer, claims.account_id, claims.issued_at, claims.expires_at) == (
        "tenant-1",
        "557058:abc",
        NOW,
        NOW + 180,
    )


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (NOW + 180 + 29, "ok"),
        (NOW + 180 + 30, "token expired"),
        (NOW - 30, "ok"),
        (NOW - 31, "token issued in the future"),
    ],
)
def test_time_is_checked_against_the_given_clock_with_30s_leeway(now: float, reason: str) -> None:
    """exp and iat are judged against ``now``, not the machine's clock."""
    assert check(hs256(), now=now) == reason


def test_nbf_is_honoured() -> None:
    """A token not valid before a time 31 s ahead is refused."""
    assert check(hs256(nbf=NOW + 31)) == "token not yet valid"
    assert check(hs256(nbf=NOW + 30)) == "ok"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": None}, "missing claim exp"),
        ({"iat": None}, "missing claim iat"),
        ({"exp": "soon"}, "malformed claim exp"),
        ({"iat": True}, "malformed claim iat"),
        ({"qsh": "other"}, "wrong qsh"),
        ({"qsh": None}, "missing qsh"),
        ({"iss": "has spaces"}, "missing or malformed issuer"),
    ],
)
def test_claim_rules(claims: dict[str, Any], reason: str) -> None:
    """Required claims, their types and the qsh match."""
    assert check(hs256(**claims)) == reason


def test_issuer_is_required_before_verification() -> None:
    """A token without iss cannot even be looked up."""
    token = jwt.encode({"iat": NOW, "exp": NOW + 1, "qsh": "q"}, SECRET, "HS256")
    assert check(token) == "missing or malformed issuer"


def test_the_algorithm_is_pinned_by_the_caller() -> None:
    """An HS256 token is refused where RS256 is expected, and the other way round."""
    with pytest.raises(JiraAuthError, match="algorithm not allowed"):
        read_unverified(hs256(), expect_alg="RS256")
    key = InstallKeyPair.generate()
    token = sign_install(key, client_key="tenant-1", audience=BASE, path="/x", now=NOW)
    with pytest.raises(JiraAuthError, match="algorithm not allowed"):
        read_unverified(token, expect_alg="HS256")


def test_an_oversized_token_is_malformed() -> None:
    """Tokens are capped before any decoding."""
    assert check("a." + "b" * 9000 + ".c") == "malformed token"


def _segment(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.replace(".", "..", 1),  # four segments
        lambda t: t + "=",  # padding is not base64url
        lambda t: t.replace("-", "+").replace("_", "/") if ("-" in t or "_" in t) else t + "+",
        lambda t: "!" + t,  # outside the alphabet
        lambda t: _segment(["not", "an", "object"]) + t[t.index(".") :],  # header not an object
        lambda t: t[: t.index(".") + 1] + _segment([1, 2]) + t[t.rindex(".") :],
        lambda t: "e30" + t[t.index(".") :].replace(".", ".x", 1),  # body not JSON
    ],
)
def test_a_token_that_is_not_a_compact_jws_is_malformed(mangle: Any) -> None:
    """Three base64url segments, header and payload JSON objects, or nothing is looked up."""
    assert check(mangle(hs256())) == "malformed token"


def test_a_signature_by_another_secret_or_over_other_claims_is_refused() -> None:
    """The MAC covers header and payload as sent."""
    other = jwt.encode({"iss": "tenant-1", "iat": NOW, "exp": NOW + 1, "qsh": "q"}, b"x" * 40)
    assert check(other) == "bad signature"
    head, _, sig = hs256().split(".")
    forged = _segment({"iss": "tenant-1", "iat": NOW, "exp": NOW + 999, "qsh": "q"})
    assert check(f"{head}.{forged}.{sig}") == "bad signature"
    assert check(f"{head}.{hs256().split('.')[1]}.") == "bad signature"  # no signature


def test_rs256_checks_the_audience() -> None:
    """verify_rs256 wants our base URL in aud (string or list, trailing slash ignored)."""
    key = InstallKeyPair.generate()
    public = key.private_key.public_key()

    def verify(audience: Any) -> str:
        token = sign_install(
            key, client_key="t", audience="unused", path="/i", now=NOW, claims={"aud": audience}
        )
        unverified = read_unverified(token, expect_alg="RS256")
        try:
            verify_rs256(
                unverified,
                public,
                now=NOW,
                expected_qsh=jwt.decode(token, options={"verify_signature": False})["qsh"],
                audience=BASE + "/",
            )
        except JiraAuthError as exc:
            return exc.reason
        return "ok"

    assert verify(BASE) == "ok"
    assert verify([BASE + "/", "other"]) == "ok"
    assert verify("https://dfj.example.test.evil") == "wrong audience"
    assert verify([]) == "wrong audience"
    assert verify(None) == "wrong audience"


@pytest.mark.parametrize(
    ("url", "patterns", "allowed"),
    [
        ("https://acme.atlassian.net", ["*.atlassian.net"], True),
        ("https://ACME.Atlassian.NET/", ["*.atlassian.net"], True),
        ("https://acme.atlassian.net/wiki", ["*.atlassian.net"], True),
        ("https://atlassian.net", ["*.atlassian.net"], False),
        ("https://acme.atlassian.net.evil.example", ["*.atlassian.net"], False),
        ("https://acme.atlassian.net:notaport", ["*.atlassian.net"], False),
        ("https://acme.atlassian.net#x", ["*.atlassian.net"], False),
        ("http://acme.atlassian.net", ["*.atlassian.net"], False),
        ("http://127.0.0.1:9000", ["127.0.0.1"], True),
        ("http://[::1]:9000", ["::1"], True),
        ("http://localhost:9000", ["localhost"], True),
        ("http://127.0.0.1:9000", ["*"], False),
        ("http://10.0.0.1:9000", ["10.0.0.1"], False),
        ("https://jira.example.org", ["*.atlassian.net", "jira.example.org"], True),
        ("not a url", ["*"], False),
    ],
)
def test_the_site_allow_list(url: str, patterns: list[str], allowed: bool) -> None:
    """Host patterns match whole host names; plain http only for a named loopback host."""
    assert site_allowed(url, patterns) is allowed


async def test_an_unknown_kid_is_remembered_for_a_while(h: Harness) -> None:
    """A 404 kid is not fetched again for 60 s, then it is."""
    stranger = InstallKeyPair.generate()
    body = installed_payload(
        client_key="tenant-1",
        base_url="https://acme.atlassian.net",
        app_key="discord-for-jira",
        shared_secret="s" * 40,
    )
    for _ in range(2):
        token = h.install_token(key=stranger, client_key="tenant-1")
        assert (await h.post("/jira/lifecycle/installed", body, token=token)).status == 401
    assert h.key_server.requests[stranger.kid] == 1
    h.clock.advance(61)
    h.key_server.add(stranger)  # Atlassian published it meanwhile
    token = h.install_token(key=stranger, client_key="tenant-1")
    assert (await h.post("/jira/lifecycle/installed", body, token=token)).status == 204
    assert h.key_server.requests[stranger.kid] == 2


def test_the_decode_itself_is_pinned_too() -> None:
    """Even a hand-built UnverifiedToken claiming HS256 cannot smuggle alg none past decode."""
    forged = jwt.encode({"iss": "tenant-1", "iat": NOW, "exp": NOW + 1, "qsh": "q"}, "", "none")
    token = UnverifiedToken(token=forged, alg="HS256", kid=None, issuer="tenant-1")
    with pytest.raises(JiraAuthError, match="algorithm not allowed"):
        verify_hs256(token, SECRET, now=NOW, expected_qsh="q")
