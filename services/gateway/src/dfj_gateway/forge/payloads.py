"""What the gateway keeps of Forge's event bodies: the same ids-only data as Connect webhooks.

A Forge product event (reference forge.md §5, events-reference/jira) becomes a ``jira.webhook``
event whose ``data`` has exactly the shape the Connect path produces (see
:mod:`dfj_gateway.jira.payloads`), so the jira-worker handles both alike:

=============================  ===================================================
Forge ``eventType``            Connect ``event``
=============================  ===================================================
``avi:jira:created:issue``     ``jira:issue_created``
``avi:jira:updated:issue``     ``jira:issue_updated``
``avi:jira:deleted:issue``     ``jira:issue_deleted``
``avi:jira:commented:issue``   ``comment_created``, or ``comment_updated`` when the comment
                               was edited (its ``updated`` differs from ``created``)
``avi:jira:deleted:comment``   ``comment_deleted``
=============================  ===================================================

Forge's documentation shows the event both flat and nested under ``payload``; both are read.
Forge sends no delivery identifier: a retry is recognised by its body, which is the same on
every attempt except for ``retryContext`` (left out of the digest that names the event).
Forge bodies carry no event time either, so ``timestamp`` is taken from the comment's or the
issue's ``updated`` time when Jira sent one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import orjson

from dfj_gateway.jira.payloads import (
    BadPayload,
    account_id,
    changelog_data,
    comment_data,
    issue_data,
    pruned,
    short_text,
)

__all__ = [
    "CONNECT_EVENTS",
    "FORGE_INSTALLED",
    "FORGE_UPGRADED",
    "LIFECYCLE_EVENTS",
    "body_digest",
    "event_body",
    "event_data",
    "retry_count",
]

CONNECT_EVENTS: Final = {
    "avi:jira:created:issue": "jira:issue_created",
    "avi:jira:updated:issue": "jira:issue_updated",
    "avi:jira:deleted:issue": "jira:issue_deleted",
    "avi:jira:deleted:comment": "comment_deleted",
}
COMMENTED: Final = "avi:jira:commented:issue"
FORGE_INSTALLED: Final = "avi:forge:installed:app"
FORGE_UPGRADED: Final = "avi:forge:upgraded:app"
LIFECYCLE_EVENTS: Final = frozenset({FORGE_INSTALLED, FORGE_UPGRADED})
_JIRA_TIME: Final = "%Y-%m-%dT%H:%M:%S.%f%z"


def event_body(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event itself: ``body`` or, when Forge wrapped it, ``body["payload"]``."""
    inner = body.get("payload")
    if "eventType" not in body and isinstance(inner, Mapping):
        return inner
    return body


def retry_count(body: Mapping[str, Any]) -> int | None:
    """Forge's ``retryContext.retryCount`` (outer or inner), when it sent one."""
    for holder in (body, event_body(body)):
        context = holder.get("retryContext")
        if isinstance(context, Mapping):
            count = context.get("retryCount")
            if isinstance(count, int) and not isinstance(count, bool) and 0 <= count < 1000:
                return count
    return None


def body_digest(body: Mapping[str, Any]) -> str:
    """A digest of the event that is the same on each of Forge's retries of it."""
    event = {k: v for k, v in event_body(body).items() if k != "retryContext"}
    return hashlib.sha256(orjson.dumps(event, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _millis(value: object) -> int | None:
    text = short_text(value, 64)
    if text is None:
        return None
    try:
        return int(datetime.strptime(text, _JIRA_TIME).timestamp() * 1000)
    except ValueError:
        return None


def _event_name(event_type: str, comment: Mapping[str, Any] | None) -> str:
    if event_type == COMMENTED:
        if comment is None:
            raise BadPayload("comment missing")
        edited = comment.get("updated") and comment.get("updated") != comment.get("created")
        return "comment_updated" if edited else "comment_created"
    name = CONNECT_EVENTS.get(event_type)
    if name is None:
        raise BadPayload("eventType not handled")
    return name


def event_data(body: Mapping[str, Any], *, client_key: str, retry: int | None) -> dict[str, Any]:
    """The ``jira.webhook`` data of a Forge product event (ids, keys and times only)."""
    event = event_body(body)
    event_type = event.get("eventType")
    if not isinstance(event_type, str):
        raise BadPayload("eventType missing")
    comment = comment_data(event.get("comment"))
    name = _event_name(event_type, comment)
    issue = issue_data(event.get("issue"))
    raw_comment = _obj(event.get("comment"))
    fields = _obj(_obj(event.get("issue")).get("fields"))
    timestamp = _millis(raw_comment.get("updated")) if comment else None
    if timestamp is None:
        timestamp = _millis(fields.get("updated"))
    actor = event.get("atlassianId")
    data: dict[str, Any] = {
        "clientKey": client_key,
        "event": name,
        "issueEventTypeName": short_text(event.get("jiraEventTypeName"), 64),
        "timestamp": timestamp,
        "actorAccountId": account_id({"accountId": actor}),
        "delivery": pruned({"retry": retry, "flow": "forge"}),
        "issue": issue,
        "changelog": changelog_data(event.get("changelog")),
        "comment": comment,
    }
    return pruned(data)
