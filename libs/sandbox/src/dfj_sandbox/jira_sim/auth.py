"""Who is calling: a Connect app JWT (the app user) or an impersonation access token (a user).

**App JWT** (``Authorization: JWT <token>``, reference §4.1). HS256 only, signed with the
site's shared secret; ``iss`` must be the app key registered on the site; ``iat`` and ``exp``
are required and checked with Jira's 30 s leeway; ``qsh`` must be the canonical hash of *this*
request — method, path relative to the site's base URL (``/rest/api/3/…`` without the
simulator's ``/sites/{name}`` prefix), and the query. The hash is recomputed with the sandbox's
own canonicaliser (:func:`dfj_sandbox.jira_signing.query_string_hash`), which was written apart
from the app's, so a canonicalisation bug on either side shows. ``context-qsh`` is refused: it
is for the app's own iframe routes, never for calls into Jira. An ``aud``, when present
(ACE sends ``[clientKey]``), must name the site's client key.

**Access token** (``Authorization: Bearer <token>``, §4.2): issued by the token endpoint for
one user of one site, valid until it expires on the simulator's clock; the user must still be
active.

**Forge tokens** (``Authorization: Bearer`` on ``{sim.url}/ex/jira/{cloudId}/…``, the
simulator's ``api.atlassian.com``): app system tokens and offline user tokens are grants too,
marked ``via="api"`` — they are only accepted there, and site tokens only on the site's own
URL (``via="site"``), as Atlassian's API gateway and a site's URL keep them apart. A system
token's grant has ``kind="app"``: the request acts as the app user.

**Scopes.** Each operation names its Connect scope (``x-atlassian-connect-scope``); the grant
must reach it. Scopes nest: ``ADMIN`` ⊇ ``PROJECT_ADMIN`` ⊇ ``DELETE`` ⊇ ``WRITE`` ⊇ ``READ``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import jwt

from dfj_sandbox.jira_signing import CONTEXT_QSH, query_string_hash
from dfj_sandbox.jira_sim.model import User
from dfj_sandbox.jira_sim.site import Site

__all__ = [
    "LEEWAY",
    "AuthFailure",
    "Caller",
    "Grant",
    "GrantStore",
    "Via",
    "authenticate",
    "scope_allows",
]

LEEWAY: Final = 30  # seconds, as Jira's host-side reader allows
_LADDER: Final = ("READ", "WRITE", "DELETE", "PROJECT_ADMIN", "ADMIN")

Via = Literal["site", "api"]
"""Where a request arrived: the site's own URL, or ``/ex/jira/{cloudId}`` (Forge)."""


class AuthFailure(Exception):
    """The request is not authenticated; ``message`` says why (and never shows the token)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, kw_only=True)
class Caller:
    """An authenticated caller: the app itself or an impersonated user, and its scopes."""

    kind: Literal["app", "user"]
    user: User
    scopes: frozenset[str]
    via: Via = "site"


@dataclass(frozen=True, kw_only=True)
class Grant:
    """What an access token stands for (``installation``: the Forge installation, if any)."""

    client_key: str
    account_id: str
    scopes: frozenset[str]
    expires_at: float
    kind: Literal["app", "user"] = "user"
    via: Via = "site"
    installation: str | None = None


class GrantStore:
    """Access tokens issued by the token endpoint, by token value."""

    def __init__(self) -> None:
        self._grants: dict[str, Grant] = {}

    def issue(self, grant: Grant, *, token: str | None = None) -> str:
        """A token for ``grant``: ``token`` if given (a signed one), else a new opaque one."""
        token = token or secrets.token_urlsafe(32)
        self._grants[token] = grant
        return token

    def expire(self, where: Callable[[Grant], bool], *, at: float) -> int:
        """End the grants ``where`` selects at ``at`` (if later); how many were selected."""
        chosen = [token for token, grant in self._grants.items() if where(grant)]
        for token in chosen:
            grant = self._grants[token]
            self._grants[token] = replace(grant, expires_at=min(grant.expires_at, at))
        return len(chosen)

    def revoke(self, where: Callable[[Grant], bool]) -> int:
        """Forget the grants ``where`` selects (their tokens become unknown); how many."""
        chosen = [token for token, grant in self._grants.items() if where(grant)]
        for token in chosen:
            del self._grants[token]
        return len(chosen)

    def lookup(self, token: str) -> Grant | None:
        """The grant of ``token``, if it was issued."""
        return self._grants.get(token)

    def __len__(self) -> int:
        return len(self._grants)


def scope_allows(granted: Iterable[str], required: str | None) -> bool:
    """Whether scopes ``granted`` reach the operation's Connect scope ``required``."""
    if required is None or required == "NONE":
        return True
    if required == "INACCESSIBLE":
        return False
    held = {s.upper() for s in granted}
    if required in held:
        return True
    if required in _LADDER:
        rank = _LADDER.index(required)
        return any(s in _LADDER and _LADDER.index(s) >= rank for s in held)
    return False


