"""Jira webhook events become Discord messages.

- :mod:`.events` — the ``jira.webhook`` envelope's data as a typed ``Change``;
- :mod:`.routing` — the subscription vocabulary, issue-type and JQL rules, the audience rule;
- :mod:`.jql_cache` — a short-lived cache of ``jql/match`` outcomes;
- :mod:`.reads` — the issue and comment reads, as typed views;
- :mod:`.render` — the Discord message (pure), within :mod:`.limits`;
- :mod:`.notifier` — the handler that runs the pipeline.

Wiring, in a composition root::

    notifier = Notifier(
        installations=Installations(db), subscriptions=Subscriptions(db), jira=jira_client,
        bus=bus, clock=clock,               # jql_cache=JqlMatchCache(clock) by default
    )
    table = {**notifier.table()}          # {"jira.webhook": notifier.handle}
"""

from __future__ import annotations

from dfj_jira_worker.notify.jql_cache import JqlMatchCache
from dfj_jira_worker.notify.notifier import MESSAGE_POST, AppReads, JiraAsApp, Notifier
from dfj_jira_worker.notify.routing import EVENT_TYPES, KEY_ONLY_MARKER

__all__ = [
    "EVENT_TYPES",
    "KEY_ONLY_MARKER",
    "MESSAGE_POST",
    "AppReads",
    "JiraAsApp",
    "JqlMatchCache",
    "Notifier",
]
