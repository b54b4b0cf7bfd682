"""The sandbox's Jira signer: qsh as in Atlassian's vectors, tokens shaped as Jira sends them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from dfj_sandbox.jira_signing import (
    CONTEXT_QSH,
    InstallKeyPair,
    InstallKeyServer,
    auth_header,
    canonical_request,
    installed_payload,
    query_string_hash,
    sign_context,
    sign_install,
    sign_request,
)

VECTORS: Final = (
    Path(__file__).resolve().parents[3] / ".." / "shared" / "vectors" / "atlassian-qsh-interop.json"
)
NOW: Final = 1_800_000_000
SECRET: Final = "a-shared-secret-of-at-least-32-bytes!"


@pytest.fixture(name="vectors", scope="module")
def _vectors() -> dict[str, Any]:
    if not VECTORS.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"the qsh vectors must be present in CI: {VECTORS}")
        pytest.skip(f"shared/ is not beside the repository: {VECTORS} is missing")
    loaded: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(name="key", scope="module")
def _key() -> InstallKeyPair:
    return InstallKeyPair.generate()


def test_the_signers_qsh_reproduces_every_interop_vector(vectors: dict[str, Any]) -> None:
    """All 78 canonical requests and qsh claims of Atlassian's vectors."""
    assert len(vectors["tests"]) == 78
    wrong = []
    for case in vectors["tests"]:
        parts = urlsplit(case["signedUrl"])
        query = parse_qsl(parts.query, keep_blank_values=True)
        token = dict(query)["jwt"]
        expected_qsh = jwt.decode(token, options={"verify_signature": False})["qsh"]
        canonical = canonical_request("GET", parts.path, query)
        if (
            canonical != case["canonicalUrl"]
            or query_string_hash("GET", parts.path, query) != expected_qsh
        ):
            wrong.append(case["name"])
    assert wrong == []


def test_the_signer_strips_the_app_base_path() -> None:
    """With base path /my-app the webhook hashes as reference §2.7.5 says."""
    digest = query_string_hash(
        "POST", "/my-app/webhooks/issue-created?user_id=admin&user_key=admin", base_path="/my-app"
    )
    assert digest == "9bce279078665ab41e68e6d54ce0a5fd5bbf22a41549eabfa50a36182159c9cc"


def test_install_tokens_are_rs256_with_kid_aud_and_qsh(key: InstallKeyPair) -> None:
    """A signed-install token verifies with the public key and carries Jira's claims."""
    token = sign_install(
        key,
        client_key="tenant-1",
        audience="https://app.example.test",
        path="/installed",
        now=NOW,
        account_id="5b10ac8d82e05b22cc7d4ef5",
    )
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    claims = jwt.decode(
        token,
        load_pem_public_key(key.public_pem),  # type: ignore[arg-type]
        algorithms=["RS256"],
        audience="https://app.example.test",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {
        "iss": "tenant-1",
        "aud": "https://app.example.test",
        "qsh": "4a2e1de8ca74e6cafe8862d332fa3ac7a8e51e692bc6d798ea4dfedc14948bf4",
        "context": {},
        "iat": NOW,
        "exp": NOW + 180,
        "sub": "5b10ac8d82e05b22cc7d4ef5",
    }


def test_request_tokens_are_hs256_with_the_request_qsh() -> None:
    """sign_request hashes method, path and query; claims override and None drops."""
    token = sign_request(
        SECRET,
        client_key="tenant-1",
        method="GET",
        path="/rest/api/3/user",
        query=[("accountId", "5b10ac8d82e05b22cc7d4ef5")],
        now=NOW,
        claims={"context": None},
    )
    claims = jwt.decode(
        token,
        SECRET.encode(),
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {
        "iss": "tenant-1",
        "qsh": "da9611fde0e495b137d8ca3044bd6068533d751f4f6dde33751180a139b2c269",
        "iat": NOW,
        "exp": NOW + 180,
    }


def test_context_tokens_carry_the_fixed_qsh() -> None:
    """sign_context puts 'context-qsh' in the token."""
    token = sign_context(SECRET, client_key="tenant-1", now=NOW, account_id="acc-1")
    claims = jwt.decode(
        token,
        SECRET.encode(),
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert (claims["qsh"], claims["sub"]) == (CONTEXT_QSH, "acc-1")
    assert auth_header(token) == {"Authorization": "JWT " + token}


async def test_the_key_server_serves_pem_by_kid(key: InstallKeyPair) -> None:
    """GET <url>/<kid> answers the PEM; unknown kids 404; requests are counted."""
    async with InstallKeyServer([key]) as server, aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/{key.kid}") as response:
            assert response.status == 200
            assert await response.read() == key.public_pem
        async with http.get(f"{server.url}/unknown") as response:
            assert response.status == 404
        server.fail_with = 503
        async with http.get(f"{server.url}/{key.kid}") as response:
            assert response.status == 503
        assert server.requests == {key.kid: 2, "unknown": 1}
    assert b"BEGIN PUBLIC KEY" in key.public_pem


def test_the_installed_payload_has_jiras_fields() -> None:
    """The lifecycle body carries the fields Jira sends, the secret only when given."""
    body = installed_payload(client_key="t", base_url="https://a.atlassian.net", app_key="k")
    assert body["eventType"] == "installed"
    assert "sharedSecret" not in body
    with_secret = installed_payload(
        client_key="t", base_url="https://a.atlassian.net", app_key="k", shared_secret="s"
    )
    assert with_secret["sharedSecret"] == "s"
    assert hashlib.sha256(b"foo").hexdigest().startswith("2c26b46b")
