"""What one probe cycle saw, per commune: the scheduler's output and the state's input.

The same shape comes from the local scheduler (``run``, ``check``) and from agents over
MQTT (``collector``), so state, metrics and alerts never care where a result came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from probes.result import (
    ArpDetail,
    IcmpDetail,
    ProbeResult,
    ResultError,
    UnknownDevice,
    check_fields,
    check_ip,
    check_mac,
    check_text,
    from_dict,
    to_dict,
)

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
    #: the router vantage only (never from an agent): why its SNMP read failed, (kind of
    #: probes.snmp.SnmpError or "credentials", message without any secret); None: it was read
    snmp_error: tuple[str, str] | None = None
    #: the (primary, backup) line routers' echo of this cycle (RTT, loss), for
    #: ``tslcd_line_*``; from the vantage's own ICMP only: not carried in agents' batches
    line_icmp: tuple[IcmpDetail | None, IcmpDetail | None] = (None, None)


@dataclass(slots=True)
class CycleReport:
    started: float
    duration: float = 0.0
    vantage: str = "central"
    communes: list[CommuneObservation] = field(default_factory=list)
    targets: list[ProbeResult] = field(default_factory=list)  # from this vantage
    upstream_ok: bool | None = None  # any defaults.upstream address answered (None: not asked)
    recheck: bool = False  # fast confirmation: only the failing subjects, not a whole cycle


def host_to_dict(h: HostObservation) -> dict[str, Any]:
    return {
        "name": h.name,
        "ip": h.ip,
        "alive": h.alive,
        "method": h.method,
        "results": [to_dict(r) for r in h.results],
    }


MAX_HOSTS = 256  # per commune batch (an inventory commune has a handful)
MAX_RESULTS = 16  # per host: icmp, one tcp per port, arp
MAX_DEVICES = 256  # unknown devices: a /24 at most
MAX_TARGETS = 16
MAX_SKIPPED = 16
_HOST_FIELDS = frozenset({"name", "ip", "alive", "method", "results"})
_COMMUNE_FIELDS = frozenset({"province", "commune", "at", "vantage", "hosts", "gateway_alive",
                             "backup_gateway_alive", "unknown_devices", "targets",
                             "skipped_checks"})


def _object(data: Any, where: str, fields: frozenset[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ResultError(f"{where}: expected an object")
    check_fields(data, fields, where)
    return data


def _items(value: Any, where: str, limit: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise ResultError(f"{where}: expected a list of at most {limit} entries")
    return value


def host_from_dict(data: Any, where: str = "host") -> HostObservation:
    """A host's results, checked field by field; alive and method are judged again here
    from the results (an agent's own verdict is not taken on trust)."""
    data = _object(data, where, _HOST_FIELDS)
    name = check_text(data.get("name"), f"{where}.name")
    ip = check_ip(data.get("ip"), f"{where}.ip")
    raw = _items(data.get("results", []), f"{where}.results", MAX_RESULTS)
    results = tuple(from_dict(r, f"{where}.results[{i}]") for i, r in enumerate(raw))
    return observe_host(name, ip, results)


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


def commune_from_dict(data: Any) -> CommuneObservation:
    """Rebuild an observation, checking every field against the schema; raises
    :class:`~probes.result.ResultError` (a ``ValueError``) naming the field."""
    data = _object(data, "commune", _COMMUNE_FIELDS)
    devices = data.get("unknown_devices")
    hosts = _items(data.get("hosts", []), "commune.hosts", MAX_HOSTS)
    targets = _items(data.get("targets", []), "commune.targets", MAX_TARGETS)
    skipped = _items(data.get("skipped_checks", []), "commune.skipped_checks", MAX_SKIPPED)
    return CommuneObservation(
        province=check_text(data.get("province"), "commune.province", 16),
        commune=check_text(data.get("commune"), "commune.commune", 16),
        at=_at(data.get("at")),
        vantage=check_text(data.get("vantage", "central"), "commune.vantage", 40),
        hosts=tuple(host_from_dict(h, f"commune.hosts[{i}]") for i, h in enumerate(hosts)),
        gateway_alive=_opt_bool(data.get("gateway_alive"), "commune.gateway_alive"),
        backup_gateway_alive=_opt_bool(data.get("backup_gateway_alive"),
                                       "commune.backup_gateway_alive"),
        unknown_devices=None if devices is None else tuple(
            _device(d, f"commune.unknown_devices[{i}]")
            for i, d in enumerate(_items(devices, "commune.unknown_devices", MAX_DEVICES))),
        targets=tuple(from_dict(r, f"commune.targets[{i}]") for i, r in enumerate(targets)),
        skipped_checks=tuple(check_text(s, f"commune.skipped_checks[{i}]", 64)
                             for i, s in enumerate(skipped)),
    )


def _at(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or value < 0:
        raise ResultError("commune.at: expected a finite Unix time")
    return float(value)


def _device(data: Any, where: str) -> UnknownDevice:
    data = _object(data, where, frozenset({"ip", "mac"}))
    return UnknownDevice(check_ip(data.get("ip"), f"{where}.ip"),
                         check_mac(data.get("mac"), f"{where}.mac"))


def _opt_bool(value: Any, where: str = "value") -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ResultError(f"{where}: expected true, false or null")
