"""The Connect app descriptor (``GET /atlassian-connect.json``), built from settings.

Jira reads it when an administrator installs the app: who we are (``key``, ``name``,
``vendor``), where we live (``baseUrl`` = ``DFJ_PUBLIC_URL``, every other URL relative to it),
how Jira authenticates to us (``authentication: jwt``), what it may call (``lifecycle``,
``modules.webhooks``, the configuration pages) and what we may do (``scopes``).

- ``apiMigrations``: ``signed-install`` (install/uninstall arrive as RS256 tokens signed by
  Atlassian, not with the previous shared secret), ``context-qsh`` (context JWTs carry the
  fixed ``qsh`` ``context-qsh``, so they can never pass for a request-bound token) and ``gdpr``
  (tokens and URLs carry account ids, not user keys or names).
- ``scopes``: ``READ`` (also required for webhooks), ``WRITE`` (commands) and ``ACT_AS_USER``
  (user impersonation, so Jira checks the permissions of the Discord user's linked account).
- Webhooks: the six events the workers consume, each to its own path (see ``paths.py``);
  bodies included (the gateway keeps only ids from them).
- Pages: the configuration page as ``configurePage`` (the "Configure" button in Manage apps)
  and ``postInstallPage`` ("Get started"), both admin-only by Jira's own placement.
"""

from __future__ import annotations

from typing import Any, Final

from dfj_common.config import Settings
from dfj_gateway.jira import paths
from dfj_gateway.jira.connect_jwt import normalise_base_url

__all__ = ["APP_NAME", "SCOPES", "build_descriptor"]

APP_NAME: Final = "Discord for Jira"
DESCRIPTION: Final = (
    "Jira events in Discord channels, and Discord commands that act on Jira as the linked "
    "Jira user."
)
SCOPES: Final = ("READ", "WRITE", "ACT_AS_USER")


def build_descriptor(settings: Settings) -> dict[str, Any]:
    """The descriptor for this deployment (pure: same settings, same document)."""
    base_url = normalise_base_url(settings.public_url)
    return {
        "key": settings.app_key,
        "name": APP_NAME,
        "description": DESCRIPTION,
        "baseUrl": base_url,
        "vendor": {"name": APP_NAME, "url": base_url},
        "authentication": {"type": "jwt"},
        "apiVersion": 1,
        "apiMigrations": {"signed-install": True, "context-qsh": True, "gdpr": True},
        "scopes": list(SCOPES),
        "lifecycle": dict(paths.LIFECYCLE),
        "links": {"self": base_url + paths.DESCRIPTOR},
        "modules": {
            "webhooks": [
                {"event": event, "url": paths.webhook_path(slug), "excludeBody": False}
                for slug, event in paths.WEBHOOKS.items()
            ],
            "configurePage": {
                "key": "dfj-configure",
                "name": {"value": f"Configure {APP_NAME}"},
                "url": paths.CONFIG_PAGE,
            },
            # Not in any menu: reached from the linker's /jira link button only.
            "generalPages": [
                {
                    "key": paths.LINK_PAGE_KEY,
                    "name": {"value": "Link your Discord account"},
                    "url": paths.LINK_PAGE + "?request={ac.request}",
                    "location": "none",
                }
            ],
            "postInstallPage": {
                "key": "dfj-get-started",
                "name": {"value": f"Get started with {APP_NAME}"},
                "url": paths.CONFIG_PAGE,
            },
        },
    }
