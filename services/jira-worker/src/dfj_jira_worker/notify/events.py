"""A ``jira.webhook`` envelope's ``data``, read into a typed :class:`Change`.

The gateway keeps only ids, keys and times of Jira's webhook body (see
``dfj_gateway.jira.payloads``): no summaries, names or comment text, which the notifier reads
from Jira REST when it renders. This module trusts nothing it is given: a field of the wrong
type is treated as absent. Only what the pipeline cannot work without is required —
``clientKey``, a known ``event`` and ``issue.id`` — and its absence is a
:class:`~dfj_common.errors.MalformedMessage` (dead-lettered with the reason, kept for replay).

Changelog items name the field (``fieldId`` when Jira sent one, else the lower-cased
``field``) and carry ``from``/``to`` as ids (status ids, account ids, priority ids); display
strings were dropped at the gateway.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from dfj_common.envelope import Envelope
from dfj_common.errors import MalformedMessage

__all__ = ["WEBHOOK_EVENT_TYPE", "Change", "CommentRef", "EventKind", "FieldChange", "read_change"]

#: The envelope type the gateway publishes Jira webhooks as.
WEBHOOK_EVENT_TYPE: Final = "jira.webhook"
_ID: Final = re.compile(r"^[0-9]{1,20}$")


class EventKind(StrEnum):
    """What happened, from Jira's ``webhookEvent``."""

    ISSUE_CREATED = "issue_created"
    ISSUE_UPDATED = "issue_updated"
    ISSUE_DELETED = "issue_deleted"
    COMMENT_CREATED = "comment_created"
    COMMENT_UPDATED = "comment_updated"
    COMMENT_DELETED = "comment_deleted"

    @property
    def is_comment(self) -> bool:
        return self in _COMMENT_KINDS


_COMMENT_KINDS: Final = frozenset(
    {EventKind.COMMENT_CREATED, EventKind.COMMENT_UPDATED, EventKind.COMMENT_DELETED}
)
_WEBHOOK_EVENTS: Final[Mapping[str, EventKind]] = {
    "jira:issue_created": EventKind.ISSUE_CREATED,
    "jira:issue_updated": EventKind.ISSUE_UPDATED,
    "jira:issue_deleted": EventKind.ISSUE_DELETED,
    "comment_created": EventKind.COMMENT_CREATED,
    "comment_updated": EventKind.COMMENT_UPDATED,
    "comment_deleted": EventKind.COMMENT_DELETED,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class FieldChange:
    """One changelog item: which field, and the ids it went from and to (None = empty).

    ``field`` is the key to match on (Jira's ``fieldId``, e.g. ``status``, ``assignee``,
    ``customfield_10020``; the lower-cased name when Jira sent no id); ``name`` is the field's
    name as Jira labels it (``Sprint``), for showing which fields changed.
    """

    field: str
    name: str
    from_id: str | None = None
    to_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CommentRef:
    """The comment of a comment event, as ids plus what decides who may see it."""

    id: str
    author_account_id: str | None = None
    visibility_type: str | None = None
    visibility_value: str | None = None
    jsd_public: bool | None = None

    @property
    def restricted(self) -> bool:
        """Visible to a group or role only, or an internal Service Management note."""
        return self.visibility_type is not None or self.jsd_public is False


@dataclass(frozen=True, kw_only=True, slots=True)
class Change:
    """One Jira webhook event, typed: the issue's ids, what changed, and the comment if any."""

    client_key: str
    kind: EventKind
    issue_id: str
    occurred_at: datetime
    issue_key: str | None = None
    project_key: str | None = None
    issue_type_id: str | None = None
    status_id: str | None = None
    security_level_id: str | None = None
    updated: str | None = None
    actor_account_id: str | None = None
    event_type_name: str | None = None
    items: tuple[FieldChange, ...] = ()
    comment: CommentRef | None = None

    def item(self, field: str) -> FieldChange | None:
        """The last change of ``field`` in the changelog (a field may appear more than once)."""
        found = None
        for item in self.items:
            if item.field == field:
                found = item
        return found

    @property
    def numeric_issue_id(self) -> int:
        return int(self.issue_id)


def read_change(envelope: Envelope) -> Change:
    """The :class:`Change` of a ``jira.webhook`` envelope; ``MalformedMessage`` if unusable."""
    data = envelope.data
    client_key = _text(data.get("clientKey"))
    if client_key is None:
        raise MalformedMessage("webhook event lacks clientKey", reason="WebhookField")
    event = data.get("event")
    kind = _WEBHOOK_EVENTS.get(event) if isinstance(event, str) else None
    if kind is None:
        # Kept for replay by a version that knows it, rather than dropped.
        raise MalformedMessage("webhook event of an unknown kind", reason="UnknownWebhookEvent")
    issue = _obj(data.get("issue"))
    issue_id = _ident(issue.get("id"))
    if issue_id is None:
        raise MalformedMessage("webhook event lacks issue.id", reason="WebhookField")
    return Change(
        client_key=client_key,
        kind=kind,
        issue_id=issue_id,
        occurred_at=_occurred_at(data.get("timestamp"), envelope.time),
        issue_key=_text(issue.get("key")),
        project_key=_text(issue.get("projectKey")),
        issue_type_id=_ident(issue.get("issueTypeId")),
        status_id=_ident(issue.get("statusId")),
        security_level_id=_ident(issue.get("securityLevelId")),
        updated=_text(issue.get("updated")),
        actor_account_id=_text(data.get("actorAccountId")),
        event_type_name=_text(data.get("issueEventTypeName")),
        items=_items(data.get("changelog")),
        comment=_comment(data.get("comment")),
    )


def _items(value: object) -> tuple[FieldChange, ...]:
    items = _obj(value).get("items")
    out: list[FieldChange] = []
    for raw in items if isinstance(items, list) else ():
        item = _obj(raw)
        field_id, name = _text(item.get("fieldId")), _text(item.get("field"))
        key = field_id or (name.lower() if name else None)
        if key is None:
            continue
        out.append(
            FieldChange(
                field=key,
                name=name or key,
                from_id=_text(item.get("from")),
                to_id=_text(item.get("to")),
            )
        )
    return tuple(out)


def _comment(value: object) -> CommentRef | None:
    comment = _obj(value)
    comment_id = _ident(comment.get("id"))
    if comment_id is None:
        return None
    visibility = _obj(comment.get("visibility"))
    jsd_public = comment.get("jsdPublic")
    return CommentRef(
        id=comment_id,
        author_account_id=_text(comment.get("authorAccountId")),
        # Any visibility restricts, even one whose type we cannot read.
        visibility_type=(_text(visibility.get("type")) or "?") if visibility else None,
        visibility_value=_text(visibility.get("value")),
        jsd_public=jsd_public if isinstance(jsd_public, bool) else None,
    )


def _occurred_at(timestamp: object, fallback: datetime) -> datetime:
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        try:
            return datetime.fromtimestamp(timestamp / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    return fallback.astimezone(UTC)


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _ident(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    return value if isinstance(value, str) and _ID.match(value) else None
