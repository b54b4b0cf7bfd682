"""The handler tables of jira-worker: event type → handler, one table per consumed queue.

Each entry is ``async def handler(envelope, context) -> None``; what it raises decides the
settlement (see ``dfj_common.runtime``). A type with no entry is dead-lettered as
``NoHandler``, so a message this version cannot handle is kept for replay, never dropped.
"""

from __future__ import annotations

from typing import Final

from dfj_common.bus import JIRA_COMMANDS, JIRA_EVENTS
from dfj_common.runtime import HandlerTable

JIRA_EVENTS_HANDLERS: Final[HandlerTable] = {}
JIRA_COMMANDS_HANDLERS: Final[HandlerTable] = {}

TABLES: Final = {
    JIRA_EVENTS: JIRA_EVENTS_HANDLERS,
    JIRA_COMMANDS: JIRA_COMMANDS_HANDLERS,
}
