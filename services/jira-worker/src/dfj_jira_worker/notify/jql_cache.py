"""A small, short-lived cache of ``/rest/api/3/jql/match`` outcomes.

Why: the same event is handled more than once (bus redelivery after a failure further down,
Jira's own webhook retries), and several subscriptions across guilds often share a JQL. The
answer of Jira depends on the issue's state, so the key holds the issue's ``updated`` time
next to the tenant, the issue id and the JQL: a later change of the issue is a new key. An
event without ``updated`` is not cached. Entries live ``ttl`` seconds (30 by default,
measured on the injected clock's monotonic reading) and the cache holds at most
``max_entries``, dropping the least recently used — it is per process and never stored.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from typing import Final

from dfj_common.clock import Clock

__all__ = ["DEFAULT_MAX_ENTRIES", "DEFAULT_TTL", "JqlKey", "JqlMatchCache", "JqlOutcome"]

DEFAULT_TTL: Final = 30.0
DEFAULT_MAX_ENTRIES: Final = 4096


class JqlOutcome(Enum):
    """What Jira said of one issue against one JQL."""

    MATCHED = "matched"
    NOT_MATCHED = "not-matched"
    ERROR = "error"  # the JQL is invalid (or names something the app cannot see)


@dataclass(frozen=True, slots=True)
class JqlKey:
    """What one outcome depends on."""

    tenant: str
    issue_id: str
    updated: str
    jql: str


class JqlMatchCache:
    """Outcomes by :class:`JqlKey`, bounded in size and age."""

    def __init__(
        self,
        clock: Clock,
        *,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if ttl <= 0 or max_entries < 1:
            raise ValueError("ttl must be positive and max_entries at least 1")
        self._clock = clock
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[JqlKey, tuple[float, JqlOutcome]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: JqlKey) -> JqlOutcome | None:
        """The cached outcome, or None when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, outcome = entry
        if self._clock.monotonic() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return outcome

    def put(self, key: JqlKey, outcome: JqlOutcome) -> None:
        """Remember ``outcome`` for ``ttl`` seconds."""
        self._entries[key] = (self._clock.monotonic() + self._ttl, outcome)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
