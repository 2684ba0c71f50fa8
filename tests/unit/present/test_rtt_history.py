"""The RTT/loss ring buffer behind the status page's charts: downsampling and bounded memory."""

from __future__ import annotations

import math

import pytest

from monitor.cycle.observation import CommuneObservation, HostObservation
from monitor.present.rtt_history import RttHistory
from probes.result import IcmpDetail

T0 = 1_790_000_040.0  # the start of a 2-minute bucket


def observe(history: RttHistory, at: float, rtts: tuple[float, ...], sent: int = 3,
            host: str = "may-01") -> None:
    icmp = IcmpDetail(sent, len(rtts), rtts)
    obs = HostObservation(host, "127.75.0.2", bool(rtts), "icmp" if rtts else None, icmp)
    history.record(CommuneObservation("75", "26041", at, hosts=(obs,)))


def test_cycles_in_one_bucket_are_averaged() -> None:
    h = RttHistory(step=120, window=3600)
    observe(h, T0, (0.010, 0.010, 0.010))
    observe(h, T0 + 30, (0.020,))  # 2 of 3 lost
    observe(h, T0 + 60, ())  # all lost: counts for loss, not for RTT
    [point] = h.samples("75", "26041", "may-01")
    assert point["t"] == T0
    assert point["rtt"] == pytest.approx(0.015, rel=1e-5)
    assert point["loss"] == pytest.approx((0 + 2 / 3 + 1) / 3, rel=1e-5)


def test_only_the_window_is_kept_and_gaps_stay_empty() -> None:
    h = RttHistory(step=120, window=600)  # 5 buckets
    for i in range(12):
        if i != 9:
            observe(h, T0 + i * 120, (0.001 * (i + 1),))
    points = h.samples("75", "26041", "may-01")
    assert [p["t"] for p in points] == [T0 + i * 120 for i in (7, 8, 10, 11)]
    assert points[-1]["rtt"] == pytest.approx(0.012, rel=1e-5)
    observe(h, T0 + 3 * 120, (0.5,))  # older than the window: ignored
    assert h.samples("75", "26041", "may-01") == points


def test_a_long_silence_clears_the_whole_ring() -> None:
    h = RttHistory(step=120, window=600)
    observe(h, T0, (0.001,))
    observe(h, T0 + 10 * 3600, (0.002,))
    assert [p["rtt"] for p in h.samples("75", "26041", "may-01")] == [pytest.approx(0.002)]


def test_hosts_without_icmp_or_unknown_hosts_have_no_samples() -> None:
    h = RttHistory()
    obs = HostObservation("may-02", "127.75.0.3", True, "tcp")
    h.record(CommuneObservation("75", "26041", T0, hosts=(obs,)))
    assert h.samples("75", "26041", "may-02") == []
    assert h.samples("75", "26041", "nobody") == []
    assert len(h) == 0


def test_memory_is_fixed_per_host_whatever_the_uptime() -> None:
    h = RttHistory()  # 2 min over 6 h
    assert h.size == 180
    for i in range(2000):  # ~66 h of 2-minute cycles
        observe(h, T0 + i * 120, (0.003,))
    ring = h._rings[("75", "26041", "may-01")]
    assert len(ring.rtt) == len(ring.loss) == 180
    assert ring.rtt.itemsize == 4  # float32
    points = h.samples("75", "26041", "may-01")
    assert len(points) == 180
    assert not any(math.isnan(p["rtt"]) for p in points)
