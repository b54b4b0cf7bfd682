"""Test helpers: find secrets that leaked into text (captured logs, rendered spans, responses),
and read back what a service published (:func:`drain`).

Used by the suite-wide autouse fixture that fails a test whose logs show a token, a JWT, an
email or a secret value the test knows about. The patterns are deliberately independent of the
redaction rules in :mod:`dfj_common._redact` (a second opinion, not the same code), and
redaction placeholders (``Bearer [REDACTED]``, ``jwt=[REDACTED]``) never match them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

if TYPE_CHECKING:
    from dfj_common.bus import Bus
    from dfj_common.envelope import Envelope

__all__ = ["MIN_KNOWN_SECRET_LENGTH", "SECRET_PATTERNS", "drain", "find_leaks"]

SECRET_PATTERNS: Final[Mapping[str, re.Pattern[str]]] = MappingProxyType(
    {
        "jwt": re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
        "bearer token": re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{8,}=*"),
        "bot token": re.compile(r"\bBot\s+[\w.-]{20,}"),
        "discord token": re.compile(r"(?<![\w-])[\w-]{24,}\.[\w-]{6}\.[\w-]{27,}"),
        "jwt parameter": re.compile(r"(?i)[?&]jwt=(?!\[|%5B)[^&\s'\"#]+"),
        "authorization header": re.compile(
            r"(?i)\bauthorization['\"]?\s*[:=]\s*['\"]?(?!\[REDACTED\])"
            r"(?:Bearer|Bot|Basic|JWT)\s+\S+"
        ),
        "email": re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
        ),
    }
)

MIN_KNOWN_SECRET_LENGTH: Final = 6
"""Known secrets shorter than this are not searched for (they would match by chance)."""


def find_leaks(text: str, known_secrets: Iterable[str] = ()) -> list[str]:
    """Describe every secret-shaped substring of ``text`` and every known secret found in it.

    Each finding names its kind and shows only a short prefix, so the report is not itself a
    leak. Known secrets are also looked for URL-encoded and JSON-escaped.
    """
    findings: list[str] = []
    for kind, pattern in SECRET_PATTERNS.items():
        for match in pattern.finditer(text):
            findings.append(f"{kind} at {match.start()}: {_preview(match.group(0))}")
    for index, secret in enumerate(known_secrets):
        if len(secret) < MIN_KNOWN_SECRET_LENGTH:
            continue
        forms = {secret, quote(secret, safe=""), json.dumps(secret)[1:-1]}
        for form in forms:
            position = text.find(form)
            if position >= 0:
                findings.append(f"known secret #{index} at {position}: {_preview(secret)}")
                break
    return list(dict.fromkeys(findings))


def _preview(value: str) -> str:
    return value[:4] + "…" if len(value) > 4 else "…"


async def drain(bus: Bus, queue: str) -> list[Envelope]:
    """Every message waiting on ``queue`` now, decoded, each completed as it is read."""
    from dfj_common.envelope import Envelope

    receiver = bus.receiver(queue)
    out: list[Envelope] = []
    try:
        while got := await receiver.receive(10, timeout=0):
            for delivery in got:
                out.append(Envelope.decode(delivery.body))
                await delivery.complete()
    finally:
        await receiver.close()
    return out
