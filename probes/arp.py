"""IP-configuration check of a commune segment by broadcast ARP, from a vantage on it.

Every address of the commune's subnet is asked for by a broadcast ARP request, and every
reply within a short window is kept. The kernel's neighbour cache would keep only the first
answer and a unicast re-probe reaches only one machine, so duplicate IPs would go unseen:
instead an ``AF_PACKET`` socket bound to the ARP ethertype sees each reply itself (the
kernel filters by ethertype, so no BPF compiler and no scapy import are needed and
``check`` starts fast). The blocking socket work runs in a worker thread.

Needs root or ``CAP_NET_RAW`` (:func:`arp_permitted`); Linux only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil
import structlog

from inventory.model import Commune, IPNetwork
from probes.result import ArpDetail, ProbeResult, UnknownDevice

log = structlog.get_logger("arp")

ETH_P_ARP = 0x0806
PACKET_OUTGOING = 4  # sll_pkttype of frames this host sent
BROADCAST = b"\xff" * 6
MAX_SCAN_ADDRESSES = 1024  # a /22: larger subnets are scanned at their listed addresses only
MIN_WINDOW = 0.2  # seconds: the shortest listening after the last request
_FRAME = struct.Struct("!6s6sH HHBBH6s4s6s4s")  # Ethernet header + ARP for IPv4 over Ethernet
_ARP_REQUEST, _ARP_REPLY = 1, 2

#: (ip, mac) pairs: who answered for what.
Replies = set[tuple[str, str]]


class ArpScanError(RuntimeError):
    """The segment could not be scanned (no interface on it, no privilege, interface down)."""


@dataclass(frozen=True, slots=True)
class SegmentScan:
    interface: str
    hosts: dict[str, ProbeResult]  # host IP -> kind "arp" result
    gateway: ProbeResult | None
    backup_gateway: ProbeResult | None
    unknown: tuple[UnknownDevice, ...]  # answering in the subnet, not in the inventory


@dataclass(frozen=True, slots=True)
class _Vantage:
    interface: str
    mac: str
    ip: str | None  # our address in the subnet; None: ask as an ARP probe (sender 0.0.0.0)


def arp_permitted() -> bool:
    """Whether this process may open a raw packet socket (root or CAP_NET_RAW, on Linux)."""
    if not hasattr(socket, "AF_PACKET"):
        return False
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    except OSError:
        return False
    return True


def segment_interface(
    subnet: IPNetwork | None, interfaces: list[tuple[str, ipaddress.IPv4Address]] | None = None
) -> str | None:
    """The interface of this machine whose IPv4 address lies inside ``subnet``, if any.

    ``interfaces`` (:func:`interface_addresses`) may be read once and passed in by callers
    that ask for many subnets: reading it costs about 0.1 ms, 0.3 s for the whole nation.
    """
    if subnet is None or subnet.version != 4:
        return None
    for name, address in interface_addresses() if interfaces is None else interfaces:
        if address in subnet:
            return name
    return None


def interface_addresses() -> list[tuple[str, ipaddress.IPv4Address]]:
    """This machine's IPv4 addresses with their interfaces, by interface name."""
    return [
        (name, ipaddress.IPv4Address(addr.address))
        for name, addrs in sorted(psutil.net_if_addrs().items())
        for addr in addrs if addr.family == socket.AF_INET
    ]


async def scan_segment(
    commune: Commune,
    *,
    interface: str | None = None,
    window: float = 1.5,
    rate: float = 500.0,
    budget: float | None = None,
) -> SegmentScan | None:
    """ARP-scan the commune's subnet; None when the commune has no (IPv4) subnet to scan.

    ``window``: seconds to keep listening after the last request; ``rate``: requests per
    second; ``budget``: seconds the whole scan may take, the window shrinking to fit (down
    to 0.2 s: replies on a segment come within milliseconds). Raises :class:`ArpScanError`
    when the segment cannot be scanned from here.
    """
    subnet = commune.subnet
    if subnet is None or subnet.version != 4:
        return None
    vantage = _vantage(subnet, interface)
    targets = _scan_targets(commune, subnet)
    if budget is not None:
        window = max(MIN_WINDOW, min(window, budget - len(targets) / rate))
    if subnet.num_addresses > MAX_SCAN_ADDRESSES:
        log.warning("arp_subnet_truncated", commune=commune.key, subnet=str(subnet))
    started = time.time()
    t0 = time.monotonic()
    replies = await asyncio.to_thread(_exchange, vantage, targets, window, rate)
    if vantage.ip in _listed(commune):
        replies.add((vantage.ip, vantage.mac))  # a listed machine scanning never hears itself
    return judge(commune, replies, interface=vantage.interface, started=started,
                 duration=time.monotonic() - t0)


