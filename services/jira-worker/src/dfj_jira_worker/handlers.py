"""The handler tables of jira-worker: event type → handler, one table per consumed queue.

Each entry is ``async def handler(envelope, context) -> None``; what it raises decides the
settlement (see ``dfj_common.runtime``). A type with no entry is dead-lettered as
``NoHandler``, so a message this version cannot handle is kept for replay, never dropped.
"""

from __future__ import annotations

from dfj_common.bus import JIRA_COMMANDS, JIRA_EVENTS, Bus
from dfj_common.runtime import HandlerTable
from dfj_common.storage import Database, Installations
from dfj_jira_worker.lifecycle import Lifecycle


def build_tables(database: Database, bus: Bus) -> dict[str, HandlerTable]:
    """Every consumed queue's table, wired to this process's database and bus."""
    lifecycle = Lifecycle(installations=Installations(database), bus=bus)
    return {
        JIRA_EVENTS: {**lifecycle.table()},
        JIRA_COMMANDS: {},
    }
