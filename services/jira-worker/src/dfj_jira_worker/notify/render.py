"""The Discord message of a notification: a pure function of the event and what Jira says now.

One embed and one action row:

- title ``KEY: summary`` linking to ``{site}/browse/KEY`` (``site`` is the installation's
  ``displayUrl`` when it has one — the address people use — else its ``baseUrl``);
- a description that says what happened (and, for comments, a quoted excerpt of at most
  ``COMMENT_EXCERPT`` characters of plain text);
- fields: for an update, one per change of status, assignee or priority, ``Old → New`` — the
  changelog has only ids, and the issue read gives the *current* name, so an old value shows
  only when it was empty (``Unassigned → Ann``), else the change reads ``→ New``; if the issue
  has moved on since, the value says ``now X``. Other changed fields are listed by name.
  A new issue gets its status, priority, assignee and reporter;
- footer ``project · issue type``, and the time of the event;
- a Link button "Open in Jira" and the buttons ``assign-me:KEY``, ``comment:KEY`` and
  ``transition:KEY`` (the worker answers the last with a select of transitions).

Colours, by what happened (Discord wants an integer RGB):

===============================  ==========  =====================================
created                          ``CREATED``  green ``#2ECC71``
updated                          ``UPDATED``  blue ``#3498DB``
updated into a "done" status     ``DONE``     teal green ``#1ABC9C``
deleted                          ``DELETED``  grey ``#95A5A6``
comment created/edited/deleted   ``COMMENT``  purple ``#9B59B6``
restricted, key only             ``HIDDEN``   dark grey ``#4F545C``
===============================  ==========  =====================================

A deleted issue is rendered from ids and its key only (it can no longer be read): no link, no
buttons. A restricted event (see :mod:`.routing`) gets :func:`render_key_only`: the key and a
link, nothing read from Jira. Everything goes through :func:`~.limits.fit_message` last, so no
input — however long, or full of Markdown — makes a message Discord would refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any, Final
from urllib.parse import quote

from dfj_jira_worker.notify.events import Change, EventKind, FieldChange
from dfj_jira_worker.notify.limits import (
    FIELD_VALUE,
    LINK_STYLE,
    THREAD_NAME,
    fit_markdown,
    fit_message,
    truncate,
)
from dfj_jira_worker.notify.reads import COMMENT_EXCERPT, CommentView, IssueView

__all__ = [
    "COMMENT",
    "CREATED",
    "DELETED",
    "DONE",
    "HIDDEN",
    "UPDATED",
    "browse_url",
    "issue_title",
    "render_key_only",
    "render_notification",
    "thread_name",
]

CREATED: Final = 0x2ECC71
UPDATED: Final = 0x3498DB
DONE: Final = 0x1ABC9C
DELETED: Final = 0x95A5A6
COMMENT: Final = 0x9B59B6
HIDDEN: Final = 0x4F545C

SECONDARY_STYLE: Final = 2
ARROW: Final = "→"
_NO_MENTIONS: Final[Mapping[str, Any]] = {"parse": []}

# (changelog field, field title, what an empty value is called)
_SHOWN_CHANGES: Final = (
    ("status", "Status", "None"),
    ("assignee", "Assignee", "Unassigned"),
    ("priority", "Priority", "None"),
)
_HEADLINES: Final[Mapping[EventKind, str]] = {
    EventKind.ISSUE_CREATED: "Issue created",
    EventKind.ISSUE_UPDATED: "Issue updated",
    EventKind.ISSUE_DELETED: "Issue deleted",
    EventKind.COMMENT_CREATED: "Comment added",
    EventKind.COMMENT_UPDATED: "Comment edited",
    EventKind.COMMENT_DELETED: "Comment deleted",
}


def browse_url(site_url: str, key: str) -> str:
    """The address of an issue on its site."""
    return f"{site_url.rstrip('/')}/browse/{quote(key, safe='')}"


def issue_title(key: str, summary: str | None) -> str:
    """``KEY: summary``, or the key alone."""
    return f"{key}: {summary}" if summary else key


def thread_name(key: str, summary: str | None) -> str:
    """A thread's name for the issue (Discord allows 100 characters)."""
    return truncate(" ".join(issue_title(key, summary).split()), THREAD_NAME)


def render_notification(
    change: Change,
    *,
    issue: IssueView | None,
    comment: CommentView | None,
    site_url: str,
) -> dict[str, Any]:
    """The message for an event everyone in the channel may see."""
    key = _key(change, issue)
    deleted = change.kind is EventKind.ISSUE_DELETED
    summary = None if deleted or issue is None else issue.summary
    embed: dict[str, Any] = {
        "title": issue_title(key, summary) if key else f"Issue {change.issue_id}",
        "description": _description(change, issue, comment),
        "color": _colour(change, issue),
        "timestamp": _timestamp(change),
    }
    if key and not deleted:
        embed["url"] = browse_url(site_url, key)
    fields = _created_fields(issue) if change.kind is EventKind.ISSUE_CREATED else []
    if change.kind is EventKind.ISSUE_UPDATED:
        fields = _change_fields(change, issue)
    if fields:
        embed["fields"] = fields
    footer = _footer(change, issue)
    if footer:
        embed["footer"] = {"text": footer}
    components = [] if deleted or not key else [_actions(key, browse_url(site_url, key))]
    return fit_message(
        {"embeds": [embed], "components": components, "allowed_mentions": dict(_NO_MENTIONS)}
    )


