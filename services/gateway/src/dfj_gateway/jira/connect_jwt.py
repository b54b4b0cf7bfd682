"""Verifying the JWTs Jira sends: HS256 with a tenant's shared secret, RS256 for signed install.

Framework-free: these functions take the token, the key and "now", and either return the
verified :class:`Claims` or raise :class:`JiraAuthError` with a short ``reason`` that the route
layer turns into a 401. They never log and never put a token into an error.

Rules (reference §1, §3.3; DESIGN §4):

- The algorithm is **pinned by the caller** (``HS256`` for product tokens, ``RS256`` for
  ``installed``/``uninstalled``); the token's own ``alg`` is only compared against it, never used
  to choose. ``alg: none`` and any other value are refused before a key is even looked up.
- ``exp``, ``iat`` and ``iss`` are required (Jira's own reader refuses tokens without ``exp`` and
  ``iat``). Time is checked here against the injected clock with **30 s** leeway, the value of
  Jira's host library: expired when ``exp <= now - 30``, refused when ``iat`` (or ``nbf``) lies
  more than 30 s in the future. PyJWT reads the system clock, so its own time checks are off.
- ``qsh`` must equal the expected value exactly: the hash of the request for page, webhook and
  lifecycle routes, or the literal ``context-qsh`` for context routes (the caller says which).
- RS256 ``aud`` is the app's base URL: a string, or a list holding it; one trailing ``/`` is
  ignored on both sides.
"""

from __future__ import annotations

import binascii
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import HMACAlgorithm

from dfj_common.errors import VerificationError

__all__ = [
    "CLIENT_KEY_PATTERN",
    "LEEWAY_SECONDS",
    "Claims",
    "JiraAuthError",
    "UnverifiedToken",
    "normalise_base_url",
    "read_unverified",
    "verify_hs256",
    "verify_rs256",
]

LEEWAY_SECONDS: Final = 30
REQUIRED_CLAIMS: Final = ("exp", "iat", "iss")
MAX_TOKEN_LENGTH: Final = 8192
# Connect clientKeys are UUIDs in practice ("jira:1234-…" in the interop vectors); the bound
# keeps "<clientKey>:<issueId>" within the bus's 128-character session id.
CLIENT_KEY_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,99}$")
_ACCOUNT_ID: Final = re.compile(r"^[A-Za-z0-9:_-]{1,128}$")

Algorithm = Literal["HS256", "RS256"]

_HS256: Final = HMACAlgorithm(HMACAlgorithm.SHA256)
_URLSAFE: Final = bytes.maketrans(b"-_", b"+/")


