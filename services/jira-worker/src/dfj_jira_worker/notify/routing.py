"""Which subscriptions an event goes to, and what a channel's audience may be shown.

**Event-type vocabulary** (the strings in ``Subscription.event_types``; this module is the one
place that defines them — commands that create subscriptions should offer exactly these):

=====================  ======================================================================
``issue_created``      an issue was created
``issue_updated``      any field of an issue changed (includes the two below)
``status_changed``     an update whose changelog moves the status
``assigned``           an update whose changelog changes the assignee (unassigning included)
``issue_deleted``      an issue was deleted
``comment_created``    a comment was added
``comment_updated``    a comment was edited
``comment_deleted``    a comment was deleted
=====================  ======================================================================

Names are compared case-insensitively and a ``jira:`` prefix is ignored, so Jira's own
``jira:issue_created`` works too. Unknown names match nothing. An ``issue_updated`` event whose
changelog is empty matches nothing: Jira sends one beside every ``comment_*`` event (its
``issue_event_type_name`` is ``issue_commented`` …) and for work logs, and the comment events
already say what happened.

**Issue types** (``Subscription.issue_types``): entries of digits are issue type ids, anything
else an issue type name (case-insensitive); empty means every type. The webhook carries the id
only, so a name can be decided only after the issue read; for a deleted issue (never read) a
name filter that the id did not already satisfy does not match.

**JQL**: a subscription with ``jql`` receives an event only if Jira's ``/rest/api/3/jql/match``
says the issue matches. A deleted issue cannot be matched, so deletions go to subscriptions
*without* JQL only — a filtered channel never hears of an issue it may have filtered out.

**Audience rule.** An issue with a security level, or a comment with a visibility restriction
(or an internal Service Management comment, ``jsdPublic: false``), is *restricted*: the channel
may hold people Jira would not show it to. Restricted events are withheld, unless the
subscription's ``event_types`` holds the marker ``restricted:key-only`` — then they are posted
as a minimal message: the issue key and a link, no summary, fields, names or comment text (Jira
checks the reader's permissions when the link is opened). The marker is not an event type; it
only changes how restricted events of the types listed beside it are shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Final

from dfj_common.storage import Subscription
from dfj_jira_worker.notify.events import Change, CommentRef, EventKind
from dfj_jira_worker.notify.reads import CommentView, IssueView

__all__ = [
    "ASSIGNED",
    "EVENT_TYPES",
    "KEY_ONLY_MARKER",
    "STATUS_CHANGED",
    "Presentation",
    "event_kinds",
    "issue_type_matches",
    "key_only",
    "presentation",
    "restricted",
    "subscribed_to",
]

STATUS_CHANGED: Final = "status_changed"
ASSIGNED: Final = "assigned"
KEY_ONLY_MARKER: Final = "restricted:key-only"
#: Every event-type name a subscription may hold (the marker aside).
EVENT_TYPES: Final = frozenset({*(k.value for k in EventKind), STATUS_CHANGED, ASSIGNED})


class Presentation(Enum):
    """How one subscription receives one event."""

    FULL = "full"
    KEY_ONLY = "key-only"
    WITHHELD = "withheld"


def _normalised(name: str) -> str:
    name = name.strip().lower()
    return name.removeprefix("jira:")


def event_kinds(change: Change) -> frozenset[str]:
    """The vocabulary names this event counts as (empty: no subscription wants it)."""
    if change.kind is not EventKind.ISSUE_UPDATED:
        return frozenset({change.kind.value})
    if not change.items:
        return frozenset()
    kinds = {EventKind.ISSUE_UPDATED.value}
    if change.item("status") is not None:
        kinds.add(STATUS_CHANGED)
    if change.item("assignee") is not None:
        kinds.add(ASSIGNED)
    return frozenset(kinds)


def subscribed_to(subscription: Subscription, kinds: Iterable[str]) -> bool:
    """Whether the subscription lists one of ``kinds``."""
    wanted = {_normalised(t) for t in subscription.event_types}
    return not wanted.isdisjoint(kinds)


def key_only(subscription: Subscription) -> bool:
    """Whether restricted events go to this subscription as a minimal message."""
    return any(_normalised(t) == KEY_ONLY_MARKER for t in subscription.event_types)


def issue_type_matches(
    subscription: Subscription, type_id: str | None, type_name: str | None
) -> bool | None:
    """True or False when decided; None when only the issue type's name (unknown yet) can tell."""
    entries = [e.strip() for e in subscription.issue_types if e.strip()]
    if not entries:
        return True
    ids = {e for e in entries if e.isdigit()}
    names = {e.casefold() for e in entries if not e.isdigit()}
    if type_id is not None and type_id in ids:
        return True
    if not names:
        return False
    if type_name is None:
        return None
    return type_name.casefold() in names


def restricted(
    change: Change, issue: IssueView | None = None, comment: CommentView | None = None
) -> bool:
    """Whether the event is restricted, by what the webhook and the reads say (either suffices)."""
    ref: CommentRef | None = change.comment if change.kind.is_comment else None
    return (
        change.security_level_id is not None
        or (issue is not None and issue.restricted)
        or (ref is not None and ref.restricted)
        or (comment is not None and comment.restricted)
    )


def presentation(subscription: Subscription, *, is_restricted: bool) -> Presentation:
    """The audience rule for one subscription."""
    if not is_restricted:
        return Presentation.FULL
    return Presentation.KEY_ONLY if key_only(subscription) else Presentation.WITHHELD
