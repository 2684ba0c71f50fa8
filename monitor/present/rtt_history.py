"""Recent RTT and packet loss per host, for the status page's small charts.

Prometheus keeps the long history; the page only needs the last hours without a Grafana
account. Each host gets a fixed ring of buckets (default one per 2 minutes over 6 hours)
held in ``array('f')``, so memory is bounded whatever the uptime: 180 buckets x 10 bytes
plus object overheads, about 2.3 kB per host, 25 MB for 10,000 hosts (bench/bench_page.py).
A bucket holds the mean of the cycles that fell into it; buckets older than the window are
cleared as the ring advances.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field

from monitor.cycle.observation import CommuneObservation, HostObservation

NAN = float("nan")
_MAX_COUNT = 255  # counts are bytes; beyond that a bucket's mean barely moves


@dataclass(slots=True)
class _Ring:
    """One host's buckets; bucket ``b`` (Unix time // step) lives at slot ``b % size``."""

    size: int
    last: int = -1  # newest bucket number written
    rtt: array = field(init=False)
    loss: array = field(init=False)
    rtt_n: array = field(init=False)
    loss_n: array = field(init=False)

    def __post_init__(self) -> None:
        self.rtt = array("f", [NAN]) * self.size
        self.loss = array("f", [NAN]) * self.size
        self.rtt_n = array("B", bytes(self.size))
        self.loss_n = array("B", bytes(self.size))

    def advance(self, bucket: int) -> None:
        """Clear the slots of buckets between the newest written and ``bucket``."""
        if bucket <= self.last:
            return
        if self.last < 0:  # a new ring is already empty
            self.last = bucket
            return
        start = max(self.last + 1, bucket - self.size + 1)
        for b in range(start, bucket + 1):
            slot = b % self.size
            self.rtt[slot] = self.loss[slot] = NAN
            self.rtt_n[slot] = self.loss_n[slot] = 0
        self.last = bucket

    def add(self, bucket: int, rtt: float | None, loss: float | None) -> None:
        if bucket <= self.last - self.size:
            return  # older than the window
        self.advance(bucket)
        slot = bucket % self.size
        if rtt is not None:
            _running_mean(self.rtt, self.rtt_n, slot, rtt)
        if loss is not None:
            _running_mean(self.loss, self.loss_n, slot, loss)


def _running_mean(values: array, counts: array, slot: int, x: float) -> None:
    n = counts[slot]
    values[slot] = x if n == 0 else values[slot] + (x - values[slot]) / (n + 1)
    counts[slot] = min(n + 1, _MAX_COUNT)


class RttHistory:
    """Per-host ring buffers of RTT (seconds) and loss ratio, keyed by commune and host."""

    def __init__(self, step: float = 120.0, window: float = 6 * 3600.0) -> None:
        self.step = step
        self.size = max(1, int(window // step))
        self._rings: dict[tuple[str, str, str], _Ring] = {}

    def record(self, observation: CommuneObservation) -> None:
        """Add one cycle's ICMP measurements of a commune's hosts."""
        bucket = int(observation.at // self.step)
        for host in observation.hosts:
            rtt, loss = _icmp_values(host)
            if rtt is None and loss is None:
                continue
            key = (observation.province, observation.commune, host.name)
            ring = self._rings.get(key)
            if ring is None:
                ring = self._rings[key] = _Ring(self.size)
            ring.add(bucket, rtt, loss)

    def samples(self, province: str, commune: str, host: str) -> list[dict[str, float | None]]:
        """The host's buckets, oldest first: ``{"t": start, "rtt": s|None, "loss": 0..1|None}``."""
        ring = self._rings.get((province, commune, host))
        if ring is None:
            return []
        points = []
        for b in range(max(0, ring.last - ring.size + 1), ring.last + 1):
            slot = b % ring.size
            if ring.rtt_n[slot] == 0 and ring.loss_n[slot] == 0:
                continue
            points.append(
                {
                    "t": b * self.step,
                    "rtt": _finite(ring.rtt[slot]),
                    "loss": _finite(ring.loss[slot]),
                }
            )
        return points

    def __len__(self) -> int:
        return len(self._rings)


def _icmp_values(host: HostObservation) -> tuple[float | None, float | None]:
    if host.icmp is None or host.icmp.sent == 0:
        return None, None
    return host.icmp.rtt_mean, host.icmp.loss_ratio


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)
