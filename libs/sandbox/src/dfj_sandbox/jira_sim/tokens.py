"""Atlassian's OAuth 2.0 authorization server, JWT-bearer grant only (user impersonation).

The app proves who it is and whom it acts for with an assertion (reference §4.2)::

    POST {oauth_url}/oauth2/token
    grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>[&scope=READ WRITE]

The assertion is HS256, signed with the site's shared secret; ``tnt`` is the site's base URL
(that is how the secret is found), ``iss`` is ``urn:atlassian:connect:clientid:{oauthClientId}``,
``sub`` is ``urn:atlassian:connect:useraccountid:{accountId}`` of an active user, ``aud`` is the
authorization server's URL, ``exp`` at most 60 s after ``iat`` and not past, and there is no
``qsh`` (it is not a request token). The answer is ``{"access_token", "expires_in",
"token_type": "Bearer"}``.

Failures answer OAuth error objects: 400 for a malformed request (``invalid_request``,
``unsupported_grant_type``, ``invalid_scope``, ``unauthorized_client`` when the app lacks
``ACT_AS_USER``), 401 ``invalid_grant`` for an assertion that does not hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt

from dfj_sandbox.jira_sim.auth import LEEWAY, Grant, GrantStore
from dfj_sandbox.jira_sim.model import User
from dfj_sandbox.jira_sim.site import Site

__all__ = [
    "ASSERTION_MAX_LIFETIME",
    "GRANT_TYPE",
    "ISS_PREFIX",
    "SUB_PREFIX",
    "TokenAnswer",
    "exchange",
]

GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ISS_PREFIX: Final = "urn:atlassian:connect:clientid:"
SUB_PREFIX: Final = "urn:atlassian:connect:useraccountid:"
ASSERTION_MAX_LIFETIME: Final = 60
_GRANTABLE: Final = frozenset({"READ", "WRITE", "DELETE", "PROJECT_ADMIN", "ADMIN"})


@dataclass(frozen=True, kw_only=True)
class TokenAnswer:
    """The status and JSON body of one token request, and whom it was for."""

    status: int
    body: Mapping[str, Any]
    client_key: str | None = None
    account_id: str | None = None


class _Rejected(Exception):
    """One step of the exchange refused the request."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


@dataclass(kw_only=True)
class _Who:
    client_key: str | None = None
    account_id: str | None = None


def exchange(
    form: Mapping[str, str],
    *,
    sites: Iterable[Site],
    audience: str,
    now: float,
    expires_in: int,
    grants: GrantStore,
) -> TokenAnswer:
    """Answer one token request (``form`` is the decoded form body)."""
    who = _Who()
    try:
        if form.get("grant_type") != GRANT_TYPE:
            raise _Rejected(
                400, "unsupported_grant_type", "Only the JWT bearer grant is supported."
            )
        assertion = form.get("assertion", "")
        site = _tenant(assertion, sites)
        who.client_key = site.client_key
        claims = _verified(assertion, site)
        user = _subject(claims, site)
        who.account_id = user.account_id
        _check_claims(claims, audience=audience, now=now)
        scopes = _scopes(site, form.get("scope"))
    except _Rejected as rejected:
        return TokenAnswer(
            status=rejected.status,
            body={"error": rejected.error, "error_description": rejected.description},
            client_key=who.client_key,
            account_id=who.account_id,
        )
    token = grants.issue(
        Grant(
            client_key=site.client_key,
            account_id=user.account_id,
            scopes=scopes,
            expires_at=now + expires_in,
        )
    )
    body: dict[str, Any] = {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}
    if form.get("scope") is not None:
        body["scope"] = " ".join(sorted(scopes))
    return TokenAnswer(
        status=200, body=body, client_key=site.client_key, account_id=user.account_id
    )


def _tenant(assertion: str, sites: Iterable[Site]) -> Site:
    """The site the assertion's ``tnt`` names (read before the signature can be checked)."""
    if not assertion:
        raise _Rejected(400, "invalid_request", "The assertion parameter is missing.")
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise _Rejected(400, "invalid_request", "The assertion is not a JWT.") from None
    if header.get("alg") != "HS256":
        raise _Rejected(401, "invalid_grant", "The assertion must be signed with HS256.")
    tenant = str(unverified.get("tnt", "")).rstrip("/")
    site = next((s for s in sites if s.base_url == tenant), None)
    if site is None:
        raise _Rejected(401, "invalid_grant", "The assertion names no known tenant.")
    return site


def _verified(assertion: str, site: Site) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            site.shared_secret.encode("utf-8"),
            algorithms=["HS256"],
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
                "require": ["iss", "sub", "aud", "iat", "exp", "tnt"],
            },
        )
    except jwt.MissingRequiredClaimError as error:
        raise _Rejected(
            401, "invalid_grant", f"The assertion has no '{error.claim}' claim."
        ) from None
    except jwt.PyJWTError:
        raise _Rejected(401, "invalid_grant", "The assertion signature does not verify.") from None
    if claims["iss"] != ISS_PREFIX + site.oauth_client_id:
        raise _Rejected(401, "invalid_grant", "The assertion issuer is not this app's client.")
    return claims


def _subject(claims: Mapping[str, Any], site: Site) -> User:
    subject = str(claims["sub"])
    account_id = subject.removeprefix(SUB_PREFIX) if subject.startswith(SUB_PREFIX) else None
    user = None if account_id is None else site.user(account_id)
    if user is None or not user.active or user.account_type == "app":
        raise _Rejected(401, "invalid_grant", "The assertion subject is not an active user.")
    return user


def _check_claims(claims: Mapping[str, Any], *, audience: str, now: float) -> None:
    audiences = [claims["aud"]] if isinstance(claims["aud"], str) else list(claims["aud"])
    if audience.rstrip("/") not in [str(a).rstrip("/") for a in audiences]:
        raise _Rejected(401, "invalid_grant", "The assertion audience is not this server.")
    issued, expires = claims["iat"], claims["exp"]
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        raise _Rejected(401, "invalid_grant", "The assertion 'iat' and 'exp' must be numbers.")
    if expires - issued > ASSERTION_MAX_LIFETIME:
        raise _Rejected(
            401,
            "invalid_grant",
            f"The assertion may live at most {ASSERTION_MAX_LIFETIME} seconds.",
        )
    if now >= expires:
        raise _Rejected(401, "invalid_grant", "The assertion has expired.")
    if issued > now + LEEWAY:
        raise _Rejected(401, "invalid_grant", "The assertion was issued in the future.")
    if "qsh" in claims:
        raise _Rejected(401, "invalid_grant", "An assertion must not carry a qsh.")


def _scopes(site: Site, requested: str | None) -> frozenset[str]:
    if "ACT_AS_USER" not in site.scopes:
        raise _Rejected(
            400,
            "unauthorized_client",
            "The authenticated client is not authorized to use this authorization grant type",
        )
    granted = site.scopes & _GRANTABLE
    if requested is None:
        return granted
    wanted = frozenset(s.upper() for s in requested.split())
    if not wanted or not wanted <= granted:
        raise _Rejected(400, "invalid_scope", "The requested scope is not granted to the app.")
    return wanted
