"""The handler tables of jira-worker: event type → handler, one table per consumed queue.

Each entry is ``async def handler(envelope, context) -> None``; what it raises decides the
settlement (see ``dfj_common.runtime``). A type with no entry is dead-lettered as
``NoHandler``, so a message this version cannot handle is kept for replay, never dropped.
"""

from __future__ import annotations

from dfj_common.bus import JIRA_COMMANDS, JIRA_EVENTS, Bus
from dfj_common.clock import Clock
from dfj_common.envelope import Envelope
from dfj_common.runtime import HandlerContext, HandlerTable
from dfj_common.storage import Database, Installations, Subscriptions
from dfj_jira_worker.commands import Commands, Suggester
from dfj_jira_worker.forge_lifecycle import ForgeLifecycle
from dfj_jira_worker.jira import JiraClient
from dfj_jira_worker.lifecycle import Lifecycle
from dfj_jira_worker.notify import Notifier
from dfj_jira_worker.notify.events import WEBHOOK_EVENT_TYPE
from dfj_jira_worker.reporting import Reporting


def build_tables(
    database: Database,
    bus: Bus,
    *,
    jira: JiraClient,
    clock: Clock,
    suggester: Suggester | None = None,
    app_key: str = "discord-for-jira",
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
    forge = ForgeLifecycle(
        installations=installations, lifecycle=lifecycle, jira=jira, connect_key=app_key
    )
    notify = notifier.table()

    async def webhook(envelope: Envelope, ctx: HandlerContext) -> None:
        # A Forge event brings a system token: kept first, so the notifier calls with it.
        await forge.remember(envelope)
        await notify[WEBHOOK_EVENT_TYPE](envelope, ctx)

    return {
        JIRA_EVENTS: {
            **lifecycle.table(),
            **forge.table(),
            **notify,
            WEBHOOK_EVENT_TYPE: webhook,
        },
        JIRA_COMMANDS: {**commands.table(), **reporting.table()},
    }
