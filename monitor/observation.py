"""What one probe cycle saw, per commune: the scheduler's output and the state's input.

The same shape comes from the local scheduler (``run``, ``check``) and from agents over
MQTT (``collector``), so state, metrics and alerts never care where a result came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from probes.result import ArpDetail, IcmpDetail, ProbeResult, from_dict, to_dict

AliveMethod = Literal["icmp", "tcp", "arp"]


@dataclass(frozen=True, slots=True)
class HostObservation:
    name: str
    ip: str
    alive: bool
    method: AliveMethod | None = None  # which probe saw it alive first (icmp, tcp, arp)
    icmp: IcmpDetail | None = None
    arp: ArpDetail | None = None  # None: no vantage on the segment
    results: tuple[ProbeResult, ...] = ()


@dataclass(frozen=True, slots=True)
class UnknownDevice:
    ip: str
    mac: str


@dataclass(frozen=True, slots=True)
class CommuneObservation:
    province: str
    commune: str
    at: float  # Unix time the cycle started
    vantage: str = "central"
    hosts: tuple[HostObservation, ...] = ()
    gateway_alive: bool | None = None
    backup_gateway_alive: bool | None = None
    unknown_devices: tuple[UnknownDevice, ...] | None = None  # None: segment not scanned
    targets: tuple[ProbeResult, ...] = ()  # the election system, from this vantage
    skipped_checks: tuple[str, ...] = ()  # checks the vantage could not run (privileges)


@dataclass(slots=True)
class CycleReport:
    started: float
    duration: float = 0.0
    vantage: str = "central"
    communes: list[CommuneObservation] = field(default_factory=list)
    targets: list[ProbeResult] = field(default_factory=list)  # from this vantage


def host_to_dict(h: HostObservation) -> dict[str, Any]:
    return {
        "name": h.name,
        "ip": h.ip,
        "alive": h.alive,
        "method": h.method,
        "results": [to_dict(r) for r in h.results],
    }


def host_from_dict(data: dict[str, Any]) -> HostObservation:
    results = tuple(from_dict(r) for r in data.get("results", ()))
    return observe_host(str(data["name"]), str(data["ip"]), results)


def observe_host(name: str, ip: str, results: tuple[ProbeResult, ...]) -> HostObservation:
    """Judge a host alive from its probe results: any ICMP reply, TCP answer or ARP reply."""
    icmp: IcmpDetail | None = None
    arp: ArpDetail | None = None
    method, rank = None, len(_METHOD_ORDER)  # the first in _METHOD_ORDER that saw it
    for r in results:  # one pass: every host of the nation goes through here each cycle
        detail = r.detail
        if icmp is None and isinstance(detail, IcmpDetail):
            icmp = detail
        elif arp is None and isinstance(detail, ArpDetail):
            arp = detail
        order = _METHOD_ORDER.get(r.kind, rank)
        if order < rank and answered(r):
            method, rank = r.kind, order
    return HostObservation(name, ip, method is not None, method, icmp, arp, results)  # type: ignore[arg-type]


_METHOD_ORDER = {"icmp": 0, "tcp": 1, "arp": 2}


def answered(result: ProbeResult) -> bool:
    """Whether the machine answered at all: for ARP any MAC will do (a conflict or a wrong
    MAC is an IP-configuration fault, not a dead host)."""
    if isinstance(result.detail, ArpDetail):
        return bool(result.detail.macs)
    return result.ok


def commune_to_dict(c: CommuneObservation) -> dict[str, Any]:
    return {
        "province": c.province,
        "commune": c.commune,
        "at": c.at,
        "vantage": c.vantage,
        "hosts": [host_to_dict(h) for h in c.hosts],
        "gateway_alive": c.gateway_alive,
        "backup_gateway_alive": c.backup_gateway_alive,
        "unknown_devices": None
        if c.unknown_devices is None
        else [{"ip": d.ip, "mac": d.mac} for d in c.unknown_devices],
        "targets": [to_dict(r) for r in c.targets],
        "skipped_checks": list(c.skipped_checks),
    }


def commune_from_dict(data: dict[str, Any]) -> CommuneObservation:
    """Rebuild an observation; raises ``ValueError`` (or ``KeyError``/``TypeError``) on bad data."""
    devices = data.get("unknown_devices")
    return CommuneObservation(
        province=str(data["province"]),
        commune=str(data["commune"]),
        at=float(data["at"]),
        vantage=str(data.get("vantage", "central")),
        hosts=tuple(host_from_dict(h) for h in data.get("hosts", ())),
        gateway_alive=_opt_bool(data.get("gateway_alive")),
        backup_gateway_alive=_opt_bool(data.get("backup_gateway_alive")),
        unknown_devices=None
        if devices is None
        else tuple(UnknownDevice(str(d["ip"]), str(d["mac"])) for d in devices),
        targets=tuple(from_dict(r) for r in data.get("targets", ())),
        skipped_checks=tuple(str(s) for s in data.get("skipped_checks", ())),
    )


def _opt_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"expected true, false or null, got {value!r}")
