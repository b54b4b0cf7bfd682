"""What changed on a site, as typed records handed to the site's observers.

:class:`~dfj_sandbox.jira_sim.site.Site` stays synchronous: every change made through its
methods (by a test's builder call or by a REST handler, which calls the same methods) ends
with one :data:`Change` given to each callable in ``site.observers``. Whoever needs to react
asynchronously — the webhook dispatcher, which turns a change into signed HTTP deliveries —
does so on its own schedule; an observer only records or enqueues, and must neither block nor
change the site (it runs inside the change, before the caller gets its result).

The records carry the frozen model objects as they were right after the change, so a webhook
body built from them later still describes that moment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dfj_sandbox.jira_sim.model import Changelog, Comment, Issue

__all__ = [
    "Change",
    "CommentAdded",
    "CommentDeleted",
    "CommentUpdated",
    "IssueCreated",
    "IssueDeleted",
    "IssueUpdated",
    "Observer",
]


@dataclass(frozen=True, kw_only=True)
class IssueCreated:
    """An issue was created (``by``: who created it; None means its reporter)."""

    issue: Issue
    by: str | None
    at: float


@dataclass(frozen=True, kw_only=True)
class IssueUpdated:
    """Fields of an issue changed (only sent when the changelog has items)."""

    issue: Issue
    changelog: Changelog
    at: float


@dataclass(frozen=True, kw_only=True)
class IssueDeleted:
    """An issue was deleted (``issue`` is the record as it was)."""

    issue: Issue
    by: str | None
    at: float


@dataclass(frozen=True, kw_only=True)
class CommentAdded:
    """A comment was added (``issue`` already holds it)."""

    issue: Issue
    comment: Comment
    at: float


@dataclass(frozen=True, kw_only=True)
class CommentUpdated:
    """A comment's body was replaced (``comment`` is the new version)."""

    issue: Issue
    comment: Comment
    at: float


@dataclass(frozen=True, kw_only=True)
class CommentDeleted:
    """A comment was removed (``comment`` is the removed record; ``issue`` is without it)."""

    issue: Issue
    comment: Comment
    by: str | None
    at: float


Change = IssueCreated | IssueUpdated | IssueDeleted | CommentAdded | CommentUpdated | CommentDeleted
"""Every kind of change a site reports."""

Observer = Callable[[Change], None]
"""A callable told about every change; it must not raise, block or change the site."""
