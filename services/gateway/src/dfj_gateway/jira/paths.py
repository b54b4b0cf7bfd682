"""The URL paths of the Connect app, relative to its ``baseUrl`` — one place for both sides.

The descriptor tells Jira where to call (lifecycle, webhooks, pages) and the route table in
``routes.py`` serves exactly these paths, so the two cannot drift apart.

Webhooks get **one path per event** (``/jira/webhooks/issue-created`` …) rather than one route
with the event read from the body: the qsh of a Connect JWT covers the path but not the body,
so with the event in the path the event type is part of what Jira signed. The body's
``webhookEvent`` must agree with the path (else 400).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "CONFIG_PAGE",
    "CONTEXT_API",
    "DESCRIPTOR",
    "LIFECYCLE",
    "LINK_PAGE",
    "LINK_PAGE_KEY",
    "WEBHOOKS",
    "webhook_path",
]

DESCRIPTOR: Final = "/atlassian-connect.json"

# Lifecycle event type (the body's eventType) → path.
LIFECYCLE: Final[Mapping[str, str]] = MappingProxyType(
    {
        "installed": "/jira/lifecycle/installed",
        "uninstalled": "/jira/lifecycle/uninstalled",
        "enabled": "/jira/lifecycle/enabled",
        "disabled": "/jira/lifecycle/disabled",
    }
)

# Path slug → Jira webhook event: what the workers consume.
WEBHOOKS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "issue-created": "jira:issue_created",
        "issue-updated": "jira:issue_updated",
        "issue-deleted": "jira:issue_deleted",
        "comment-created": "comment_created",
        "comment-updated": "comment_updated",
        "comment-deleted": "comment_deleted",
    }
)

CONFIG_PAGE: Final = "/jira/pages/config"
LINK_PAGE: Final = "/jira/pages/link"
#: The ``generalPage`` module of the link page: the linker's ``/jira link`` button opens
#: ``<site>/plugins/servlet/ac/<app key>/<LINK_PAGE_KEY>?ac.request=…``.
LINK_PAGE_KEY: Final = "dfj-link"
CONTEXT_API: Final = "/jira/api/context"


def webhook_path(slug: str) -> str:
    """The path Jira posts the webhook ``slug`` to."""
    return f"/jira/webhooks/{slug}"
