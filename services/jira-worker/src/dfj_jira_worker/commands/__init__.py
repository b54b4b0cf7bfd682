"""Discord → Jira: the commands, clicks and forms on ``jira-commands``, run as the linked user.

- :mod:`.requests` — the event ``data`` parsed into an :class:`~.requests.Invocation` and a
  typed request; the ``/jira`` option names.
- :mod:`.access` — role rules per capability, then the user's link.
- :mod:`.issues`, :mod:`.creation`, :mod:`.subscriptions` — one small method per command.
- :mod:`.suggest` — field suggestions for "Create issue from message".
- :mod:`.metadata` — the autocomplete caches the gateway reads.
- :mod:`.replies` — the answers, within Discord's limits.
- :mod:`.handler` — :class:`~.handler.Commands`, the handler table wiring it all.
"""

from __future__ import annotations

from dfj_jira_worker.commands.handler import CONSUMER, INTERACTION_REPLY, Commands
from dfj_jira_worker.commands.metadata import MetadataRefresher
from dfj_jira_worker.commands.ports import JiraCalls, JiraImpersonation
from dfj_jira_worker.commands.suggest import (
    AzureOpenAISuggester,
    FallbackSuggester,
    HeuristicSuggester,
    Suggester,
    Suggestion,
)

__all__ = [
    "CONSUMER",
    "INTERACTION_REPLY",
    "AzureOpenAISuggester",
    "Commands",
    "FallbackSuggester",
    "HeuristicSuggester",
    "JiraCalls",
    "JiraImpersonation",
    "MetadataRefresher",
    "Suggester",
    "Suggestion",
]
