"""Loading and validating the inventory file (contract section 2).

The YAML is composed into nodes (libyaml) so that every problem is reported at the line where
it is, and the whole file is checked in one pass: the operator fixes all mistakes at once.
A model :class:`~inventory.model.Inventory` is returned only when there is no error, never a
half-loaded one.
"""

from __future__ import annotations

import datetime as dt
import gc
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode as YamlScalar

from inventory import nodes, official
from inventory.model import (
    AUTH_PROTOCOLS,
    CHECKS,
    MIN_COMPUTERS,
    PRIV_PROTOCOLS,
    RETRY_INTERVAL,
    SNMP_EVERY,
    VIETNAM_TZ,
    WARN_DAYS,
    WEEKDAYS,
    Commune,
    Contact,
    Defaults,
    Drill,
    Host,
    IcmpSettings,
    Inspection,
    Inventory,
    IPAddress,
    IPNetwork,
    Maintenance,
    Milestone,
    Period,
    Province,
    Snmp,
    Target,
    WorkingHours,
)
from inventory.nodes import Mapping as MappingNode
from inventory.nodes import Node
from inventory.nodes import Scalar as ScalarNode
from inventory.nodes import Sequence as SequenceNode

#: Ports used to judge liveness by TCP connect when neither host nor commune sets its own.
DEFAULT_TCP_PORTS = (445, 3389)

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_STR, _INT, _FLOAT, _BOOL, _NULL, _TIME = (
    nodes.TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")
)
_MERGE = nodes.TAG + "merge"
_CONSTRUCT = SafeConstructor()

TOP_KEYS = ("version", "defaults", "targets", "milestones", "provinces", "maintenance", "drills",
            "periods")
DEFAULTS_KEYS = ("interval", "icmp", "down_after", "up_after", "tcp_ports", "retry_interval",
                 "working_hours", "holidays", "snmp", "snmp_every", "upstream")
WORKING_HOURS_KEYS = ("days", "from", "to")
SNMP_KEYS = ("version", "community", "user", "auth", "auth_key_file", "priv", "priv_key_file")
SNMP_V3_KEYS = ("user", "auth", "auth_key_file", "priv", "priv_key_file")
COMMUNE_SNMP_KEYS = (*SNMP_KEYS, "address")
CONTACT_KEYS = ("name", "role", "phone", "email")
_BACKUP_AND_CONTACTS = frozenset(("backup_isp", "backup_circuit", "contacts"))
ICMP_KEYS = ("count", "timeout")
TARGET_KEYS = ("name", "url", "addresses", "ca_file", "verify_tls", "expected_first_hop")
MILESTONE_KEYS = ("id", "title", "due", "requires", "warn_days")
PROVINCE_KEYS = ("code", "name", "communes")
COMMUNE_KEYS = (
    "code", "name", "isp", "circuit", "subnet", "gateway", "backup_gateway", "backup_isp",
    "backup_circuit", "contacts", "snmp", "tcp_ports", "hosts",
)
HOST_KEYS = ("name", "ip", "mac", "tcp_ports", "inspection", "always_on")
INSPECTION_KEYS = ("stamp", "date")
MAINTENANCE_KEYS = ("scope", "from", "to")
DRILL_KEYS = ("id", "title", "from", "to", "scope")
PERIOD_KEYS = ("id", "title", "from", "to", "interval", "escalate_after", "scope")

_MAC_SEPARATED = re.compile(r"[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}", re.IGNORECASE)
_MAC_DOTTED = re.compile(r"[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}", re.IGNORECASE)
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
#: Drill, milestone and period ids end up in file names, URLs and MQTT payloads.
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_PHONE = re.compile(r"\+?[0-9][0-9 .()-]{4,20}[0-9]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DAY_NAMES = {*WEEKDAYS, "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
              "sunday"}
#: SNMP protocol names by their letters and digits only ("sha_256", "SHA256", "sha-256").
_PROTOCOL_ALIASES = {
    **{re.sub(r"[^0-9A-Z]", "", name): name for name in (*AUTH_PROTOCOLS, *PRIV_PROTOCOLS)},
    "SHA1": "SHA", "AESCFB": "AES", "AESCFB128": "AES-128", "DES3": "3DES", "TRIPLEDES": "3DES",
}

NO_IPS_YET = "chưa có địa chỉ IP / no IPs assigned yet"
NO_ISP = "chưa có nhà mạng / no operator (isp) given"

T = TypeVar("T")
Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in an input file, where it is (1-based line; for a spreadsheet, row)."""

    file: str
    line: int
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        label = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}: {label}{self.message}"


class InventoryError(Exception):
    """The inventory has errors; ``problems`` lists them all (and any warnings)."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def has_errors(problems: Iterable[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def demo_path() -> Path:
    """The bundled demo inventory (Đồng Nai, loopback addresses)."""
    return Path(__file__).parent / "examples" / "demo.yaml"


def load(path: str | Path) -> Inventory:
    inventory, problems = validate(path)
    if inventory is None:
        raise InventoryError(problems)
    return inventory


def loads(text: str, source: str = "<string>") -> Inventory:
    inventory, problems = validate_text(text, source)
    if inventory is None:
        raise InventoryError(problems)
    return inventory


def validate(path: str | Path) -> tuple[Inventory | None, list[Problem]]:
    """Every problem of the file at ``path``; the inventory only when there is no error."""
    text, problems = read_text(path)
    return (None, problems) if text is None else validate_text(text, str(path))


