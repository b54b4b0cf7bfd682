"""Discord's OAuth2 authorization server: authorization code grant with PKCE, refresh, revoke.

The flow (``topics/oauth2``; PKCE per the Social SDK guides): the browser goes to
``/oauth2/authorize?response_type=code&client_id&scope&state&redirect_uri&code_challenge
&code_challenge_method=S256``; the user clicks Authorize and is sent to ``redirect_uri?code
&state``. The app then POSTs a form to ``/api/v10/oauth2/token`` —
``grant_type=authorization_code&code&redirect_uri&code_verifier`` with the client's id and
secret in HTTP Basic or in the form — and gets ``{"access_token", "token_type": "Bearer",
"expires_in": 604800, "refresh_token", "scope"}``. ``/oauth2/token/revoke`` takes ``token``
(and ``token_type_hint``) and revokes the whole authorization.

Checks, with the RFC 6749 error objects Discord answers: the form encoding (JSON is refused),
the client's credentials (401 ``invalid_client``), a code that exists, is unused, younger than
10 minutes and issued for the same ``redirect_uri`` (400 ``invalid_grant``; a reused code also
revokes what it produced), and ``BASE64URL(SHA256(code_verifier)) == code_challenge`` with a
verifier of 43 to 128 characters. No token ever appears in a record.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import urlencode

from dfj_common.clock import Clock
from dfj_sandbox.discord_sim.model import Application

__all__ = [
    "ACCESS_TOKEN_LIFETIME",
    "CODE_LIFETIME",
    "SCOPES",
    "AuthorizeError",
    "Grant",
    "OAuthServer",
    "Revocation",
    "TokenAnswer",
]

ACCESS_TOKEN_LIFETIME: Final = 604800
CODE_LIFETIME: Final = 600.0
SCOPES: Final = frozenset(
    {"identify", "email", "guilds", "guilds.members.read", "connections", "openid"}
)
_VERIFIER_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)


class AuthorizeError(ValueError):
    """An authorize request Discord would refuse to show (bad client or redirect URI)."""


@dataclass(frozen=True, kw_only=True)
class _Code:
    code: str = field(repr=False)
    user_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    challenge: str | None
    issued_at: float
    used: bool = False


@dataclass(frozen=True, kw_only=True)
class Grant:
    """One authorization: its tokens, whom it is for and its scopes."""

    id: int
    user_id: str
    scopes: tuple[str, ...]
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    revoked: bool = False


@dataclass(frozen=True, kw_only=True)
class Revocation:
    """A revoke request the server accepted (the token itself is not kept)."""

    grant_id: int | None
    user_id: str | None
    token_type_hint: str | None
    at: float


@dataclass(frozen=True, kw_only=True)
class TokenAnswer:
    """Status and JSON body of one token or revoke request."""

    status: int
    body: Mapping[str, Any]


def _oauth_error(status: int, error: str, description: str | None = None) -> TokenAnswer:
    body = {"error": error}
    if description is not None:
        body["error_description"] = description
    return TokenAnswer(status=status, body=body)


def pkce_s256(verifier: str) -> str:
    """The S256 code challenge of a verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class OAuthServer:
    """Codes, grants and revocations of the one application."""

    def __init__(self, application: Application, clock: Clock) -> None:
        self.application = application
        self._clock = clock
        self._codes: dict[str, _Code] = {}
        self._grants: dict[int, Grant] = {}
        self._by_access: dict[str, int] = {}
        self._by_refresh: dict[str, int] = {}
        self._from_code: dict[str, int] = {}
        self.consented: set[str] = set()
        self.revocations: list[Revocation] = []
        self.token_requests = 0

    # --- authorize ------------------------------------------------------------------------

    def check_authorize(
        self, *, client_id: str, redirect_uri: str, scope: str, response_type: str = "code"
    ) -> tuple[str, ...]:
        """The requested scopes, or AuthorizeError for what Discord shows as an error page."""
        if client_id != self.application.client_id:
            raise AuthorizeError("Unknown Application")
        if redirect_uri not in self.application.redirect_uris:
            raise AuthorizeError("Invalid OAuth2 redirect_uri")
        if response_type != "code":
            raise AuthorizeError("Invalid response_type")
        scopes = tuple(s for s in scope.split() if s)
        unknown = [s for s in scopes if s not in SCOPES]
        if not scopes or unknown:
            raise AuthorizeError(f"Invalid scope: {' '.join(unknown) or '(none)'}")
        return scopes

    def authorize(
        self,
        user_id: str,
        *,
        state: str | None,
        redirect_uri: str,
        scope: str = "identify",
        code_challenge: str | None = None,
        code_challenge_method: str | None = "S256",
        client_id: str | None = None,
    ) -> str:
        """The redirect URL (``code`` and ``state``) after ``user_id`` clicks Authorize."""
        scopes = self.check_authorize(
            client_id=client_id or self.application.client_id,
            redirect_uri=redirect_uri,
            scope=scope,
        )
        if code_challenge is not None and code_challenge_method != "S256":
            raise AuthorizeError("Only the S256 code_challenge_method is supported")
        code = secrets.token_urlsafe(22)[:30]
        self._codes[code] = _Code(
            code=code,
            user_id=user_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            challenge=code_challenge,
            issued_at=self._clock.now(),
        )
        self.consented.add(user_id)
        query = {"code": code}
        if state is not None:
            query["state"] = state
        separator = "&" if "?" in redirect_uri else "?"
        return f"{redirect_uri}{separator}{urlencode(query)}"

    def deny(self, *, state: str | None, redirect_uri: str) -> str:
        """The redirect URL after the user clicks Cancel."""
        query = {
            "error": "access_denied",
            "error_description": "The resource owner or authorization server denied the request",
        }
        if state is not None:
            query["state"] = state
        separator = "&" if "?" in redirect_uri else "?"
        return f"{redirect_uri}{separator}{urlencode(query)}"

    # --- client authentication ------------------------------------------------------------

    def _client_ok(self, form: Mapping[str, str], authorization: str | None) -> bool:
        client_id = form.get("client_id")
        secret = form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            client_id, _, secret = decoded.partition(":")
        if client_id is None or secret is None:
            return False
        return client_id == self.application.client_id and hmac.compare_digest(
            secret.encode(), self.application.client_secret.encode()
        )

    # --- token ----------------------------------------------------------------------------

    def token(self, form: Mapping[str, str], authorization: str | None) -> TokenAnswer:
        """Answer a token request (the form's fields, the Authorization header)."""
        self.token_requests += 1
        if not self._client_ok(form, authorization):
            return _oauth_error(401, "invalid_client")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange_code(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        if grant_type is None:
            return _oauth_error(400, "invalid_request", 'Missing "grant_type" in request.')
        return _oauth_error(400, "unsupported_grant_type")

    def _exchange_code(self, form: Mapping[str, str]) -> TokenAnswer:
        code = self._codes.get(form.get("code", ""))
        now = self._clock.now()
        invalid = _oauth_error(400, "invalid_grant", 'Invalid "code" in request.')
        if code is None or now - code.issued_at > CODE_LIFETIME:
            return invalid
        if code.used:
            grant_id = self._from_code.get(code.code)
            if grant_id is not None:
                self._revoke(self._grants[grant_id], hint=None)
            return invalid
        if form.get("redirect_uri") != code.redirect_uri:
            return _oauth_error(400, "invalid_grant", 'Invalid "redirect_uri" in request.')
        if code.challenge is not None:
            verifier = form.get("code_verifier")
            if (
                verifier is None
                or not 43 <= len(verifier) <= 128
                or not set(verifier) <= _VERIFIER_CHARS
                or not hmac.compare_digest(pkce_s256(verifier), code.challenge)
            ):
                return _oauth_error(400, "invalid_grant", 'Invalid "code_verifier" in request.')
        self._codes[code.code] = replace(code, used=True)
        grant = self._issue(code.user_id, code.scopes)
        self._from_code[code.code] = grant.id
        return self._answer(grant)

    def _refresh(self, form: Mapping[str, str]) -> TokenAnswer:
        grant_id = self._by_refresh.get(form.get("refresh_token", ""))
        grant = None if grant_id is None else self._grants[grant_id]
        if grant is None or grant.revoked:
            return _oauth_error(400, "invalid_grant")
        self._revoke(grant, hint=None, record=False)
        return self._answer(self._issue(grant.user_id, grant.scopes))

    def _issue(self, user_id: str, scopes: Iterable[str]) -> Grant:
        grant = Grant(
            id=len(self._grants) + 1,
            user_id=user_id,
            scopes=tuple(scopes),
            access_token=secrets.token_urlsafe(22)[:30],
            refresh_token=secrets.token_urlsafe(22)[:30],
            expires_at=self._clock.now() + ACCESS_TOKEN_LIFETIME,
        )
        self._grants[grant.id] = grant
        self._by_access[grant.access_token] = grant.id
        self._by_refresh[grant.refresh_token] = grant.id
        return grant

    def _answer(self, grant: Grant) -> TokenAnswer:
        return TokenAnswer(
            status=200,
            body={
                "token_type": "Bearer",
                "access_token": grant.access_token,
                "expires_in": ACCESS_TOKEN_LIFETIME,
                "refresh_token": grant.refresh_token,
                "scope": " ".join(grant.scopes),
            },
        )

    # --- revoke and use -------------------------------------------------------------------

    def revoke(self, form: Mapping[str, str], authorization: str | None) -> TokenAnswer:
        """Answer a revoke request (unknown tokens are fine, as RFC 7009 says)."""
        if not self._client_ok(form, authorization):
            return _oauth_error(401, "invalid_client")
        token = form.get("token")
        if not token:
            return _oauth_error(400, "invalid_request", 'Missing "token" in request.')
        grant_id = self._by_access.get(token) or self._by_refresh.get(token)
        grant = None if grant_id is None else self._grants[grant_id]
        if grant is not None:
            self._revoke(grant, hint=form.get("token_type_hint"))
        else:
            self.revocations.append(
                Revocation(
                    grant_id=None,
                    user_id=None,
                    token_type_hint=form.get("token_type_hint"),
                    at=self._clock.now(),
                )
            )
        return TokenAnswer(status=200, body={})

    def _revoke(self, grant: Grant, *, hint: str | None, record: bool = True) -> None:
        self._grants[grant.id] = replace(grant, revoked=True)
        if record:
            self.revocations.append(
                Revocation(
                    grant_id=grant.id,
                    user_id=grant.user_id,
                    token_type_hint=hint,
                    at=self._clock.now(),
                )
            )

    def grant_for(self, access_token: str) -> Grant | None:
        """The live grant of an access token (None if unknown, expired or revoked)."""
        grant_id = self._by_access.get(access_token)
        if grant_id is None:
            return None
        grant = self._grants[grant_id]
        if grant.revoked or self._clock.now() >= grant.expires_at:
            return None
        return grant

    @property
    def grants(self) -> list[Grant]:
        """Every grant issued, revoked ones included."""
        return list(self._grants.values())
