"""The commune segment seen from the center: the line's router's ARP table over SNMP.

The commune computers may carry no agent (they are scanned and stamped before they may
connect), but the line's router (the CPE) knows the segment: after the central monitor has
swept the commune's subnet, the router's ARP table holds every device that answered, with
its MAC, and INCOMPLETE/invalid entries for those that did not. This module reads that
table with pysnmp 7 (asyncio; see docs/snmp.md for why, by measurement) from IP-MIB
``ipNetToPhysicalTable`` and, when the router has none, RFC 1213 ``ipNetToMediaTable``.

Errors never raise and are never an empty table: :class:`RouterArpTable` carries a typed
``error`` (``timeout`` - which is also how a wrong v2c community looks, the agent stays
silent -, ``auth`` for a v3 authentication/decryption failure, ``no_such_object`` when the
router exposes neither table to us, ``empty`` when it exposes them with no row at all, and
``error`` for anything else). Credentials are values passed in by the caller; they are
kept out of ``repr``, logs and error text.

Imports nothing from ``monitor``: the verdicts (wrong MAC, conflict across polls, unknown
device, absent) are made where verdicts live; :func:`arp_results`, :func:`unknown_devices`
and :func:`replies` (for ``probes.arp.judge``) give them the shapes of the ARP probe.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    usm3DESEDEPrivProtocol,
    usmAesBlumenthalCfb192Protocol,
    usmAesBlumenthalCfb256Protocol,
    usmAesCfb128Protocol,
    usmDESPrivProtocol,
    usmHMAC128SHA224AuthProtocol,
    usmHMAC192SHA256AuthProtocol,
    usmHMAC256SHA384AuthProtocol,
    usmHMAC384SHA512AuthProtocol,
    usmHMACMD5AuthProtocol,
    usmHMACSHAAuthProtocol,
)
from pysnmp.hlapi.v3arch.asyncio.lcd import CommandGeneratorLcdConfigurator
from pysnmp.proto import errind
from pysnmp.proto.rfc1902 import Null, ObjectName
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchObject

from probes.result import ArpDetail, ProbeResult

SnmpError = Literal["timeout", "auth", "no_such_object", "empty", "error"]
TableName = Literal["ipNetToPhysicalTable", "ipNetToMediaTable"]

IP_NET_TO_PHYSICAL_ENTRY = (1, 3, 6, 1, 2, 1, 4, 35, 1)
# PhysAddress and State: an INCOMPLETE row is also of Type invalid, so Type is not read
# (a third of the requests and of the CPU of a read)
PHYSICAL_COLUMNS = {"mac": 4, "state": 7}
IP_NET_TO_MEDIA_ENTRY = (1, 3, 6, 1, 2, 1, 4, 22, 1)
MEDIA_COLUMNS = {"mac": 2, "type": 4}  # PhysAddress, Type
PHYSICAL_STATES = {
    1: "reachable", 2: "stale", 3: "delay", 4: "probe", 5: "invalid", 6: "unknown",
    7: "incomplete",
}
ENTRY_TYPES = {1: "other", 2: "invalid", 3: "dynamic", 4: "static", 5: "local"}
ABSENT_STATES = frozenset({"invalid", "incomplete"})
MAX_REPETITIONS = 24  # rows per GETBULK: a commune's /29 and the router's other links in one
MAX_ROUNDS = 64  # GETBULK requests per table at most: a router's table is bounded for us
INET_IPV4 = 1  # InetAddressType ipv4

_LCD = CommandGeneratorLcdConfigurator()
_NULL = Null("")
_AUTH_ERRORS = (
    errind.WrongDigest, errind.UnknownUserName, errind.DecryptionError,
    errind.AuthenticationFailure, errind.AuthenticationError, errind.UnsupportedSecurityLevel,
    errind.UnknownSecurityName, errind.NotInTimeWindow,
)


# --- credentials and requests --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class V2c:
    """SNMP v2c: the community is a password; kept out of ``repr``."""

    community: str = field(repr=False)


#: SNMPv3 protocols by the inventory's names (inventory.model AUTH_PROTOCOLS, PRIV_PROTOCOLS).
#: AES-192/256 are net-snmp's (draft-blumenthal-aes-usm key extension), as most CPEs.
AUTH = {
    "MD5": usmHMACMD5AuthProtocol, "SHA": usmHMACSHAAuthProtocol,
    "SHA-224": usmHMAC128SHA224AuthProtocol, "SHA-256": usmHMAC192SHA256AuthProtocol,
    "SHA-384": usmHMAC256SHA384AuthProtocol, "SHA-512": usmHMAC384SHA512AuthProtocol,
}
PRIV = {
    "DES": usmDESPrivProtocol, "3DES": usm3DESEDEPrivProtocol, "AES": usmAesCfb128Protocol,
    "AES-128": usmAesCfb128Protocol, "AES-192": usmAesBlumenthalCfb192Protocol,
    "AES-256": usmAesBlumenthalCfb256Protocol,
}


@dataclass(frozen=True, slots=True)
class V3:
    """SNMP v3 authPriv; HMAC-SHA-96 and AES-128 (the pair every CPE offers) unless told."""

    user: str
    auth_key: str = field(repr=False)
    priv_key: str = field(repr=False)
    auth: str = "SHA"  # a key of AUTH
    priv: str = "AES"  # a key of PRIV


Credentials = V2c | V3


@dataclass(frozen=True, slots=True)
class RouterRequest:
    """One router to read: its address, how to log in, which addresses are the commune's."""

    router: str
    credentials: Credentials
    scope: tuple[str, ...]  # addresses and/or CIDR prefixes (the commune's subnet)
    port: int = 161


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouterArpEntry:
    """One row of the router's ARP table for an address of the commune."""

    ip: str
    mac: str | None  # lower-case, colon-separated; None when the row has no address
    type: str  # other | invalid | dynamic | static | local (ipNetToPhysical: from state)
    state: str | None  # ipNetToPhysicalState; None from ipNetToMediaTable

    @property
    def present(self) -> bool:
        """A device answered: a MAC that is neither invalid nor INCOMPLETE."""
        return self.mac is not None and self.type != "invalid" and self.state not in ABSENT_STATES


