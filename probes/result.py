"""The one result type every probe returns.

Like blackbox_exporter's probers, every probe kind measures one thing and reports it the
same way: what was probed, whether it succeeded, when and how long it took, and a typed
``detail`` for the measurements that only that kind makes. Results are plain data: they
cross the MQTT boundary (agent to collector) as JSON via :func:`to_dict` / :func:`from_dict`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import operator
import re
import unicodedata
from collections.abc import Callable
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
        """One MAC answered and it is the expected one (:func:`arp_verdict` is ``ok``)."""
        return arp_verdict(self) == "ok"


#: none (no ARP, or nobody answered), conflict (2+ MACs), wrong (not the expected MAC), ok.
ArpVerdict = Literal["none", "conflict", "wrong", "ok"]


def arp_verdict(arp: ArpDetail | None, expected: str | None = None) -> ArpVerdict:
    """The IP-configuration verdict of one host, written once (here, on the ground floor,
    because the probes grade their own results with it; :mod:`monitor.decide.verdicts`
    hands it to everyone else). MACs compare lower-case; ``expected`` (the inventory's)
    wins over the one the probe carried; no expected MAC accepts any single MAC."""
    if arp is None or not arp.macs:
        return "none"
    if len({m.lower() for m in arp.macs}) > 1:
        return "conflict"
    want = (expected or arp.expected_mac or "").lower()
    return "wrong" if want and arp.macs[0].lower() != want else "ok"


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


class ResultError(ValueError):
    """A probe result that does not follow the schema; the message names the field."""


MAX_TEXT = 256  # characters of a name, subject, interface or problem
MAX_ERROR = 1024  # characters of an error message
MAX_URL = 2048
MAX_ITEMS = 64  # list entries: MACs, addresses, hops, problems
MAX_ECHOES = 1000  # ICMP echoes per result
MAX_SECONDS = 86_400.0  # a duration or phase time: a probe never runs a day
FAILED_PHASES = frozenset({"dns", "connect", "tls", "http"})
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")


def _number(value: Any, where: str, upper: float = math.inf) -> float:
    """A finite JSON number in ``0..upper`` (never a bool, a string or NaN)."""
    if type(value) is float and 0.0 <= value <= upper and value != math.inf:
        return value  # the common case: a float, not a bool, an int, NaN or infinity
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultError(f"{where}: expected a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= upper:
        raise ResultError(f"{where}: {number!r} is not a finite number in 0..{upper:g}")
    return number


def _seconds(value: Any, where: str) -> float:
    """A duration: a finite number of seconds in ``0..MAX_SECONDS``."""
    return _number(value, where, MAX_SECONDS)


def check_fields(data: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    """No field beyond ``allowed``: a made-up or misspelt field is refused, not ignored."""
    if not data.keys() <= allowed:  # no set built for a valid object (every batch's)
        extra = sorted(set(data) - allowed)[0]
        raise ResultError(f"{where}: unknown field {extra[:40]!r}")


def _opt_number(value: Any, where: str, upper: float = MAX_SECONDS) -> float | None:
    return None if value is None else _number(value, where, upper)


def _integer(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ResultError(f"{where}: expected an integer in {low}..{high}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ResultError(f"{where}: expected true or false")
    return value


def _opt_bool(value: Any, where: str) -> bool | None:
    return None if value is None else _bool(value, where)


def check_text(value: Any, where: str, limit: int = MAX_TEXT) -> str:
    """A string of at most ``limit`` characters without control characters: what ends up
    in logs, alerts and pages can never carry a line break or a terminal escape."""
    if not isinstance(value, str) or len(value) > limit:
        raise ResultError(f"{where}: expected a string of at most {limit} characters")
    # isprintable() is False for every control character (and for separators, which
    # are allowed): the character-by-character look only for the rare text it doubts
    if not value.isprintable() and any(unicodedata.category(ch)[0] == "C" for ch in value):
        raise ResultError(f"{where}: control characters are not allowed")
    return value


def _opt_text(value: Any, where: str, limit: int = MAX_TEXT) -> str | None:
    return None if value is None else check_text(value, where, limit)


def _error_text(value: Any, where: str) -> str | None:
    """A probe's error message comes from exceptions a genuine agent does not control (a
    TLS library's text may hold a line break): control characters become spaces and the
    text is cut at ``MAX_ERROR``, rather than losing the whole batch. Never a line of its
    own in a log, never longer than the bound."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ResultError(f"{where}: expected a string or null")
    cleaned = "".join(" " if unicodedata.category(ch)[0] == "C" else ch
                      for ch in value[:MAX_ERROR])
    return cleaned if len(value) <= MAX_ERROR else cleaned[:MAX_ERROR - 1] + "…"


def _canonical(value: Any, where: str, parse: Callable[[str], object], what: str) -> str:
    """``value`` read by ``parse`` (an ipaddress constructor) and written back in its
    canonical text; anything else is a :class:`ResultError` saying it is not ``what``."""
    text = check_text(value, where, 64)
    try:
        return str(parse(text))
    except ValueError:
        raise ResultError(f"{where}: {text[:64]!r} is not {what}") from None


def check_ip(value: Any, where: str) -> str:
    """An IPv4/IPv6 address in its canonical text."""
    if isinstance(value, str) and (known := _canonical_ips.get(value)) is not None:
        return known
    canonical = _canonical(value, where, ipaddress.ip_address, "an IP address")
    if len(_canonical_ips) >= _CANONICAL_IPS_KEPT:  # bounded: made-up addresses only cost
        _canonical_ips.clear()                      # a parse, never memory
    _canonical_ips[value] = canonical
    return canonical


#: Addresses already read, as written -> canonical: the agents of the nation send the same
#: few thousand every cycle, and parsing one costs more than the rest of its checks.
_canonical_ips: dict[str, str] = {}
_CANONICAL_IPS_KEPT = 65_536


def _interface(value: Any, where: str) -> str:
    return _canonical(value, where, ipaddress.ip_interface, "an address/prefix")


def check_mac(value: Any, where: str) -> str:
    """A MAC address as ``aa:bb:cc:dd:ee:ff`` (lower case)."""
    if not isinstance(value, str) or not _MAC.fullmatch(value):
        raise ResultError(f"{where}: expected a MAC address like 02:00:00:00:00:01")
    return value.lower()


def _list(value: Any, where: str, item: Any, limit: int = MAX_ITEMS) -> tuple[Any, ...]:
    if not isinstance(value, list) or len(value) > limit:
        raise ResultError(f"{where}: expected a list of at most {limit} entries")
    return tuple(item(v, f"{where}[{i}]") for i, v in enumerate(value))


def _opt_ip(value: Any, where: str) -> str | None:
    return None if value is None else check_ip(value, where)


def _icmp(d: dict[str, Any], w: str) -> IcmpDetail:
    sent = _integer(d.get("sent"), f"{w}.sent", 0, MAX_ECHOES)
    received = _integer(d.get("received"), f"{w}.received", 0, sent)
    rtts = _list(d.get("rtts", []), f"{w}.rtts", _seconds, MAX_ECHOES)
    if len(rtts) > received:
        raise ResultError(f"{w}.rtts: more RTTs than replies received")
    return IcmpDetail(sent, received, rtts)


def _tcp(d: dict[str, Any], w: str) -> TcpDetail:
    return TcpDetail(_integer(d.get("port"), f"{w}.port", 0, 65535),
                     _opt_number(d.get("connect_seconds"), f"{w}.connect_seconds"),
                     _bool(d.get("refused", False), f"{w}.refused"))


def _arp(d: dict[str, Any], w: str) -> ArpDetail:
    expected = d.get("expected_mac")
    return ArpDetail(_list(d.get("macs", []), f"{w}.macs", check_mac),
                     None if expected is None else check_mac(expected, f"{w}.expected_mac"))


def _target(d: dict[str, Any], w: str) -> TargetDetail:
    phase = d.get("failed_phase")
    if phase is not None and phase not in FAILED_PHASES:
        raise ResultError(f"{w}.failed_phase: one of {', '.join(sorted(FAILED_PHASES))}")
    status = d.get("http_status")
    return TargetDetail(
        url=check_text(d.get("url"), f"{w}.url", MAX_URL),
        resolved=_list(d.get("resolved", []), f"{w}.resolved", check_ip),
        addresses_ok=_opt_bool(d.get("addresses_ok"), f"{w}.addresses_ok"),
        dns_seconds=_opt_number(d.get("dns_seconds"), f"{w}.dns_seconds"),
        connect_seconds=_opt_number(d.get("connect_seconds"), f"{w}.connect_seconds"),
        tls_seconds=_opt_number(d.get("tls_seconds"), f"{w}.tls_seconds"),
        http_seconds=_opt_number(d.get("http_seconds"), f"{w}.http_seconds"),
        http_status=None if status is None else _integer(status, f"{w}.http_status", 0, 999),
        tls_not_after=_opt_number(d.get("tls_not_after"), f"{w}.tls_not_after", 1e11),
        failed_phase=phase,
    )


def _path(d: dict[str, Any], w: str) -> PathDetail:
    return PathDetail(_list(d.get("hops", []), f"{w}.hops", _opt_ip),
                      _opt_bool(d.get("first_hop_ok"), f"{w}.first_hop_ok"))


def _local(d: dict[str, Any], w: str) -> LocalDetail:
    return LocalDetail(
        interface=_opt_text(d.get("interface"), f"{w}.interface", 64),
        addresses=_list(d.get("addresses", []), f"{w}.addresses", _interface),
        gateway=_opt_ip(d.get("gateway"), f"{w}.gateway"),
        dns=_list(d.get("dns", []), f"{w}.dns", check_ip),
        problems=_list(d.get("problems", []), f"{w}.problems", check_text),
    )


_DETAIL_READERS: dict[str, Any] = {
    "icmp": _icmp, "tcp": _tcp, "arp": _arp, "target": _target, "path": _path, "local": _local,
}


def from_dict(data: Any, where: str = "result") -> ProbeResult:
    """Rebuild a result from :func:`to_dict` output, checking every field against the schema
    (types, finite non-negative numbers, lengths, counts, IP and MAC syntax) so that nothing
    malformed can reach the state; raises :class:`ResultError` (a ``ValueError``) naming the
    field."""
    if not isinstance(data, dict):
        raise ResultError(f"{where}: expected an object")
    check_fields(data, _RESULT_FIELDS, where)
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _DETAIL_TYPES:
        raise ResultError(f"{where}.kind: one of {', '.join(_DETAIL_TYPES)}")
    raw_detail = data.get("detail")
    detail = None
    if raw_detail is not None:
        if not isinstance(raw_detail, dict):
            raise ResultError(f"{where}.detail: expected an object")
        check_fields(raw_detail, _DETAIL_FIELDS[kind], f"{where}.detail")
        detail = _DETAIL_READERS[kind](raw_detail, f"{where}.detail")
    return ProbeResult(
        kind=kind,
        subject=check_text(data.get("subject"), f"{where}.subject"),
        ok=_bool(data.get("ok"), f"{where}.ok"),
        started=_number(data.get("started"), f"{where}.started"),
        duration=_number(data.get("duration"), f"{where}.duration", MAX_SECONDS),
        error=_error_text(data.get("error"), f"{where}.error"),
        detail=detail,
    )


_RESULT_FIELDS = frozenset(f.name for f in dataclasses.fields(ProbeResult))
_DETAIL_FIELDS = {kind: frozenset(f.name for f in dataclasses.fields(t))
                  for kind, t in _DETAIL_TYPES.items()}


@dataclass(frozen=True, slots=True)
class UnknownDevice:
    """A device that answered ARP in a commune's subnet at an address the inventory lacks."""

    ip: str
    mac: str
