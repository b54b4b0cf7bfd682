"""Signed, expiring OAuth link states, PKCE, the authorize URL and link-status tickets (pure).

**Why signed and not stored.** The gateway never writes to the database, yet it must hand out
OAuth ``state`` values and later recognise them. So a state is self-contained and signed with
the gateway's HMAC key (secret ``state-signing-key``): it carries the link-request id (the
*state id*), the Jira site (``clientKey``) and ``accountId`` it was issued for — proved by the
Jira page's JWT when it was minted —, optionally the Discord user who ran ``/jira link``, a
random nonce, and its issue and expiry times (10 minutes by default, 15 at most). The gateway
checks signature and expiry on the callback; the linker makes each state single-use
(``OAuthStates.consume(state_id, expires_at=...)``) and checks the Discord user.

**Format** (URL-safe, no padding)::

    v1.<base64url(JSON payload)>.<base64url(HMAC-SHA256(k_purpose, "v1.<payload>"))>

with payload keys ``sid`` (state id), ``ck``, ``acc``, ``n`` (nonce), ``iat``, ``exp`` (epoch
seconds) and optional ``du``. Each purpose signs with its own key derived from the master
secret, ``k_purpose = HMAC-SHA256(master, "dfj/<purpose>/v1")``, so a token of one kind never
verifies as another: ``oauth-state`` (the state), ``link-status`` (the ticket the status page
polls with), ``pkce`` (below). Comparison is constant-time.

**PKCE choice: derived, not carried.** Discord accepts S256 PKCE on the code grant. The
``code_verifier`` must reach the linker for the token exchange, but the gateway stores nothing
and the state travels through the browser, so the verifier cannot ride in it in the clear. It is
derived instead::

    code_verifier  = base64url(HMAC-SHA256(k_pkce, "<state id>.<nonce>"))   # 43 characters
    code_challenge = base64url(SHA-256(code_verifier))                       # S256

Anyone holding the state-signing key — the gateway and the linker, both reading the same
secret — recomputes the verifier from the state id and nonce (both in the callback event);
anyone else, including whoever sees the authorize URL or the state, cannot. Sealing it inside
the state would work too, but would lengthen every URL and add an encryption key for no gain.

:func:`begin_link` puts it together for the Jira page flow: state, PKCE challenge and
Discord's authorize URL (``identify``, ``redirect_uri=<public_url>/oauth/discord/callback``,
``prompt=none``) in one call.

**Link-status tickets.** The callback page polls ``/oauth/discord/status/<state id>`` with a
ticket: a ``link-status`` token carrying the state id, site, account, the state's issue time
(a link counts only if made after it) and its own expiry (30 minutes by default).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlencode

from dfj_common.config import Settings
from dfj_common.derived_keys import SealError, master_key, purpose_key, seal, unseal
from dfj_common.derived_keys import pkce_challenge as derived_pkce_challenge
from dfj_common.derived_keys import pkce_verifier as derived_pkce_verifier
from dfj_common.errors import ConfigError

__all__ = [
    "CALLBACK_PATH",
    "DEFAULT_STATE_TTL",
    "MAX_STATE_LENGTH",
    "MAX_STATE_LIFETIME",
    "STATE_ID_PATTERN",
    "LinkState",
    "StateError",
    "StatusTicket",
    "authorize_url",
    "begin_link",
    "issue_state",
    "issue_status_ticket",
    "pkce_challenge",
    "pkce_verifier",
    "redirect_uri",
    "signing_key",
    "verify_state",
    "verify_status_ticket",
]

CALLBACK_PATH: Final = "/oauth/discord/callback"
DEFAULT_STATE_TTL: Final = 600
MAX_STATE_LIFETIME: Final = 900
MAX_STATE_LENGTH: Final = 2048
CLOCK_SKEW: Final = 60
_VERSION: Final = "v1"
_STATE: Final = "oauth-state"
_STATUS: Final = "link-status"
_PKCE: Final = "pkce"
_MAX_FIELD: Final = 255
_B64URL: Final = re.compile(r"^[A-Za-z0-9_-]+$")
STATE_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class StateError(ValueError):
    """A state or ticket that must be refused; ``reason`` says why (for the log line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkState:
    """What a verified OAuth state says."""

    state_id: str
    client_key: str
    account_id: str
    nonce: str
    issued_at: int
    expires_at: int
    discord_user_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusTicket:
    """What a verified link-status ticket says."""

    state_id: str
    client_key: str
    account_id: str
    requested_at: int
    expires_at: int
    discord_user_id: str | None = None


def signing_key(secret: str) -> bytes:
    """The master key bytes of secret ``state-signing-key`` (at least 32 bytes of text)."""
    return master_key(secret)


def _subkey(master: bytes, purpose: str) -> bytes:
    return purpose_key(master, purpose)


def _seal(master: bytes, purpose: str, payload: dict[str, Any]) -> str:
    return seal(master, purpose, payload)


def _open(master: bytes, purpose: str, token: str) -> dict[str, Any]:
    if isinstance(token, str) and len(token) > MAX_STATE_LENGTH:
        raise StateError("malformed")
    try:
        return unseal(master, purpose, token)
    except SealError as exc:
        raise StateError(exc.reason) from None


def _text(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if isinstance(value, str) and 0 < len(value) <= _MAX_FIELD:
        return value
    raise StateError("malformed")


def _optional_text(payload: dict[str, Any], key: str) -> str | None:
    return None if payload.get(key) is None else _text(payload, key)


def _state_id(payload: dict[str, Any]) -> str:
    value = _text(payload, "sid")
    if not STATE_ID_PATTERN.match(value):
        raise StateError("malformed")
    return value


def _seconds(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise StateError("malformed")


def issue_state(
    key: bytes,
    *,
    client_key: str,
    account_id: str,
    now: float,
    ttl: float = DEFAULT_STATE_TTL,
    state_id: str | None = None,
    nonce: str | None = None,
    discord_user_id: str | None = None,
) -> tuple[str, LinkState]:
    """A signed state for a link request of ``account_id`` on ``client_key``, and what it says."""
    if not 0 < ttl <= MAX_STATE_LIFETIME:
        raise ValueError(f"a state lives between 1 and {MAX_STATE_LIFETIME} seconds")
    if not client_key or not account_id:
        raise ValueError("a state needs a clientKey and an accountId")
    if state_id is not None and not STATE_ID_PATTERN.match(state_id):
        raise ValueError("a state id is 1-128 letters, digits, '-' or '_'")
    state = LinkState(
        state_id=state_id or secrets.token_urlsafe(16),
        client_key=client_key,
        account_id=account_id,
        nonce=nonce or secrets.token_urlsafe(16),
        issued_at=int(now),
        expires_at=int(now + ttl),
        discord_user_id=discord_user_id,
    )
    payload: dict[str, Any] = {
        "sid": state.state_id,
        "ck": client_key,
        "acc": account_id,
        "n": state.nonce,
        "iat": state.issued_at,
        "exp": state.expires_at,
    }
    if discord_user_id:
        payload["du"] = discord_user_id
    return _seal(key, _STATE, payload), state


def verify_state(key: bytes, token: str, *, now: float) -> LinkState:
    """What ``token`` says, if it is ours, untampered and unexpired; else :class:`StateError`."""
    payload = _open(key, _STATE, token)
    state = LinkState(
        state_id=_state_id(payload),
        client_key=_text(payload, "ck"),
        account_id=_text(payload, "acc"),
        nonce=_text(payload, "n"),
        issued_at=_seconds(payload, "iat"),
        expires_at=_seconds(payload, "exp"),
        discord_user_id=_optional_text(payload, "du"),
    )
    if state.issued_at > now + CLOCK_SKEW:
        raise StateError("issued in the future")
    if state.expires_at - state.issued_at > MAX_STATE_LIFETIME:
        raise StateError("lifetime too long")
    if now >= state.expires_at:
        raise StateError("expired")
    return state


def pkce_verifier(key: bytes, state: LinkState) -> str:
    """The PKCE ``code_verifier`` of a state: derived, so nobody has to store it (43 chars)."""
    return derived_pkce_verifier(key, state.state_id, state.nonce)


def pkce_challenge(verifier: str) -> str:
    """The S256 ``code_challenge`` of a verifier."""
    return derived_pkce_challenge(verifier)


def redirect_uri(public_url: str) -> str:
    """Where Discord sends the browser back: ``<public_url>/oauth/discord/callback``."""
    return public_url.rstrip("/") + CALLBACK_PATH


def authorize_url(
    *,
    web_url: str,
    client_id: str,
    public_url: str,
    state: str,
    code_challenge: str,
) -> str:
    """Discord's authorize URL for the ``identify`` scope with ``state`` and S256 PKCE."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "scope": "identify",
        "state": state,
        "redirect_uri": redirect_uri(public_url),
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
        "prompt": "none",
    }
    return f"{web_url.rstrip('/')}/oauth2/authorize?{urlencode(params, quote_via=quote)}"


def begin_link(
    key: bytes,
    settings: Settings,
    *,
    client_key: str,
    account_id: str,
    now: float,
    discord_user_id: str | None = None,
    ttl: float = DEFAULT_STATE_TTL,
) -> tuple[str, LinkState]:
    """The authorize URL to send a Jira user to, and the state it carries (for the Jira page).

    ``client_key`` and ``account_id`` must come from the Jira page's verified JWT.
    """
    if not settings.discord_application_id:
        raise ConfigError("DFJ_DISCORD_APPLICATION_ID is needed to link Discord accounts")
    token, state = issue_state(
        key,
        client_key=client_key,
        account_id=account_id,
        now=now,
        ttl=ttl,
        discord_user_id=discord_user_id,
    )
    url = authorize_url(
        web_url=settings.discord_web_url,
        client_id=settings.discord_application_id,
        public_url=settings.public_url,
        state=token,
        code_challenge=pkce_challenge(pkce_verifier(key, state)),
    )
    return url, state


def issue_status_ticket(key: bytes, state: LinkState, *, now: float, ttl: float) -> str:
    """A ticket the callback page polls the link status with."""
    payload: dict[str, Any] = {
        "sid": state.state_id,
        "ck": state.client_key,
        "acc": state.account_id,
        "iat": state.issued_at,
        "exp": int(now + ttl),
    }
    if state.discord_user_id:
        payload["du"] = state.discord_user_id
    return _seal(key, _STATUS, payload)


def verify_status_ticket(key: bytes, ticket: str, *, now: float) -> StatusTicket:
    """What a ticket says if it is ours and unexpired; else :class:`StateError`."""
    payload = _open(key, _STATUS, ticket)
    found = StatusTicket(
        state_id=_state_id(payload),
        client_key=_text(payload, "ck"),
        account_id=_text(payload, "acc"),
        requested_at=_seconds(payload, "iat"),
        expires_at=_seconds(payload, "exp"),
        discord_user_id=_optional_text(payload, "du"),
    )
    if now >= found.expires_at:
        raise StateError("expired")
    return found