def read_text(path: str | Path) -> tuple[str | None, list[Problem]]:
    """A YAML file's text (UTF-8, a BOM allowed), or the problem that stops reading it: the
    one rule for the inventory and the monitor's own files (configuration, tokens, agents)."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, [Problem(source, 1, f"cannot read the file: {exc.strerror or exc}")]
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        message = (
            f"not UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8 "
            "/ tệp không phải UTF-8, hãy lưu lại với mã UTF-8"
        )
        return None, [Problem(source, line, message)]


def validate_text(
    text: str, source: str = "<string>", rows: Mapping[int, int] | None = None
) -> tuple[Inventory | None, list[Problem]]:
    """Like :func:`validate`, for text. ``rows`` maps lines of the text to the rows of the
    spreadsheet it was imported from: problems are then reported at those rows."""
    # The node tree is hundreds of thousands of acyclic objects: pausing the cyclic garbage
    # collector while building it and the model halves the time of a nationwide inventory.
    with gc_paused():
        return _validate_text(text, source, rows)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Building or writing big trees of acyclic objects: no cyclic garbage collection."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _validate_text(
    text: str, source: str, rows: Mapping[int, int] | None
) -> tuple[Inventory | None, list[Problem]]:
    try:
        root = nodes.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return None, [Problem(source, line, f"YAML syntax error: {exc.problem or exc.context}")]
    except yaml.YAMLError as exc:
        return None, [Problem(source, 1, f"YAML error: {exc}")]
    if root is None:
        return None, [Problem(source, 1, "the file is empty / tệp rỗng")]
    checker = _Checker(source, rows)
    inventory = checker.inventory(root)
    problems = sorted(checker.problems, key=lambda p: p.line)
    return (None if has_errors(problems) else inventory), problems


def parse_ip(text: str) -> IPAddress:
    """``ipaddress.ip_address``, five times faster for a dotted quad (a nationwide inventory
    has 13,000): ``inet_pton`` accepts exactly the IPv4 forms that ``ipaddress`` does."""
    try:
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except (OSError, ValueError):
        return ipaddress.ip_address(text)


def parse_network(text: str) -> IPNetwork:
    """``ipaddress.ip_network`` (strict), twice as fast for ``a.b.c.d/len`` (one per
    commune): the tuple form skips parsing the text twice over."""
    address, slash, length = text.partition("/")
    if slash and length.isascii() and length.isdigit() and int(length) <= 32:
        try:
            packed = socket.inet_pton(socket.AF_INET, address)
        except OSError:
            pass
        else:
            return ipaddress.IPv4Network((int.from_bytes(packed, "big"), int(length)))
    return ipaddress.ip_network(text)


def _line(node: Node) -> int:
    return node.line


def _yaml_scalar(node: ScalarNode) -> YamlScalar:
    """PyYAML's constructors (YAML 1.1 integers, booleans, timestamps) take its own nodes."""
    return YamlScalar(node.tag, node.value)


def _is_null(node: Node | None) -> bool:
    return node is None or (node.tag == _NULL and isinstance(node, ScalarNode))


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    names = {_STR: "text", _INT: "a number", _FLOAT: "a number", _BOOL: "true/false",
             _NULL: "nothing (null)", _TIME: "a date"}
    return names.get(node.tag, node.tag)


@cache
def official_province_of_commune() -> dict[str, str]:
    """Commune code -> code of its province in the official list."""
    return {c: p.code for p in official.provinces().values() for c in p.communes}


class _Block:
    """A commune's subnet as integers: placing its 13,000 addresses by arithmetic, not by
    ``ipaddress``'s properties."""

    __slots__ = ("first", "size", "subnet", "version")

    def __init__(self, subnet: IPNetwork) -> None:
        self.subnet = subnet
        self.version = subnet.version
        self.first = int(subnet.network_address)
        self.size = 1 << (subnet.max_prefixlen - subnet.prefixlen)

    def misplaced(self, ip: IPAddress) -> str | None:
        """What is wrong with ``ip`` as an address of this subnet, if anything."""
        offset = int(ip) - self.first
        if ip.version != self.version or not 0 <= offset < self.size:
            return f"is outside the commune's subnet {self.subnet}"
        if self.size > 2 and offset in (0, self.size - 1):
            return "is the subnet's network or broadcast address"
        return None


class _Fields:
    """The keys of one YAML mapping, checked against the keys it may have."""

    __slots__ = ("node", "values")

    def __init__(self, node: MappingNode) -> None:
        self.node = node
        self.values: dict[str, Node] = {}

    def get(self, key: str) -> Node | None:
        return self.values.get(key)

    def given(self, key: str) -> Node | None:
        """The value node, or None when the key is absent or null."""
        node = self.values.get(key)
        return None if _is_null(node) else node


