"""Acting as a Jira user: the OAuth 2.0 JWT-bearer grant and a cache of its tokens (§4.2).

Connect user impersonation needs no user consent at call time: the app signs an *assertion*
with the site's shared secret saying "I am this installation's OAuth client, acting for this
account on this site", and trades it for a short-lived bearer token at Atlassian's
authorization server::

    POST {oauth_url}/oauth2/token   (application/x-www-form-urlencoded)
    grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<HS256 JWT>&scope=READ WRITE

Assertion claims: ``iss`` = ``urn:atlassian:connect:clientid:{oauthClientId}``, ``sub`` =
``urn:atlassian:connect:useraccountid:{accountId}``, ``tnt`` = the site's base URL, ``aud`` =
the authorization server, ``iat``, ``exp`` = ``iat`` + 60 (longer ones are refused), and a
random ``jti``. No ``qsh``: the assertion is not bound to a Jira request.

**Caching.** A token is good for ``expires_in`` seconds; every call of a busy user must not
cost a round trip to the token endpoint. :class:`UserTokens` keys tokens by
(clientKey, accountId, normalised scopes) and keeps each until ``expires_in`` minus a safety
margin — 60 s, or a tenth of the lifetime for short tokens — measured from when the request
*started*, so clock skew and slow answers only make us refresh early. Concurrent callers of
one key share one request (single flight). A token Jira refuses with 401 is dropped with
:meth:`UserTokens.invalidate` — only if it is still the cached one, so a fresh token another
caller just fetched survives. The cache is bounded (least recently used out first). Tokens
stay wrapped in :class:`~dfj_common.config.Secret` and are never logged.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

import jwt
from yarl import URL

from dfj_common.clock import Clock
from dfj_common.config import Secret
from dfj_jira_worker.jira.errors import (
    JiraRateLimited,
    JiraUnauthorized,
    JiraUnavailable,
    retry_after_seconds,
)
from dfj_jira_worker.jira.http import Transport

__all__ = [
    "ASSERTION_LIFETIME",
    "DEFAULT_SCOPES",
    "JWT_BEARER_GRANT",
    "TOKEN_PATH",
    "IssuedToken",
    "TokenKey",
    "UserTokens",
    "assertion",
    "cache_lifetime",
    "normalise_scopes",
    "request_token",
]

JWT_BEARER_GRANT: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_PATH: Final = "/oauth2/token"  # noqa: S105 - a path, not a secret
ASSERTION_LIFETIME: Final = 60  # seconds; the server refuses longer-lived assertions
DEFAULT_SCOPES: Final = ("READ", "WRITE")
MAX_MARGIN: Final = 60.0
SHORT_TOKEN_SHARE: Final = 0.1
_OAUTH_ERROR: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def normalise_scopes(scopes: Iterable[str]) -> str:
    """Scopes as the token endpoint wants them: upper case, unique, sorted, space-separated."""
    return " ".join(sorted({s.strip().upper() for s in scopes if s.strip()}))


def cache_lifetime(expires_in: float) -> float:
    """How long to use a token that lives ``expires_in`` seconds (minus the safety margin)."""
    return expires_in - min(MAX_MARGIN, SHORT_TOKEN_SHARE * expires_in)


def assertion(
    *,
    oauth_client_id: str,
    account_id: str,
    base_url: str,
    audience: str,
    shared_secret: Secret,
    now: float,
) -> str:
    """The signed JWT-bearer assertion for ``account_id`` on the site at ``base_url``."""
    issued = int(now)
    claims = {
        "iss": f"urn:atlassian:connect:clientid:{oauth_client_id}",
        "sub": f"urn:atlassian:connect:useraccountid:{account_id}",
        "tnt": base_url,
        "aud": audience,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, shared_secret.reveal().encode("utf-8"), algorithm="HS256")


@dataclass(frozen=True, slots=True)
class TokenKey:
    """Whose token: one per site, account and scope set."""

    client_key: str
    account_id: str
    scopes: str  # normalised


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as the endpoint issued it."""

    access_token: Secret = field(repr=False)
    expires_in: float


def _oauth_error(body: bytes) -> str:
    try:
        decoded: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "no error code"
    code = decoded.get("error") if isinstance(decoded, dict) else None
    if isinstance(code, str) and _OAUTH_ERROR.match(code):
        return code
    return "no error code"


