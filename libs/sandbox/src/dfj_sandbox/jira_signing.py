"""Jira's side of Connect authentication, for tests, the demo and the Jira simulator.

A small but real signer: what it produces is what Jira Cloud sends, so the gateway's verifier
is exercised end to end (reference §1-§3).

- :class:`InstallKeyPair` — an RSA key pair with a ``kid``, as Atlassian signs ``installed`` and
  ``uninstalled`` callbacks with (signed install).
- :class:`InstallKeyServer` — the stand-in for ``https://connect-install-keys.atlassian.com``:
  ``GET {url}/{kid}`` answers the PEM public key as text (404 for an unknown kid), on loopback;
  it counts requests per kid and can be told to stall or fail, to test caching and time-outs.
- :func:`sign_install` — an RS256 lifecycle token: header ``kid``, ``iss`` = clientKey, ``aud`` =
  the app's base URL, ``qsh`` of the callback request, ``iat``/``exp`` (180 s), ``sub``.
- :func:`sign_request` — an HS256 token for a webhook, lifecycle or page request, signed with
  the installation's shared secret, with the qsh of that request.
- :func:`sign_context` — an HS256 context token (``AP.context.getToken()``): ``qsh`` is the
  fixed ``context-qsh``.

The qsh here is computed by this module's own canonicaliser (stdlib), written apart from the
gateway's: the two meet only in the shared interop vectors and on the wire. Paths are given
**relative to the app's baseUrl**, as Jira hashes them.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlsplit

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "CONTEXT_QSH",
    "TOKEN_LIFETIME",
    "InstallKeyPair",
    "InstallKeyServer",
    "auth_header",
    "canonical_request",
    "installed_payload",
    "query_string_hash",
    "sign_context",
    "sign_install",
    "sign_request",
]

CONTEXT_QSH: Final = "context-qsh"
TOKEN_LIFETIME: Final = 180  # seconds, Jira's convention (iat + 3 minutes)


# --- qsh ----------------------------------------------------------------------------------


def _encode(text: str) -> str:
    return quote(text, safe="-._~")  # RFC 3986 unreserved stay, the rest %XX (upper case)


def canonical_request(
    method: str, path: str, query: Iterable[tuple[str, str]] = (), *, base_path: str = ""
) -> str:
    """``METHOD&path&query`` as Atlassian's Java canonicaliser builds it (query decoded)."""
    if base_path and (path == base_path or path.startswith(base_path.rstrip("/") + "/")):
        path = path[len(base_path.rstrip("/")) :]
    path = path.removesuffix("/") or "/"
    path = ("/" + path if not path.startswith("/") else path).replace("&", "%26")
    values: dict[str, list[str]] = {}
    for name, value in query:
        if name != "jwt":
            values.setdefault(name, []).append(value)
    params = []
    for name, given in values.items():
        ordered = sorted(given, key=lambda v: v.encode("utf-16-be", "surrogatepass"))
        params.append(
            (
                f"{_encode(name)} {_encode(','.join(ordered))}",
                f"{_encode(name)}={','.join(_encode(v) for v in ordered)}",
            )
        )
    query_text = "&".join(text for _, text in sorted(params))
    return f"{method.upper()}&{path}&{query_text}"


