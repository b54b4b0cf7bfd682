"""The handler tables of discord-worker: event type → handler, one table per consumed queue.

Each entry is ``async def handler(envelope, context) -> None``; what it raises decides the
settlement (see ``dfj_common.runtime``). A type with no entry is dead-lettered as
``NoHandler``, so a message this version cannot handle is kept for replay, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from dfj_common.bus import DISCORD_OUTBOX, Bus
from dfj_common.clock import Clock
from dfj_common.runtime import HandlerTable
from dfj_common.storage import Database, Repositories
from dfj_discord_worker.delivery import INTERACTION_REPLY, MESSAGE_POST, Poster, Replier
from dfj_discord_worker.discord import DiscordClient

#: The longest run of one channel's messages a handler receives at once: five full packs of
#: 10, what a channel's bucket takes in one window, so a burst needs no half-empty posts.
OUTBOX_RUN: Final = 50
#: Channels (sessions) handled at once, at least. A handler spends most of its time waiting
#: for its channel's bucket, so it takes about this many busy channels to use the global
#: 50 requests per second.
OUTBOX_CONCURRENCY: Final = 64


def build_tables(
    database: Database, bus: Bus, *, discord: DiscordClient, clock: Clock, coalesce: bool = True
) -> Mapping[str, HandlerTable]:
    """The tables, wired to the database and the Discord client."""
    del bus  # the discord-worker publishes nothing
    repos = Repositories(database)
    return {
        DISCORD_OUTBOX: {
            MESSAGE_POST: Poster(discord=discord, repos=repos, clock=clock, coalesce=coalesce),
            INTERACTION_REPLY: Replier(discord=discord, repos=repos, clock=clock),
        },
    }