def _issued(body: bytes) -> IssuedToken:
    try:
        decoded: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        decoded = None
    token = decoded.get("access_token") if isinstance(decoded, dict) else None
    expires = decoded.get("expires_in") if isinstance(decoded, dict) else None
    if isinstance(expires, str):
        try:
            expires = float(expires)
        except ValueError:
            expires = None
    if (
        not isinstance(token, str)
        or not token
        or not isinstance(expires, int | float)
        or isinstance(expires, bool)
        or not expires > 0
    ):
        raise JiraUnavailable("the token endpoint answered without a usable token")
    return IssuedToken(Secret(token), float(expires))


async def request_token(
    transport: Transport,
    *,
    oauth_url: str,
    client_key: str,
    oauth_client_id: str,
    base_url: str,
    shared_secret: Secret,
    account_id: str,
    scopes: str,
    now: float,
) -> IssuedToken:
    """Trade an assertion for a bearer token; the endpoint's refusals become Jira errors."""
    audience = oauth_url.rstrip("/")
    form = {
        "grant_type": JWT_BEARER_GRANT,
        "assertion": assertion(
            oauth_client_id=oauth_client_id,
            account_id=account_id,
            base_url=base_url,
            audience=audience,
            shared_secret=shared_secret,
            now=now,
        ),
    }
    if scopes:
        form["scope"] = scopes
    answer = await transport.send(
        "POST",
        URL(audience + TOKEN_PATH),
        authorization=None,
        body=urlencode(form).encode("ascii"),
        content_type="application/x-www-form-urlencoded",
        route=TOKEN_PATH,
        tenant=client_key,
        actor="user",
    )
    status = answer.status
    if 200 <= status < 300:
        return _issued(answer.body)
    where = f"the token endpoint answered {status}"
    if status == 429:
        raise JiraRateLimited(
            where, retry_after=retry_after_seconds(answer.retry_after, now=now), status=status
        )
    if status >= 500:
        raise JiraUnavailable(where, status=status)
    # 400/401 with an OAuth error (invalid_grant: the user is gone or the app lost the
    # ACT_AS_USER scope): this user cannot be impersonated until something changes.
    raise JiraUnauthorized(
        f"{where} ({_oauth_error(answer.body)}): cannot act as the user", status=status
    )


@dataclass(frozen=True, slots=True)
class _Cached:
    token: Secret = field(repr=False)
    expires_at: float  # monotonic


class UserTokens:
    """Bearer tokens per :class:`TokenKey`, fetched once at a time, kept until near expiry."""

    def __init__(self, *, clock: Clock, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self._max_entries = max_entries
        self._cache: OrderedDict[TokenKey, _Cached] = OrderedDict()
        self._inflight: dict[TokenKey, asyncio.Task[Secret]] = {}
        self._closed = False
        self.fetches = 0  # token requests made (for tests and metrics)

    def __len__(self) -> int:
        return len(self._cache)

    async def get(self, key: TokenKey, fetch: Callable[[], Awaitable[IssuedToken]]) -> Secret:
        """The cached token of ``key``, or one from ``fetch`` (shared by concurrent callers)."""
        if self._closed:
            raise RuntimeError("the token cache is closed")
        hit = self._cache.get(key)
        if hit is not None:
            if self._clock.monotonic() < hit.expires_at:
                self._cache.move_to_end(key)
                return hit.token
            del self._cache[key]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key, fetch), name="jira-user-token")
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._forget, key))
        # Shielded: one caller giving up must not cancel the request the others wait for.
        return await asyncio.shield(task)

    def invalidate(self, key: TokenKey, token: Secret) -> None:
        """Drop ``token`` if it is still the one cached for ``key`` (Jira refused it)."""
        hit = self._cache.get(key)
        if hit is not None and hit.token == token:
            del self._cache[key]

    async def close(self) -> None:
        """Cancel requests under way and forget every token."""
        self._closed = True
        pending = list(self._inflight.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._inflight.clear()
        self._cache.clear()

    async def _load(self, key: TokenKey, fetch: Callable[[], Awaitable[IssuedToken]]) -> Secret:
        started = self._clock.monotonic()
        self.fetches += 1
        issued = await fetch()
        lifetime = cache_lifetime(issued.expires_in)
        if lifetime > 0 and not self._closed:
            self._cache[key] = _Cached(issued.access_token, started + lifetime)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return issued.access_token

    def _forget(self, key: TokenKey, task: asyncio.Task[Secret]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved, so an abandoned failure is not reported as lost
