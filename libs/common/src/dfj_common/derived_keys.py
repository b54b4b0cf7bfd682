"""Keys derived from the ``state-signing-key`` secret, for the services that share it.

The gateway signs OAuth link states and the linker consumes them; both need the same PKCE
``code_verifier`` for a state without either storing it (the gateway never writes, and the
verifier must not travel through the browser). So it is derived, by both, from the master
secret and two values the state carries::

    k_purpose      = HMAC-SHA256(master, "dfj/<purpose>/v1")
    code_verifier  = base64url(HMAC-SHA256(k_pkce, "<state id>.<nonce>"))   # 43 characters
    code_challenge = base64url(SHA-256(code_verifier))                       # S256

Each purpose has its own key, so a value made for one can never verify as another. This is
crypto plumbing; what a state or ticket means stays with the service that issues it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

from dfj_common.errors import ConfigError

__all__ = [
    "MIN_KEY_BYTES",
    "STATE_SIGNING_KEY_SECRET",
    "b64url",
    "master_key",
    "pkce_challenge",
    "pkce_verifier",
    "purpose_key",
]

STATE_SIGNING_KEY_SECRET: Final = "state-signing-key"  # noqa: S105 - a secret's name
MIN_KEY_BYTES: Final = 32
_VERSION: Final = "v1"
_PKCE: Final = "pkce"


def master_key(secret: str) -> bytes:
    """The master key bytes of secret ``state-signing-key`` (at least 32 bytes of text)."""
    raw = secret.encode()
    if len(raw) < MIN_KEY_BYTES:
        raise ConfigError(
            "secret 'state-signing-key' (DFJ_STATE_SIGNING_KEY) must be at least 32 bytes, "
            "e.g. the base64 of 32 random bytes"
        )
    return raw


def b64url(raw: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def purpose_key(master: bytes, purpose: str) -> bytes:
    """The key of one purpose (``oauth-state``, ``link-status``, ``pkce``, …)."""
    return hmac.new(master, f"dfj/{purpose}/{_VERSION}".encode(), hashlib.sha256).digest()


def pkce_verifier(master: bytes, state_id: str, nonce: str) -> str:
    """The PKCE ``code_verifier`` of the state ``state_id`` with ``nonce`` (43 characters)."""
    message = f"{state_id}.{nonce}".encode()
    return b64url(hmac.new(purpose_key(master, _PKCE), message, hashlib.sha256).digest())


def pkce_challenge(verifier: str) -> str:
    """The S256 ``code_challenge`` of a verifier."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())