class _Checker:
    """Walks the node tree once, collecting problems and building the model as it goes."""

    def __init__(self, source: str, rows: Mapping[int, int] | None = None) -> None:
        self.source = source
        self.rows = rows or {}
        self.problems: list[Problem] = []
        self.ip_lines: dict[IPAddress, int] = {}
        self.subnets: list[tuple[IPNetwork, int, str]] = []  # (subnet, line, PROV/COMMUNE)
        self.defaults = Defaults(tcp_ports=DEFAULT_TCP_PORTS)
        self.defaults_snmp_given = False  # (when wrong: reported there, not at every commune)

    # -- reporting -------------------------------------------------------------------------

    def error(self, where: Node | int, message: str) -> None:
        self.report(where, message, "error")

    def warn(self, where: Node | int, message: str) -> None:
        self.report(where, message, "warning")

    def report(self, where: Node | int, message: str, severity: Severity) -> None:
        line = where if isinstance(where, int) else _line(where)
        if self.rows:
            line = self.rows.get(line, line)
        self.problems.append(Problem(self.source, line, message, severity))

    # -- structure -------------------------------------------------------------------------

    def fields(
        self, node: Node, what: str, known: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> _Fields | None:
        if not isinstance(node, MappingNode):
            self.error(node, f"{what}: expected a mapping (key: value), got {_kind(node)}")
            return None
        result = _Fields(node)
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            if key_node.tag == _MERGE:
                self.merge(result, value_node, known)
            elif key not in known:
                self.error(key_node, self.unknown_key_message(key_node, known))
            elif key in result.values:
                self.error(key_node, f"duplicate key '{key}' ({self.first(result.values[key])})")
            else:
                result.values[key] = value_node
        for key in required:
            if _is_null(result.values.get(key)):
                self.error(result.values.get(key) or node, f"{what}: missing '{key}'")
        return result

    def merge(self, result: _Fields, node: Node, known: tuple[str, ...]) -> None:
        """``<<: *anchor``: the anchored mapping's keys, unless this mapping sets them itself."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            merged = self.fields(source, "<<", known)
            for key, value in (merged.values.items() if merged else ()):
                if not any(k.value == key for k, _ in result.node.value):
                    result.values.setdefault(key, value)

    @staticmethod
    def unknown_key_message(key_node: Node, known: tuple[str, ...]) -> str:
        if not isinstance(key_node, ScalarNode):
            return "a key must be plain text"
        import difflib  # only for a mistake

        close = difflib.get_close_matches(str(key_node.value), known, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(known)})"
        return f"unknown key '{key_node.value}'{hint}"

    def items(self, node: Node | None, what: str) -> list[Node]:
        if _is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            self.error(node, f"{what}: expected a list, got {_kind(node)}")
            return []
        return node.value

    # -- scalars ---------------------------------------------------------------------------

    def raw(self, node: Node, what: str) -> str | None:
        """The text as written, for values YAML may mistake for numbers (codes, MACs, IPs)."""
        return self.text(node, what, (_STR, _INT, _FLOAT))

    def text(self, node: Node, what: str, tags: tuple[str, ...] = (_STR,)) -> str | None:
        if not (isinstance(node, ScalarNode) and node.tag in tags):
            self.error(node, f"{what}: expected text, got {_kind(node)}")
            return None
        value = official.nfc(node.value.strip())
        if not value:
            self.error(node, f"{what}: empty")
            return None
        return value

    def integer(self, node: Node, what: str, low: int, high: int | None = None) -> int | None:
        if not (isinstance(node, ScalarNode) and node.tag == _INT):
            self.error(node, f"{what}: expected a whole number, got {_kind(node)}")
            return None
        value = _CONSTRUCT.construct_yaml_int(_yaml_scalar(node))
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.error(node, f"{what}: {value} must be {bound}")
            return None
        return value

    def boolean(self, node: Node, what: str) -> bool | None:
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            return _CONSTRUCT.construct_yaml_bool(_yaml_scalar(node))
        self.error(node, f"{what}: expected true or false, got {_kind(node)}")
        return None

    def duration(self, node: Node, what: str) -> float | None:
        text = self.raw(node, what)
        if text is None:
            return None
        match = _DURATION.fullmatch(text)
        if not match:
            self.error(node, f"{what}: malformed duration '{text}' (e.g. 30s, 500ms, 1m, 1h)")
            return None
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        if seconds <= 0:
            self.error(node, f"{what}: duration must be more than zero")
            return None
        return seconds

    def ip(self, node: Node, what: str) -> IPAddress | None:
        text = self.raw(node, what)
        if text is None:
            return None
        try:
            return parse_ip(text)
        except ValueError:
            self.error(node, f"{what}: malformed IP address '{text}'")
            return None

    def network(self, node: Node, what: str) -> IPNetwork | None:
        text = self.raw(node, what)
        if text is None:
            return None
        try:
            return parse_network(text)
        except ValueError:
            pass
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            self.error(node, f"{what}: malformed subnet '{text}' (e.g. 198.18.1.0/29)")
            return None
        self.error(node, f"{what}: '{text}' has host bits set (the network is {loose})")
        return None

    def mac(self, node: Node, what: str) -> str | None:
        text = self.raw(node, what)
        if text is None:
            return None
        if not (_MAC_SEPARATED.fullmatch(text) or _MAC_DOTTED.fullmatch(text)):
            self.error(node, f"{what}: malformed MAC address '{text}' (e.g. 02:00:00:00:01:02)")
            return None
        digits = re.sub(r"[:.-]", "", text).lower()
        return ":".join(digits[i : i + 2] for i in range(0, 12, 2))

    def date(self, node: Node, what: str) -> dt.date | None:
        if isinstance(node, ScalarNode) and node.tag in (_TIME, _STR):
            try:
                value = dt.date.fromisoformat(node.value.strip())
            except ValueError:
                value = None
            if value is not None:
                return value
        self.error(node, f"{what}: expected a date like 2026-01-29, got '{node.value}'"
                   if isinstance(node, ScalarNode) else f"{what}: expected a date")
        return None

    def moment(self, node: Node, what: str) -> dt.datetime | None:
        value: Any = None
        if isinstance(node, ScalarNode) and node.tag == _TIME:
            value = _CONSTRUCT.construct_yaml_timestamp(_yaml_scalar(node))
        elif isinstance(node, ScalarNode) and node.tag == _STR:
            try:
                value = dt.datetime.fromisoformat(node.value.strip())
            except ValueError:
                value = None
        if not isinstance(value, dt.datetime):
            self.error(node, f"{what}: expected a date and time like 2026-02-06T07:00:00+07:00")
            return None
        return value if value.tzinfo else value.replace(tzinfo=VIETNAM_TZ)

    def identifier(self, node: Node, what: str) -> str | None:
        """An id that becomes part of file names, URLs and topics: a safe character set."""
        text = self.raw(node, what)
        if text is None:
            return None
        if not SAFE_ID.fullmatch(text) or ".." in text:
            self.error(node, f"{what}: '{_printable(text)}' is not a safe id: 1-64 letters, "
                             "digits, '.', '_' or '-', starting with a letter or digit, no '..' "
                             "(e.g. dien-tap-1)")
            return None
        return text

    def clock(self, node: Node, what: str) -> dt.time | None:
        """"07:00" (YAML 1.1 reads an unquoted 07:00 as a number: the text is what counts)."""
        text = self.raw(node, what)
        if text is None:
            return None
        match = _CLOCK.fullmatch(text)
        if not match:
            self.error(node, f"{what}: expected a time of day like \"07:30\", got '{text}'")
            return None
        return dt.time(int(match.group(1)), int(match.group(2)))

    def phone(self, node: Node, what: str) -> str | None:
        text = self.raw(node, what)
        if text is not None and not _PHONE.fullmatch(text):
            self.error(node, f"{what}: '{text}' is not a phone number (e.g. 0912 345 678)")
            return None
        return text

    def email(self, node: Node, what: str) -> str | None:
        text = self.text(node, what)
        if text is not None and not _EMAIL.fullmatch(text):
            self.error(node, f"{what}: '{text}' is not an e-mail address")
            return None
        return text

    def ports(self, node: Node, what: str) -> tuple[int, ...] | None:
        if not isinstance(node, SequenceNode):
            self.error(node, f"{what}: expected a list of TCP ports, got {_kind(node)}")
            return None
        ports = [self.integer(item, what, 1, 65535) for item in node.value]
        return tuple(p for p in ports if p is not None) if None not in ports else None

    def optional(
        self, fields: _Fields, key: str, convert: Callable[[Node, str], T | None], what: str
    ) -> T | None:
        node = fields.given(key)
        return None if node is None else convert(node, what)

    def claim_ip(self, ip: IPAddress | None, node: Node, what: str) -> None:
        """An address may appear once in the whole inventory (hosts and gateways)."""
        if ip in self.ip_lines:  # (the message is made only then: 13,000 addresses)
            self.unique(self.ip_lines, ip, node, f"{what}: IP {ip} already used")
        elif ip is not None:
            self.ip_lines[ip] = _line(node)

    def unique(self, seen: dict[Any, int], key: object, node: Node, what: str) -> None:
        """Report a second use of ``key`` at ``node``, naming where the first one is."""
        if key in seen:
            self.error(node, f"{what} (first at {self.place(seen[key])})")
        else:
            seen[key] = _line(node)

    def first(self, node: Node) -> str:
        return f"first at {self.place(_line(node))}"

    def place(self, line: int) -> str:
        """How a message names another place: a line of the file, or a spreadsheet row."""
        return f"row {self.rows.get(line, line)}" if self.rows else f"line {line}"

    # -- the document ----------------------------------------------------------------------

    def inventory(self, root: Node) -> Inventory | None:
        top = self.fields(root, "inventory", TOP_KEYS, required=("version", "provinces"))
        if top is None:
            return None
        version = top.given("version")
        if version is not None and not (
            isinstance(version, ScalarNode) and version.tag == _INT
            and _CONSTRUCT.construct_yaml_int(_yaml_scalar(version)) == 1
        ):
            written = version.value if isinstance(version, ScalarNode) else _kind(version)
            self.error(version, f"version: must be 1, not '{written}'")
        if top.given("defaults") is not None:
            self.defaults = self.read_defaults(top.values["defaults"])
            self.defaults_snmp_given = isinstance(top.values["defaults"], MappingNode) and any(
                k.value == "snmp" and not _is_null(v) for k, v in top.values["defaults"].value)
        provinces = self.read_provinces(top.get("provinces"))
        communes = {c.key for p in provinces for c in p.communes}
        return Inventory(
            version=1,
            defaults=self.defaults,
            provinces=tuple(provinces),
            targets=tuple(self.read_targets(top.get("targets"))),
            milestones=tuple(self.read_milestones(top.get("milestones"))),
            maintenance=tuple(
                self.read_maintenance(top.get("maintenance"), {p.code for p in provinces},
                                      communes)
            ),
            source=self.source,
            drills=tuple(self.read_drills(top.get("drills"), {p.code for p in provinces},
                                          communes)),
            periods=tuple(self.read_periods(top.get("periods"), {p.code for p in provinces},
                                            communes)),
        )

    def read_defaults(self, node: Node) -> Defaults:
        f = self.fields(node, "defaults", DEFAULTS_KEYS)
        base = Defaults(tcp_ports=DEFAULT_TCP_PORTS)
        if f is None:
            return base
        icmp = base.icmp
        if f.given("icmp") is not None and (g := self.fields(f.values["icmp"], "icmp", ICMP_KEYS)):
            icmp = IcmpSettings(
                count=_or(self.optional(g, "count", lambda n, w: self.integer(n, w, 1, 100),
                                        "icmp count"), icmp.count),
                timeout=_or(self.optional(g, "timeout", self.duration, "icmp timeout"),
                            icmp.timeout),
            )
        return Defaults(
            interval=_or(self.optional(f, "interval", self.duration, "interval"), base.interval),
            icmp=icmp,
            down_after=_or(self.optional(f, "down_after", self.at_least_one, "down_after"),
                           base.down_after),
            up_after=_or(self.optional(f, "up_after", self.at_least_one, "up_after"),
                         base.up_after),
            tcp_ports=_or(self.optional(f, "tcp_ports", self.ports, "tcp_ports"), base.tcp_ports),
            retry_interval=_or(self.optional(f, "retry_interval", self.duration,
                                             "retry_interval"), RETRY_INTERVAL),
            working_hours=self.optional(f, "working_hours", self.working_hours, "working_hours"),
            holidays=self.holidays(f.get("holidays")),
            snmp=self.optional(f, "snmp", self.snmp, "snmp"),
            snmp_every=_or(self.optional(f, "snmp_every", self.at_least_one, "snmp_every"),
                           SNMP_EVERY),
            upstream=self.addresses(f.get("upstream"), "upstream"),
        )

    def working_hours(self, node: Node, what: str) -> WorkingHours | None:
        f = self.fields(node, what, WORKING_HOURS_KEYS, required=("days", "from", "to"))
        if f is None:
            return None
        days = self.weekdays(f.given("days"))
        start = self.optional(f, "from", self.clock, f"{what} from")
        end = self.optional(f, "to", self.clock, f"{what} to")
        if start is not None and end is not None and start >= end:
            self.error(f.values["to"], f"{what} to: must be after 'from' ({start:%H:%M}); "
                                       "hours over midnight are not supported")
            return None
        if days is None or start is None or end is None:
            return None
        return WorkingHours(days, start, end)

    def weekdays(self, node: Node | None) -> tuple[int, ...] | None:
        if node is None:
            return None
        found: set[int] = set()
        items = self.items(node, "working_hours days")
        for item in items:
            day = self.raw(item, "working_hours days")
            if day is None:
                return None
            if day.lower() not in _DAY_NAMES:
                self.error(item, f"working_hours days: unknown day '{day}' "
                                 f"(one of: {', '.join(WEEKDAYS)})")
                return None
            found.add(WEEKDAYS.index(day.lower()[:3]))
        if not found:
            self.error(node, "working_hours days: at least one day")
            return None
        return tuple(sorted(found))

    def holidays(self, node: Node | None) -> tuple[dt.date, ...]:
        seen: dict[dt.date, int] = {}
        for item in self.items(node, "holidays"):
            day = self.date(item, "holidays")
            if day is not None:
                self.unique(seen, day, item, f"holidays: duplicate date {day}")
        return tuple(sorted(seen))

    def addresses(self, node: Node | None, what: str) -> tuple[IPAddress, ...]:
        found = [self.ip(item, what) for item in self.items(node, what)]
        return tuple(a for a in found if a is not None)

    def snmp(self, node: Node, what: str) -> Snmp | None:
        f = self.fields(node, what, SNMP_KEYS, required=("version",))
        return None if f is None else self.snmp_settings(f, what)

    def snmp_settings(self, f: _Fields, what: str) -> Snmp | None:
        """``{version: 2c, community}`` or ``{version: 3, user, auth, auth_key_file, priv,
        priv_key_file}``; v3 may go without privacy (authNoPriv) or without both (noAuth)."""
        if f.given("version") is None:
            return None
        version = self.raw(f.values["version"], f"{what} version")
        if version is not None and version.lower().removeprefix("v") in ("2c", "3"):
            version = version.lower().removeprefix("v")
        elif version is not None:
            self.error(f.values["version"], f"{what} version: '{version}' is not 2c or 3")
            return None
        if version == "2c":
            return self.snmp_v2c(f, what)
        return self.snmp_v3(f, what) if version == "3" else None

    def snmp_v2c(self, f: _Fields, what: str) -> Snmp | None:
        for key in SNMP_V3_KEYS:
            if f.given(key) is not None:
                self.error(f.values[key], f"{what} {key}: only for SNMP version 3")
        if f.given("community") is None:
            self.error(f.values.get("community", f.node), f"{what}: missing 'community'")
            return None
        community = self.raw(f.values["community"], f"{what} community")
        return None if community is None else Snmp("2c", community=community)

    def snmp_v3(self, f: _Fields, what: str) -> Snmp | None:
        if f.given("community") is not None:
            self.error(f.values["community"], f"{what} community: only for SNMP version 2c")
        user = self.optional(f, "user", self.raw, f"{what} user")
        if f.given("user") is None:
            self.error(f.values.get("user", f.node), f"{what}: missing 'user'")
        auth = self.protocol(f, "auth", AUTH_PROTOCOLS, what)
        priv = self.protocol(f, "priv", PRIV_PROTOCOLS, what)
        if f.given("priv") is not None and f.given("auth") is None:
            self.error(f.values["priv"], f"{what} priv: needs 'auth' too (authPriv)")
        if user is None or (auth is None) != (f.given("auth") is None) or (
            (priv is None) != (f.given("priv") is None)
        ):
            return None
        return Snmp("3", user=user, auth=auth, priv=priv,
                    auth_key_file=self.optional(f, "auth_key_file", self.text, "auth_key_file"),
                    priv_key_file=self.optional(f, "priv_key_file", self.text, "priv_key_file"))

    def protocol(self, f: _Fields, key: str, known: tuple[str, ...], what: str) -> str | None:
        """``auth``/``priv`` and its key file: both or neither (the key file is only a path,
        read when used: it may not exist on the machine that validates)."""
        node, key_file = f.given(key), f.given(f"{key}_key_file")
        if node is None:
            if key_file is not None:
                self.error(key_file, f"{what} {key}_key_file: given without '{key}'")
            return None
        text = self.raw(node, f"{what} {key}")
        if text is None:
            return None
        name = _PROTOCOL_ALIASES.get(re.sub(r"[^0-9A-Z]", "", text.upper()), text)
        if name not in known:
            self.error(node, f"{what} {key}: unknown protocol '{text}' (one of: "
                             f"{', '.join(known)})")
            return None
        if key_file is None:
            self.error(f.values.get(f"{key}_key_file", f.node),
                       f"{what}: missing '{key}_key_file' (a file holding the {key} key)")
            return None
        return name

    def at_least_one(self, node: Node, what: str) -> int | None:
        return self.integer(node, what, 1)

    # -- provinces and communes ------------------------------------------------------------

    def read_provinces(self, node: Node | None) -> list[Province]:
        seen: dict[str, int] = {}
        commune_lines: dict[str, int] = {}
        provinces = []
        for item in self.items(node, "provinces"):
            f = self.fields(item, "province", PROVINCE_KEYS, required=("code",))
            if f is None or f.given("code") is None:
                continue
            code = self.code(f.values["code"], "province code", official.province_code)
            if code is None:
                continue
            self.unique(seen, code, f.values["code"], f"duplicate province {code}")
            name = self.province_name(f, code)
            communes = []
            for c_node in self.items(f.get("communes"), "communes"):
                commune = self.read_commune(c_node, code, commune_lines)
                if commune is not None:
                    communes.append(commune)
            provinces.append(Province(code, name, tuple(communes), _line(item)))
        self.check_overlaps()
        return provinces

    def code(self, node: Node, what: str, normalise: Callable[[object], str]) -> str | None:
        text = self.raw(node, what)
        if text is None:
            return None
        code = normalise(text)
        if not code.isdigit():
            self.error(node, f"{what}: '{text}' is not a number")
            return None
        return code

    def province_name(self, f: _Fields, code: str) -> str:
        given = self.optional(f, "name", self.text, "province name")
        unit = official.provinces().get(code)
        if unit is None:
            hint = _name_hint(given, {p.code: p.name for p in official.provinces().values()})
            self.error(f.values["code"], f"unknown province code '{code}'{hint}")
            return given or code
        if given is None:
            return unit.name
        if not official.same_name(given, unit.name):
            self.warn(f.values["name"], f"province {code} is officially named '{unit.name}', "
                                        f"not '{given}'")
        return given

    def read_commune(
        self, node: Node, province: str, commune_lines: dict[str, int]
    ) -> Commune | None:
        f = self.fields(node, "commune", COMMUNE_KEYS, required=("code",))
        if f is None or f.given("code") is None:
            return None
        code = self.code(f.values["code"], "commune code", official.commune_code)
        if code is None:
            return None
        self.unique(commune_lines, code, f.values["code"], f"duplicate commune {code}")
        name = self.commune_name(f, province, code)
        subnet = self.optional(f, "subnet", self.network, "subnet")
        if subnet is not None:
            self.subnets.append((subnet, _line(f.values["subnet"]), f"{province}/{code}"))
        block = None if subnet is None else _Block(subnet)
        gateway = self.address_in(f, "gateway", block)
        backup = self.address_in(f, "backup_gateway", block, outside_ok=True)
        own_ports = self.optional(f, "tcp_ports", self.ports, "tcp_ports")
        hosts = self.read_hosts(f.get("hosts"), block, own_ports or self.defaults.tcp_ports)
        self.check_addressing(f, hosts)
        isp = self.optional(f, "isp", self.raw, "isp")
        if isp is None and f.given("subnet") is not None:
            self.warn(node, NO_ISP)
        if subnet is not None and len(hosts) < MIN_COMPUTERS:
            self.warn_few_computers(node, code, len(hosts))
        circuit = self.optional(f, "circuit", self.raw, "circuit")
        commune = Commune(province, code, name, isp or "", subnet, gateway, tuple(hosts),
                          circuit or None, backup, _line(node),
                          snmp=self.commune_snmp(f.given("snmp"), gateway))
        if f.values.keys().isdisjoint(_BACKUP_AND_CONTACTS):  # (most communes: done)
            return commune
        return replace(
            commune,
            backup_isp=self.optional(f, "backup_isp", self.raw, "backup_isp"),
            backup_circuit=self.optional(f, "backup_circuit", self.raw, "backup_circuit"),
            contacts=self.contacts(f.get("contacts")),
        )

    def warn_few_computers(self, node: Node, code: str, count: int) -> None:
        """Each commune needs at least two computers (the seeds require two): fewer is a
        warning, not an error, since a commune may be mid-installation. Only for communes
        with a subnet: one whose IPs are not assigned yet (a scaffold's) already has its
        "no IPs yet" warning, and a second one for each of 3,321 communes would bury it."""
        self.warn(node, f"commune {code}: {count} computer(s) listed, at least two "
                        "are expected / xã cần ít nhất hai máy tính")

    def contacts(self, node: Node | None) -> tuple[Contact, ...]:
        found = []
        for item in self.items(node, "contacts"):
            f = self.fields(item, "contact", CONTACT_KEYS, required=("name",))
            name = None if f is None else self.optional(f, "name", self.text, "contact name")
            if f is None or name is None:
                continue
            found.append(Contact(
                name,
                role=self.optional(f, "role", self.text, "contact role"),
                phone=self.optional(f, "phone", self.phone, "contact phone"),
                email=self.optional(f, "email", self.email, "contact email"),
            ))
        return tuple(found)

    def commune_snmp(self, node: Node | None, gateway: IPAddress | None) -> Snmp | None:
        """The commune's effective SNMP settings: its own, or the defaults' credentials (all
        of them, when it gives only ``address``), asked of ``address`` or else the gateway."""
        inherited = self.defaults.snmp
        if node is None:
            return None if inherited is None or gateway is None else replace(
                inherited, address=gateway)
        if isinstance(node, MappingNode) and not any(
            isinstance(k, ScalarNode) and k.value in SNMP_KEYS for k, _ in node.value
        ):
            f = self.fields(node, "snmp", COMMUNE_SNMP_KEYS)
            own = None
            if inherited is None and not self.defaults_snmp_given:
                self.error(node, "snmp: only an address here, and no credentials in "
                                 "defaults.snmp to use with it")
        else:
            f = self.fields(node, "snmp", COMMUNE_SNMP_KEYS, required=("version",))
            own = None if f is None else self.snmp_settings(f, "snmp")
            if own is None:
                return None
        address = (self.optional(f, "address", self.ip, "snmp address") if f else None) or gateway
        base = own or inherited
        return None if base is None or address is None else replace(base, address=address)

    def commune_name(self, f: _Fields, province: str, code: str) -> str:
        given = self.optional(f, "name", self.text, "commune name")
        unit = official.provinces().get(province)
        official_commune = unit.communes.get(code) if unit else None
        if unit is not None and official_commune is None:
            owner = official_province_of_commune().get(code)
            if owner:
                why = f"belongs to province {owner} ({official.provinces()[owner].name})"
            else:
                why = "is not in the official list"
            hint = _name_hint(given, {c.code: c.name for c in unit.communes.values()})
            self.error(f.values["code"], f"commune code {code} {why}, not to province "
                                         f"{province} ({unit.name}){hint}")
        if official_commune is None:
            return given or code
        if given is None:
            return official_commune.name
        if not official.same_name(given, official_commune.name):
            self.warn(f.values["name"], f"commune {code} is officially named "
                                        f"'{official_commune.name}', not '{given}'")
        return given

    def address_in(
        self, f: _Fields, key: str, block: _Block | None, *, outside_ok: bool = False
    ) -> IPAddress | None:
        """An address of the commune, used once in the inventory, inside its subnet (unless
        ``outside_ok``: the backup router may be addressed by its WAN side or loopback)."""
        node = f.given(key)
        if node is None:
            return None
        address = self.ip(node, key)
        self.claim_ip(address, node, key)
        if address is not None and block is not None:
            problem = block.misplaced(address)
            if problem and not (outside_ok and problem.startswith("is outside")):
                self.error(node, f"{key}: {address} {problem}")
        return address

    def check_addressing(self, f: _Fields, hosts: list[Host]) -> None:
        """A commune either has its IPs (subnet and gateway) or none yet (line not installed)."""
        has_subnet = f.given("subnet") is not None
        if has_subnet and f.given("gateway") is None:
            self.error(f.values.get("gateway", f.node), "gateway: missing (the line's router)")
        elif not has_subnet and (hosts or f.given("gateway") or f.given("backup_gateway")):
            self.error(f.values.get("subnet", f.node),
                       "subnet: missing (needed to check the gateway and hosts)")
        elif not has_subnet:
            self.warn(f.node, NO_IPS_YET)

    def read_hosts(
        self, node: Node | None, block: _Block | None, ports: tuple[int, ...]
    ) -> list[Host]:
        names: dict[str, int] = {}
        hosts = []
        for item in self.items(node, "hosts"):
            f = self.fields(item, "host", HOST_KEYS, required=("name", "ip"))
            if f is None:
                continue
            name = self.optional(f, "name", self.raw, "host name")
            if name is not None:
                self.unique(names, name, f.values["name"], f"duplicate host '{name}' in commune")
            ip = self.address_in(f, "ip", block) if f.given("ip") is not None else None
            if len(f.values) == 2 and "name" in f.values and "ip" in f.values:
                # name and ip only, as most of 10,000 hosts: the rest is the defaults
                plain = Host(name or "", ip, None, ports, None, _line(item))  # type: ignore[arg-type]
                hosts.append(plain)
                continue
            hosts.append(Host(
                name=name or "",
                ip=ip,  # type: ignore[arg-type]  # None only when an error was reported
                mac=self.optional(f, "mac", self.mac, "mac"),
                tcp_ports=_or(self.optional(f, "tcp_ports", self.ports, "tcp_ports"), ports),
                inspection=self.optional(f, "inspection", self.inspection, "inspection"),
                line=_line(item),
                always_on=_or(self.optional(f, "always_on", self.boolean, "always_on"), False),
            ))
        return hosts

    def inspection(self, node: Node, what: str) -> Inspection | None:
        f = self.fields(node, what, INSPECTION_KEYS, required=("stamp", "date"))
        if f is None:
            return None
        stamp = self.optional(f, "stamp", self.raw, "inspection stamp")
        day = self.optional(f, "date", self.date, "inspection date")
        return Inspection(stamp, day) if stamp is not None and day is not None else None

    def check_overlaps(self) -> None:
        """Two communes' subnets must not overlap (a copy-paste mistake in the IP plan)."""
        ordered = sorted(self.subnets, key=lambda s: (s[0].version, s[0].network_address))
        widest: tuple[IPNetwork, int, str] | None = None
        for entry in ordered:
            net = entry[0]
            if widest is not None and widest[0].version == net.version and (
                net.network_address <= widest[0].broadcast_address
            ):
                later, earlier = sorted((entry, widest), key=lambda s: s[1], reverse=True)
                self.error(later[1], f"subnet {later[0]} overlaps {earlier[0]} of commune "
                                     f"{earlier[2]} ({self.place(earlier[1])})")
            if widest is None or widest[0].version != net.version or (
                net.broadcast_address > widest[0].broadcast_address
            ):
                widest = entry

    # -- targets, milestones, maintenance --------------------------------------------------

    def read_targets(self, node: Node | None) -> list[Target]:
        names: dict[str, int] = {}
        targets = []
        for item in self.items(node, "targets"):
            f = self.fields(item, "target", TARGET_KEYS, required=("name", "url"))
            if f is None:
                continue
            name = self.optional(f, "name", self.raw, "target name")
            if name is not None:
                self.unique(names, name, f.values["name"], f"duplicate target '{name}'")
            addresses = [self.ip(a, "addresses") for a in self.items(f.get("addresses"),
                                                                       "addresses")]
            targets.append(Target(
                name=name or "",
                url=self.optional(f, "url", self.url, "url") or "",
                addresses=tuple(a for a in addresses if a is not None),
                ca_file=self.optional(f, "ca_file", self.text, "ca_file"),
                verify_tls=_or(self.optional(f, "verify_tls", self.boolean, "verify_tls"), True),
                expected_first_hop=self.optional(f, "expected_first_hop", self.ip,
                                                 "expected_first_hop"),
                line=_line(item),
            ))
        return targets

    def url(self, node: Node, what: str) -> str | None:
        text = self.text(node, what)
        if text is None:
            return None
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.error(node, f"{what}: '{text}' is not an http:// or https:// URL")
            return None
        return text

    def read_milestones(self, node: Node | None) -> list[Milestone]:
        ids: dict[str, int] = {}
        milestones = []
        for item in self.items(node, "milestones"):
            f = self.fields(item, "milestone", MILESTONE_KEYS,
                            required=("id", "title", "due", "requires"))
            if f is None:
                continue
            ident = self.optional(f, "id", self.identifier, "milestone id")
            if ident is not None:
                self.unique(ids, ident, f.values["id"], f"duplicate milestone '{ident}'")
            milestones.append(Milestone(
                id=ident or "",
                title=self.optional(f, "title", self.text, "title") or "",
                due=self.optional(f, "due", self.date, "due"),  # type: ignore[arg-type]
                requires=self.requires(f.get("requires")),
                warn_days=_or(self.optional(f, "warn_days", lambda n, w: self.integer(n, w, 0, 365),
                                            "warn_days"), WARN_DAYS),
                line=_line(item),
            ))
        return milestones

    def requires(self, node: Node | None) -> tuple[str, ...]:
        if _is_null(node):
            return ()
        checks = []
        for item in self.items(node, "requires"):
            check = self.raw(item, "requires")
            if check is not None and check not in CHECKS:
                self.error(item, f"requires: unknown check '{check}' (one of: "
                                 f"{', '.join(CHECKS)})")
            elif check is not None:
                checks.append(check)
        return tuple(checks)

    def read_maintenance(
        self, node: Node | None, provinces: set[str], communes: set[str]
    ) -> list[Maintenance]:
        windows = []
        for item in self.items(node, "maintenance"):
            f = self.fields(item, "maintenance", MAINTENANCE_KEYS, required=("scope", "from", "to"))
            if f is None:
                continue
            scope = self.optional(f, "scope", self.scope, "scope")
            if scope is not None:
                self.check_scope_known(scope, f.values["scope"], provinces, communes)
            start, end = self.window(f)
            windows.append(Maintenance(scope or "", start, end, _line(item)))  # type: ignore[arg-type]
        return windows

    def window(self, f: _Fields) -> tuple[dt.datetime | None, dt.datetime | None]:
        """``from`` and ``to`` of a maintenance window, drill or period; ``to`` after ``from``."""
        start = self.optional(f, "from", self.moment, "from")
        end = self.optional(f, "to", self.moment, "to")
        if start is not None and end is not None and start >= end:
            self.error(f.values["to"], "to: the window must end after it starts ('from')")
        return start, end

    def check_scope_known(self, scope: str, node: Node, provinces: set[str],
                          communes: set[str]) -> None:
        if scope not in provinces and scope not in communes:
            self.error(node, f"scope: no province or commune '{scope}' in this inventory")

    def scopes(self, f: _Fields, provinces: set[str], communes: set[str]) -> tuple[str, ...]:
        """``scope:`` of a drill or period: one ``PROV[/COMMUNE]`` or a list of them."""
        node = f.given("scope")
        if node is None:
            return ()
        items = node.value if isinstance(node, SequenceNode) else [node]
        found = []
        for item in items:
            scope = self.scope(item, "scope")
            if scope is not None:
                self.check_scope_known(scope, item, provinces, communes)
                found.append(scope)
        return tuple(found)

    def named_window(self, item: Node, what: str, keys: tuple[str, ...],
                     ids: dict[str, int]) -> tuple[_Fields, str, str] | None:
        """The common part of drills and periods: a unique id, a title, from and to."""
        f = self.fields(item, what, keys, required=("id", "title", "from", "to"))
        if f is None:
            return None
        ident = self.optional(f, "id", self.identifier, f"{what} id")
        if ident is not None:
            self.unique(ids, ident, f.values["id"], f"duplicate {what} '{ident}'")
        title = self.optional(f, "title", self.text, "title")
        return f, ident or "", title or ""

    def read_drills(self, node: Node | None, provinces: set[str],
                    communes: set[str]) -> list[Drill]:
        ids: dict[str, int] = {}
        drills = []
        for item in self.items(node, "drills"):
            named = self.named_window(item, "drill", DRILL_KEYS, ids)
            if named is None:
                continue
            f, ident, title = named
            start, end = self.window(f)
            drills.append(Drill(ident, title, start, end,  # type: ignore[arg-type]
                                self.scopes(f, provinces, communes), _line(item)))
        return drills

    def read_periods(self, node: Node | None, provinces: set[str],
                     communes: set[str]) -> list[Period]:
        ids: dict[str, int] = {}
        periods = []
        for item in self.items(node, "periods"):
            named = self.named_window(item, "period", PERIOD_KEYS, ids)
            if named is None:
                continue
            f, ident, title = named
            start, end = self.window(f)
            periods.append(Period(
                ident, title, start, end,  # type: ignore[arg-type]
                interval=self.optional(f, "interval", self.duration, "interval"),
                escalate_after=self.optional(f, "escalate_after", self.duration,
                                             "escalate_after"),
                scope=self.scopes(f, provinces, communes),
                line=_line(item),
            ))
        return periods

    def scope(self, node: Node, what: str) -> str | None:
        text = self.raw(node, what)
        if text is None:
            return None
        prov, _, comm = text.strip("/").partition("/")
        return official.province_code(prov) + (f"/{official.commune_code(comm)}" if comm else "")


def _printable(text: str) -> str:
    """``text`` for a one-line message: control characters (CR, LF, ...) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _or(value: T | None, default: T) -> T:
    return default if value is None else value


def _name_hint(given: str | None, names_by_code: dict[str, str]) -> str:
    """Suggest the code of the unit whose official name matches the one written."""
    if not given:
        return ""
    for code, name in names_by_code.items():
        if official.fold(given) in (official.fold(name), _folded_without_prefix(name)):
            return f" (did you mean {code}, {name}?)"
    return ""


def _folded_without_prefix(name: str) -> str:
    folded = official.fold(name)
    for prefix in ("thanh pho ", "tinh ", "phuong ", "xa ", "dac khu "):
        if folded.startswith(prefix):
            return folded[len(prefix) :]
    return folded


# -- writing ---------------------------------------------------------------------------------


def dump(inventory: Inventory) -> str:
    """The inventory as YAML that :func:`load` reads back equal."""
    with gc_paused():
        return yaml.dump(
            to_data(inventory), Dumper=_DUMPER, allow_unicode=True, sort_keys=False,
            default_flow_style=None, width=100,
        )


def to_data(inventory: Inventory) -> dict[str, Any]:
    """Plain data (dicts, lists, strings) in the layout of the inventory file."""
    defaults = inventory.defaults
    data: dict[str, Any] = {
        "version": inventory.version,
        "defaults": {
            "interval": format_duration(defaults.interval),
            "icmp": {"count": defaults.icmp.count,
                     "timeout": format_duration(defaults.icmp.timeout)},
            "down_after": defaults.down_after,
            "up_after": defaults.up_after,
            "tcp_ports": list(defaults.tcp_ports),
            **_new_defaults_data(defaults),
        },
    }
    if inventory.targets:
        data["targets"] = [_target_data(t) for t in inventory.targets]
    if inventory.milestones:
        data["milestones"] = [_milestone_data(m) for m in inventory.milestones]
    data["provinces"] = [
        {"code": p.code, "name": p.name,
         "communes": [_commune_data(c, defaults) for c in p.communes]}
        for p in inventory.provinces
    ]
    if inventory.maintenance:
        data["maintenance"] = [
            {"scope": m.scope, "from": m.start, "to": m.end} for m in inventory.maintenance
        ]
    if inventory.drills:
        data["drills"] = [_window_data(d) for d in inventory.drills]
    if inventory.periods:
        data["periods"] = [_window_data(p) for p in inventory.periods]
    return data


def _new_defaults_data(defaults: Defaults) -> dict[str, Any]:
    """The defaults added after the first inventories, written only when set (so that the
    files written before them, the demo's included, stay as they are)."""
    data: dict[str, Any] = {}
    if defaults.retry_interval != RETRY_INTERVAL:
        data["retry_interval"] = format_duration(defaults.retry_interval)
    hours = defaults.working_hours
    if hours is not None:
        data["working_hours"] = {"days": [WEEKDAYS[d] for d in hours.days],
                                 "from": f"{hours.start:%H:%M}", "to": f"{hours.end:%H:%M}"}
    if defaults.holidays:
        data["holidays"] = list(defaults.holidays)
    if defaults.snmp is not None:
        data["snmp"] = _snmp_data(defaults.snmp)
    if defaults.snmp_every != SNMP_EVERY:
        data["snmp_every"] = defaults.snmp_every
    if defaults.upstream:
        data["upstream"] = [str(a) for a in defaults.upstream]
    return data


def _snmp_data(snmp: Snmp) -> dict[str, Any]:
    data: dict[str, Any] = {"version": snmp.version}
    for key in ("community", "user", "auth", "auth_key_file", "priv", "priv_key_file"):
        value = getattr(snmp, key)
        if value is not None:
            data[key] = value
    return data


def _milestone_data(m: Milestone) -> dict[str, Any]:
    data: dict[str, Any] = {"id": m.id, "title": m.title, "due": m.due,
                            "requires": list(m.requires)}
    if m.warn_days != WARN_DAYS:
        data["warn_days"] = m.warn_days
    return data


def _window_data(window: Drill | Period) -> dict[str, Any]:
    data: dict[str, Any] = {"id": window.id, "title": window.title, "from": window.start,
                            "to": window.end}
    if isinstance(window, Period):
        for key, seconds in (("interval", window.interval),
                             ("escalate_after", window.escalate_after)):
            if seconds is not None:
                data[key] = format_duration(seconds)
    if window.scope:
        data["scope"] = list(window.scope)
    return data


def format_duration(seconds: float) -> str:
    """"30s", "0.5s": the shortest text that reads back as exactly the same float."""
    import decimal  # only for writing a file

    return f"{format(decimal.Decimal(repr(float(seconds))).normalize(), 'f')}s"


def _target_data(target: Target) -> dict[str, Any]:
    data: dict[str, Any] = {"name": target.name, "url": target.url}
    if target.addresses:
        data["addresses"] = [str(a) for a in target.addresses]
    if target.ca_file is not None:
        data["ca_file"] = target.ca_file
    data["verify_tls"] = target.verify_tls
    if target.expected_first_hop is not None:
        data["expected_first_hop"] = str(target.expected_first_hop)
    return data


def _commune_data(commune: Commune, defaults: Defaults) -> dict[str, Any]:
    data: dict[str, Any] = {
        "code": commune.code,
        "name": commune.name,
        "isp": commune.isp or None,
        "circuit": commune.circuit,
        "subnet": _str_or_none(commune.subnet),
        "gateway": _str_or_none(commune.gateway),
    }
    if commune.backup_gateway is not None:
        data["backup_gateway"] = str(commune.backup_gateway)
    for key in ("backup_isp", "backup_circuit"):
        if getattr(commune, key) is not None:
            data[key] = getattr(commune, key)
    if commune.contacts:
        data["contacts"] = [
            {k: v for k in ("name", "role", "phone", "email") if (v := getattr(c, k)) is not None}
            for c in commune.contacts
        ]
    snmp = _commune_snmp_data(commune, defaults.snmp)
    if snmp is not None:
        data["snmp"] = snmp
    data["hosts"] = [_host_data(h, defaults.tcp_ports) for h in commune.hosts]
    return data


def _commune_snmp_data(commune: Commune, inherited: Snmp | None) -> dict[str, Any] | None:
    """What the file must say for the loader to give the commune its ``snmp`` again: nothing
    when it is the defaults' on the gateway, only ``address`` when the credentials are."""
    own = commune.snmp
    if own is None or (inherited is not None and own == replace(inherited,
                                                                 address=commune.gateway)):
        return None
    address = {} if own.address in (None, commune.gateway) else {"address": str(own.address)}
    if inherited is not None and own.credentials() == inherited:
        return address
    return {**_snmp_data(own), **address}


def _host_data(host: Host, default_ports: tuple[int, ...]) -> dict[str, Any]:
    data: dict[str, Any] = {"name": host.name, "ip": str(host.ip)}
    if host.mac is not None:
        data["mac"] = host.mac
    if host.tcp_ports != default_ports:
        data["tcp_ports"] = list(host.tcp_ports)
    if host.inspection is not None:
        data["inspection"] = {"stamp": host.inspection.stamp, "date": host.inspection.date}
    if host.always_on:
        data["always_on"] = True
    return data


def _str_or_none(value: object | None) -> str | None:
    return None if value is None else str(value)