def authenticate(
    site: Site,
    *,
    header: str | None,
    method: str,
    raw_path: str,
    query: Iterable[tuple[str, str]],
    now: float,
    grants: GrantStore,
    via: Via = "site",
) -> Caller:
    """The caller of one request to ``site`` (AuthFailure if there is none).

    ``via="api"`` (``/ex/jira/{cloudId}``) takes only bearer tokens granted for it.
    """
    if not header:
        raise AuthFailure(
            "You are not authenticated. Authentication required to perform this operation."
        )
    if header.startswith("JWT ") and via == "site":
        return _app(
            site, header[4:].strip(), method=method, raw_path=raw_path, query=query, now=now
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return _bearer(site, token.strip(), now, grants, via)
    raise AuthFailure("Unsupported authorization scheme.")


def _app(
    site: Site,
    token: str,
    *,
    method: str,
    raw_path: str,
    query: Iterable[tuple[str, str]],
    now: float,
) -> Caller:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthFailure("The JWT is malformed.") from None
    if header.get("alg") != "HS256":
        raise AuthFailure("The JWT must be signed with HS256.")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            site.shared_secret.encode("utf-8"),
            algorithms=["HS256"],
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
                "require": ["iss", "iat", "exp", "qsh"],
            },
        )
    except jwt.MissingRequiredClaimError as error:
        raise AuthFailure(f"The JWT has no '{error.claim}' claim.") from None
    except jwt.InvalidSignatureError:
        raise AuthFailure("The JWT signature does not verify.") from None
    except jwt.PyJWTError:
        raise AuthFailure("The JWT could not be read.") from None
    if claims["iss"] != site.app_key:
        raise AuthFailure("The JWT issuer is not an app installed on this site.")
    _check_times(claims, now)
    audience = claims.get("aud")
    if audience is not None:
        names = [audience] if isinstance(audience, str) else list(audience)
        if site.client_key not in names:
            raise AuthFailure("The JWT audience is not this site.")
    qsh = claims["qsh"]
    if qsh == CONTEXT_QSH:
        raise AuthFailure("A context JWT cannot call the REST API.")
    expected = query_string_hash(method, raw_path, list(query), base_path=site.base_path)
    if qsh != expected:
        raise AuthFailure("The JWT qsh does not match the request.")
    return Caller(kind="app", user=site.app_user, scopes=site.scopes)


def _check_times(claims: dict[str, Any], now: float) -> None:
    issued, expires = claims["iat"], claims["exp"]
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        raise AuthFailure("The JWT 'iat' and 'exp' must be numbers.")
    if now > expires + LEEWAY:
        raise AuthFailure("The JWT has expired.")
    if issued > now + LEEWAY:
        raise AuthFailure("The JWT was issued in the future.")
    if expires < issued:
        raise AuthFailure("The JWT expires before it was issued.")


def _bearer(site: Site, token: str, now: float, grants: GrantStore, via: Via) -> Caller:
    grant = grants.lookup(token)
    if grant is None or grant.client_key != site.client_key or grant.via != via:
        raise AuthFailure("The access token is not valid.")
    if now >= grant.expires_at:
        raise AuthFailure("The access token has expired.")
    if grant.kind == "app":
        return Caller(kind="app", user=site.app_user, scopes=grant.scopes, via=via)
    user = site.user(grant.account_id)
    if user is None or not user.active:
        raise AuthFailure("The access token's user is not active.")
    return Caller(kind="user", user=user, scopes=grant.scopes, via=via)
