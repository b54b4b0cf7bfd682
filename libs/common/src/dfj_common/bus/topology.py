"""The queue topology, defined once: names, sessions, max deliveries, lock duration, dedupe window.

deploy/ (Bicep, the Service Bus emulator config) and the local bus read it from here, so a queue's
shape can never differ between one machine and Azure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "DISCORD_OUTBOX",
    "JIRA_COMMANDS",
    "JIRA_EVENTS",
    "LINKER",
    "TOPOLOGY",
    "QueueSpec",
    "Topology",
]


@dataclass(frozen=True, kw_only=True)
class QueueSpec:
    """One queue. ``sessions`` means FIFO per session key, one consumer per session at a time."""

    name: str
    sessions: bool
    max_deliveries: int = 10
    lock_duration: float = 30.0
    duplicate_window: float = 600.0
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").isalnum():
            raise ValueError(f"queue name {self.name!r} must be alphanumerics and dashes")
        if self.max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1")
        if not 0 < self.lock_duration <= 300:
            raise ValueError("lock_duration must lie in (0, 300] seconds, as on Service Bus")
        if self.duplicate_window < 0:
            raise ValueError("duplicate_window cannot be negative")


Topology = Mapping[str, QueueSpec]

JIRA_EVENTS: Final = "jira-events"
JIRA_COMMANDS: Final = "jira-commands"
DISCORD_OUTBOX: Final = "discord-outbox"
LINKER: Final = "linker"

TOPOLOGY: Final[Topology] = MappingProxyType(
    {
        JIRA_EVENTS: QueueSpec(
            name=JIRA_EVENTS,
            sessions=True,
            description="gateway → jira-worker: lifecycle callbacks and Jira webhooks, "
            "ordered per clientKey:issueId",
        ),
        JIRA_COMMANDS: QueueSpec(
            name=JIRA_COMMANDS,
            sessions=False,
            description="gateway → jira-worker: Discord commands, clicks and modal submits; "
            "linker → jira-worker: personal-data reports",
        ),
        DISCORD_OUTBOX: QueueSpec(
            name=DISCORD_OUTBOX,
            sessions=True,
            description="jira-worker, linker → discord-worker: messages to send, edit or "
            "follow up, ordered per channel or interaction",
        ),
        LINKER: QueueSpec(
            name=LINKER,
            sessions=False,
            description="gateway, jira-worker → linker: OAuth callbacks, link/unlink, "
            "privacy requests, scheduled jobs",
        ),
    }
)
