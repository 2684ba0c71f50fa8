"""The one backoff: exponential, capped, jittered within [ceiling/2, ceiling]."""

from __future__ import annotations

import pytest

from monitor.common.backoff import Backoff


@pytest.mark.parametrize(("failures", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0),
                                                   (10_000, 30.0)])
def test_delay_doubles_up_to_the_cap(failures: int, ceiling: float) -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    delays = [backoff.delay(failures) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > ceiling / 10  # jittered: not all at once


def test_zero_failures_waits_like_the_first() -> None:
    assert 0.25 <= Backoff(base=0.5).delay(0) <= 0.5
