"""Installations as the gateway sees them: read-only, with their shared secrets opened on demand.

The jira-worker stores each Connect installation's shared secret only as the sealed blob the
gateway produced at install time (:func:`seal_shared_secret`, AES-GCM under a fresh data key,
bound by its associated data to the clientKey and the purpose ``connect-shared-secret``, so a
blob copied to another tenant's row does not open). To verify an HS256 token the gateway looks
the installation up by the token's ``iss``, then opens the blob.

Unwrapping costs a KEK read and two AES operations, so opened secrets are kept in memory for a
short time, keyed by clientKey **and** the SHA-256 of the ciphertext: a re-install writes a new
blob, which is a new key, so a rotated secret is never served from the cache. The cache is per
app (see ``routes.JIRA_STATE``), bounded, and never logged.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from dfj_common.clock import Clock
from dfj_common.secrets import EnvelopeCipher, make_aad

__all__ = [
    "SHARED_SECRET_PURPOSE",
    "SecretCache",
    "SecretCacheOptions",
    "open_shared_secret",
    "seal_shared_secret",
    "shared_secret_aad",
]

SHARED_SECRET_PURPOSE: Final = "connect-shared-secret"  # noqa: S105 - a purpose label


def shared_secret_aad(client_key: str) -> bytes:
    """The associated data binding a sealed shared secret to its tenant and purpose."""
    return make_aad(client_key, SHARED_SECRET_PURPOSE)


async def seal_shared_secret(cipher: EnvelopeCipher, client_key: str, secret: str) -> bytes:
    """The sealed blob the jira-worker stores as ``shared_secret_ciphertext``."""
    return await cipher.seal(secret.encode("utf-8"), aad=shared_secret_aad(client_key))


async def open_shared_secret(cipher: EnvelopeCipher, client_key: str, sealed: bytes) -> bytes:
    """The raw secret bytes (the HMAC key) of a sealed blob."""
    return await cipher.open(sealed, aad=shared_secret_aad(client_key))


@dataclass(frozen=True, kw_only=True, slots=True)
class SecretCacheOptions:
    """How long and how many opened secrets are kept."""

    ttl: float = 300.0
    max_entries: int = 4096


@dataclass(frozen=True, slots=True, repr=False)
class _Entry:
    secret: bytes
    expires_at: float


class SecretCache:
    """Opened shared secrets by (clientKey, SHA-256 of the ciphertext), for ``ttl`` seconds."""

    def __init__(self, clock: Clock, options: SecretCacheOptions | None = None) -> None:
        self._clock = clock
        self._options = options or SecretCacheOptions()
        self._entries: OrderedDict[tuple[str, bytes], _Entry] = OrderedDict()
        self.opened = 0  # how many blobs were actually unwrapped (metrics and tests)

    def __repr__(self) -> str:
        return f"SecretCache(entries={len(self._entries)})"

    async def secret(self, cipher: EnvelopeCipher, client_key: str, sealed: bytes) -> bytes:
        """The secret of ``sealed``, opened at most once per ``ttl``."""
        key = (client_key, hashlib.sha256(sealed).digest())
        now = self._clock.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now < entry.expires_at:
            return entry.secret
        secret = await open_shared_secret(cipher, client_key, sealed)
        self.opened += 1
        self._entries[key] = _Entry(secret, now + self._options.ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._options.max_entries:
            self._entries.popitem(last=False)
        return secret

    def clear(self) -> None:
        """Forget every opened secret."""
        self._entries.clear()
