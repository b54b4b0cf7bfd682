"""Discord's error answers: the JSON error codes and the nested ``Invalid Form Body`` shape.

Every refusal is ``{"code": <int>, "message": <str>}`` (``resources`` / ``topics/opcodes-and-
status-codes``); authentication failures use code 0 and the HTTP status as the message
(``{"message": "401: Unauthorized", "code": 0}``). A body that fails validation is 400 with
code 50035 and an ``errors`` tree that mirrors the body, with ``_errors`` at each offending
field::

    {"code": 50035, "message": "Invalid Form Body",
     "errors": {"embeds": {"0": {"title": {"_errors": [
         {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 256 or fewer in length."}]}}}}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from dfj_sandbox.discord_sim.openapi import FieldError

__all__ = [
    "ALREADY_ACKNOWLEDGED",
    "CANNOT_DM",
    "CANNOT_EDIT_OTHERS",
    "EMPTY_MESSAGE",
    "INVALID_FORM_BODY",
    "INVALID_JSON",
    "INVALID_RECIPIENTS",
    "INVALID_WEBHOOK_TOKEN",
    "MISSING_ACCESS",
    "MISSING_PERMISSIONS",
    "THREAD_ALREADY_CREATED",
    "UNKNOWN_CHANNEL",
    "UNKNOWN_GUILD",
    "UNKNOWN_INTERACTION",
    "UNKNOWN_MESSAGE",
    "UNKNOWN_WEBHOOK",
    "Refusal",
    "Reply",
    "error_reply",
    "error_tree",
    "form_error",
    "http_error",
]

UNKNOWN_CHANNEL: Final = 10003
UNKNOWN_GUILD: Final = 10004
UNKNOWN_MESSAGE: Final = 10008
UNKNOWN_WEBHOOK: Final = 10015
UNKNOWN_INTERACTION: Final = 10062
ALREADY_ACKNOWLEDGED: Final = 40060
MISSING_ACCESS: Final = 50001
CANNOT_EDIT_OTHERS: Final = 50005
EMPTY_MESSAGE: Final = 50006
CANNOT_DM: Final = 50007
MISSING_PERMISSIONS: Final = 50013
INVALID_WEBHOOK_TOKEN: Final = 50027
INVALID_RECIPIENTS: Final = 50033
INVALID_FORM_BODY: Final = 50035
INVALID_JSON: Final = 50109
THREAD_ALREADY_CREATED: Final = 160004

_MESSAGES: Final[Mapping[int, str]] = {
    UNKNOWN_CHANNEL: "Unknown Channel",
    UNKNOWN_GUILD: "Unknown Guild",
    UNKNOWN_MESSAGE: "Unknown Message",
    UNKNOWN_WEBHOOK: "Unknown Webhook",
    UNKNOWN_INTERACTION: "Unknown interaction",
    ALREADY_ACKNOWLEDGED: "Interaction has already been acknowledged.",
    MISSING_ACCESS: "Missing Access",
    CANNOT_EDIT_OTHERS: "Cannot edit a message authored by another user",
    EMPTY_MESSAGE: "Cannot send an empty message",
    CANNOT_DM: "Cannot send messages to this user",
    MISSING_PERMISSIONS: "Missing Permissions",
    INVALID_WEBHOOK_TOKEN: "Invalid Webhook Token",
    INVALID_RECIPIENTS: "Invalid Recipient(s)",
    INVALID_FORM_BODY: "Invalid Form Body",
    INVALID_JSON: "The request body contains invalid JSON.",
    THREAD_ALREADY_CREATED: "A thread has already been created for this message",
}

_HTTP: Final[Mapping[int, str]] = {
    401: "401: Unauthorized",
    404: "404: Not Found",
    405: "405: Method Not Allowed",
    500: "500: Internal Server Error",
    502: "502: Bad Gateway",
    503: "503: Service Unavailable",
    504: "504: Gateway Timeout",
}


@dataclass(frozen=True, kw_only=True)
class Reply:
    """Status, JSON body (None for none) and extra headers of one answer."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


class Refusal(Exception):
    """Raised by a handler to answer with a Discord error."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status, reply.body)
        self.reply = reply


def error_reply(status: int, code: int, message: str | None = None) -> Reply:
    """``{"code", "message"}`` with Discord's wording for ``code``."""
    return Reply(status=status, body={"code": code, "message": message or _MESSAGES[code]})


def http_error(status: int) -> Reply:
    """The code-0 answers (``401: Unauthorized``, ``404: Not Found``, 5xx)."""
    return Reply(status=status, body={"message": _HTTP.get(status, f"{status}: Error"), "code": 0})


def error_tree(errors: Iterable[FieldError]) -> dict[str, Any]:
    """The nested ``errors`` object of an Invalid Form Body answer.

    A field that fails as a whole (a list too long) is reported alone: errors inside it are
    dropped, so a node holds either ``_errors`` or fields, never both.
    """
    tree: dict[str, Any] = {}
    failed: set[tuple[str, ...]] = set()
    for error in sorted(errors, key=lambda e: len(e.path)):
        path = tuple(str(step) for step in error.path)
        if any(path[:n] in failed for n in range(len(path))):
            continue
        node = tree
        for step in path:
            node = node.setdefault(step, {})
        if any(key != "_errors" for key in node):
            continue
        failed.add(path)
        node.setdefault("_errors", []).append({"code": error.code, "message": error.message})
    return tree


def form_error(errors: Iterable[FieldError]) -> Reply:
    """400, code 50035, with the field errors as Discord nests them."""
    return Reply(
        status=400,
        body={
            "code": INVALID_FORM_BODY,
            "message": _MESSAGES[INVALID_FORM_BODY],
            "errors": error_tree(errors),
        },
    )
