"""Pacer arithmetic on a fake clock: rates, bursts, groups; start-time spreading."""

from __future__ import annotations

import pytest

from probes.pacing import GRANULARITY, Pacer, interleave_groups, spread_offsets


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_global_rate_spaces_packets_once_the_burst_is_spent() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, burst=3, clock=clock)
    times = [pacer.reserve() - clock.now for _ in range(6)]
    assert times == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2, 0.3])


def test_budget_refills_as_time_passes() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, burst=1, clock=clock)
    assert pacer.reserve() == clock.now
    assert pacer.reserve() == pytest.approx(clock.now + 0.1)
    clock.now += 5.0  # idle: the next packet may leave at once, but no more than the burst
    assert pacer.reserve() == clock.now
    assert pacer.reserve() == pytest.approx(clock.now + 0.1)


def test_rate_over_a_long_run_never_exceeds_the_cap() -> None:
    clock = FakeClock(0.0)
    pacer = Pacer(1000.0, clock=clock)
    times = [pacer.reserve() for _ in range(10_000)]
    assert times == sorted(times)
    # 10,000 packets at 1,000/s take 10 s, less the batching burst (GRANULARITY's worth)
    assert times[-1] >= 10.0 - GRANULARITY - 1e-6


def test_group_cap_holds_back_only_its_own_group() -> None:
    clock = FakeClock(0.0)
    pacer = Pacer(1000.0, group_rate=2.0, group_burst=1, clock=clock)
    first_a = pacer.reserve("75/26041")
    first_b = pacer.reserve("01/00004")
    second_a = pacer.reserve("75/26041")
    second_b = pacer.reserve("01/00004")
    assert first_a == 0.0
    assert first_b < 0.01  # another commune is not held back by the first one's cap
    assert second_a == pytest.approx(0.5)
    assert second_b == pytest.approx(0.5, abs=0.01)


def test_group_burst_is_tolerated_then_capped() -> None:
    clock = FakeClock(0.0)
    pacer = Pacer(1e6, group_rate=1.0, group_burst=3, clock=clock)
    times = [pacer.reserve("g") for _ in range(5)]
    assert times[:3] == pytest.approx([0.0, 0.0, 0.0], abs=1e-5)
    assert times[3:] == pytest.approx([1.0, 2.0], abs=1e-5)


def test_not_before_is_honoured_and_booked() -> None:
    clock = FakeClock(0.0)
    pacer = Pacer(10.0, burst=1, clock=clock)
    assert pacer.reserve(not_before=2.0) == 2.0
    assert pacer.reserve() == pytest.approx(2.1)


def test_group_without_group_rate_is_only_globally_paced() -> None:
    clock = FakeClock(0.0)
    pacer = Pacer(10.0, burst=1, clock=clock)
    assert [pacer.reserve(g) for g in "abc"] == pytest.approx([0.0, 0.1, 0.2])


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Pacer(0.0)


def test_interleave_groups_separates_members_of_a_group() -> None:
    items = ["a1", "a2", "a3", "b1", "b2", "c1"]
    out = interleave_groups(items, lambda s: s[0])
    assert sorted(out) == sorted(items)
    assert out == ["a1", "b1", "c1", "a2", "b2", "a3"]


def test_spread_offsets_cover_the_window_evenly() -> None:
    offsets = spread_offsets(4, 2.0)
    assert offsets == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert spread_offsets(3, 0.0) == [0.0, 0.0, 0.0]
    assert spread_offsets(0, 5.0) == []
