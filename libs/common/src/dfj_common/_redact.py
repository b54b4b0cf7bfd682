"""Redaction rules shared by logging (event dicts) and telemetry (span attributes).

Two kinds of rule, applied recursively through mappings and sequences:

- **by key**: the value of a key that names a secret (``token``, ``secret``, ``password``,
  ``signature``, ``authorization``, ``cookie``, ``jwt``, …, compared case- and
  punctuation-insensitively, so ``sharedSecret``, ``client_secret`` and ``X-Signature-Ed25519``
  all match) becomes ``[REDACTED]``; message content (``content``, ``body``, ``description``, …)
  becomes ``[CONTENT]``; emails and names of people become ``[EMAIL]`` / ``[PII]``;
- **by shape**, in every string: ``Authorization`` header values, ``key=value`` pairs whose key
  names a secret (``?jwt=…``, ``access_token=…``, ``SharedAccessKey=…;``), passwords in URLs,
  ``Bearer``/``Bot`` credentials, JWTs, Discord bot tokens, Ed25519 signatures and emails.

Nothing here raises: a value that cannot be inspected becomes ``[UNREDACTABLE]``. Numbers,
booleans and ``None`` are kept even under secret keys (``has_token=True`` is useful and leaks
nothing).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Final, Literal
from uuid import UUID

from dfj_common.config import Secret

__all__ = [
    "CONTENT",
    "EMAIL",
    "PII",
    "PLACEHOLDERS",
    "REDACTED",
    "KeyKind",
    "classify_key",
    "redact_keyed",
    "redact_mapping",
    "redact_text",
    "redact_value",
    "strip_url_query",
]

REDACTED: Final = "[REDACTED]"
CONTENT: Final = "[CONTENT]"
EMAIL: Final = "[EMAIL]"
PII: Final = "[PII]"
UNREDACTABLE: Final = "[UNREDACTABLE]"

_MAX_DEPTH: Final = 16
_MAX_ITEMS: Final = 1000

KeyKind = Literal["secret", "content", "email", "pii"]

# Substrings of a normalised key (lower case, letters and digits only) that mark a secret.
_SECRET_PARTS: Final = (
    "secret",
    "token",
    "password",
    "passwd",
    "signature",
    "authorization",
    "cookie",
    "apikey",
    "accesskey",
    "accountkey",
    "privatekey",
    "credential",
    "connectionstring",
    "jwt",
)
_SECRET_EXACT: Final = frozenset({"auth", "sig", "pwd", "kek", "dek", "codeverifier"})
_CONTENT_EXACT: Final = frozenset(
    {
        "content",
        "messagecontent",
        "description",
        "body",
        "rawbody",
        "requestbody",
        "responsebody",
        "text",
        "summary",
        "comment",
        "embeds",
    }
)
_EMAIL_EXACT: Final = frozenset({"email", "emailaddress", "mail"})
_PII_EXACT: Final = frozenset(
    {"displayname", "username", "globalname", "fullname", "nick", "nickname"}
)
_EXACT: Final[tuple[tuple[KeyKind, frozenset[str]], ...]] = (
    ("email", _EMAIL_EXACT),
    ("content", _CONTENT_EXACT),
    ("pii", _PII_EXACT),
)
_NON_ALNUM: Final = re.compile(r"[^a-z0-9]")


def _normalise(key: str) -> str:
    return _NON_ALNUM.sub("", key.lower())


def classify_key(key: object) -> KeyKind | None:
    """What a key's value holds, judged by its name alone (``None``: nothing sensitive)."""
    try:
        text = key if isinstance(key, str) else str(key)
    except Exception:
        return None
    return _classify_name(text) if len(text) <= _CACHED_KEY_LENGTH else _classify_uncached(text)


_CACHED_KEY_LENGTH: Final = 128


@functools.lru_cache(maxsize=4096)
def _classify_name(text: str) -> KeyKind | None:
    # Log lines reuse a few dozen key names; judging each once keeps redaction cheap.
    return _classify_uncached(text)


def _classify_uncached(text: str) -> KeyKind | None:
    # Dotted attribute names (``http.request.header.authorization``) are judged by the whole
    # name for secrets and by their last segment for content.
    whole = _normalise(text)
    names = {whole, _normalise(text.rsplit(".", 1)[-1])}
    if names & _SECRET_EXACT or any(part in whole for part in _SECRET_PARTS):
        return "secret"
    for kind, exact in _EXACT:
        if names & exact:
            return kind
    return None


PLACEHOLDERS: Final[Mapping[KeyKind, str]] = {
    "secret": REDACTED,
    "content": CONTENT,
    "email": EMAIL,
    "pii": PII,
}

