"""Verifying the Forge Invocation Token (FIT) that comes with every call Forge makes to us.

Framework-free: :func:`read_header` looks at the token's header (to pick the key by ``kid``)
and :func:`verify_fit` checks it against that key, our app id and "now", returning the
:class:`Invocation` it proves or raising :class:`ForgeAuthError` (a 401: Forge reserves that
status for a token the remote could not verify). Nothing here logs or echoes a token.

Rules (reference forge.md §1.4 to §1.5):

- **RS256 only**, pinned here: ``alg: none``, HS256 (also one "signed" with the public key as
  its HMAC secret) and anything else are refused before a key is looked up.
- ``iss`` must be ``forge/invocation-token``; ``aud`` must be our app id (``DFJ_FORGE_APP_ID``,
  a string or a list holding it); ``exp``, ``nbf`` and ``iat`` are required and checked on the
  injected clock with a small leeway (PyJWT's own time checks read the system clock: off).
- The tenant — ``app.installationId``, its ``cloudId`` and ``app.apiBaseUrl`` — comes only from
  the verified claims, never from a body or query (those are spoofable by a page script).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from dfj_common.errors import VerificationError

__all__ = [
    "FIT_ISSUER",
    "INSTALLATION_ARI",
    "LEEWAY_SECONDS",
    "MAX_TOKEN_LENGTH",
    "ForgeAuthError",
    "Invocation",
    "TokenHeader",
    "installation_ari",
    "read_header",
    "verify_fit",
]

FIT_ISSUER: Final = "forge/invocation-token"
LEEWAY_SECONDS: Final = 10
#: UI invocations embed a signed ``context`` claim; such tokens run to several kilobytes.
MAX_TOKEN_LENGTH: Final = 48 * 1024
INSTALLATION_ARI: Final = "ari:cloud:ecosystem::installation/"
_INSTALLATION: Final = re.compile(r"^ari:cloud:ecosystem::installation/[0-9A-Za-z-]{1,64}$")
_CLOUD_ID: Final = re.compile(r"^[0-9A-Za-z-]{1,64}$")
_ACCOUNT_ID: Final = re.compile(r"^[A-Za-z0-9:_-]{1,128}$")
_MODULE_KEY: Final = re.compile(r"^[A-Za-z0-9:_.-]{1,100}$")
_ENVIRONMENT: Final = re.compile(
    r"^ari:cloud:ecosystem::environment/([0-9A-Za-z-]{1,64}/)?[0-9A-Za-z-]{1,64}$"
)
_KID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,255}$")
_REQUIRED: Final = ("exp", "nbf", "iat", "iss", "aud")
_COMPACT: Final = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


class ForgeAuthError(VerificationError):
    """A Forge call failed authentication; ``reason`` is short and safe to return."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TokenHeader:
    """The token's header, read before its signature is checked: only to find the key."""

    kid: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Invocation:
    """What a verified FIT says about the call: which installation, which module, who."""

    installation_id: str  # the ARI, the key of the installation's data
    cloud_id: str
    api_base_url: str  # where product API calls for this installation go
    module_key: str | None
    module_type: str | None
    app_version: str | None
    environment_type: str | None
    environment_id: str | None  # the environment's ARI
    principal: str | None  # the signed-in user (UI invocations only)
    token_id: str | None  # jti
    expires_at: int


def installation_ari(value: str) -> str:
    """The installation ARI for an id that may come bare (lifecycle bodies carry a bare uuid)."""
    return value if value.startswith(INSTALLATION_ARI) else INSTALLATION_ARI + value


