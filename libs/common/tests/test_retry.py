"""Back-off grows exponentially, is capped, and jitters within bounds."""

from __future__ import annotations

import random

import pytest

from dfj_common.retry import ExponentialBackOff


def test_grows_then_caps() -> None:
    """Without jitter the delays double up to the maximum."""
    b = ExponentialBackOff(base=1, factor=2, maximum=10, jitter=0)
    assert [b.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert b.delay(10_000) == 10


def test_jitter_stays_within_bounds() -> None:
    """With jitter j, every delay lies in [(1-j)·d, d]."""
    b = ExponentialBackOff(base=4, maximum=100, jitter=0.5, rng=random.Random(7))
    samples = [b.delay(2) for _ in range(200)]
    assert min(samples) >= 4.0
    assert max(samples) <= 8.0
    assert len(set(samples)) > 100


@pytest.mark.parametrize(
    "kwargs", [{"base": 0}, {"factor": 0.5}, {"maximum": 0.1, "base": 1}, {"jitter": 2}]
)
def test_rejects_nonsense(kwargs: dict[str, float]) -> None:
    """Invalid parameters fail at construction."""
    with pytest.raises(ValueError):
        ExponentialBackOff(**kwargs)  # type: ignore[arg-type]