# Key names that mark a secret inside free text (``jwt=…``, ``"client_secret": "…"``).
_KEY_RE: Final = (
    r"[\w.-]*(?:secret|token|password|passwd|signature|jwt|api[_-]?key|sharedaccesskey"
    r"|accountkey|credential)[\w.-]*|pwd"
)
_QUOTED: Final = r"(['\"])(?:\\.|(?!\2).)*\2"

_Rule = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]

# Possessive quantifiers (``*+``, ``?+``) stop a prefix from backtracking into a shorter match
# (``'key': '…'`` must not be read as the bare value `` '…'``); look-behinds make each rule start
# only at the beginning of a run, which keeps every rule linear on long inputs.
_PREFIX_END: Final = r"['\"]?+\s*+[:=]\s*+"
_SCHEME: Final = r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*+://"

_TEXT_RULES: Final[tuple[_Rule, ...]] = (
    # scheme://user:password@host (database URLs, proxies)
    (re.compile(r"(?i)(" + _SCHEME + r")[^\s/:@'\"]+:[^\s/@'\"]+@"), r"\1" + REDACTED + "@"),
    # Authorization headers, quoted ('authorization': 'Bearer x') then bare (Authorization: x)
    (
        re.compile(r"(?i)(\b(?:proxy-)?authorization\b" + _PREFIX_END + ")" + _QUOTED),
        r"\1\2" + REDACTED + r"\2",
    ),
    (
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization\b"
            + _PREFIX_END
            + r")(?!['\"]|\[REDACTED\])[^\r\n,;}\]]+"
        ),
        r"\1" + REDACTED,
    ),
    # key=value / "key": "value" where the key names a secret; query parameters included
    (
        re.compile(r"(?i)((?<![\w.-])(?:" + _KEY_RE + ")" + _PREFIX_END + ")" + _QUOTED),
        r"\1\2" + REDACTED + r"\2",
    ),
    (
        re.compile(
            r"(?i)((?<![\w.-])(?:"
            + _KEY_RE
            + ")"
            + _PREFIX_END
            + r")(?!['\"]|\[REDACTED\])[^\s'\"&,;}<>\])]+"
        ),
        r"\1" + REDACTED,
    ),
    # OAuth codes, states and SAS signatures in query strings (not "status code=500")
    (
        re.compile(r"(?i)([?&](?:code|state|sig|code_verifier)=)[^&#\s'\"]+"),
        r"\1" + REDACTED,
    ),
    # quoted message content inside reprs and JSON ("content": "hello")
    (
        re.compile(
            r"(?i)((?<![\w.-])(?:content|message_content|description|body|text|summary|comment)"
            + _PREFIX_END
            + ")"
            + _QUOTED
        ),
        r"\1\2" + CONTENT + r"\2",
    ),
    # credentials after an auth scheme ("Bearer x"; "bearer" in prose only before a long token)
    (re.compile(r"\b(Bearer|BEARER)\s+[^\s'\",;]+"), r"\1 " + REDACTED),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"\b(Bot)\s+[\w.-]{20,}"), r"\1 " + REDACTED),
    # JWTs: three base64url segments, the first a JSON object ({" → eyJ)
    (re.compile(r"\beyJ[A-Za-z0-9_-]*+\.[A-Za-z0-9_-]++\.[A-Za-z0-9_-]*+"), REDACTED),
    # Discord bot tokens: base64(user id) . timestamp . HMAC
    (re.compile(r"(?<![\w-])[\w-]{24,}+\.[\w-]{6}\.[\w-]{27,}"), REDACTED),
    # hex Ed25519 signatures (64 bytes)
    (re.compile(r"\b[0-9a-fA-F]{128}\b"), REDACTED),
    # emails
    (
        re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]++@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
        ),
        EMAIL,
    ),
)


# Every rule above needs one of these to match: a separator (``:`` or ``=``), an ``@``, a dot
# (JWTs, bot tokens), white space (``Bearer x``), or 128 characters (a hex signature). Most log
# values (routes, ids, methods, UUIDs) have none of them and skip the rules altogether.
_MAY_MATCH: Final = re.compile(r"[:=@.\s]")
_HEX_SIGNATURE_LENGTH: Final = 128


def redact_text(text: str) -> str:
    """``text`` with every secret-, token- and email-shaped substring replaced."""
    try:
        if len(text) < _HEX_SIGNATURE_LENGTH and _MAY_MATCH.search(text) is None:
            return text
        for pattern, replacement in _TEXT_RULES:
            text = pattern.sub(replacement, text)
        return text
    except Exception:
        return UNREDACTABLE


_WORD: Final = re.compile(r"\S+")
_URL_END: Final = re.compile(r"['\"<>\])]")
_TARGET: Final = re.compile(r"^(['\"]?)(/[^\s?#'\"]*)[?#][^\s'\"]*")


