"""Forge's side of Forge Remote authentication: the Forge Invocation Token (FIT) and its JWKS.

A small but real signer, usable without the Jira simulator (reference forge.md §1.4, §1.5):
what it produces is what Forge sends a remote, so the gateway's verifier is exercised on the
wire. The simulator uses it for every call it makes to the remote; tests use it directly to
build the tokens a verifier must refuse.

- Keys are :class:`~dfj_sandbox.jira_signing.InstallKeyPair` (an RSA pair with a ``kid``; the
  same kind of key Atlassian signs Connect installs with). :func:`public_jwk` and :func:`jwks`
  give the public halves in the shape ``/.well-known/jwks.json`` serves.
- :class:`FitSubject` is who a FIT speaks about (app, installation, site, environment);
  :func:`fit_claims` builds the claims of one invocation, :func:`sign_fit` signs them.
- :func:`sign_token` signs any claims with any header, RS256 or — to test refusals — HS256
  keyed with the *public* key's PEM (the key-confusion attack) or ``alg: none``.

Lifetime: Atlassian's example FIT lives 25 s; the simulator signs for :data:`FIT_LIFETIME`
(60 s) so a slow CI run does not see a token expire between signing and checking. A verifier
should not depend on either figure beyond "short".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

from dfj_sandbox.jira_signing import InstallKeyPair

__all__ = [
    "ENDPOINT_MODULE",
    "FIT_ISSUER",
    "FIT_LIFETIME",
    "Algorithm",
    "FitSubject",
    "InstallKeyPair",
    "UiContext",
    "fit_claims",
    "jwks",
    "public_jwk",
    "sign_fit",
    "sign_token",
]

FIT_ISSUER: Final = "forge/invocation-token"
FIT_LIFETIME: Final = 60  # seconds; Atlassian's example shows 25 (see the module docstring)
ENDPOINT_MODULE: Final = "core:endpoint"
"""``app.module.type`` of every backend invocation (triggers, scheduled, lifecycle)."""

Algorithm = Literal["RS256", "HS256", "none"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def public_jwk(key: InstallKeyPair) -> dict[str, str]:
    """The public key as a JWK: ``kty``, ``n``, ``e``, ``kid``, ``alg`` RS256, ``use`` sig."""
    numbers: RSAPublicNumbers = key.private_key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "n": _uint(numbers.n),
        "e": _uint(numbers.e),
        "kid": key.kid,
        "alg": "RS256",
        "use": "sig",
    }


def jwks(keys: Sequence[InstallKeyPair]) -> dict[str, list[dict[str, str]]]:
    """A JWK set, ``{"keys": [...]}``, as Forge serves it."""
    return {"keys": [public_jwk(key) for key in keys]}


@dataclass(frozen=True, kw_only=True)
class FitSubject:
    """What every FIT of one installation says about it (``app`` and ``context`` claims)."""

    app_id: str
    """The app ARI, ``ari:cloud:ecosystem::app/<uuid>`` — also the token's ``aud``."""
    app_version: str
    installation_id: str
    """``ari:cloud:ecosystem::installation/<uuid>``."""
    cloud_id: str
    api_base_url: str
    """``https://api.atlassian.com/ex/jira/<cloudId>`` on Atlassian; the simulator's own."""
    environment_id: str
    environment_type: str = "DEVELOPMENT"


@dataclass(frozen=True, kw_only=True)
class UiContext:
    """The extra claims of a UI invocation (``invokeRemote`` from a Custom UI page)."""

    site_url: str
    module_key: str
    extension_type: str
    principal: str
    local_id: str


def fit_claims(
    subject: FitSubject,
    *,
    module_type: str,
    module_key: str,
    now: float,
    ui: UiContext | None = None,
    lifetime: int = FIT_LIFETIME,
    jti: str | None = None,
) -> dict[str, Any]:
    """The claims Forge puts in one invocation's token (forge.md §1.4).

    ``context`` and ``principal`` are only present for UI invocations (``ui``).
    """
    issued = int(now)
    claims: dict[str, Any] = {
        "iss": FIT_ISSUER,
        "aud": subject.app_id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "jti": jti or str(uuid.uuid4()),
        "app": {
            "id": subject.app_id,
            "appVersion": subject.app_version,
            "installationId": subject.installation_id,
            "installation": {
                "id": subject.installation_id,
                "contexts": [{"cloudId": subject.cloud_id, "apiBaseUrl": subject.api_base_url}],
            },
            "apiBaseUrl": subject.api_base_url,
            "environment": {"type": subject.environment_type, "id": subject.environment_id},
            "module": {"type": module_type, "key": module_key},
        },
    }
    if ui is not None:
        claims["context"] = {
            "cloudId": subject.cloud_id,
            "siteUrl": ui.site_url,
            "moduleKey": ui.module_key,
            "localId": ui.local_id,
            "extension": {"type": ui.extension_type},
        }
        claims["principal"] = ui.principal
    return claims


def _merged(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` with ``override`` applied at the top level; a value of None removes the name."""
    merged = {**base, **(override or {})}
    return {name: value for name, value in merged.items() if value is not None}


def sign_token(
    claims: Mapping[str, Any],
    key: InstallKeyPair,
    *,
    algorithm: Algorithm = "RS256",
    headers: Mapping[str, Any] | None = None,
) -> str:
    """Sign ``claims``; the header is ``{"alg", "typ": "JWT", "kid": key.kid}`` + ``headers``.

    ``headers`` overrides header fields (None removes one, e.g. ``{"kid": None}``).
    ``algorithm="HS256"`` keys the HMAC with the public key's PEM and ``"none"`` leaves the
    signature empty: tokens a verifier pinned to RS256 must refuse. They are built by hand,
    because PyJWT rightly will not make them.
    """
    header = _merged({"alg": algorithm, "typ": "JWT", "kid": key.kid}, headers)
    if algorithm == "RS256":
        extra = {name: value for name, value in header.items() if name not in {"alg"}}
        return jwt.encode(dict(claims), key.private_key, algorithm="RS256", headers=extra)
    signing_input = (
        _b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
    )
    if algorithm == "none":
        return signing_input + "."
    digest = hmac.new(key.public_pem, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64(digest)


def sign_fit(
    key: InstallKeyPair,
    subject: FitSubject,
    *,
    module_key: str,
    now: float,
    module_type: str = ENDPOINT_MODULE,
    ui: UiContext | None = None,
    lifetime: int = FIT_LIFETIME,
    claims_override: Mapping[str, Any] | None = None,
    headers_override: Mapping[str, Any] | None = None,
    algorithm: Algorithm = "RS256",
) -> str:
    """A FIT for one invocation of ``module_key``, signed with ``key`` (header ``kid``).

    ``claims_override`` replaces top-level claims (None removes one): ``{"aud": "other"}``,
    ``{"iss": None}``, ``{"exp": 0}`` build the tokens a verifier must refuse.
    """
    claims = fit_claims(
        subject, module_type=module_type, module_key=module_key, now=now, ui=ui, lifetime=lifetime
    )
    return sign_token(
        _merged(claims, claims_override), key, algorithm=algorithm, headers=headers_override
    )
