"""What the gateway keeps of Jira's lifecycle and webhook bodies: ids and configuration only.

Jira's bodies carry display names, email addresses, issue text and comment bodies. None of it
goes on the bus: the workers read what they show from Jira REST (as the app or the linked
user, so Jira's permissions apply at the time of use), and a message on the bus, a dead-letter
queue or a replay never holds personal data or content. Everything kept is type-checked and
length-capped; a wrong type on an optional field drops that field, a wrong or missing
*required* field is a :class:`BadPayload` (400).

**Webhook ``data``** (event type ``jira.webhook``; session ``<clientKey>:<issueId>``)::

    clientKey, event ("jira:issue_updated", "comment_created", …), issueEventTypeName,
    timestamp (ms), actorAccountId,
    delivery: {identifier, retry, flow},
    issue: {id, key, projectId, projectKey, issueTypeId, statusId, priorityId, resolutionId,
            securityLevelId, parentId, parentKey, assigneeAccountId, reporterAccountId,
            created, updated},
    changelog: {id, items: [{field, fieldId, fieldtype, from, to}]}   (no fromString/toString:
                                                                       they are display text)
    comment: {id, authorAccountId, updateAuthorAccountId, created, updated, jsdPublic,
              visibility: {type, value}}

``issue.securityLevelId`` and ``comment.visibility`` stay because the jira-worker must not show
a channel what its audience may not see. A field Jira did not send (or sent with the wrong
type) is left out, never ``null``; only ``clientKey``, ``event``, ``delivery`` and ``issue.id``
are always there. Ids are strings of digits, times are Jira's own strings (ms for
``timestamp``).

**Lifecycle ``data``** (``jira.lifecycle.<eventType>``; session ``<clientKey>``)::

    clientKey, eventType, key, baseUrl, displayUrl, oauthClientId,
    sharedSecretSealed (installed only: base64 of the sealed blob, see tenants.py),
    signedInstall: {kid, issuedAt, accountId}   (installed/uninstalled only)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from dfj_gateway.jira.connect_jwt import CLIENT_KEY_PATTERN

__all__ = [
    "BadPayload",
    "LifecycleBody",
    "WebhookDelivery",
    "account_id",
    "changelog_data",
    "comment_data",
    "issue_data",
    "lifecycle_body",
    "pruned",
    "short_text",
    "webhook_data",
]

MAX_SHARED_SECRET: Final = 256
MAX_CHANGELOG_ITEMS: Final = 100
_ID: Final = re.compile(r"^[0-9]{1,20}$")
_ISSUE_KEY: Final = re.compile(r"^[A-Z][A-Z0-9_]{0,254}-[0-9]{1,20}$")
_ACCOUNT_ID: Final = re.compile(r"^[A-Za-z0-9:_-]{1,128}$")
_TOKEN: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class BadPayload(ValueError):
    """The body lacks a required field or has one of the wrong shape; the message says which."""


# --- small typed readers ------------------------------------------------------------------
# (public: Forge's product events carry issue/changelog/comment objects of the same shapes)


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def short_text(value: object, limit: int = 255) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _ident(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        value = str(value)
    return value if isinstance(value, str) and _ID.match(value) else None


def account_id(value: object) -> str | None:
    """The well-formed ``accountId`` of a user object, or None."""
    found = _obj(value).get("accountId")
    return found if isinstance(found, str) and _ACCOUNT_ID.match(found) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def pruned(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _http_url(value: object, limit: int = 2048) -> str | None:
    text = short_text(value, limit)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    return text if parts.scheme in {"https", "http"} and parts.hostname else None


# --- lifecycle ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class LifecycleBody:
    """The fields of a lifecycle body the gateway reads (the secret is hidden from repr)."""

    client_key: str
    event_type: str
    key: str
    base_url: str
    display_url: str | None
    oauth_client_id: str | None
    shared_secret: str | None = None

    def __repr__(self) -> str:
        return f"LifecycleBody(client_key={self.client_key!r}, event_type={self.event_type!r})"


def lifecycle_body(body: Mapping[str, Any], *, event_type: str) -> LifecycleBody:
    """Validate a lifecycle body for the route of ``event_type``."""
    client_key = body.get("clientKey")
    if not isinstance(client_key, str) or not CLIENT_KEY_PATTERN.match(client_key):
        raise BadPayload("clientKey missing or malformed")
    if body.get("eventType") != event_type:
        raise BadPayload("eventType does not match the route")
    key = short_text(body.get("key"), 80)
    if key is None:
        raise BadPayload("key missing")
    base_url = _http_url(body.get("baseUrl"))
    if base_url is None:
        raise BadPayload("baseUrl missing or malformed")
    secret: str | None = None
    if event_type == "installed":
        raw = body.get("sharedSecret")
        if not isinstance(raw, str) or not 0 < len(raw) <= MAX_SHARED_SECRET:
            raise BadPayload("sharedSecret missing or malformed")
        secret = raw
    return LifecycleBody(
        client_key=client_key,
        event_type=event_type,
        key=key,
        base_url=base_url,
        display_url=_http_url(body.get("displayUrl")),
        oauth_client_id=short_text(body.get("oauthClientId")),
        shared_secret=secret,
    )


# --- webhooks -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookDelivery:
    """Jira's delivery headers: the identifier (same across retries), retry count and flow."""

    identifier: str | None
    retry: int | None
    flow: str | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> WebhookDelivery:
        """Read ``X-Atlassian-Webhook-*``; a malformed identifier is a :class:`BadPayload`."""
        identifier = headers.get("X-Atlassian-Webhook-Identifier")
        if identifier is not None and not _TOKEN.match(identifier):
            raise BadPayload("X-Atlassian-Webhook-Identifier malformed")
        raw_retry = headers.get("X-Atlassian-Webhook-Retry")
        retry = int(raw_retry) if raw_retry is not None and raw_retry.isdigit() else None
        flow = headers.get("X-Atlassian-Webhook-Flow")
        return cls(
            identifier=identifier,
            retry=retry if retry is not None and retry < 1000 else None,
            flow=flow if flow is not None and _TOKEN.match(flow) and len(flow) <= 32 else None,
        )


