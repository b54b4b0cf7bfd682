"""Event types the gateway publishes, with their queues and session keys.

The workers own what the events mean; this module only names them (and builds the envelope
the Connect and Forge routes publish on ``jira-events``), so a grep finds every producer. Each
type has a schema version that grows when its ``data`` changes shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from dfj_common.envelope import Envelope

__all__ = ["SCHEMA_VERSIONS", "SOURCE", "jira_event"]

SOURCE: Final = "dfj-gateway"

# Jira → jira-events (session: "<clientKey>:<issueId>", lifecycle: "<clientKey>")
JIRA_INSTALLED: Final = "jira.lifecycle.installed"
JIRA_UNINSTALLED: Final = "jira.lifecycle.uninstalled"
JIRA_ENABLED: Final = "jira.lifecycle.enabled"
JIRA_DISABLED: Final = "jira.lifecycle.disabled"
JIRA_WEBHOOK: Final = "jira.webhook"
# Forge → jira-events (session: the tenant); product events are JIRA_WEBHOOK too
FORGE_INSTALLED: Final = "jira.forge.installed"
FORGE_UPGRADED: Final = "jira.forge.upgraded"
FORGE_TOKEN: Final = "jira.forge.token"  # noqa: S105 - an event type
FORGE_UNINSTALLED: Final = "jira.forge.uninstalled"

# Discord → jira-commands or linker
DISCORD_COMMAND: Final = "discord.command"
DISCORD_COMPONENT: Final = "discord.component"
DISCORD_MODAL_SUBMIT: Final = "discord.modal_submit"

# Browser → linker
LINK_OAUTH_CALLBACK: Final = "link.oauth_callback"

SCHEMA_VERSIONS: Final = {
    JIRA_INSTALLED: 1,
    JIRA_UNINSTALLED: 1,
    JIRA_ENABLED: 1,
    JIRA_DISABLED: 1,
    JIRA_WEBHOOK: 1,
    FORGE_INSTALLED: 1,
    FORGE_UPGRADED: 1,
    FORGE_TOKEN: 1,
    FORGE_UNINSTALLED: 1,
    DISCORD_COMMAND: 1,
    DISCORD_COMPONENT: 1,
    DISCORD_MODAL_SUBMIT: 1,
    LINK_OAUTH_CALLBACK: 1,
}


def jira_event(
    *,
    event_type: str,
    event_id: str,
    data: Mapping[str, Any],
    client_key: str,
    session_key: str,
    now: float,
    subject: str | None = None,
) -> Envelope:
    """The envelope of an event from Jira (Connect or Forge) for ``jira-events``."""
    return Envelope(
        id=event_id,
        source=SOURCE,
        type=event_type,
        data=data,
        time=datetime.fromtimestamp(now, UTC),
        subject=subject,
        tenant=client_key,
        session_key=session_key,
        schema_version=SCHEMA_VERSIONS[event_type],
    )
