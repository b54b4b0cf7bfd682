"""Keys derived from the ``state-signing-key`` secret, for the services that share it.

The gateway signs OAuth link states and the linker consumes them; both need the same PKCE
``code_verifier`` for a state without either storing it (the gateway never writes, and the
verifier must not travel through the browser). So it is derived, by both, from the master
secret and two values the state carries::

    k_purpose      = HMAC-SHA256(master, "dfj/<purpose>/v1")
    code_verifier  = base64url(HMAC-SHA256(k_pkce, "<state id>.<nonce>"))   # 43 characters
    code_challenge = base64url(SHA-256(code_verifier))                       # S256

Each purpose has its own key, so a value made for one can never verify as another.

**Sealed tokens** (:func:`seal`, :func:`unseal`) are how one service hands another a signed,
self-contained value through a browser or a user (an OAuth state, a link request, a connect
code) without either storing it: ``v1.<base64url(JSON)>.<base64url(HMAC-SHA256(k_purpose,
"v1.<payload>"))>``, compared in constant time. This is crypto plumbing; what a token says,
and for how long it is good, stays with the services that issue and accept it.

**Short codes** (:func:`short_code`, :func:`open_short_code`) are for a person to type or paste
(``/jira connect code:…``, 64 characters at most): they cannot carry their subject (a site's
clientKey may be 100 characters), so they carry a 4-byte hint of it instead and are opened
against the candidate subjects (the installed sites)::

    bytes  = hint(4) = SHA-256(subject)[:4] ‖ expires_at (4, big-endian) ‖ nonce (4)
           ‖ HMAC-SHA256(k_purpose, bytes[:12] ‖ subject)[:8]
    code   = Crockford base32 of the 20 bytes, in groups of four: XXXX-XXXX-…-XXXX (39 chars)

A 64-bit MAC can only be guessed online, against a code that lives minutes and is used once.
The consumer makes it single-use by its :attr:`ShortCode.code_id`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from dfj_common.errors import ConfigError

__all__ = [
    "MAX_SEALED_LENGTH",
    "MIN_KEY_BYTES",
    "STATE_SIGNING_KEY_SECRET",
    "SealError",
    "ShortCode",
    "b64url",
    "master_key",
    "open_short_code",
    "pkce_challenge",
    "pkce_verifier",
    "purpose_key",
    "seal",
    "short_code",
    "unseal",
]

STATE_SIGNING_KEY_SECRET: Final = "state-signing-key"  # noqa: S105 - a secret's name
MIN_KEY_BYTES: Final = 32
_VERSION: Final = "v1"
_PKCE: Final = "pkce"
MAX_SEALED_LENGTH: Final = 2048
_B64URL: Final = re.compile(r"^[A-Za-z0-9_-]+$")


class SealError(ValueError):
    """A sealed token that must be refused: ``reason`` is ``malformed`` or ``bad signature``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


def _mac(master: bytes, purpose: str, signed: str) -> bytes:
    return hmac.new(purpose_key(master, purpose), signed.encode("ascii"), hashlib.sha256).digest()


def seal(master: bytes, purpose: str, payload: dict[str, Any]) -> str:
    """``payload`` (JSON-able) signed for ``purpose``."""
    body = b64url(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{_VERSION}.{body}"
    return f"{signed}.{b64url(_mac(master, purpose, signed))}"


def unseal(master: bytes, purpose: str, token: object) -> dict[str, Any]:
    """The payload of a token sealed for ``purpose``; :class:`SealError` otherwise."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_SEALED_LENGTH:
        raise SealError("malformed")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _VERSION or not all(_B64URL.match(p) for p in parts[1:]):
        raise SealError("malformed")
    try:
        mac = _unb64(parts[2])
    except (binascii.Error, ValueError):
        raise SealError("malformed") from None
    if not hmac.compare_digest(mac, _mac(master, purpose, f"{parts[0]}.{parts[1]}")):
        raise SealError("bad signature")
    try:
        payload = json.loads(_unb64(parts[1]))
    except (binascii.Error, ValueError):
        raise SealError("malformed") from None
    if not isinstance(payload, dict):
        raise SealError("malformed")
    return payload


def _unb64(text: str) -> bytes:
    """Strict base64url: only the canonical spelling of some bytes decodes.

    The lenient decoder drops characters outside the alphabet and ignores a last character's
    spare bits, so a changed character could still decode to the same MAC: a tampered token
    would then pass as the original. Refused here, so any change to a token is a refusal.
    """
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(raw) != text:
        raise binascii.Error("not canonical base64url")
    return raw


# --- short codes ------------------------------------------------------------------------------

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE: Final = {c: i for i, c in enumerate(_CROCKFORD)} | {"O": 0, "I": 1, "L": 1}
_CODE_BYTES: Final = 20
_HEAD: Final = struct.Struct(">4sI4s")


@dataclass(frozen=True, slots=True)
class ShortCode:
    """An opened short code: whom it was for, until when, and its id for single use."""

    subject: str
    expires_at: int
    code_id: str


def _hint(subject: str) -> bytes:
    return hashlib.sha256(subject.encode()).digest()[:4]


def _code_mac(master: bytes, purpose: str, head: bytes, subject: str) -> bytes:
    key = purpose_key(master, purpose)
    return hmac.new(key, head + subject.encode(), hashlib.sha256).digest()[:8]


def _base32(raw: bytes) -> str:
    number, out = int.from_bytes(raw, "big"), []
    for _ in range(len(raw) * 8 // 5):
        out.append(_CROCKFORD[number & 31])
        number >>= 5
    return "".join(reversed(out))


def short_code(
    master: bytes, purpose: str, subject: str, *, expires_at: int, nonce: bytes | None = None
) -> str:
    """A code for ``subject`` that :func:`open_short_code` accepts until ``expires_at``."""
    head = _HEAD.pack(_hint(subject), expires_at, nonce or secrets.token_bytes(4))
    text = _base32(head + _code_mac(master, purpose, head, subject))
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def open_short_code(
    master: bytes, purpose: str, code: str, candidates: Iterable[str], *, now: float
) -> ShortCode:
    """The code's subject among ``candidates``; :class:`SealError` (``malformed``, ``bad
    signature``, ``expired``) otherwise. Case, spaces, dashes and O/I/L for 0/1 are forgiven."""
    text = "".join(c for c in code.upper() if c not in "- ")
    if len(text) != _CODE_BYTES * 8 // 5 or any(c not in _DECODE for c in text):
        raise SealError("malformed")
    number = 0
    for c in text:
        number = number << 5 | _DECODE[c]
    raw = number.to_bytes(_CODE_BYTES, "big")
    head, mac = raw[: _HEAD.size], raw[_HEAD.size :]
    hint, expires_at, _nonce = _HEAD.unpack(head)
    for subject in candidates:
        if _hint(subject) == hint and hmac.compare_digest(
            mac, _code_mac(master, purpose, head, subject)
        ):
            if expires_at <= now:
                raise SealError("expired")
            return ShortCode(subject=subject, expires_at=expires_at, code_id=b64url(head))
    raise SealError("bad signature")