def read_header(token: str) -> TokenHeader:
    """The ``kid`` of an RS256 token; :class:`ForgeAuthError` for anything else.

    Only the header segment is decoded here (the key must be found before the signature can
    be checked); PyJWT then reads the whole token once, in :func:`verify_fit`.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH or not _COMPACT.match(token):
        raise ForgeAuthError("malformed token")
    segment = token.partition(".")[0]
    try:
        header: Any = orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise ForgeAuthError("malformed token") from exc
    if not isinstance(header, dict):
        raise ForgeAuthError("malformed token")
    if header.get("alg") != "RS256":
        raise ForgeAuthError("algorithm not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.match(kid):
        raise ForgeAuthError("missing or malformed kid")
    return TokenHeader(kid=kid)


def verify_fit(
    token: str,
    key: RSAPublicKey,
    *,
    app_id: str,
    now: float,
    leeway: float = LEEWAY_SECONDS,
) -> Invocation:
    """The invocation ``token`` proves, signed by ``key`` for ``app_id`` and valid at ``now``.

    ``algorithms=["RS256"]`` pins the algorithm once more inside PyJWT: the token's header
    never chooses it, and an RSA key cannot serve as an HMAC secret.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            options={
                "require": list(_REQUIRED),
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.MissingRequiredClaimError as exc:
        raise ForgeAuthError(f"token lacks {exc.claim}") from exc
    except jwt.InvalidSignatureError as exc:
        raise ForgeAuthError("bad signature") from exc
    except jwt.PyJWTError as exc:
        raise ForgeAuthError("malformed token") from exc
    if claims.get("iss") != FIT_ISSUER:
        raise ForgeAuthError("wrong issuer")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if app_id not in audiences:
        raise ForgeAuthError("wrong audience")
    exp, nbf, iat = (_number(claims, name) for name in ("exp", "nbf", "iat"))
    if exp <= now - leeway:
        raise ForgeAuthError("token expired")
    if nbf > now + leeway or iat > now + leeway:
        raise ForgeAuthError("token not yet valid")
    return _invocation(claims, int(exp))


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ForgeAuthError(f"malformed {name}")
    return float(value)


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object, pattern: re.Pattern[str]) -> str | None:
    return value if isinstance(value, str) and pattern.match(value) else None


def _api_base_url(value: object) -> str:
    if not isinstance(value, str) or len(value) > 2048:
        raise ForgeAuthError("token lacks app.apiBaseUrl")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise ForgeAuthError("malformed app.apiBaseUrl") from exc
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or "@" in parts.netloc
        or parts.query
        or parts.fragment
    ):
        raise ForgeAuthError("malformed app.apiBaseUrl")
    return value.rstrip("/")


def _invocation(claims: Mapping[str, Any], exp: int) -> Invocation:
    app = _obj(claims.get("app"))
    installation = _obj(app.get("installation"))
    installation_id = app.get("installationId") or installation.get("id")
    if not isinstance(installation_id, str) or not _INSTALLATION.match(installation_id):
        raise ForgeAuthError("token lacks app.installationId")
    api_base_url = _api_base_url(app.get("apiBaseUrl"))
    cloud_id: str | None = None
    contexts = installation.get("contexts")
    for entry in contexts if isinstance(contexts, list) else []:
        cloud_id = _text(_obj(entry).get("cloudId"), _CLOUD_ID)
        if cloud_id is not None:
            break
    if cloud_id is None:
        cloud_id = _text(_obj(claims.get("context")).get("cloudId"), _CLOUD_ID)
    if cloud_id is None:
        # Jira's apiBaseUrl is https://api.atlassian.com/ex/jira/<cloudId>.
        tail = urlsplit(api_base_url).path.rstrip("/").rpartition("/")[2]
        cloud_id = _text(tail, _CLOUD_ID)
    if cloud_id is None:
        raise ForgeAuthError("token lacks a cloudId")
    module = _obj(app.get("module"))
    version = app.get("appVersion") or app.get("version")
    jti = claims.get("jti")
    return Invocation(
        installation_id=installation_id,
        cloud_id=cloud_id,
        api_base_url=api_base_url,
        module_key=_text(module.get("key"), _MODULE_KEY),
        module_type=_text(module.get("type"), _MODULE_KEY),
        app_version=version if isinstance(version, str) and len(version) <= 64 else None,
        environment_type=_text(_obj(app.get("environment")).get("type"), _MODULE_KEY),
        environment_id=_text(_obj(app.get("environment")).get("id"), _ENVIRONMENT),
        principal=_text(claims.get("principal"), _ACCOUNT_ID),
        token_id=jti if isinstance(jti, str) and len(jti) <= 128 else None,
        expires_at=exp,
    )
