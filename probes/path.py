"""Our own traceroute: which routers lie between this vantage and a host.

UDP probes with TTL 1..``max_hops`` leave in waves of :data:`WAVE`, each to its own port
(base + TTL), so an answer tells which TTL it belongs to. The answers are ICMP errors, read from the
socket's error queue (``IP_RECVERR``), as the unprivileged ``traceroute`` does: no raw
socket and no capability needed. *Time exceeded* names a router on the way; *port
unreachable* comes from the host itself (reached); another *unreachable* ends the path at
whoever sent it. Each wave is waited for at most ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
import time
from dataclasses import dataclass, field

from probes.result import PathDetail, ProbeResult

WAVE = 4  # TTLs sent together
BASE_PORT = 33434  # traceroute's; nothing should listen on 33435..33434+max_hops
PAYLOAD = b"tslcd-monitor path probe"
IP_RECVERR = 11  # <linux/in.h>; not exported by the socket module
IPV6_RECVERR = 25  # <linux/in6.h>
SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 2, 3
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # errno, origin, type, code, pad, info, data


@dataclass(frozen=True, slots=True)
class _Family:
    family: socket.AddressFamily
    level: int
    recverr: int
    ttl_option: int
    origin: int
    time_exceeded: int
    unreachable: int
    port_unreachable_code: int
    address_offset: int  # of the offender's address in its sockaddr
    address_length: int


_V4 = _Family(socket.AF_INET, socket.IPPROTO_IP, IP_RECVERR, socket.IP_TTL,
              SO_EE_ORIGIN_ICMP, 11, 3, 3, 4, 4)
_V6 = _Family(socket.AF_INET6, socket.IPPROTO_IPV6, IPV6_RECVERR, socket.IPV6_UNICAST_HOPS,
              SO_EE_ORIGIN_ICMP6, 3, 1, 4, 8, 16)


@dataclass
class _Answers:
    """What came back, by TTL; ``reached_at``: the TTL at which the host itself answered."""

    target: str
    hops: dict[int, str] = field(default_factory=dict)
    reached_at: int | None = None
    ended_at: int | None = None  # an unreachable other than "port": nothing beyond it
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last(self) -> int | None:
        """The TTL where the path ends (the host, or who said it is unreachable)."""
        ends = [t for t in (self.reached_at, self.ended_at) if t is not None]
        return min(ends, default=None)

    def add(self, ttl: int, hop: str, reached: bool, ended: bool) -> None:
        self.hops.setdefault(ttl, hop)
        if reached and (self.reached_at is None or ttl < self.reached_at):
            self.reached_at = ttl
        if ended and (self.ended_at is None or ttl < self.ended_at):
            self.ended_at = ttl
        self.changed.set()

    def wave_answered(self, ttls: range) -> bool:
        last = self.last
        return all(t in self.hops for t in ttls if last is None or t <= last)


async def trace(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | str,
    *,
    max_hops: int = 16,
    timeout: float = 1.0,
    expected_first_hop: ipaddress.IPv4Address | ipaddress.IPv6Address | str | None = None,
) -> ProbeResult:
    """The routers towards ``ip``; ok when the host itself answered within ``max_hops``."""
    if not 1 <= max_hops <= 64:
        raise ValueError("max_hops must be between 1 and 64")
    address = ipaddress.ip_address(ip)
    fam = _V6 if address.version == 6 else _V4
    started, t0 = time.time(), time.monotonic()
    answers = _Answers(str(address))
    loop = asyncio.get_running_loop()
    with socket.socket(fam.family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.setsockopt(fam.level, fam.recverr, 1)
        loop.add_reader(sock.fileno(), _drain, sock, fam, answers)
        try:
            error = await _probe_in_waves(sock, fam, str(address), answers, max_hops, timeout)
        finally:
            loop.remove_reader(sock.fileno())
    return _result(address, answers, max_hops, expected_first_hop, error, started,
                   time.monotonic() - t0)


async def _probe_in_waves(
    sock: socket.socket, fam: _Family, address: str, answers: _Answers, max_hops: int,
    timeout: float,
) -> str | None:
    """TTLs a wave at a time, the next wave only while the host has not answered: every
    probe past the host costs one of its rate-limited ICMP errors (6 a second on Linux)."""
    loop = asyncio.get_running_loop()
    for first in range(1, max_hops + 1, WAVE):
        ttls = range(first, min(first + WAVE, max_hops + 1))
        error = _send_probes(sock, fam, address, ttls)
        if error is not None:
            return error
        deadline = loop.time() + timeout
        while not answers.wave_answered(ttls) and (remaining := deadline - loop.time()) > 0:
            answers.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answers.changed.wait(), remaining)
        if answers.last is not None:
            return None
    return None


def _send_probes(sock: socket.socket, fam: _Family, address: str, ttls: range) -> str | None:
    destination: tuple[str, int] | tuple[str, int, int, int]
    for ttl in ttls:
        port = BASE_PORT + ttl
        destination = (address, port) if fam is _V4 else (address, port, 0, 0)
        sock.setsockopt(fam.level, fam.ttl_option, ttl)
        # an earlier probe's answer (e.g. port unreachable, on loopback already there) is
        # pending as the socket's error and would fail this send: clear it, it is queued
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        try:
            sock.sendto(PAYLOAD, destination)
        except OSError as exc:  # e.g. no route: nothing leaves at all
            return f"sendto {address}: {exc.strerror or exc}"
    return None


def _drain(sock: socket.socket, fam: _Family, answers: _Answers) -> None:
    """Read every queued ICMP error (and discard any ordinary datagram)."""
    while True:
        try:
            _data, ancillary, _flags, original = sock.recvmsg(
                512, 512, socket.MSG_ERRQUEUE
            )
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            break
        _record(fam, answers, ancillary, original)
    try:
        while True:
            sock.recv(512)
    except OSError:  # drained (or the pending socket error reported): either way done
        pass


def _record(fam: _Family, answers: _Answers, ancillary: list, original: tuple) -> None:
    """One error-queue entry: ``original`` is where the probe it answers was sent."""
    if not original or original[0].partition("%")[0] != answers.target:
        return
    ttl = original[1] - BASE_PORT
    if ttl < 1:
        return
    for level, kind, data in ancillary:
        if level != fam.level or kind != fam.recverr or len(data) < _EXTENDED_ERR.size:
            continue
        _errno, origin, icmp_type, code, _pad, _info, _data = _EXTENDED_ERR.unpack_from(data)
        if origin != fam.origin:
            continue
        start = _EXTENDED_ERR.size + fam.address_offset
        raw = data[start:start + fam.address_length]
        if len(raw) != fam.address_length:
            continue
        hop = str(ipaddress.ip_address(raw))
        if icmp_type == fam.time_exceeded:
            answers.add(ttl, hop, reached=False, ended=False)
        elif icmp_type == fam.unreachable:
            reached = code == fam.port_unreachable_code
            answers.add(ttl, hop, reached=reached, ended=not reached)


def _result(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    answers: _Answers,
    max_hops: int,
    expected_first_hop: ipaddress.IPv4Address | ipaddress.IPv6Address | str | None,
    error: str | None,
    started: float,
    duration: float,
) -> ProbeResult:
    last = answers.last or max(answers.hops, default=0)
    hops = tuple(answers.hops.get(t) for t in range(1, last + 1))
    first_hop_ok = None
    if expected_first_hop is not None:
        first_hop_ok = bool(hops) and hops[0] == str(ipaddress.ip_address(expected_first_hop))
    reached = answers.reached_at is not None
    if error is None and not reached:
        if answers.ended_at is not None:
            error = f"unreachable: {hops[-1]} answered at hop {answers.ended_at}"
        else:
            error = f"{address} not reached within {max_hops} hops"
    return ProbeResult(
        kind="path", subject=str(address), ok=reached, started=started, duration=duration,
        error=error, detail=PathDetail(hops=hops, first_hop_ok=first_hop_ok),
    )
