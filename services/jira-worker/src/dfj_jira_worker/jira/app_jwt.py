"""The HS256 JWT that authenticates one request to Jira as the app (reference §4.1).

Connect has no long-lived app token: every call carries its own JWT, signed with the site's
shared secret (its raw UTF-8 bytes as the HMAC key) and bound to that one request by the
``qsh`` claim — the hash of method, path (relative to the site's base URL) and query, see
:mod:`dfj_common.qsh`. The JSON body is not covered. Claims: ``iss`` = the app key (not the
clientKey), ``iat``, ``exp`` = ``iat`` + 180 s (Jira's convention, checked with 30 s leeway on
its side), ``qsh``. No ``sub``: acting as a user goes through the JWT-bearer grant instead
(:mod:`.user_tokens`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import jwt

from dfj_common.config import Secret
from dfj_common.qsh import qsh

__all__ = ["APP_TOKEN_LIFETIME", "app_token"]

APP_TOKEN_LIFETIME: Final = 180  # seconds


def app_token(
    *,
    app_key: str,
    shared_secret: Secret,
    method: str,
    path: str,
    params: Iterable[tuple[str, str]],
    now: float,
) -> str:
    """A JWT for ``method path?params``; ``path`` is raw (as sent) and relative to the site."""
    issued = int(now)
    claims = {
        "iss": app_key,
        "iat": issued,
        "exp": issued + APP_TOKEN_LIFETIME,
        "qsh": qsh(method, path, params),
    }
    return jwt.encode(claims, shared_secret.reveal().encode("utf-8"), algorithm="HS256")
