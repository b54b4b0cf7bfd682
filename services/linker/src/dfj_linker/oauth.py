"""The linker's Discord OAuth2 client: code exchange, ``/users/@me``, revocation.

The linker is the one place a Discord user token exists, for the few hundred milliseconds
between exchanging the code and revoking the token: it is held in a local variable, never
stored, logged or put into an error. Endpoints (``topics/oauth2``) on the configured API base:

- ``POST /oauth2/token`` — form ``grant_type=authorization_code&code&redirect_uri
  &code_verifier``, client credentials in HTTP Basic;
- ``GET /users/@me`` — ``Authorization: Bearer <token>``; only ``id`` is read;
- ``POST /oauth2/token/revoke`` — form ``token&token_type_hint=access_token``.

Errors by what the caller can do: 400/401 on the exchange (``invalid_grant``: the code is
used, expired or not ours; ``invalid_client``: our credentials) → :class:`OAuthRefused`
(permanent: a retry cannot help); 429 → ``RateLimited`` with Discord's ``retry_after``; 5xx,
timeouts and connection errors → :class:`OAuthUnavailable` (transient).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote_plus

import aiohttp
import orjson

from dfj_common.config import Secret
from dfj_common.errors import PermanentError, RateLimited, TransientError
from dfj_common.httpclient import LazySession, read_capped

__all__ = ["DiscordIdentity", "DiscordOAuth", "OAuthRefused", "OAuthUnavailable"]

_MAX_BODY: Final = 64 * 1024
_SNOWFLAKE: Final = re.compile(r"^[0-9]{1,20}$")


class OAuthRefused(PermanentError):
    """Discord refused the exchange or the token; ``error`` is its RFC 6749 code."""

    def __init__(self, message: str, *, error: str) -> None:
        super().__init__(message, reason="OAuthRefused")
        self.error = error


class OAuthUnavailable(TransientError):
    """Discord did not answer usefully (5xx, timeout, connection); try again later."""


@dataclass(frozen=True, slots=True)
class DiscordIdentity:
    """Who the token belongs to: the user id, nothing else."""

    user_id: str


class DiscordOAuth:
    """Talks to Discord's OAuth2 endpoints as our application (client id and secret)."""

    def __init__(
        self,
        *,
        api_url: str,
        client_id: str,
        client_secret: Secret,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._api = api_url.rstrip("/")
        # RFC 6749 §2.3.1: each part form-encoded, then HTTP Basic.
        pair = f"{quote_plus(client_id)}:{quote_plus(client_secret.reveal())}"
        self._basic = Secret("Basic " + base64.b64encode(pair.encode()).decode("ascii"))
        self._http = LazySession(name="discord-oauth", timeout=timeout, session=session)

    async def close(self) -> None:
        await self._http.close()

    async def exchange(self, *, code: str, redirect_uri: str, code_verifier: str) -> str:
        """The access token for ``code`` (hold it only until :meth:`revoke`)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        status, body = await self._call("POST", "/oauth2/token", data=form, client=True)
        if status in (400, 401):
            error = _text(body.get("error")) or "invalid_request"
            raise OAuthRefused(f"Discord refused the code exchange ({error})", error=error)
        token = _text(body.get("access_token")) if status == 200 else None
        if token is None:
            raise OAuthUnavailable(f"token endpoint answered {status} without a token")
        return token

    async def identify(self, access_token: str) -> DiscordIdentity:
        """``/users/@me`` for the token: the Discord user it was granted by."""
        headers = {"Authorization": f"Bearer {access_token}"}
        status, body = await self._call("GET", "/users/@me", headers=headers)
        if status == 401:
            raise OAuthRefused("Discord refused the access token", error="invalid_token")
        user_id = _text(body.get("id")) if status == 200 else None
        if user_id is None or not _SNOWFLAKE.match(user_id):
            raise OAuthUnavailable(f"/users/@me answered {status} without a user id")
        return DiscordIdentity(user_id=user_id)

    async def revoke(self, access_token: str) -> None:
        """Revoke the token (and so the whole authorization) at once."""
        form = {"token": access_token, "token_type_hint": "access_token"}
        status, _ = await self._call("POST", "/oauth2/token/revoke", data=form, client=True)
        if status != 200:
            raise OAuthUnavailable(f"token revocation answered {status}")

    async def _call(
        self,
        method: str,
        path: str,
        *,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        client: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        sent = dict(headers or {})
        if client:
            sent["Authorization"] = self._basic.reveal()
        try:
            async with self._http.get().request(
                method, self._api + path, data=data, headers=sent
            ) as response:
                raw, _complete = await read_capped(response, _MAX_BODY)
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise OAuthUnavailable(f"{path} unreachable: {type(exc).__name__}") from None
        body = _json(raw)
        if status == 429:
            retry_after = body.get("retry_after")
            wait = float(retry_after) if isinstance(retry_after, int | float) else 1.0
            raise RateLimited(f"{path} rate limited", retry_after=max(wait, 0.0))
        if status >= 500:
            raise OAuthUnavailable(f"{path} answered {status}")
        return status, body


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
