"""The inventory: what tslcd-monitor watches (contract section 2).

Plain frozen dataclasses, built only by :mod:`inventory.loader` after the whole file has
been validated, so that a model object is always a consistent, complete inventory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The checks a milestone may require (contract section 2, ``milestones[].requires``);
#: ``inspection``: every host has its police security scan and stamp (``hosts[].inspection``).
CHECKS = ("link", "ip_config", "target", "inspection")
#: Computers a commune needs at least (the seeds: two); fewer is a warning, and counted.
MIN_COMPUTERS = 2
#: Days before a milestone's due day that its deadline warning goes out, unless it sets its own.
WARN_DAYS = 3
#: Seconds between re-probes of a failing host until ``down_after`` confirms it.
RETRY_INTERVAL = 2.0
#: Days of the week as ``working_hours.days`` writes them; index = ``datetime.weekday()``.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Vietnam time (no daylight saving): naive datetimes in the inventory and its helpers.
VIETNAM_TZ = dt.timezone(dt.timedelta(hours=7))


@dataclass(frozen=True, slots=True)
class IcmpSettings:
    count: int = 3
    timeout: float = 1.0  # seconds to wait for the last reply of a host


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """When commune computers are expected to answer (Vietnam time): outside these hours
    a silent computer is switched off for the night, not down."""

    days: tuple[int, ...]  # weekday numbers, Monday 0 (``datetime.weekday()``), sorted
    start: dt.time  # ``from``
    end: dt.time  # ``to``, after ``start`` (the validator refuses a window over midnight)

    def contains(self, local: dt.datetime) -> bool:
        """Whether the Vietnam-time moment ``local`` is inside the hours (``to`` excluded)."""
        return local.weekday() in self.days and self.start <= local.time() < self.end


@dataclass(frozen=True, slots=True)
class Snmp:
    """How to read a line router's ARP table. Key files are paths, read when used: key text
    never sits in the model. The community string is a password too: not in ``repr``."""

    version: str  # "2c" or "3"
    community: str | None = field(default=None, repr=False)
    user: str | None = None
    auth: str | None = None  # SHA, SHA-256, ..., MD5 (upper case, as in AUTH_PROTOCOLS)
    auth_key_file: str | None = None
    priv: str | None = None  # AES, AES-256, ..., DES
    priv_key_file: str | None = None
    address: IPAddress | None = None  # a commune's router to ask; None in ``defaults``

    def credentials(self) -> Snmp:
        """The same settings without an address: what a commune may inherit."""
        return Snmp(self.version, self.community, self.user, self.auth, self.auth_key_file,
                    self.priv, self.priv_key_file)


#: SNMPv3 authentication and privacy protocols accepted (as net-snmp and pysnmp name them).
AUTH_PROTOCOLS = ("MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512")
PRIV_PROTOCOLS = ("DES", "3DES", "AES", "AES-128", "AES-192", "AES-256")


#: Cycles between two SNMP reads of a router: the nation's 3,321 routers in tenths, each
#: read every 5 minutes at 30 s (docs/snmp.md: the cost measured, the ARP entries' life).
SNMP_EVERY = 10


@dataclass(frozen=True, slots=True)
class Defaults:
    interval: float = 30.0  # seconds between cycles
    icmp: IcmpSettings = IcmpSettings()
    down_after: int = 3
    up_after: int = 2
    tcp_ports: tuple[int, ...] = ()
    retry_interval: float = RETRY_INTERVAL
    working_hours: WorkingHours | None = None  # None: computers are expected at any hour
    holidays: tuple[dt.date, ...] = ()  # sorted, no working hours on these days
    snmp: Snmp | None = None  # credentials only (no address)
    snmp_every: int = SNMP_EVERY  # cycles between two reads of one router's ARP table
    upstream: tuple[IPAddress, ...] = ()  # the central vantage's own uplink


@dataclass(frozen=True, slots=True)
class Contact:
    """Whom to call about a commune's line (shown in alerts and on the page)."""

    name: str
    role: str | None = None
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Inspection:
    """The police security scan and stamp a computer needs before it may connect."""

    stamp: str
    date: dt.date


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    ip: IPAddress
    mac: str | None = None  # lower-case, colon separated
    tcp_ports: tuple[int, ...] = ()  # effective ports (host, else commune, else defaults)
    inspection: Inspection | None = None
    line: int = field(default=0, compare=False)  # line of the host in the inventory file
    always_on: bool = False  # expected to answer at any hour (a server, not an office PC)


@dataclass(frozen=True, slots=True)
class Commune:
    province: str  # official province code, e.g. "75"
    code: str  # official commune code, e.g. "26041"
    name: str
    isp: str  # "" until the operator is known (a scaffold)
    subnet: IPNetwork | None  # None while the line is not installed yet (no IPs assigned)
    gateway: IPAddress | None
    hosts: tuple[Host, ...]
    circuit: str | None = None
    backup_gateway: IPAddress | None = None  # may be outside ``subnet`` (WAN or loopback)
    line: int = field(default=0, compare=False)  # where it is in the file: not content
    backup_isp: str | None = None  # the backup line's operator, when not the primary's
    backup_circuit: str | None = None
    contacts: tuple[Contact, ...] = ()
    snmp: Snmp | None = None  # effective: own or the defaults', address filled in; None: none

    @property
    def key(self) -> str:
        """``PROV/COMMUNE``: the scope string used in MQTT topics, tokens and maintenance."""
        return f"{self.province}/{self.code}"


@dataclass(frozen=True, slots=True)
class Province:
    code: str
    name: str
    communes: tuple[Commune, ...]
    line: int = field(default=0, compare=False)  # where it is in the file: not content


