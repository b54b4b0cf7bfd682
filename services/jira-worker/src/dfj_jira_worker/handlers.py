"""The handler tables of jira-worker: event type → handler, one table per consumed queue.

Each entry is ``async def handler(envelope, context) -> None``; what it raises decides the
settlement (see ``dfj_common.runtime``). A type with no entry is dead-lettered as
``NoHandler``, so a message this version cannot handle is kept for replay, never dropped.
"""

from __future__ import annotations

from dfj_common.bus import JIRA_COMMANDS, JIRA_EVENTS, Bus
from dfj_common.clock import Clock
from dfj_common.runtime import HandlerTable
from dfj_common.storage import Database, Installations, Subscriptions
from dfj_jira_worker.commands import Commands, Suggester
from dfj_jira_worker.jira import JiraClient
from dfj_jira_worker.lifecycle import Lifecycle
from dfj_jira_worker.notify import Notifier
from dfj_jira_worker.reporting import Reporting


def build_tables(
    database: Database,
    bus: Bus,
    *,
    jira: JiraClient,
    clock: Clock,
    suggester: Suggester | None = None,
) -> dict[str, HandlerTable]:
    """Every consumed queue's table, wired to this process's database, bus and Jira client."""
    installations = Installations(database)
    lifecycle = Lifecycle(installations=installations, bus=bus)
    notifier = Notifier(
        installations=installations,
        subscriptions=Subscriptions(database),
        jira=jira,
        bus=bus,
        clock=clock,
    )
    commands = Commands.build(database, bus=bus, jira=jira, suggester=suggester)
    reporting = Reporting(installations=installations, jira=jira, bus=bus)
    return {
        JIRA_EVENTS: {**lifecycle.table(), **notifier.table()},
        JIRA_COMMANDS: {**commands.table(), **reporting.table()},
    }
