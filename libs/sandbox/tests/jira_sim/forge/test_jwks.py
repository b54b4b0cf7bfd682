"""The JWKS, key rotation, and the signer tests use to build tokens a remote must refuse."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import aiohttp
import jwt
import pytest

from dfj_sandbox.forge_signing import (
    FitSubject,
    InstallKeyPair,
    jwks,
    public_jwk,
    sign_fit,
)
from dfj_sandbox.jira_sim import ForgeInstallation, JiraSimulator

from .conftest import APP_ID

if TYPE_CHECKING:
    from .conftest import FakeRemote


async def _served(sim: JiraSimulator) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(sim.forge_jwks_url) as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def test_the_jwks_serves_the_public_keys_and_follows_rotation(
    fast: JiraSimulator, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """RSA JWKs with kid/alg/use; a rotated-out key stays until dropped."""
    first = fast.forge_key
    [key] = (await _served(fast))["keys"]
    assert key == {**key, "kty": "RSA", "kid": first.kid, "alg": "RS256", "use": "sig"}
    assert {"n", "e"} <= set(key) and "d" not in key
    second = fast.rotate_forge_key()
    assert [k["kid"] for k in (await _served(fast))["keys"]] == [first.kid, second.kid]
    await fast.run_scheduled_trigger(forge)
    call = remote.calls("/forge/scheduled")[-1]
    assert jwt.get_unverified_header(call.headers["Authorization"].split()[1])["kid"] == second.kid
    third = fast.rotate_forge_key(keep_old=False)
    assert [k["kid"] for k in (await _served(fast))["keys"]] == [third.kid]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"claims_override": {"aud": "ari:cloud:ecosystem::app/other"}}, jwt.InvalidAudienceError),
        ({"claims_override": {"iss": "someone"}}, jwt.InvalidIssuerError),
        ({"claims_override": {"exp": 1000}}, jwt.ExpiredSignatureError),
        ({"claims_override": {"jti": None}}, jwt.MissingRequiredClaimError),
        ({"key": InstallKeyPair.generate()}, jwt.InvalidTokenError),  # unknown kid
        ({"headers_override": {"kid": None}}, jwt.InvalidTokenError),
        ({"algorithm": "none"}, jwt.InvalidAlgorithmError),
        ({"algorithm": "HS256"}, jwt.InvalidAlgorithmError),
    ],
)
async def test_forged_tokens_are_refused_by_a_careful_remote(
    fast: JiraSimulator,
    remote: FakeRemote,
    forge: ForgeInstallation,
    change: dict[str, Any],
    error: type[Exception],
) -> None:
    """Each variant fails the remote's checks; the untouched token passes them."""
    good = fast.forge_token(forge, module_key="jira-events")
    claims = await remote.verify(good)
    assert claims["app"]["module"] == {"type": "core:endpoint", "key": "jira-events"}
    with pytest.raises(error):
        await remote.verify(fast.forge_token(forge, module_key="jira-events", **change))


def test_the_hs256_variant_is_keyed_with_the_public_key() -> None:
    """The key-confusion token really is an HMAC over the public key's PEM."""
    key = InstallKeyPair.generate()
    subject = FitSubject(
        app_id=APP_ID,
        app_version="1.0.0",
        installation_id="ari:cloud:ecosystem::installation/1",
        cloud_id="c",
        api_base_url="http://api/ex/jira/c",
        environment_id="ari:cloud:ecosystem::environment/x/y",
    )
    token = sign_fit(key, subject, module_key="m", now=time.time(), algorithm="HS256")
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == ("HS256", key.kid)
    # PyJWT refuses a PEM as an HMAC key, so check the MAC by hand.
    import base64
    import hashlib
    import hmac

    signing_input, _, signature = token.rpartition(".")
    expected = hmac.new(key.public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "==") == expected


def test_the_signer_works_without_the_server() -> None:
    """sign_fit + public_jwk: a token PyJWT verifies with the JWK alone."""
    key = InstallKeyPair.generate()
    subject = FitSubject(
        app_id=APP_ID,
        app_version="3.0.0",
        installation_id="ari:cloud:ecosystem::installation/abc",
        cloud_id="cloud",
        api_base_url="http://127.0.0.1/ex/jira/cloud",
        environment_id="ari:cloud:ecosystem::environment/app/env",
    )
    token = sign_fit(key, subject, module_key="events", now=time.time())
    verifier = jwt.PyJWKSet.from_dict(jwks([key]))[key.kid]
    claims = jwt.decode(
        token, verifier.key, algorithms=["RS256"], audience=APP_ID, issuer="forge/invocation-token"
    )
    assert claims["app"]["appVersion"] == "3.0.0"
    assert claims["nbf"] == claims["iat"]
    assert public_jwk(key)["kid"] == key.kid
