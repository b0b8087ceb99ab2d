"""``Retry``: exponential pauses with jitter, bounded by the attempts and the deadline."""

from __future__ import annotations

import random

import pytest

from api.client import Retry


def test_pauses_double_within_half_and_whole_of_the_ceiling() -> None:
    retry, rng = (
        Retry(attempts=10, backoff_s=0.1, max_backoff_s=1.0, deadline_s=None),
        random.Random(0),
    )
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        pauses = [retry.pause(attempt, 0.0, None, rng) for _ in range(200)]
        assert all(p is not None and ceiling / 2 <= p <= ceiling for p in pauses)
        assert (
            max(p for p in pauses if p is not None) - min(p for p in pauses if p is not None)
            > ceiling / 4
        )


@pytest.mark.parametrize(
    "attempt,elapsed,retry_after,expected",
    [
        (4, 0.0, None, None),  # the fourth try was the last
        (1, 29.99, None, None),  # a retry would start after the deadline
        (1, 0.0, 1.5, 1.5),  # a 503's Retry-After lengthens the pause
        (1, 0.0, 60.0, 2.0),  # but not past max_backoff_s
    ],
)
def test_when_to_stop_and_retry_after(
    attempt: int, elapsed: float, retry_after: float | None, expected: float | None
) -> None:
    assert Retry().pause(attempt, elapsed, retry_after, random.Random(0)) == expected


@pytest.mark.parametrize(
    "kwargs,pattern",
    [({"attempts": 0}, "attempts must be >= 1"), ({"backoff_s": 5.0}, "backoff_s must be in")],
)
def test_bad_retry_settings(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        Retry(**kwargs)
