"""What the Jira and Forge route tests share: reading back what the gateway published."""

from __future__ import annotations

from dfj_common.bus import JIRA_EVENTS, Bus, Receiver
from dfj_common.envelope import Envelope


async def received(receiver: Receiver, count: int) -> list[Envelope]:
    """Receive (and complete) exactly ``count`` messages; fails on fewer within ~4 s."""
    got: list[Envelope] = []
    for _ in range(20):
        for delivery in await receiver.receive(count - len(got), timeout=0.2):
            got.append(Envelope.decode(delivery.body))
            await delivery.complete()
        if len(got) >= count:
            break
    assert len(got) == count, f"expected {count} published, got {len(got)}"
    return got


async def held(bus: Bus, queue: str = JIRA_EVENTS) -> int:
    """How many messages ``queue`` holds in any state (0: nothing was published)."""
    stats = {s.queue: s for s in await bus.stats()}[queue]
    return stats.active + stats.scheduled + stats.locked + stats.dead_lettered