@dataclass(frozen=True, slots=True)
class Target:
    """The election system, checked from every vantage point."""

    name: str
    url: str
    addresses: tuple[IPAddress, ...] = ()
    ca_file: str | None = None
    verify_tls: bool = True
    expected_first_hop: IPAddress | None = None
    line: int = field(default=0, compare=False)  # where it is in the file: not content


@dataclass(frozen=True, slots=True)
class Milestone:
    id: str
    title: str
    due: dt.date
    requires: tuple[str, ...]
    warn_days: int = WARN_DAYS  # a warning this many days before ``due`` (0: none)
    line: int = field(default=0, compare=False)  # where it is in the file: not content


class _Window:
    """A time window over a scope of the inventory (a drill, a period)."""

    __slots__ = ()
    scope: tuple[str, ...]
    start: dt.datetime
    end: dt.datetime

    def covers(self, province: str, commune: str) -> bool:
        return not self.scope or any(in_scope(s, province, commune) for s in self.scope)

    def active(self, at: dt.datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class Drill(_Window):
    """A connection drill ("diễn tập"): every commune in scope is expected online in the window."""

    id: str
    title: str
    start: dt.datetime
    end: dt.datetime
    scope: tuple[str, ...] = ()  # "PROV" / "PROV/COMMUNE" scopes; empty: the whole inventory
    line: int = field(default=0, compare=False)  # where it is in the file: not content


@dataclass(frozen=True, slots=True)
class Period(_Window):
    """A named period of closer watch (election day, the general drill): a shorter probe
    interval, and escalation of communes that stay down longer than ``escalate_after``."""

    id: str
    title: str
    start: dt.datetime
    end: dt.datetime
    interval: float | None = None  # seconds between cycles inside the period
    escalate_after: float | None = None  # seconds a commune may stay down before escalation
    scope: tuple[str, ...] = ()  # empty: the whole inventory
    line: int = field(default=0, compare=False)  # where it is in the file: not content


@dataclass(frozen=True, slots=True)
class Maintenance:
    scope: str  # "PROV" or "PROV/COMMUNE"
    start: dt.datetime
    end: dt.datetime
    line: int = field(default=0, compare=False)  # where it is in the file: not content

    def covers(self, province: str, commune: str | None, at: dt.datetime) -> bool:
        return in_scope(self.scope, province, commune) and self.start <= at < self.end


def computer_expected(
    defaults: Defaults, host: Host, at: dt.datetime, *, in_window: bool = False
) -> bool:
    """Whether a commune computer should answer at ``at`` (naive: Vietnam time).

    Office computers are switched off at night, at weekends and on holidays; a silent one
    then is "off", not down. ``always_on`` hosts and inventories without ``working_hours``
    are expected at any hour. ``in_window``: a drill or period covers the commune now,
    which counts as working hours (the caller knows its windows; this stays pure).
    """
    hours = defaults.working_hours
    if always_expected(defaults, host) or in_window or hours is None:
        return True
    local = at.astimezone(VIETNAM_TZ) if at.tzinfo else at
    if local.date() in defaults.holidays:
        return False
    return hours.contains(local)


def always_expected(defaults: Defaults, host: Host) -> bool:
    """Expected at any hour, whatever the time: an ``always_on`` host, or an inventory
    without ``working_hours`` (callers may skip building the time at all)."""
    return host.always_on or defaults.working_hours is None


def in_scope(scope: str, province: str, commune: str | None) -> bool:
    """Whether ``PROV[/COMMUNE]`` scope covers the given province (and commune)."""
    prov, _, comm = scope.partition("/")
    if prov != province:
        return False
    return not comm or comm == commune


@dataclass(frozen=True, slots=True)
class Inventory:
    version: int
    defaults: Defaults
    provinces: tuple[Province, ...]
    targets: tuple[Target, ...] = ()
    milestones: tuple[Milestone, ...] = ()
    maintenance: tuple[Maintenance, ...] = ()
    source: str = field(default="<memory>", compare=False)
    drills: tuple[Drill, ...] = ()  # after ``source``: older positional callers keep working
    periods: tuple[Period, ...] = ()
    _communes: dict[str, Commune] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        self._communes.update((c.key, c) for p in self.provinces for c in p.communes)

    def communes(self) -> Iterator[Commune]:
        for province in self.provinces:
            yield from province.communes

    def commune(self, province: str, code: str) -> Commune | None:
        return self._communes.get(f"{province}/{code}")

    def province(self, code: str) -> Province | None:
        return next((p for p in self.provinces if p.code == code), None)

    def hosts(self) -> Iterator[tuple[Commune, Host]]:
        for commune in self.communes():
            for host in commune.hosts:
                yield commune, host

    @property
    def host_count(self) -> int:
        return sum(len(c.hosts) for c in self.communes())

    def active_periods(self, now: float) -> list[Period]:
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        return [p for p in self.periods if p.active(at)]

    def interval_at(self, now: float) -> float:
        """The probe interval in force: the shortest of the active periods', else the default."""
        shorter = [p.interval for p in self.active_periods(now) if p.interval is not None]
        return min([self.defaults.interval, *shorter])

    def scoped(self, scope: str | None) -> Inventory:
        """The same inventory restricted to ``PROV`` or ``PROV/COMMUNE`` (None: all)."""
        if not scope:
            return self
        prov, _, comm = scope.partition("/")
        provinces = tuple(
            Province(
                p.code, p.name, tuple(c for c in p.communes if not comm or c.code == comm), p.line
            )
            for p in self.provinces
            if p.code == prov
        )
        return Inventory(
            self.version,
            self.defaults,
            tuple(p for p in provinces if p.communes),
            self.targets,
            self.milestones,
            self.maintenance,
            self.source,
            self.drills,
            self.periods,
        )
