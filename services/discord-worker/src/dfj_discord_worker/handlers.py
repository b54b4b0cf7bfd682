"""The handler tables of discord-worker: event type → handler, one table per consumed queue.

Each entry is ``async def handler(envelope, context) -> None``; what it raises decides the
settlement (see ``dfj_common.runtime``). A type with no entry is dead-lettered as
``NoHandler``, so a message this version cannot handle is kept for replay, never dropped.
"""

from __future__ import annotations

from typing import Final

from dfj_common.bus import DISCORD_OUTBOX
from dfj_common.runtime import HandlerTable

DISCORD_OUTBOX_HANDLERS: Final[HandlerTable] = {}

TABLES: Final = {
    DISCORD_OUTBOX: DISCORD_OUTBOX_HANDLERS,
}