def judge(
    commune: Commune, replies: Iterable[tuple[str, str]], *, interface: str,
    started: float, duration: float,
) -> SegmentScan:
    """Turn the (ip, mac) answers heard on the segment into per-address results."""
    assert commune.subnet is not None
    by_ip: dict[str, set[str]] = {}
    for ip, mac in replies:
        if ipaddress.ip_address(ip) in commune.subnet:
            by_ip.setdefault(ip, set()).add(mac)

    def result(ip: object, expected: str | None = None) -> ProbeResult:
        detail = ArpDetail(tuple(sorted(by_ip.get(str(ip), ()))), expected)
        return ProbeResult("arp", str(ip), detail.mac_ok, started, duration,
                           _problem(detail), detail)

    listed = _listed(commune)
    unknown = sorted(
        ((ip, mac) for ip, macs in by_ip.items() if ip not in listed for mac in macs),
        key=lambda pair: (ipaddress.ip_address(pair[0]), pair[1]),
    )
    return SegmentScan(
        interface=interface,
        hosts={str(h.ip): result(h.ip, h.mac.lower() if h.mac else None) for h in commune.hosts},
        gateway=None if commune.gateway is None else result(commune.gateway),
        backup_gateway=None if commune.backup_gateway is None else result(commune.backup_gateway),
        unknown=tuple(UnknownDevice(ip, mac) for ip, mac in unknown),
    )


def _listed(commune: Commune) -> set[str]:
    """The addresses the inventory assigns in the commune: hosts and gateways."""
    gateways = (commune.gateway, commune.backup_gateway)
    return {str(h.ip) for h in commune.hosts} | {str(g) for g in gateways if g is not None}


def _problem(detail: ArpDetail) -> str | None:
    if not detail.macs:
        return "no ARP reply"
    if detail.conflict:
        return f"IP conflict: {len(detail.macs)} MACs answered ({', '.join(detail.macs)})"
    if not detail.mac_ok:
        return f"wrong MAC: {detail.macs[0]} answered, expected {detail.expected_mac}"
    return None


def _scan_targets(commune: Commune, subnet: ipaddress.IPv4Network) -> list[str]:
    """Every address of a subnet up to a /22; beyond that only the inventory's addresses."""
    if subnet.num_addresses <= MAX_SCAN_ADDRESSES:
        return [str(ip) for ip in subnet.hosts()]
    return sorted(_listed(commune), key=ipaddress.ip_address)


def _vantage(subnet: ipaddress.IPv4Network, interface: str | None) -> _Vantage:
    local = interface_addresses()
    name = interface or segment_interface(subnet, local)
    if name is None:
        raise ArpScanError(f"no interface of this machine has an address in {subnet}")
    addrs = psutil.net_if_addrs()
    if name not in addrs:
        raise ArpScanError(f"no such interface: {name}")
    mac = next((a.address.lower() for a in addrs[name] if a.family == psutil.AF_LINK), None)
    if not mac or len(mac.split(":")) != 6:
        raise ArpScanError(f"{name} has no Ethernet address")
    ip = next((str(a) for n, a in local if n == name and a in subnet), None)
    return _Vantage(name, mac, ip)


def _exchange(vantage: _Vantage, targets: list[str], window: float, rate: float) -> Replies:
    """Send the paced requests and gather every reply until ``window`` after the last one."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    except PermissionError as exc:
        raise ArpScanError("ARP scan needs root or CAP_NET_RAW") from exc
    replies: Replies = set()
    own_mac = _mac_bytes(vantage.mac)
    sender_ip = socket.inet_aton(vantage.ip or "0.0.0.0")
    with sock:
        try:
            sock.bind((vantage.interface, ETH_P_ARP))
            t0 = time.monotonic()
            for i, target in enumerate(targets):
                _listen(sock, t0 + i / rate, own_mac, replies)
                sock.send(arp_request(own_mac, sender_ip, socket.inet_aton(target)))
            _listen(sock, time.monotonic() + window, own_mac, replies)
        except OSError as exc:
            raise ArpScanError(f"ARP scan on {vantage.interface} failed: {exc}") from exc
    return replies


def _listen(sock: socket.socket, until: float, own_mac: bytes, replies: Replies) -> None:
    """Record ARP replies arriving before the monotonic time ``until``."""
    while (remaining := until - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            frame, address = sock.recvfrom(2048)
        except TimeoutError:
            return
        if address[2] == PACKET_OUTGOING:
            continue
        answer = parse_reply(frame)
        if answer is not None and answer[1] != _mac_text(own_mac):
            replies.add(answer)


def arp_request(own_mac: bytes, sender_ip: bytes, target_ip: bytes) -> bytes:
    """A broadcast Ethernet frame asking who has ``target_ip``."""
    return _FRAME.pack(
        BROADCAST, own_mac, ETH_P_ARP, 1, 0x0800, 6, 4, _ARP_REQUEST,
        own_mac, sender_ip, b"\x00" * 6, target_ip,
    )


def parse_reply(frame: bytes) -> tuple[str, str] | None:
    """(sender IP, sender MAC) of an IPv4-over-Ethernet ARP reply; None for anything else."""
    if len(frame) < _FRAME.size:
        return None
    _dst, _src, ethertype, htype, ptype, hlen, plen, op, sha, spa, _tha, _tpa = _FRAME.unpack(
        frame[: _FRAME.size]
    )
    if (ethertype, htype, ptype, hlen, plen, op) != (ETH_P_ARP, 1, 0x0800, 6, 4, _ARP_REPLY):
        return None
    return socket.inet_ntoa(spa), _mac_text(sha)


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)

