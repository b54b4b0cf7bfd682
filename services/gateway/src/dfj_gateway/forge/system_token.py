"""The app system token Forge hands over with each call, sealed for the jira-worker to store.

Forge sends ``x-forge-oauth-system`` with every call of an endpoint that enables
``appSystemToken``. There is no endpoint to ask for one, so the workers' own later calls
(notifications read as the app, minting offline user tokens) depend on the token the last
call delivered. The gateway never stores it (it does not write to the database): it seals it
(AES-GCM under a fresh data key, bound to the installation ARI and the purpose
``forge-system-token``) and publishes the blob with its expiry; the jira-worker keeps the
freshest. The token itself stays opaque, as Atlassian asks — only its ``exp`` claim is read,
to know how long it may be used; a token whose expiry cannot be read is given the oldest
documented minimum lifetime (55 minutes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from dfj_common.clock import Clock
from dfj_common.secrets import EnvelopeCipher, make_aad
from dfj_gateway.lookups import ReadCache

__all__ = [
    "SYSTEM_TOKEN_PURPOSE",
    "SealedToken",
    "SealedTokens",
    "read_expiry",
    "seal_system_token",
    "system_token_aad",
    "well_formed",
]

SYSTEM_TOKEN_PURPOSE: Final = "forge-system-token"  # noqa: S105 - an AAD purpose label
MAX_SYSTEM_TOKEN: Final = 16 * 1024
FALLBACK_LIFETIME: Final = 55 * 60
MAX_LIFETIME: Final = 4 * 3600  # Atlassian's maximum: a later exp is not believed
_TOKEN_CHARS: Final = re.compile(r"^[A-Za-z0-9._~+/=-]+$")


@dataclass(frozen=True, slots=True)
class SealedToken:
    """The sealed token (base64) and until when it can be used (epoch seconds)."""

    sealed: str = field(repr=False)
    expires_at: int


def system_token_aad(installation_id: str) -> bytes:
    """The associated data binding a sealed system token to its installation."""
    return make_aad(installation_id, SYSTEM_TOKEN_PURPOSE)


def well_formed(token: str) -> bool:
    """Whether ``token`` can be a bearer token at all (size and characters)."""
    return 0 < len(token) <= MAX_SYSTEM_TOKEN and bool(_TOKEN_CHARS.match(token))


def read_expiry(token: str, *, now: float) -> int:
    """When ``token`` expires: its ``exp`` claim, bounded to Atlassian's maximum lifetime.

    The claim is read, not trusted: the token is Atlassian's to check, and a wrong ``exp``
    only makes the worker wait for a fresh token sooner or try a lapsed one once.
    """
    latest = int(now) + MAX_LIFETIME
    parts = token.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not a JWT")
        payload = parts[1]
        claims: Any = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return int(now) + FALLBACK_LIFETIME
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return int(now) + FALLBACK_LIFETIME
    return min(int(exp), latest)


async def seal_system_token(
    cipher: EnvelopeCipher, installation_id: str, token: str, *, now: float
) -> SealedToken:
    """``token`` sealed for ``installation_id``, with its expiry."""
    sealed = await cipher.seal(token.encode("ascii"), aad=system_token_aad(installation_id))
    return SealedToken(
        sealed=base64.b64encode(sealed).decode("ascii"), expires_at=read_expiry(token, now=now)
    )


class SealedTokens:
    """Sealed system tokens by (installation, token), kept for ``ttl`` seconds.

    Forge hands over the same token with every call for hours; sealing it anew for each
    event costs a data key and two AES operations (about 0.1 ms) and gives the worker a new
    blob to compare. So a token already sealed is reused while it is kept (the gateway's
    :class:`~dfj_gateway.lookups.ReadCache`: bounded, one seal at a time per token). Keyed by
    the token's SHA-256, never the token.
    """

    def __init__(self, clock: Clock, *, ttl: float = 600.0, max_entries: int = 1024) -> None:
        self._cache: ReadCache[tuple[str, bytes], SealedToken] = ReadCache(
            clock, ttl=ttl, max_entries=max_entries
        )

    async def get(
        self, cipher: EnvelopeCipher, installation_id: str, token: str, *, now: float
    ) -> SealedToken:
        """``token`` sealed for ``installation_id`` (from the cache when it is there)."""
        key = (installation_id, hashlib.sha256(token.encode("ascii")).digest())

        async def seal() -> SealedToken:
            return await seal_system_token(cipher, installation_id, token, now=now)

        sealed = await self._cache.get(key, seal)
        assert sealed is not None  # seal() never answers None
        return sealed