class JiraAuthError(VerificationError):
    """A Jira request failed authentication; ``reason`` is short and safe to return."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, kw_only=True, slots=True)
class UnverifiedToken:
    """What a token claims before its signature is checked: use it only to find the key."""

    token: str = field(repr=False)
    alg: str
    kid: str | None
    issuer: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Claims:
    """The verified claims of a Connect token (ids only)."""

    issuer: str
    account_id: str | None
    qsh: str
    issued_at: int
    expires_at: int
    audience: tuple[str, ...] = ()


def normalise_base_url(url: str) -> str:
    """A base URL for comparison: one trailing ``/`` removed."""
    return url[:-1] if url.endswith("/") else url


def read_unverified(token: str, *, expect_alg: Algorithm) -> UnverifiedToken:
    """Header and issuer of ``token`` without verifying it; refuses any other algorithm."""
    header, payload, _, _ = _split(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg != expect_alg:
        raise JiraAuthError("algorithm not allowed")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise JiraAuthError("malformed token")
    issuer = payload.get("iss")
    if not isinstance(issuer, str) or not CLIENT_KEY_PATTERN.match(issuer):
        raise JiraAuthError("missing or malformed issuer")
    return UnverifiedToken(token=token, alg=alg, kid=kid, issuer=issuer)


def verify_hs256(token: UnverifiedToken, secret: bytes, *, now: float, expected_qsh: str) -> Claims:
    """Verify an HS256 product token with the tenant's shared secret (raw UTF-8 bytes).

    Every webhook and page call carries one, so this is the gateway's hottest check: the token
    is split and decoded once here (PyJWT's ``decode`` would read it three times over, most of
    a webhook's cost) and the MAC is checked by PyJWT's own HS256 implementation, which also
    refuses a key that looks like a public key. The algorithm is the caller's, never the
    token's: a header naming any other is refused before the MAC is computed.
    """
    header, payload, signing_input, signature = _split(token.token)
    if header.get("alg") != "HS256":
        raise JiraAuthError("algorithm not allowed")
    try:
        key = _HS256.prepare_key(secret)
    except jwt.PyJWTError as exc:
        raise JiraAuthError("bad signature") from exc
    if not _HS256.verify(signing_input, key, signature):
        raise JiraAuthError("bad signature")
    for name in REQUIRED_CLAIMS:
        if name not in payload:
            raise JiraAuthError(f"missing claim {name}")
    return _claims(payload, now=now, expected_qsh=expected_qsh)


def verify_rs256(
    token: UnverifiedToken,
    public_key: RSAPublicKey,
    *,
    now: float,
    expected_qsh: str,
    audience: str,
) -> Claims:
    """Verify a signed-install token with Atlassian's public key for its ``kid``."""
    payload = _decode(token, public_key, "RS256")
    claims = _claims(payload, now=now, expected_qsh=expected_qsh)
    wanted = normalise_base_url(audience)
    if not claims.audience or wanted not in {normalise_base_url(a) for a in claims.audience}:
        raise JiraAuthError("wrong audience")
    return claims


def _split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, payload, signing input and signature of a compact JWS, or "malformed token"."""
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise JiraAuthError("malformed token")
    try:
        raw = token.encode("ascii")
        head, body, signature = raw.split(b".")
        header = orjson.loads(_b64url(head))
        payload = orjson.loads(_b64url(body))
        sig = _b64url(signature)
    except (UnicodeError, ValueError, binascii.Error):
        raise JiraAuthError("malformed token") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise JiraAuthError("malformed token")
    return header, payload, head + b"." + body, sig


def _b64url(segment: bytes) -> bytes:
    """Strict base64url without padding, as JWS writes it (any other byte is an error)."""
    if len(segment) % 4 == 1 or segment.translate(None, b"+/=") != segment:
        raise ValueError("not base64url")
    padded = segment.translate(_URLSAFE) + b"=" * (-len(segment) % 4)
    return binascii.a2b_base64(padded, strict_mode=True)


def _decode(token: UnverifiedToken, key: RSAPublicKey, alg: Algorithm) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = jwt.decode(
            token.token,
            key=key,
            algorithms=[alg],  # pinned by the caller, never read from the token
            options={
                "require": list(REQUIRED_CLAIMS),
                "verify_signature": True,
                # Time is checked in _claims against the injected clock; aud for RS256 below.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
            },
            leeway=LEEWAY_SECONDS,
        )
    except jwt.InvalidSignatureError as exc:
        raise JiraAuthError("bad signature") from exc
    except jwt.InvalidAlgorithmError as exc:
        raise JiraAuthError("algorithm not allowed") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise JiraAuthError(f"missing claim {exc.claim}") from exc
    except jwt.PyJWTError as exc:
        raise JiraAuthError("malformed token") from exc
    return payload


def _number(payload: Mapping[str, Any], name: str) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JiraAuthError(f"malformed claim {name}")
    return int(value)


def _claims(payload: Mapping[str, Any], *, now: float, expected_qsh: str) -> Claims:
    expires_at = _number(payload, "exp")
    issued_at = _number(payload, "iat")
    if expires_at <= now - LEEWAY_SECONDS:
        raise JiraAuthError("token expired")
    if issued_at > now + LEEWAY_SECONDS:
        raise JiraAuthError("token issued in the future")
    if "nbf" in payload and _number(payload, "nbf") > now + LEEWAY_SECONDS:
        raise JiraAuthError("token not yet valid")
    issuer = payload.get("iss")
    if not isinstance(issuer, str) or not CLIENT_KEY_PATTERN.match(issuer):
        raise JiraAuthError("missing or malformed issuer")
    qsh = payload.get("qsh")
    if not isinstance(qsh, str) or not qsh:
        raise JiraAuthError("missing qsh")
    if not hmac.compare_digest(qsh.encode(), expected_qsh.encode()):
        raise JiraAuthError("wrong qsh")
    sub = payload.get("sub")
    account_id = sub if isinstance(sub, str) and _ACCOUNT_ID.match(sub) else None
    return Claims(
        issuer=issuer,
        account_id=account_id,
        qsh=qsh,
        issued_at=issued_at,
        expires_at=expires_at,
        audience=_audience(payload.get("aud")),
    )


def _audience(aud: object) -> tuple[str, ...]:
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return tuple(aud)
    return ()
