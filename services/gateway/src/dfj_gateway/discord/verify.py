"""Authenticating Discord interaction requests: Ed25519 over the raw bytes, then freshness.

Discord signs ``ASCII(X-Signature-Timestamp) || raw body`` with the application's Ed25519 key
and sends the 64-byte signature as 128 hex digits in ``X-Signature-Ed25519``; the public key is
the portal's hex "Public Key" (``DFJ_DISCORD_PUBLIC_KEY``). Discord probes the endpoint with bad
signatures and removes it if any is accepted, so every failure here is a plain rejection (the
route answers 401), never an exception:

1. both headers present, the timestamp short printable ASCII, the signature exactly 128 hex
   digits (either case — hex decoders ignore case; the shared vectors expect upper case to pass);
2. the signature verifies over the timestamp bytes as received followed by the body bytes as
   received — never over re-serialised JSON;
3. only then is the (signed) timestamp read as a number: decimal Unix seconds by convention
   (undocumented, discord-api-docs #6209); 13 or more digits are taken as milliseconds, the
   format Discord's own test helper once used. Outside ``window`` seconds of the injected
   clock, either way, it is stale. ``window=None`` switches freshness off (fixed test vectors).

Replays of a fresh, validly signed request are refused by interaction id (``replay.py``).
Nothing here logs; the caller records the :class:`Rejection` as the reason.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from dfj_common.clock import Clock
from dfj_common.errors import ConfigError

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "InteractionVerifier",
    "Rejection",
    "load_public_key",
    "signature_is_valid",
    "signed_message",
]

SIGNATURE_HEADER: Final = "X-Signature-Ed25519"
TIMESTAMP_HEADER: Final = "X-Signature-Timestamp"

_SIGNATURE_HEX_LEN: Final = 128
_KEY_HEX_LEN: Final = 64
_MAX_TIMESTAMP_LEN: Final = 32
_HEX: Final = frozenset(string.hexdigits)
_PRINTABLE: Final = frozenset(string.ascii_letters + string.digits + string.punctuation)
_MILLISECONDS_FROM: Final = 10**12  # 13 digits: no seconds timestamp reaches this before 33658


class Rejection(StrEnum):
    """Why a request was not accepted (the reason on its log line; the answer is 401)."""

    MISSING_HEADERS = "missing signature headers"
    MALFORMED_SIGNATURE = "malformed signature"
    MALFORMED_TIMESTAMP = "malformed timestamp"
    BAD_SIGNATURE = "bad signature"
    STALE_TIMESTAMP = "timestamp outside the freshness window"


def load_public_key(hex_key: str) -> VerifyKey:
    """The verify key from the portal's hex public key; ``ConfigError`` naming the setting."""
    text = hex_key.strip()
    if len(text) != _KEY_HEX_LEN or not _HEX.issuperset(text):
        raise ConfigError("DFJ_DISCORD_PUBLIC_KEY must be 64 hex digits (the app's Public Key)")
    return VerifyKey(bytes.fromhex(text))


def _decode_signature(signature: str) -> bytes | None:
    # ``fromhex`` refuses what is not hex but skips whitespace, which the length then catches;
    # a fifth of the cost of checking the 128 characters against a set first.
    if len(signature) != _SIGNATURE_HEX_LEN:
        return None
    try:
        raw = bytes.fromhex(signature)
    except ValueError:
        return None
    return raw if len(raw) == _SIGNATURE_HEX_LEN // 2 else None


def signed_message(timestamp: str, body: bytes) -> bytes:
    """What Discord signs: the timestamp header's ASCII bytes, then the raw body."""
    return timestamp.encode("ascii") + body


def signature_is_valid(key: VerifyKey, *, signature: str, timestamp: str, body: bytes) -> bool:
    """True when ``signature`` (hex) signs ``timestamp + body``; False for anything else."""
    raw = _decode_signature(signature)
    if raw is None or not timestamp or not _PRINTABLE.issuperset(timestamp):
        return False
    try:
        key.verify(signed_message(timestamp, body), raw)
    except BadSignatureError:
        return False
    return True


def _timestamp_seconds(timestamp: str) -> float | None:
    if not timestamp.isascii() or not timestamp.isdigit():
        return None
    value = int(timestamp)
    return value / 1000 if value >= _MILLISECONDS_FROM else float(value)


@dataclass(frozen=True, slots=True)
class InteractionVerifier:
    """Checks signature headers against one public key, with freshness on an injected clock."""

    key: VerifyKey
    clock: Clock
    window: float | None = 300.0

    @classmethod
    def from_hex(
        cls, hex_key: str, *, clock: Clock, window: float | None = 300.0
    ) -> InteractionVerifier:
        """A verifier for the portal's hex public key (``ConfigError`` if it is not one)."""
        return cls(load_public_key(hex_key), clock, window)

    def check(
        self, *, signature: str | None, timestamp: str | None, body: bytes
    ) -> Rejection | None:
        """None when the request is authentic and fresh, else why not.

        The three steps, for a caller that runs the middle one elsewhere (``offload.py``):
        :meth:`headers`, the signature over :func:`signed_message`, :meth:`freshness`.
        """
        headers = self.headers(signature=signature, timestamp=timestamp)
        if isinstance(headers, Rejection):
            return headers
        raw, stamp = headers
        try:
            self.key.verify(signed_message(stamp, body), raw)
        except BadSignatureError:
            return Rejection.BAD_SIGNATURE
        return self.freshness(stamp)

    @staticmethod
    def headers(*, signature: str | None, timestamp: str | None) -> Rejection | tuple[bytes, str]:
        """The raw signature and the timestamp when both headers are well formed, else why not."""
        if not signature or not timestamp:
            return Rejection.MISSING_HEADERS
        raw = _decode_signature(signature)
        if raw is None:
            return Rejection.MALFORMED_SIGNATURE
        if len(timestamp) > _MAX_TIMESTAMP_LEN or not _PRINTABLE.issuperset(timestamp):
            return Rejection.MALFORMED_TIMESTAMP
        return raw, timestamp

    def freshness(self, timestamp: str) -> Rejection | None:
        """After the signature passed: None when the signed timestamp is within the window."""
        if self.window is None:
            return None
        seconds = _timestamp_seconds(timestamp)
        if seconds is None:
            return Rejection.MALFORMED_TIMESTAMP
        if abs(self.clock.now() - seconds) > self.window:
            return Rejection.STALE_TIMESTAMP
        return None