def _strip_word(match: re.Match[str]) -> str:
    word = match.group(0)
    scheme = word.find("://")
    if scheme <= 0:
        return _TARGET.sub(r"\1\2", word) if word[:2].lstrip("'\"").startswith("/") else word
    cut = min((i for i in (word.find("?", scheme), word.find("#", scheme)) if i >= 0), default=-1)
    if cut < 0:
        return word
    end = _URL_END.search(word, cut)
    return word[:cut] + (word[end.start() :] if end else "")


def strip_url_query(text: str) -> str:
    """Drop query strings and fragments from URLs in ``text`` (Connect URLs carry ``jwt=``).

    Whole URLs (``https://…?…``) and bare request targets (``/installed?jwt=…``) alike.
    """
    try:
        if "?" not in text and "#" not in text:
            return text
        return _WORD.sub(_strip_word, text)
    except Exception:
        return UNREDACTABLE


_PASSTHROUGH: Final = (datetime, date, time, timedelta, UUID, Decimal)


def redact_value(value: object) -> object:
    """A redacted copy of ``value``: strings scrubbed, containers walked, secrets replaced."""
    return _redact(value, 0, set())


def redact_mapping(mapping: Mapping[object, object]) -> dict[object, object]:
    """A redacted copy of ``mapping``, judging each value by its key first."""
    out = _redact(mapping, 0, set())
    return out if isinstance(out, dict) else {"value": out}


def redact_keyed(key: object, value: object) -> object:
    """``value`` as it may appear under ``key``."""
    return _keyed(key, value, 0, set())


def _keyed(key: object, value: object, depth: int, seen: set[int]) -> object:
    kind = classify_key(key)
    if kind is None or value is None or isinstance(value, bool):
        return _redact(value, depth, seen)
    if kind == "secret" and isinstance(value, int | float):
        return value
    return PLACEHOLDERS[kind]


def _redact(value: object, depth: int, seen: set[int]) -> object:  # noqa: PLR0911, PLR0912
    # One flat dispatch on the value's type reads better than a table of tiny functions.
    try:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return redact_text(value)
        if isinstance(value, Secret):
            return REDACTED
        if isinstance(value, bytes | bytearray | memoryview):
            return f"[{len(value)} bytes]"
        if isinstance(value, _PASSTHROUGH):
            return value
        if isinstance(value, Enum):
            return _redact(value.value, depth, seen)
        if depth >= _MAX_DEPTH:
            return "[TOO DEEP]"
        if id(value) in seen:
            return "[CYCLE]"
        if isinstance(value, Mapping):
            return _walk_mapping(value, depth, seen)
        if isinstance(value, list | tuple | set | frozenset):
            return _walk_sequence(value, depth, seen)
        if isinstance(value, BaseException):
            return redact_text(f"{type(value).__name__}: {value}")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields: dict[object, object] = {
                f.name: getattr(value, f.name) for f in dataclasses.fields(value)
            }
            return _walk_mapping(fields, depth, seen, owner=value)
        return redact_text(repr(value))
    except Exception:
        return UNREDACTABLE


def _walk_mapping(
    mapping: Mapping[object, object], depth: int, seen: set[int], owner: object = None
) -> dict[object, object]:
    marker = id(owner if owner is not None else mapping)
    seen.add(marker)
    try:
        out: dict[object, object] = {}
        for index, (key, item) in enumerate(mapping.items()):
            if index >= _MAX_ITEMS:
                out["[TRUNCATED]"] = f"{len(mapping) - index} more"
                break
            safe_key = redact_text(key) if isinstance(key, str) else key
            out[safe_key] = _keyed(key, item, depth + 1, seen)
        return out
    finally:
        seen.discard(marker)


def _walk_sequence(
    items: list[object] | tuple[object, ...] | set[object] | frozenset[object],
    depth: int,
    seen: set[int],
) -> object:
    seen.add(id(items))
    try:
        # a header list of (name, value) pairs is judged by each pair's name
        if (
            isinstance(items, tuple | list)
            and len(items) == 2
            and isinstance(items[0], str)
            and classify_key(items[0]) == "secret"
        ):
            pair = [items[0], _keyed(items[0], items[1], depth + 1, seen)]
            return tuple(pair) if isinstance(items, tuple) else pair
        out = [
            _redact(item, depth + 1, seen) for index, item in enumerate(items) if index < _MAX_ITEMS
        ]
        if len(items) > _MAX_ITEMS:
            out.append(f"[TRUNCATED {len(items) - _MAX_ITEMS} more]")
        return tuple(out) if isinstance(items, tuple) else out
    finally:
        seen.discard(id(items))