@dataclass(frozen=True, slots=True)
class RouterArpTable:
    """What one read of a router's ARP table gave (entries of the commune's scope only)."""

    router: str
    ok: bool
    started: float  # Unix time
    duration: float  # seconds
    entries: dict[str, RouterArpEntry] = field(default_factory=dict)  # ip -> entry
    table: TableName | None = None
    rows: int = 0  # rows read in the whole table, any address (0 with entries: impossible)
    error: SnmpError | None = None
    message: str | None = None

    def present(self) -> dict[str, str]:
        """ip -> MAC of every address where a device answered."""
        return {ip: e.mac for ip, e in self.entries.items() if e.present and e.mac}


class _Failure(Exception):
    """Internal control flow: a typed failure, turned into a result before it leaves."""

    def __init__(self, kind: SnmpError, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# --- reading ---------------------------------------------------------------------------------


class _Session:
    """One router's engine, credentials and transport: GET and GETBULK with typed failures.

    Requests go to pysnmp's command generators with numeric OIDs as they are: the high-level
    ``*_cmd`` functions resolve every OID against pysnmp's MIB on the way out, which costs
    a tenth of the CPU of a read and tells us nothing (we know our OIDs).
    """

    def __init__(self, engine: SnmpEngine, auth: Any, target: Any) -> None:
        self.engine = engine
        self.auth = auth
        self.v3 = isinstance(auth, UsmUserData)
        self.context = ContextData()
        self.address, _ = _LCD.configure(engine, auth, target, self.context.contextName)

    async def bulk(self, oids: Sequence[tuple[int, ...]]) -> list[tuple[tuple[int, ...], Any]]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        cmdgen.BulkCommandGenerator().send_varbinds(
            self.engine, self.address, self.context.contextEngineId, self.context.contextName,
            0, MAX_REPETITIONS, _raw(oids), _resolve, future,
        )
        return self._checked(await future)

    async def get(self, oids: Sequence[tuple[int, ...]]) -> list[tuple[tuple[int, ...], Any]]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        cmdgen.GetCommandGenerator().send_varbinds(
            self.engine, self.address, self.context.contextEngineId, self.context.contextName,
            _raw(oids), _resolve, future,
        )
        return self._checked(await future)

    def _checked(self, result: Any) -> list[tuple[tuple[int, ...], Any]]:
        indication, status, index, var_binds = result
        if indication:
            raise _classify(indication, self.v3)
        if status:
            raise _Failure("error", f"agent answered {status.prettyPrint()} at {index}")
        return [(tuple(name), value) for name, value in var_binds]


def _raw(oids: Sequence[tuple[int, ...]]) -> list[tuple[ObjectName, Null]]:
    return [(ObjectName(oid), _NULL) for oid in oids]


def _resolve(
    engine: Any, handle: Any, indication: Any, status: Any, index: Any, var_binds: Any,
    future: asyncio.Future[Any],
) -> None:
    if not future.done():
        future.set_result((indication, status, index, var_binds))


def _classify(indication: Any, v3: bool) -> _Failure:
    """The typed failure of a pysnmp error indication (its text holds no credential).

    An agent drops a request whose community or (v3) privacy key is wrong without a word,
    so those read as timeouts: the message says so, the operator checks both.
    """
    if isinstance(indication, errind.RequestTimedOut):
        wrong = "privacy key" if v3 else "community"
        return _Failure("timeout", f"no answer (unreachable, no SNMP agent, or a wrong {wrong})")
    if isinstance(indication, _AUTH_ERRORS):
        return _Failure("auth", f"SNMPv3 authentication failed: {indication}")
    return _Failure("error", str(indication))


async def _walk_column(session: _Session, prefix: tuple[int, ...]) -> dict[tuple[int, ...], Any]:
    """Every row of one column: index suffix -> value, by GETBULK.

    The column ends when the agent hands back an OID outside it (or endOfMibView); OIDs must
    increase, so a broken agent cannot loop us. One column per request: net-snmp 5.9
    answers genErr to a multi-column GETBULK that runs past the end of the view.
    """
    cursor = prefix
    values: dict[tuple[int, ...], Any] = {}
    for _ in range(MAX_ROUNDS):
        var_binds = await session.bulk([cursor])
        for oid, value in var_binds:
            if isinstance(value, EndOfMibView) or oid[: len(prefix)] != prefix:
                return values
            if oid <= cursor:
                raise _Failure("error", "agent returned OIDs out of order")
            values[oid[len(prefix):]] = value
            cursor = oid
        if not var_binds:
            return values
    raise _Failure("error", f"table larger than {MAX_ROUNDS * MAX_REPETITIONS} rows")


async def _walk_columns(
    session: _Session, entry: tuple[int, ...], columns: Mapping[str, int]
) -> dict[str, dict[tuple[int, ...], Any]]:
    """The given columns of one table, walked side by side (one round trip for a /29)."""
    walks = [_walk_column(session, (*entry, number)) for number in columns.values()]
    return dict(zip(columns, await asyncio.gather(*walks), strict=True))


def format_mac(raw: bytes) -> str | None:
    """Lower-case, colon-separated (as probes.arp); None for an empty/zero address."""
    if len(raw) != 6 or raw == b"\x00" * 6:
        return None
    return ":".join(f"{b:02x}" for b in raw)


def _ipv4_of_physical_index(suffix: tuple[int, ...]) -> str | None:
    """ipNetToPhysical index: ifIndex, InetAddressType, length-prefixed InetAddress."""
    if len(suffix) == 7 and suffix[1] == INET_IPV4 and suffix[2] == 4:
        return ".".join(map(str, suffix[3:]))
    return None


def _ipv4_of_media_index(suffix: tuple[int, ...]) -> str | None:
    """ipNetToMedia index: ifIndex, IpAddress (four sub-identifiers)."""
    return ".".join(map(str, suffix[1:])) if len(suffix) == 5 else None


def _enum(value: Any, names: Mapping[int, str]) -> str | None:
    try:
        return names.get(int(value), "unknown")
    except (TypeError, ValueError):
        return None


def _rows(
    columns: dict[str, dict[tuple[int, ...], Any]], address_of: Any
) -> list[RouterArpEntry]:
    entries: list[RouterArpEntry] = []
    states = columns.get("state", {})
    for suffix, raw_mac in columns["mac"].items():
        ip = address_of(suffix)
        if ip is None:
            continue
        state = _enum(states[suffix], PHYSICAL_STATES) if suffix in states else None
        kind = _enum(columns["type"][suffix], ENTRY_TYPES) if "type" in columns else None
        if kind is None:  # ipNetToPhysical: the type follows from the state
            kind = "invalid" if state in ABSENT_STATES else "dynamic"
        entries.append(RouterArpEntry(ip=ip, mac=format_mac(bytes(raw_mac)), type=kind,
                                      state=state))
    return entries


Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


def _in_scope(entries: Iterable[RouterArpEntry], networks: Networks) -> dict[str, RouterArpEntry]:
    """The commune's entries only; of two rows for one IP (two interfaces) the present one."""
    chosen: dict[str, RouterArpEntry] = {}
    for entry in entries:
        address = ipaddress.ip_address(entry.ip)
        if not any(address in net for net in networks):
            continue
        if entry.ip not in chosen or (entry.present and not chosen[entry.ip].present):
            chosen[entry.ip] = entry
    return dict(sorted(chosen.items(), key=lambda item: ipaddress.ip_address(item[0])))


async def _exposes(session: _Session, oids: Sequence[tuple[int, ...]]) -> bool:
    """Whether the agent has these columns in our view at all: a GET of a row that cannot
    exist answers noSuchInstance where the column exists, noSuchObject where it does not."""
    bogus = (0, INET_IPV4, 4, 0, 0, 0, 0)
    answers = await session.get([(*oid, *bogus) for oid in oids])
    return any(not isinstance(value, NoSuchObject) for _, value in answers)


async def _read_table(session: _Session) -> tuple[TableName, list[RouterArpEntry]]:
    physical = await _walk_columns(session, IP_NET_TO_PHYSICAL_ENTRY, PHYSICAL_COLUMNS)
    if physical["mac"]:
        return "ipNetToPhysicalTable", _rows(physical, _ipv4_of_physical_index)
    media = await _walk_columns(session, IP_NET_TO_MEDIA_ENTRY, MEDIA_COLUMNS)
    if media["mac"]:
        return "ipNetToMediaTable", _rows(media, _ipv4_of_media_index)
    columns = [(*IP_NET_TO_PHYSICAL_ENTRY, 4), (*IP_NET_TO_MEDIA_ENTRY, 2)]
    if await _exposes(session, columns):
        raise _Failure("empty", "the router's ARP table is empty (was the subnet swept?)")
    raise _Failure(
        "no_such_object", "the router exposes neither ipNetToPhysicalTable nor ipNetToMediaTable"
        " to this monitor (SNMP view?)",
    )


def _auth_data(credentials: Credentials) -> Any:
    if isinstance(credentials, V2c):
        return CommunityData(credentials.community, mpModel=1)
    return UsmUserData(
        credentials.user, authKey=credentials.auth_key, privKey=credentials.priv_key,
        authProtocol=AUTH[credentials.auth], privProtocol=PRIV[credentials.priv],
    )


async def poll_router(
    router: str, credentials: Credentials, scope: Iterable[str], *, timeout: float = 2.0,
    retries: int = 1, port: int = 161, engine: SnmpEngine | None = None,
) -> RouterArpTable:
    """Read ``router``'s ARP table; the entries of ``scope`` (addresses or prefixes) only.

    Never raises for anything the network or the agent does (a malformed ``scope`` is the
    caller's bug: ``ValueError`` before anything is sent); the worst case takes about
    ``timeout * (retries + 1)`` per request (a v3 read makes one more, the engine discovery).
    ``engine`` may be shared by many concurrent polls (:func:`poll_routers` does).
    """
    started, clock = time.time(), time.monotonic()
    networks = [ipaddress.ip_network(item, strict=False) for item in scope]

    def finish(**fields: Any) -> RouterArpTable:
        return RouterArpTable(
            router=router, started=started, duration=time.monotonic() - clock, **fields
        )

    own_engine = engine is None
    session: _Session | None = None
    try:
        target = await UdpTransportTarget.create((router, port), timeout=timeout, retries=retries)
        session = _Session(engine or SnmpEngine(), _auth_data(credentials), target)
        name, rows = await _read_table(session)
    except _Failure as failure:
        return finish(ok=False, error=failure.kind, message=str(failure))
    except Exception as exc:  # pysnmp raises PySnmpError and friends: typed here, not raised
        return finish(ok=False, error="error", message=f"{type(exc).__name__}: {exc}")
    finally:
        if own_engine and session is not None:
            session.engine.close_dispatcher()
    return finish(ok=True, entries=_in_scope(rows, networks), table=name, rows=len(rows))


class Poller:
    """Reads many routers at once, cycle after cycle, with at most ``concurrency`` in flight.

    Keep one for the life of the monitor: an SNMP engine costs about 0.15 s of CPU to make
    (and its first request loads pysnmp's base MIB), so engines are made once per distinct
    credentials and reused by every later cycle. Routers that share credentials share one
    engine (its UDP socket, its v3 engine-ID cache); a v3 user name configured with two
    different keys never meets itself in one engine. ``concurrency`` routers in flight: 32
    kept the loop's worst lag near 0.2-0.5 s with 150 agents answering at once on 2 cores
    (256 saturated it: 4 s lag and timeouts), see docs/snmp.md.
    """

    def __init__(self, *, timeout: float = 2.0, retries: int = 1, concurrency: int = 32) -> None:
        self.timeout = timeout
        self.retries = retries
        self.concurrency = concurrency
        self._engines: dict[Credentials, SnmpEngine] = {}

    def engine(self, credentials: Credentials) -> SnmpEngine:
        if credentials not in self._engines:
            self._engines[credentials] = SnmpEngine()
        return self._engines[credentials]

    async def poll(self, requests: Iterable[RouterRequest]) -> list[RouterArpTable]:
        """One read of every router, results in the order of ``requests``."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(request: RouterRequest) -> RouterArpTable:
            async with gate:
                return await poll_router(
                    request.router, request.credentials, request.scope, timeout=self.timeout,
                    retries=self.retries, port=request.port,
                    engine=self.engine(request.credentials),
                )

        return list(await asyncio.gather(*(one(r) for r in requests)))

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close_dispatcher()
        self._engines.clear()


async def poll_routers(
    requests: Iterable[RouterRequest], *, timeout: float = 2.0, retries: int = 1,
    concurrency: int = 32,
) -> list[RouterArpTable]:
    """One cycle of :class:`Poller` (made and closed here: for a one-off read)."""
    poller = Poller(timeout=timeout, retries=retries, concurrency=concurrency)
    try:
        return await poller.poll(requests)
    finally:
        poller.close()


# --- the shapes of the ARP probe --------------------------------------------------------------


def arp_results(
    table: RouterArpTable, expected: Mapping[str, str | None]
) -> dict[str, ProbeResult]:
    """Kind "arp" results per listed address (ip -> expected MAC or None), as probes.arp.

    Only for a table that was read (``table.ok``): a failed read is no evidence of absence.
    """
    if not table.ok:
        raise ValueError("a failed SNMP read says nothing about the hosts")
    results = {}
    for ip, mac in expected.items():
        entry = table.entries.get(ip)
        seen = (entry.mac,) if entry is not None and entry.present and entry.mac else ()
        detail = ArpDetail(macs=seen, expected_mac=mac.lower() if mac else None)
        results[ip] = ProbeResult(
            kind="arp", subject=ip, ok=detail.mac_ok, started=table.started,
            duration=table.duration, error=_arp_error(detail, entry), detail=detail,
        )
    return results


def _arp_error(detail: ArpDetail, entry: RouterArpEntry | None) -> str | None:
    if detail.mac_ok:
        return None
    if not detail.macs:
        how = "no entry" if entry is None else f"entry {entry.state or entry.type}"
        return f"absent from the router's ARP table ({how})"
    return f"wrong MAC: {detail.macs[0]} answered, expected {detail.expected_mac}"


def unknown_devices(table: RouterArpTable, listed: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(ip, mac) of devices present at addresses the inventory does not list."""
    known = set(listed)
    return tuple((ip, mac) for ip, mac in table.present().items() if ip not in known)


def flip_flops(tables: Iterable[RouterArpTable]) -> dict[str, tuple[str, ...]]:
    """The addresses whose MAC came back after another over successive reads (arpwatch's
    "flip flop"), with every MAC each had, first seen first. A router holds one MAC per IP,
    so this is how an IP conflict shows in its table; a MAC replaced once (a new card: A
    then B) is no flip-flop. Failed reads add nothing."""
    runs: dict[str, list[str]] = {}
    for table in tables:
        if table.ok:
            for ip, mac in table.present().items():
                run = runs.setdefault(ip, [])
                if not run or run[-1] != mac:
                    run.append(mac)
    return {ip: tuple(dict.fromkeys(run)) for ip, run in runs.items()
            if len(run) > len(set(run))}


def replies(table: RouterArpTable, earlier: Sequence[RouterArpTable] = ()
            ) -> list[tuple[str, str]]:
    """The (ip, mac) answers an ARP scan would have heard, from this read and the ``earlier``
    ones (oldest first): each present address with its MAC now and, where it flip-flopped
    over these reads, every MAC it had (:func:`flip_flops`). For ``probes.arp.judge``."""
    history = flip_flops([*earlier, table])
    return [(ip, each) for ip, mac in table.present().items()
            for each in history.get(ip, (mac,))]


# --- JSON (results cross process boundaries in the labs, later MQTT) -----------------------


def table_to_dict(table: RouterArpTable) -> dict[str, Any]:
    return asdict(table)


def table_from_dict(data: dict[str, Any]) -> RouterArpTable:
    entries = {ip: RouterArpEntry(**raw) for ip, raw in data.get("entries", {}).items()}
    return RouterArpTable(**{**data, "entries": entries})