def issue_data(value: object) -> dict[str, Any]:
    issue = _obj(value)
    issue_id = _ident(issue.get("id"))
    if issue_id is None:
        raise BadPayload("issue.id missing or malformed")
    fields = _obj(issue.get("fields"))
    project = _obj(fields.get("project"))
    parent = _obj(fields.get("parent"))
    key = issue.get("key")
    parent_key = parent.get("key")
    project_key = project.get("key")
    return pruned(
        {
            "id": issue_id,
            "key": key if isinstance(key, str) and _ISSUE_KEY.match(key) else None,
            "projectId": _ident(project.get("id")),
            "projectKey": short_text(project_key, 255),
            "issueTypeId": _ident(_obj(fields.get("issuetype")).get("id")),
            "statusId": _ident(_obj(fields.get("status")).get("id")),
            "priorityId": _ident(_obj(fields.get("priority")).get("id")),
            "resolutionId": _ident(_obj(fields.get("resolution")).get("id")),
            "securityLevelId": _ident(_obj(fields.get("security")).get("id")),
            "parentId": _ident(parent.get("id")),
            "parentKey": parent_key
            if isinstance(parent_key, str) and _ISSUE_KEY.match(parent_key)
            else None,
            "assigneeAccountId": account_id(fields.get("assignee")),
            "reporterAccountId": account_id(fields.get("reporter")),
            "created": short_text(fields.get("created"), 64),
            "updated": short_text(fields.get("updated"), 64),
        }
    )


def changelog_data(value: object) -> dict[str, Any] | None:
    changelog = _obj(value)
    raw_items = changelog.get("items")
    if not changelog or not isinstance(raw_items, list):
        return None
    items = [
        pruned(
            {
                "field": short_text(item.get("field")),
                "fieldId": short_text(item.get("fieldId")),
                "fieldtype": short_text(item.get("fieldtype"), 64),
                "from": short_text(item.get("from"), 1024),
                "to": short_text(item.get("to"), 1024),
            }
        )
        for item in (_obj(i) for i in raw_items[:MAX_CHANGELOG_ITEMS])
    ]
    return {"id": _ident(changelog.get("id")), "items": [i for i in items if i]}


def comment_data(value: object) -> dict[str, Any] | None:
    comment = _obj(value)
    comment_id = _ident(comment.get("id"))
    if comment_id is None:
        return None
    visibility = _obj(comment.get("visibility"))
    jsd_public = comment.get("jsdPublic")
    return pruned(
        {
            "id": comment_id,
            "authorAccountId": account_id(comment.get("author")),
            "updateAuthorAccountId": account_id(comment.get("updateAuthor")),
            "created": short_text(comment.get("created"), 64),
            "updated": short_text(comment.get("updated"), 64),
            "jsdPublic": jsd_public if isinstance(jsd_public, bool) else None,
            "visibility": pruned(
                {
                    "type": short_text(visibility.get("type"), 32),
                    "value": short_text(visibility.get("value") or visibility.get("identifier")),
                }
            )
            or None,
        }
    )


def webhook_data(
    body: Mapping[str, Any], *, client_key: str, event: str, delivery: WebhookDelivery
) -> dict[str, Any]:
    """The event data of a webhook whose path said ``event`` (ids, keys and times only)."""
    if body.get("webhookEvent") != event:
        raise BadPayload("webhookEvent does not match the route")
    data: dict[str, Any] = {
        "clientKey": client_key,
        "event": event,
        "issueEventTypeName": short_text(body.get("issue_event_type_name"), 64),
        "timestamp": _int(body.get("timestamp")),
        "actorAccountId": account_id(body.get("user")),
        "delivery": pruned(
            {"identifier": delivery.identifier, "retry": delivery.retry, "flow": delivery.flow}
        ),
        "issue": issue_data(body.get("issue")),
        "changelog": changelog_data(body.get("changelog")),
        "comment": comment_data(body.get("comment")),
    }
    return pruned(data)
