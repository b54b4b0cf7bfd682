"""What a Jira call can fail with, split the way the worker runtime settles messages.

The classes subclass :mod:`dfj_common.errors`, so a handler can simply let them propagate:

- ``JiraBadRequest`` — 400 (also 413, 422): dead-lettered with its ``reason``;
- ``JiraUnauthorized`` — 401, or the token endpoint refusing to impersonate the user;
- ``JiraForbidden`` — 403; ``JiraNotFound`` — 404 or 410;
- ``JiraInstallationIncomplete`` — the stored installation lacks a base URL, a secret that
  opens, or the OAuth client id that user calls need;
- ``JiraRateLimited`` — 429 or 503: retried after ``retry_after`` (``Retry-After`` in seconds
  or as an HTTP date; a default when absent; capped);
- ``JiraUnavailable`` — other 5xx, 409, time-outs, connection errors, an answer that is not
  JSON: retried with back-off.

Two texts per error, kept apart on purpose. The exception *message* (``str(exc)``) ends up in
logs and in dead-letter descriptions, so it holds only the status, the method and the route
template — never Jira's own wording, which can quote user input. ``user_message`` is a short
sentence for the Discord user who asked; for a 400 it is built from Jira's ``errorMessages``
and ``errors`` (redacted, capped), because that is what tells the user which field was wrong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Final

from dfj_common.errors import PermanentError, RateLimited, TransientError
from dfj_common.logging import redact_text

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "MAX_RETRY_AFTER",
    "MAX_USER_MESSAGE",
    "JiraBadRequest",
    "JiraError",
    "JiraForbidden",
    "JiraInstallationIncomplete",
    "JiraNotFound",
    "JiraRateLimited",
    "JiraTokenPending",
    "JiraUnauthorized",
    "JiraUnavailable",
    "error_for_status",
    "jira_user_message",
    "retry_after_seconds",
]

DEFAULT_RETRY_AFTER: Final = 5.0  # seconds, when a 429/503 says nothing
MAX_RETRY_AFTER: Final = 300.0  # a longer wait is still retried, just sooner
MIN_RETRY_AFTER: Final = 1.0
MAX_USER_MESSAGE: Final = 300
_SPACES: Final = re.compile(r"\s+")
_ELLIPSIS: Final = "…"


class JiraError(PermanentError):
    """Jira refused in a way that retrying will not change; ``user_message`` can be shown."""

    default_user_message: str = "Jira couldn't do that."

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        user_message: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason or type(self).__name__)
        self.status = status
        self.user_message = user_message or self.default_user_message


class JiraBadRequest(JiraError):
    """Jira rejected the request's content (a missing field, invalid JQL, …)."""

    default_user_message = "Jira rejected the request."


class JiraUnauthorized(JiraError):
    """Jira (or its token endpoint) did not accept our credentials for this site or user."""

    default_user_message = (
        "Jira didn't accept the credentials for your account; linking your Jira account "
        "again may be needed."
    )


class JiraForbidden(JiraError):
    """The acting Jira user lacks a permission; Jira decided, we only relay it."""

    default_user_message = "You don't have permission to do that in Jira."


class JiraNotFound(JiraError):
    """The thing does not exist, or the acting user may not see it (Jira does not say which)."""

    default_user_message = "That was not found in Jira, or you can't see it."


class JiraInstallationIncomplete(JiraError):
    """The stored installation lacks what the call needs (base URL, shared secret, …)."""

    default_user_message = (
        "This Jira site's connection is incomplete; a Jira admin may need to reinstall the app."
    )


class JiraRateLimited(RateLimited):
    """Jira asked us to slow down (429) or is overloaded (503): retry after ``retry_after``."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        status: int | None = 429,
        user_message: str | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.user_message = user_message or "Jira is busy right now; try again in a moment."


class JiraTokenPending(JiraRateLimited):
    """A Forge installation has no valid system token now; Forge's next call brings one.

    There is no endpoint to ask for a token: Forge hands one over with each event and with the
    hourly scheduled trigger. The job waits (``retry_after``) rather than fail.
    """

    def __init__(self, message: str, *, retry_after: float = 300.0) -> None:
        super().__init__(
            message,
            retry_after=retry_after,
            status=None,
            user_message=(
                "This Jira site's connection is waiting for Jira to renew its access; "
                "try again in a few minutes."
            ),
        )


class JiraUnavailable(TransientError):
    """Jira could not be reached or failed on its side; trying again later may work."""

    def __init__(
        self, message: str, *, status: int | None = None, user_message: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.user_message = user_message or "Jira didn't answer; try again in a moment."


def _cap(text: str, limit: int = MAX_USER_MESSAGE) -> str:
    text = _SPACES.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + _ELLIPSIS


def jira_user_message(body: bytes) -> str | None:
    """Jira's ``errorMessages`` and ``errors`` as one redacted, capped sentence (or None)."""
    try:
        decoded: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(decoded, Mapping):
        return None
    parts: list[str] = []
    messages = decoded.get("errorMessages")
    if isinstance(messages, list):
        parts.extend(m for m in messages if isinstance(m, str) and m.strip())
    errors = decoded.get("errors")
    if isinstance(errors, Mapping):
        for field, problem in errors.items():
            if isinstance(problem, str) and problem.strip():
                parts.append(f"{field}: {problem}")
    if not parts:
        return None
    # Capped before redaction too, so a huge body costs one bounded pass.
    return _cap(redact_text(_cap(" ".join(parts), 4 * MAX_USER_MESSAGE)))


def retry_after_seconds(header: str | None, *, now: float) -> float:
    """``Retry-After`` (delta seconds or an HTTP date) as seconds to wait, bounded."""
    if not header:
        return DEFAULT_RETRY_AFTER
    text = header.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER
        if when.tzinfo is None:  # an obsolete date form without a zone: HTTP dates are GMT
            return DEFAULT_RETRY_AFTER
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return DEFAULT_RETRY_AFTER
    return min(max(seconds, MIN_RETRY_AFTER), MAX_RETRY_AFTER)


def error_for_status(
    status: int,
    *,
    method: str,
    route: str,
    body: bytes,
    retry_after: str | None,
    now: float,
    as_user: bool,
    action: str = "do that",
    subject: str = "That",
) -> Exception:
    """The error for a non-2xx answer of Jira REST (``route`` is the path template)."""
    where = f"Jira answered {status} to {method} {route}"
    error: Exception
    if status in (400, 413, 422):
        error = JiraBadRequest(where, status=status, user_message=jira_user_message(body))
    elif status == 401:
        text = (
            None
            if as_user
            else "Jira didn't accept this app's credentials for the site; "
            "a Jira admin may need to reinstall the app."
        )
        error = JiraUnauthorized(where, status=status, user_message=text)
    elif status == 403:
        who = "You don't" if as_user else "The app doesn't"
        error = JiraForbidden(
            where, status=status, user_message=f"{who} have permission to {action} in Jira."
        )
    elif status in (404, 410):
        error = JiraNotFound(
            where,
            status=status,
            user_message=f"{subject} was not found in Jira, or you can't see it.",
        )
    elif status in (429, 503):
        error = JiraRateLimited(
            where, retry_after=retry_after_seconds(retry_after, now=now), status=status
        )
    elif status == 409 or status >= 500:
        error = JiraUnavailable(where, status=status)
    else:
        error = JiraError(where, status=status, reason="JiraUnexpectedStatus")
    return error
