"""What a simulated site knows for the Personal Data Reporting API (see ``privacy``)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Reporting"]


@dataclass
class Reporting:
    """A site's view of its accounts: which were closed or updated, and what it was told."""

    closed: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    cycle_period_days: int = 7
    reports: list[list[dict[str, str]]] = field(default_factory=list)

    @property
    def reported(self) -> list[str]:
        """Every accountId reported, in order (repeats included)."""
        return [a["accountId"] for batch in self.reports for a in batch]
