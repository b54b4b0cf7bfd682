"""The message bus: one contract (``base``), one topology, two backends (local, Service Bus)."""

from __future__ import annotations

from dfj_common.bus.base import (
    MAX_DELIVERY_REASON,
    Bus,
    DeadLetter,
    Delivery,
    OutgoingMessage,
    QueueStats,
    Receiver,
)
from dfj_common.bus.topology import (
    DISCORD_OUTBOX,
    JIRA_COMMANDS,
    JIRA_EVENTS,
    LINKER,
    TOPOLOGY,
    QueueSpec,
    Topology,
)
from dfj_common.clock import Clock
from dfj_common.config import Settings

__all__ = [
    "DISCORD_OUTBOX",
    "JIRA_COMMANDS",
    "JIRA_EVENTS",
    "LINKER",
    "MAX_DELIVERY_REASON",
    "TOPOLOGY",
    "Bus",
    "DeadLetter",
    "Delivery",
    "OutgoingMessage",
    "QueueSpec",
    "QueueStats",
    "Receiver",
    "Topology",
    "open_bus",
]


async def open_bus(
    settings: Settings, *, topology: Topology = TOPOLOGY, clock: Clock | None = None
) -> Bus:
    """The bus the settings name: the embedded local bus, or Azure Service Bus."""
    if settings.bus == "servicebus":
        from dfj_common.bus.servicebus import ServiceBusBus

        return ServiceBusBus.from_settings(settings, topology=topology)
    from dfj_common.bus.local import LocalBus

    return await LocalBus.open(
        settings.bus_path, topology=topology, clock=clock, synchronous=settings.bus_sync
    )
