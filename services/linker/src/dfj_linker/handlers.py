"""The handler tables of linker: event type → handler, one table per consumed queue.

Each entry is ``async def handler(envelope, context) -> None``; what it raises decides the
settlement (see ``dfj_common.runtime``). A type with no entry is dead-lettered as
``NoHandler``, so a message this version cannot handle is kept for replay, never dropped.
"""

from __future__ import annotations

from typing import Final

from dfj_common.bus import LINKER
from dfj_common.runtime import HandlerTable

LINKER_HANDLERS: Final[HandlerTable] = {}

TABLES: Final = {
    LINKER: LINKER_HANDLERS,
}
