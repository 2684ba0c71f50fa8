"""The one result type every probe returns.

Like blackbox_exporter's probers, every probe kind measures one thing and reports it the
same way: what was probed, whether it succeeded, when and how long it took, and a typed
``detail`` for the measurements that only that kind makes. Results are plain data: they
cross the MQTT boundary (agent to collector) as JSON via :func:`to_dict` / :func:`from_dict`.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass, field
from typing import Any, Literal

ProbeKind = Literal["icmp", "tcp", "arp", "target", "path", "local"]


@dataclass(frozen=True, slots=True)
class IcmpDetail:
    sent: int
    received: int
    rtts: tuple[float, ...] = ()  # seconds, one per reply received, in sequence order

    @property
    def loss_ratio(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 1.0

    @property
    def rtt_mean(self) -> float | None:
        return sum(self.rtts) / len(self.rtts) if self.rtts else None

    @property
    def jitter(self) -> float | None:
        """Mean absolute difference of consecutive RTTs (RFC 3550 style, unsmoothed)."""
        rtts = self.rtts
        if len(rtts) < 2:
            return None
        # map over C callables: /metrics computes this for every host at every render
        return sum(map(abs, map(operator.sub, rtts[1:], rtts))) / (len(rtts) - 1)


@dataclass(frozen=True, slots=True)
class TcpDetail:
    port: int
    connect_seconds: float | None = None
    refused: bool = False  # answered with RST: the machine is there, the port closed


@dataclass(frozen=True, slots=True)
class ArpDetail:
    """Every MAC that answered a broadcast ARP request for one IP within the window."""

    macs: tuple[str, ...] = ()
    expected_mac: str | None = None

    @property
    def conflict(self) -> bool:
        return len(self.macs) > 1

    @property
    def mac_ok(self) -> bool:
        """One MAC answered and it is the expected one (any, when none is expected)."""
        if len(self.macs) != 1:
            return False
        return self.expected_mac is None or self.macs[0] == self.expected_mac


@dataclass(frozen=True, slots=True)
class TargetDetail:
    """The election system, phase by phase (seconds; None where the phase did not run)."""

    url: str
    resolved: tuple[str, ...] = ()
    addresses_ok: bool | None = None  # None: no expected addresses configured
    dns_seconds: float | None = None
    connect_seconds: float | None = None
    tls_seconds: float | None = None
    http_seconds: float | None = None
    http_status: int | None = None
    tls_not_after: float | None = None  # certificate notAfter, Unix seconds
    failed_phase: str | None = None  # dns | connect | tls | http


@dataclass(frozen=True, slots=True)
class PathDetail:
    hops: tuple[str | None, ...] = ()  # responding address per TTL, None for no answer
    first_hop_ok: bool | None = None  # None: no expected first hop configured


@dataclass(frozen=True, slots=True)
class LocalDetail:
    """What an unprivileged agent reads of its own interface configuration."""

    interface: str | None = None
    addresses: tuple[str, ...] = ()
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


Detail = IcmpDetail | TcpDetail | ArpDetail | TargetDetail | PathDetail | LocalDetail

_DETAIL_TYPES: dict[str, type[Any]] = {
    "icmp": IcmpDetail,
    "tcp": TcpDetail,
    "arp": ArpDetail,
    "target": TargetDetail,
    "path": PathDetail,
    "local": LocalDetail,
}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    kind: ProbeKind
    subject: str  # the IP address probed, or the target's name
    ok: bool
    started: float  # Unix time the probe began
    duration: float  # seconds
    error: str | None = None
    detail: Detail | None = field(default=None)


def to_dict(result: ProbeResult) -> dict[str, Any]:
    return dataclasses.asdict(result)


def from_dict(data: dict[str, Any]) -> ProbeResult:
    """Rebuild a result from :func:`to_dict` output; raises ``ValueError`` on bad data."""
    try:
        kind = data["kind"]
        detail_type = _DETAIL_TYPES[kind]
        raw_detail = data.get("detail")
        detail = None
        if raw_detail is not None:
            if not isinstance(raw_detail, dict):
                raise ValueError("detail must be an object")
            values = {
                k: tuple(v) if isinstance(v, list) else v for k, v in raw_detail.items()
            }
            detail = detail_type(**values)
        return ProbeResult(
            kind=kind,
            subject=str(data["subject"]),
            ok=bool(data["ok"]),
            started=float(data["started"]),
            duration=float(data["duration"]),
            error=data.get("error"),
            detail=detail,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed probe result: {exc}") from exc
