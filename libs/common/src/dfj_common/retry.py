"""Bounded exponential back-off with full jitter, used for bus redelivery and HTTP retries."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["ExponentialBackOff"]


@dataclass(frozen=True, kw_only=True)
class ExponentialBackOff:
    """``delay(attempt)`` grows as ``base * factor**(attempt-1)`` up to ``maximum``.

    Jitter spreads retries of many messages that failed together: the delay is drawn
    uniformly from ``[(1 - jitter) * d, d]``, so ``jitter=0`` is deterministic.
    """

    base: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.factor < 1 or self.maximum < self.base:
            raise ValueError("back-off needs base > 0, factor >= 1 and maximum >= base")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must lie in [0, 1]")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        exponent = max(attempt, 1) - 1
        # Cap the exponent so huge delivery counts cannot overflow the float.
        ceiling = min(self.maximum, self.base * self.factor ** min(exponent, 64))
        if self.jitter == 0:
            return ceiling
        return self.rng.uniform((1 - self.jitter) * ceiling, ceiling)