def render_key_only(change: Change, *, issue_key: str | None, site_url: str) -> dict[str, Any]:
    """The minimal message for a restricted event: the key and a link, nothing from Jira."""
    noun = "comment" if change.kind.is_comment else "issue"
    embed: dict[str, Any] = {
        "title": issue_key or f"Issue {change.issue_id}",
        "description": (
            f"{_HEADLINES[change.kind]}. The details are hidden here: this {noun} is "
            "restricted in Jira."
        ),
        "color": HIDDEN,
        "timestamp": _timestamp(change),
    }
    components: list[dict[str, Any]] = []
    if issue_key and change.kind is not EventKind.ISSUE_DELETED:
        url = browse_url(site_url, issue_key)
        embed["url"] = url
        components.append({"type": 1, "components": [_link_button(url)]})
    return fit_message(
        {"embeds": [embed], "components": components, "allowed_mentions": dict(_NO_MENTIONS)}
    )


# --- parts ----------------------------------------------------------------------------------


def _key(change: Change, issue: IssueView | None) -> str | None:
    return change.issue_key or (issue.key if issue is not None else None)


def _description(change: Change, issue: IssueView | None, comment: CommentView | None) -> str:
    headline = _HEADLINES[change.kind]
    author = comment.author_name if comment is not None else None
    if change.kind is EventKind.COMMENT_CREATED and author:
        headline = f"{author} commented"
    elif change.kind is EventKind.COMMENT_UPDATED and author:
        headline = f"{author} edited a comment"
    elif change.kind is EventKind.ISSUE_CREATED and issue is not None and issue.issue_type_name:
        headline = f"New {issue.issue_type_name} created"
    lines = [fit_markdown(headline, 300)]
    if change.kind is EventKind.ISSUE_UPDATED:
        others = _other_changes(change)
        if others:
            lines.append(fit_markdown("Changed: " + ", ".join(others), 1000))
    if comment is not None and comment.excerpt and change.kind is not EventKind.COMMENT_DELETED:
        lines.append("")
        lines.extend(_quoted(comment.excerpt))
    return "\n".join(lines)


def _quoted(excerpt: str) -> list[str]:
    text = fit_markdown(excerpt, COMMENT_EXCERPT * 2)
    return [f"> {line}" for line in text.split("\n") if line.strip()]


def _other_changes(change: Change) -> list[str]:
    shown = {field for field, _, _ in _SHOWN_CHANGES}
    names: list[str] = []
    for item in change.items:
        if item.field in shown:
            continue
        name = item.name[:1].upper() + item.name[1:]
        if name not in names:
            names.append(name)
    return names


def _change_fields(change: Change, issue: IssueView | None) -> list[dict[str, Any]]:
    fields = []
    for field, title, empty in _SHOWN_CHANGES:
        item = change.item(field)
        if item is None:
            continue
        current_id, current_name = _current(issue, field)
        fields.append(
            {
                "name": title,
                "value": fit_markdown(_arrow(item, current_id, current_name, empty), FIELD_VALUE),
                "inline": True,
            }
        )
    return fields


def _arrow(item: FieldChange, current_id: str | None, current_name: str | None, empty: str) -> str:
    old = f"{empty} " if item.from_id is None else ""
    if item.to_id is None:
        new = empty
        if current_id is not None:
            new += f" (now {current_name or 'someone else'})"
    elif item.to_id == current_id:
        new = current_name or item.to_id
    else:
        new = f"now {current_name or empty}"
    return f"{old}{ARROW} {new}"


def _current(issue: IssueView | None, field: str) -> tuple[str | None, str | None]:
    if issue is None:
        return None, None
    if field == "status":
        return issue.status_id, issue.status_name
    if field == "assignee":
        return issue.assignee_id, issue.assignee_name
    return issue.priority_id, issue.priority_name


def _created_fields(issue: IssueView | None) -> list[dict[str, Any]]:
    if issue is None:
        return []
    values = (
        ("Status", issue.status_name or "None"),
        ("Priority", issue.priority_name or "None"),
        ("Assignee", issue.assignee_name or "Unassigned"),
        ("Reporter", issue.reporter_name or "Unknown"),
    )
    return [
        {"name": name, "value": fit_markdown(value, FIELD_VALUE), "inline": True}
        for name, value in values
    ]


def _colour(change: Change, issue: IssueView | None) -> int:
    if change.kind.is_comment:
        return COMMENT
    if change.kind is EventKind.ISSUE_CREATED:
        return CREATED
    if change.kind is EventKind.ISSUE_DELETED:
        return DELETED
    done = issue is not None and issue.status_category == "done"
    return DONE if done and change.item("status") is not None else UPDATED


def _footer(change: Change, issue: IssueView | None) -> str:
    project = (issue.project_name or issue.project_key) if issue is not None else None
    parts = [project or change.project_key, issue.issue_type_name if issue is not None else None]
    return " · ".join(p for p in parts if p)


def _timestamp(change: Change) -> str:
    return change.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _link_button(url: str) -> dict[str, Any]:
    return {"type": 2, "style": LINK_STYLE, "label": "Open in Jira", "url": url}


def _actions(key: str, url: str) -> dict[str, Any]:
    def button(label: str, action: str) -> dict[str, Any]:
        return {"type": 2, "style": SECONDARY_STYLE, "label": label, "custom_id": f"{action}:{key}"}

    return {
        "type": 1,
        "components": [
            _link_button(url),
            button("Assign to me", "assign-me"),
            button("Comment", "comment"),
            button("Transition", "transition"),
        ],
    }