def query_string_hash(
    method: str, path: str, query: Iterable[tuple[str, str]] = (), *, base_path: str = ""
) -> str:
    """The ``qsh`` claim for a request (``path`` may carry a raw query string after ``?``)."""
    if "?" in path:
        parts = urlsplit(path)
        path = parts.path
        query = [*parse_qsl(parts.query, keep_blank_values=True), *query]
    text = canonical_request(method, path, query, base_path=base_path)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- keys and the key server --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class InstallKeyPair:
    """An RSA key pair and its ``kid`` (the private key never leaves the sandbox)."""

    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls, kid: str | None = None, *, bits: int = 2048) -> InstallKeyPair:
        """A fresh pair; the kid is a random UUID, like Atlassian's."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        return cls(kid=kid or str(uuid.uuid4()), private_key=key)

    @property
    def public_pem(self) -> bytes:
        """The public key as PEM (SubjectPublicKeyInfo), as the key server serves it."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class InstallKeyServer:
    """``GET /{kid}`` → PEM, on a loopback port; ``async with`` starts and stops it.

    ``delay`` stalls every answer (for time-out tests); ``fail_with`` answers that status
    instead of the key; ``requests`` counts requests per kid.
    """

    def __init__(self, keys: Iterable[InstallKeyPair] = (), *, host: str = "127.0.0.1") -> None:
        self._keys: dict[str, bytes] = {k.kid: k.public_pem for k in keys}
        self._host = host
        self._runner: web.AppRunner | None = None
        self._url = ""
        self.delay = 0.0
        self.fail_with: int | None = None
        self.requests: Counter[str] = Counter()

    def add(self, key: InstallKeyPair) -> None:
        """Serve ``key`` under its kid."""
        self._keys[key.kid] = key.public_pem

    @property
    def url(self) -> str:
        """The base URL (no trailing slash), i.e. ``DFJ_ATLASSIAN_INSTALL_KEYS_URL``."""
        if not self._url:
            raise RuntimeError("the key server is not started")
        return self._url

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        kid = request.match_info["kid"]
        self.requests[kid] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            return web.Response(status=self.fail_with, text="unavailable")
        pem = self._keys.get(kid)
        if pem is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=pem, content_type="text/plain")

    async def start(self) -> None:
        """Listen on an ephemeral port of ``host``."""
        app = web.Application()
        app.router.add_get("/{kid}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> InstallKeyServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# --- tokens -------------------------------------------------------------------------------


def _merged(payload: dict[str, Any], claims: Mapping[str, Any] | None) -> dict[str, Any]:
    """``payload`` with ``claims`` applied; a claim set to None is left out."""
    merged = {**payload, **(claims or {})}
    return {name: value for name, value in merged.items() if value is not None}


def _times(now: float, lifetime: int) -> dict[str, int]:
    issued = int(now)
    return {"iat": issued, "exp": issued + lifetime}


def sign_install(
    key: InstallKeyPair,
    *,
    client_key: str,
    audience: str,
    path: str,
    now: float,
    method: str = "POST",
    query: Iterable[tuple[str, str]] = (),
    account_id: str | None = None,
    lifetime: int = TOKEN_LIFETIME,
    claims: Mapping[str, Any] | None = None,
) -> str:
    """An RS256 signed-install token for ``method path`` (``claims`` override; None drops)."""
    payload: dict[str, Any] = {
        "iss": client_key,
        "aud": audience,
        "qsh": query_string_hash(method, path, query),
        "context": {},
        **_times(now, lifetime),
    }
    if account_id is not None:
        payload["sub"] = account_id
    return jwt.encode(
        _merged(payload, claims), key.private_key, algorithm="RS256", headers={"kid": key.kid}
    )


def sign_request(
    shared_secret: str,
    *,
    client_key: str,
    method: str,
    path: str,
    now: float,
    query: Iterable[tuple[str, str]] = (),
    account_id: str | None = None,
    lifetime: int = TOKEN_LIFETIME,
    claims: Mapping[str, Any] | None = None,
) -> str:
    """An HS256 product token for one request (webhook, lifecycle, page load)."""
    payload: dict[str, Any] = {
        "iss": client_key,
        "qsh": query_string_hash(method, path, query),
        "context": {},
        **_times(now, lifetime),
    }
    if account_id is not None:
        payload["sub"] = account_id
    return jwt.encode(_merged(payload, claims), shared_secret.encode("utf-8"), algorithm="HS256")


def sign_context(
    shared_secret: str,
    *,
    client_key: str,
    now: float,
    account_id: str | None = None,
    lifetime: int = TOKEN_LIFETIME,
    claims: Mapping[str, Any] | None = None,
) -> str:
    """An HS256 context token, as ``AP.context.getToken()`` hands our page scripts."""
    payload: dict[str, Any] = {
        "iss": client_key,
        "qsh": CONTEXT_QSH,
        "context": {},
        **_times(now, lifetime),
    }
    if account_id is not None:
        payload["sub"] = account_id
    return jwt.encode(_merged(payload, claims), shared_secret.encode("utf-8"), algorithm="HS256")


def auth_header(token: str) -> dict[str, str]:
    """The ``Authorization: JWT <token>`` header Jira sends."""
    return {"Authorization": f"JWT {token}"}


def installed_payload(
    *,
    client_key: str,
    base_url: str,
    app_key: str,
    shared_secret: str | None = None,
    event_type: str = "installed",
    oauth_client_id: str | None = "oauth-client-1",
) -> dict[str, Any]:
    """A lifecycle body as Jira posts it (with the fields the gateway must drop, too)."""
    body: dict[str, Any] = {
        "key": app_key,
        "clientKey": client_key,
        "serverVersion": "100000",
        "pluginsVersion": "1001.0.0",
        "baseUrl": base_url,
        "displayUrl": base_url,
        "productType": "jira",
        "description": "Atlassian JIRA at " + base_url,
        "serviceEntitlementNumber": "SEN-1",
        "eventType": event_type,
    }
    if oauth_client_id is not None:
        body["oauthClientId"] = oauth_client_id
    if shared_secret is not None:
        body["sharedSecret"] = shared_secret
    return body
