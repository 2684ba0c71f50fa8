"""ICMP echo for thousands of hosts from one process: one socket per address family.

Unlike a pinger with a socket and a task per host, every echo of a cycle leaves through
one shared socket per family. A single sender coroutine walks the cycle's schedule (hosts
spread over a window, ``count`` rounds ``spacing`` apart, paced by a :class:`Pacer`); the
socket's reader callback drains every queued reply per wakeup, validates it (length, type,
code, identifier, our per-process cookie, checksum, source address) and writes its RTT into
the host's slot, found in O(1) by ``(identifier, sequence)``. No task or future per packet.

RTTs stay true while the event loop is busy: replies carry the kernel's receive time
(``SO_TIMESTAMPNS``, CLOCK_REALTIME), and the send time is read from the same clock
(``time.time_ns()``) immediately *before* ``sendto`` -- on loopback the reply is received
inside the ``sendto`` call itself, so a time read after it could exceed the kernel's stamp.
A monotonic measurement is kept alongside: it bounds the kernel one from above (the kernel
stamps a reply before we read it); when a step of the wall clock breaks that bound, the
monotonic RTT (which includes any event-loop delay) is used instead of a wrong one.

Sockets: raw (``SOCK_RAW``) when permitted, else the kernel's unprivileged ping sockets
(``SOCK_DGRAM``, ``IPPROTO_ICMP``, allowed by ``net.ipv4.ping_group_range``), whose kernel
replaces the echo identifier with the socket's port; otherwise :class:`IcmpPermissionError`.
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import ipaddress
import itertools
import os
import socket
import struct
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Literal, TypedDict, Unpack

import structlog

from probes.pacing import GRANULARITY, Bucket, Pacer, interleave_groups, spread_offsets
from probes.result import IcmpDetail, ProbeResult

log = structlog.get_logger("icmp")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Mode = Literal["auto", "raw", "dgram"]
Destination = tuple[str, int] | tuple[str, int, int, int]  # sendto address

DEFAULT_SPACING = 1.0  # seconds between the echoes of one host, as ping and fping -p1000
RECEIVE_BUFFER = 16 * 1024 * 1024  # replies queue here while the event loop is busy
YIELD_EVERY = 64  # sends between two chances for the reader to drain the socket
SEND_RETRIES = 20  # a full send buffer is retried after a short sleep, then given up

SO_TIMESTAMPNS = 35  # <asm-generic/socket.h>; not exported by the socket module
SO_RCVBUFFORCE = 33
SOL_RAW = 255
ICMP_FILTER = 1  # <linux/icmp.h>, on SOL_RAW: bit set = type blocked
ICMP6_FILTER = 1  # <netinet/icmp6.h>, on IPPROTO_ICMPV6

_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
_TIMESPEC = struct.Struct("@qq")
_COOKIE_LEN = 8
_REQUEST = struct.Struct(f"!BBHHH{_COOKIE_LEN}s")  # the header, then our per-process cookie
PACKET_LEN = _REQUEST.size
_RECV_SIZE = 2048
# Windows has no CMSG_SPACE (nor raw ICMP for us): the module must still import there, for
# the agent, which never opens a Pinger on Windows.
_ANC_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
_TIMESTAMP_SLACK_NS = 100_000


class IcmpPermissionError(PermissionError):
    """Neither a raw socket nor an unprivileged ping socket may be opened."""

    def __init__(self, family: socket.AddressFamily) -> None:
        python = os.path.realpath(sys.executable)
        proto = "ICMPv6" if family == socket.AF_INET6 else "ICMP"
        super().__init__(
            f"cannot open an {proto} socket: no raw-socket privilege and unprivileged ping "
            "sockets are not allowed for this group. Do one of: run tslcd-monitor as root; "
            f"or `setcap cap_net_raw+ep {python}`; or "
            '`sysctl -w net.ipv4.ping_group_range="0 2147483647"`. '
            "/ Không mở được socket ICMP: hãy chạy bằng root, hoặc "
            f"`setcap cap_net_raw+ep {python}`, hoặc "
            '`sysctl -w net.ipv4.ping_group_range="0 2147483647"`.'
        )


class _Job:
    """One ``ping_many`` call: per-slot send times and RTTs (slot = host * count + echo)."""

    __slots__ = (
        "all_sent", "count", "done", "errors", "expect", "keys", "outstanding", "rtts",
        "sent_mono", "sent_real", "timeout_ns",
    )

    def __init__(self, hosts: int, count: int, timeout: float, done: asyncio.Future[None]):
        slots = hosts * count
        self.count = count
        self.timeout_ns = int(timeout * 1e9)
        self.expect: list[bytes | str] = []  # per host: source address a reply must carry
        self.sent_real = [0] * slots
        self.sent_mono = [0] * slots
        self.rtts: list[float | None] = [None] * slots
        self.keys: list[int] = [-1] * slots
        self.errors: dict[int, str] = {}
        self.outstanding = 0
        self.all_sent = False
        self.done = done

    def record(self, slot: int, kernel_ns: int | None, mono_now: int) -> None:
        """A validated reply: keep its RTT when it came within the timeout."""
        rtt = mono_now - self.sent_mono[slot]
        if kernel_ns is not None:
            kernel_rtt = kernel_ns - self.sent_real[slot]
            if 0 <= kernel_rtt <= rtt + _TIMESTAMP_SLACK_NS:
                rtt = kernel_rtt
        if rtt > self.timeout_ns:
            return
        self.rtts[slot] = rtt / 1e9
        self.outstanding -= 1
        if self.outstanding <= 0:
            self.finish_if_complete()

    def finish_if_complete(self) -> None:
        if self.all_sent and self.outstanding <= 0 and not self.done.done():
            self.done.set_result(None)


class _Channel:
    """One ICMP socket of one family, shared by all jobs; its reader matches the replies."""

    def __init__(
        self, family: socket.AddressFamily, mode: Mode, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.family = family
        self.sock, self.raw = _open_socket(family, mode)
        self.v4 = family == socket.AF_INET
        self.raw4 = self.raw and self.v4
        self.request_type, self.reply_type = (8, 0) if self.v4 else (128, 129)
        self.cookie = os.urandom(_COOKIE_LEN)
        self.pending: dict[int, tuple[_Job, int]] = {}
        self._seq = _random16()
        self._loop = loop
        try:
            self._configure()
        except BaseException:
            self.sock.close()
            raise
        self.key_base = self.ident << 16
        # one's complement sums of every word but the sequence number (and the checksum)
        words = sum(struct.unpack(f"!{_COOKIE_LEN // 2}H", self.cookie)) + self.ident
        self._request_sum = (self.request_type << 8) + words
        self._reply_sum = (self.reply_type << 8) + words
        loop.add_reader(self.sock.fileno(), self.drain)

    def _configure(self) -> None:
        sock = self.sock
        sock.setblocking(False)
        _enlarge_receive_buffer(sock)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if self.raw:
            self.ident = _random16()
            _install_type_filter(sock, self.v4, self.reply_type)
        else:  # the kernel writes the socket's "port" into every echo's identifier
            sock.bind(("0.0.0.0", 0) if self.v4 else ("::", 0))
            self.ident = sock.getsockname()[1]
        log.debug("icmp_socket_opened", family=self.family.name, raw=self.raw, ident=self.ident)

    def close(self) -> None:
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def expected_source(self, ip: str) -> bytes | str:
        """How a reply's source is compared: raw IPv4 header bytes, or recvmsg's text."""
        return socket.inet_aton(ip) if self.raw4 else ip

    def destination(self, ip: str) -> Destination:
        return (ip, 0) if self.v4 else (ip, 0, 0, 0)

    def request(self, job: _Job, slot: int) -> tuple[int, bytes]:
        """An echo request for one slot, under a free sequence number registered so that
        its reply finds the slot: (key, packet). The IPv4 checksum is ours to compute
        (ICMPv6: the kernel's)."""
        pending = self.pending
        seq = (self._seq + 1) & 0xFFFF
        key = self.key_base | seq
        if key in pending:  # only when thousands of echoes are still outstanding
            for _ in range(0xFFFF):
                seq = (seq + 1) & 0xFFFF
                key = self.key_base | seq
                if key not in pending:
                    break
            else:
                raise RuntimeError("65,536 echo requests outstanding on one ICMP socket")
        self._seq = seq
        pending[key] = (job, slot)
        checksum = _checksum(self._request_sum + seq) if self.v4 else 0
        return key, _REQUEST.pack(self.request_type, 0, checksum, self.ident, seq, self.cookie)

    def release(self, key: int, job: _Job) -> None:
        entry = self.pending.get(key)
        if entry is not None and entry[0] is job:
            del self.pending[key]

    def drain(self) -> None:
        """Read every queued datagram; match the valid replies, ignore everything else."""
        sock = self.sock
        mono_now = time.monotonic_ns()
        while True:
            try:
                data, ancillary, _flags, address = sock.recvmsg(_RECV_SIZE, _ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # a queued socket error: nothing to read now
                log.debug("icmp_receive_error", error=str(exc))
                return
            self._accept(data, ancillary, address, mono_now)

    def _accept(self, data: bytes, ancillary: list, address: tuple, mono_now: int) -> None:
        """Match one datagram to its echo, or ignore it. Runs for every reply of a cycle:
        one header unpack, one dict pop, no slice but the source address."""
        if self.raw4:
            if len(data) < 20:
                return
            offset = (data[0] & 0x0F) << 2
            source: bytes | str = data[12:16]
        else:
            offset = 0
            source = address[0].partition("%")[0]
        if len(data) - offset != PACKET_LEN:
            return
        kind, code, checksum, ident, seq = _HEADER.unpack_from(data, offset)
        if kind != self.reply_type or code or ident != self.ident:
            return
        if not data.endswith(self.cookie):  # the length is exact: the cookie ends the packet
            return
        # Every other word is now known, so the checksum has one right value (or its other
        # zero, 0xFFFF). The kernel verified ping-socket and ICMPv6 raw-socket packets.
        if self.raw4:
            expected = _checksum(self._reply_sum + seq)
            if checksum != expected and not (expected == 0 and checksum == 0xFFFF):
                return
        entry = self.pending.pop(self.key_base | seq, None)
        if entry is None:
            return
        job, slot = entry
        if source != job.expect[slot // job.count]:
            self.pending[self.key_base | seq] = entry  # not ours to take: a spoofed source
            return
        kernel_ns = None
        if ancillary:  # SO_TIMESTAMPNS is the only ancillary data this socket asks for
            level, kind, stamp = ancillary[0]
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(stamp) >= 16:
                seconds, nanoseconds = _TIMESPEC.unpack_from(stamp)
                kernel_ns = seconds * 1_000_000_000 + nanoseconds
        job.record(slot, kernel_ns, mono_now)


class PingOptions(TypedDict, total=False):
    """The options of :meth:`Pinger.ping_each` (defaults there) that
    :meth:`Pinger.ping_many` passes on: written once, so the two cannot drift apart."""

    count: int
    timeout: float
    spacing: float
    spread: float
    pacer: Pacer | None


class Pinger:
    """Shared ICMP sockets for a process: ``async with Pinger() as p: await p.ping_many(...)``.

    ``ipv6``: None opens the IPv6 socket on first use (hosts get a failed result when it
    cannot be opened), True opens it at once and raises, False never opens it.
    ``mode``: "auto" (raw when permitted, else ping sockets), "raw" or "dgram".
    """

    def __init__(self, *, ipv6: bool | None = None, mode: Mode = "auto") -> None:
        self.ipv6 = ipv6
        self.mode = mode
        self._channels: dict[int, _Channel] = {}
        self._v6_error: str | None = None

    @classmethod
    async def open(cls, *, ipv6: bool | None = None, mode: Mode = "auto") -> Pinger:
        pinger = cls(ipv6=ipv6, mode=mode)
        pinger._start()
        return pinger

    async def __aenter__(self) -> Pinger:
        self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    @property
    def raw(self) -> bool:
        """Whether IPv4 uses a raw socket (else an unprivileged ping socket)."""
        return self._channels[4].raw

    def _start(self) -> None:
        if self._channels:
            return
        loop = asyncio.get_running_loop()
        self._channels[4] = _Channel(socket.AF_INET, self.mode, loop)
        if self.ipv6:
            self._channels[6] = _Channel(socket.AF_INET6, self.mode, loop)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def _channel(self, version: int) -> _Channel | None:
        channel = self._channels.get(version)
        if channel is None and version == 6 and self.ipv6 is None and self._v6_error is None:
            try:
                channel = self._channels[6] = _Channel(
                    socket.AF_INET6, self.mode, asyncio.get_running_loop()
                )
            except OSError as exc:
                self._v6_error = f"IPv6 ICMP unavailable: {exc}"
                log.warning("icmp_ipv6_unavailable", error=str(exc))
        return channel

    def _no_v6_reason(self) -> str:
        return self._v6_error or "IPv6 ICMP disabled (Pinger(ipv6=False))"

    async def ping(
        self, ip: IPAddress | str, count: int = 3, timeout: float = 1.0,
        spacing: float = DEFAULT_SPACING,
    ) -> ProbeResult:
        """Ping one host (for small jobs; many hosts belong in one :meth:`ping_many`)."""
        address = ipaddress.ip_address(ip)
        results = await self.ping_many([address], count=count, timeout=timeout, spacing=spacing)
        return results[address]

    async def ping_many(
        self,
        hosts: Sequence[IPAddress],
        *,
        group_of: Callable[[IPAddress], Hashable] | None = None,
        **options: Unpack[PingOptions],
    ) -> dict[IPAddress, ProbeResult]:
        """``count`` echoes to every host, ``spacing`` s apart, first echoes spread evenly
        over ``spread`` s, each waited for at most ``timeout`` s; one result per host
        (the options and their defaults are :meth:`ping_each`'s)."""
        unique = list(dict.fromkeys(hosts))
        groups = [group_of(ip) for ip in unique] if group_of is not None else None
        results = await self.ping_each(unique, groups=groups, **options)
        return dict(zip(unique, results, strict=True))

    async def ping_each(
        self,
        hosts: Sequence[IPAddress],
        *,
        count: int = 3,
        timeout: float = 1.0,
        spacing: float = DEFAULT_SPACING,
        spread: float = 0.0,
        pacer: Pacer | None = None,
        groups: Sequence[Hashable] | None = None,
    ) -> list[ProbeResult]:
        """:meth:`ping_many` for addresses known to be distinct (an inventory's): one result
        per address, in their order, without hashing 10,000 addresses on the way.
        ``groups[i]`` is the pacing group (commune) of ``hosts[i]``; a group's addresses are
        sent apart from each other."""
        if count < 1 or timeout <= 0 or spacing < 0:
            raise ValueError("count must be >= 1, timeout > 0 and spacing >= 0")
        if not self._channels:
            raise RuntimeError("Pinger is not open (use `async with Pinger()` or Pinger.open)")
        order = range(len(hosts))
        if groups is not None:
            order = interleave_groups(order, groups.__getitem__)
        sending = _Sending(self, [hosts[i] for i in order], count, timeout)
        buckets = None
        if pacer is not None:
            buckets = [pacer.bucket(groups[i]) if groups is not None else None for i in order]
        try:
            await sending.walk(_schedule(len(order), count, spacing, spread), pacer, buckets)
            await _wait_for_replies(sending.job, max(sending.job.sent_mono, default=0), timeout)
            # replies the kernel stamped in time may still wait in a socket the loop was too
            # busy to read: their RTT is true, so count them before giving up on the rest
            for channel in {c for c in sending.channels if c is not None}:
                channel.drain()
        finally:
            sending.release_unanswered()
        results: list[ProbeResult] = [None] * len(order)  # type: ignore[list-item]
        for position, index in enumerate(order):
            results[index] = sending.result(position)
        return results


class _Sending:
    """One :meth:`Pinger.ping_each` call: its hosts in send order, their sockets and job."""

    def __init__(self, pinger: Pinger, hosts: list[IPAddress], count: int,
                 timeout: float) -> None:
        self.pinger = pinger
        self.timeout = timeout
        self.channels = [pinger._channel(ip.version) for ip in hosts]
        self.texts = [str(ip) for ip in hosts]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.job = _Job(len(hosts), count, timeout, done)
        self.job.expect = [c.expected_source(text) if c else ""
                           for c, text in zip(self.channels, self.texts, strict=True)]
        self.destinations = [c.destination(text) if c else None
                             for c, text in zip(self.channels, self.texts, strict=True)]

    async def walk(self, schedule: Iterable[tuple[float, int]], pacer: Pacer | None,
                   buckets: list[Bucket | None] | None) -> None:
        """Send along the schedule: sleep only when ahead of it or of the pacer, in batches."""
        job, channels, destinations = self.job, self.channels, self.destinations
        count = job.count
        clock = pacer.clock if pacer is not None else time.monotonic
        book = pacer.book if pacer is not None else None
        start = clock()
        since_yield = 0
        for offset, slot in schedule:
            host = slot // count
            channel = channels[host]
            if channel is None:
                continue
            at = start + offset
            if book is not None:
                at = book(buckets[host], at)  # type: ignore[index]
            delay = at - clock()
            if delay > GRANULARITY:
                await asyncio.sleep(delay)
                since_yield = 0
            elif since_yield >= YIELD_EVERY:
                await asyncio.sleep(0)
                since_yield = 0
            if not _send_one(job, slot, channel, destinations[host]):
                await _send_with_retries(job, slot, channel, destinations[host])
            since_yield += 1
        job.all_sent = True
        job.finish_if_complete()

    def release_unanswered(self) -> None:
        """Forget the unanswered echoes: a reply arriving later matches nothing."""
        job, channels = self.job, self.channels
        for slot, key in enumerate(job.keys):
            if key >= 0 and job.rtts[slot] is None:
                channel = channels[slot // job.count]
                if channel is not None:
                    channel.release(key, job)

    def result(self, host: int) -> ProbeResult:
        unavailable = None if self.channels[host] else self.pinger._no_v6_reason()
        return _result(self.job, host, self.texts[host], self.timeout, unavailable)


async def ping(ip: IPAddress | str, count: int = 3, timeout: float = 1.0) -> ProbeResult:
    """Ping one host through a short-lived :class:`Pinger`."""
    async with Pinger() as pinger:
        return await pinger.ping(ip, count=count, timeout=timeout)


def _schedule(hosts: int, count: int, spacing: float, spread: float) -> Iterable[tuple[float,
                                                                                       int]]:
    """``(offset, slot)`` in send order: host starts spread evenly, rounds ``spacing`` apart."""
    offsets = spread_offsets(hosts, spread)
    rounds = [
        [(offset + k * spacing, host * count + k) for host, offset in enumerate(offsets)]
        for k in range(count)
    ]
    if not offsets or offsets[-1] < spacing:  # rounds do not overlap: no merge needed
        return itertools.chain.from_iterable(rounds)
    return heapq.merge(*rounds)


def _send_one(job: _Job, slot: int, channel: _Channel, destination: Destination) -> bool:
    """Send one echo now; False when the socket's buffer is full (retry later)."""
    key, packet = channel.request(job, slot)
    job.keys[slot] = key
    # send time read before sendto: on loopback the kernel stamps the reply inside the call
    job.sent_real[slot] = time.time_ns()
    job.sent_mono[slot] = time.monotonic_ns()
    try:
        channel.sock.sendto(packet, destination)
    except OSError as exc:
        channel.release(key, job)
        if isinstance(exc, BlockingIOError | InterruptedError) or exc.errno == errno.ENOBUFS:
            return False
        job.errors[slot // job.count] = f"sendto {destination[0]}: {exc.strerror or exc}"
        return True
    job.outstanding += 1
    return True


async def _send_with_retries(
    job: _Job, slot: int, channel: _Channel, destination: Destination
) -> None:
    """A full send buffer drains within milliseconds; wait for it, but not forever."""
    for _ in range(SEND_RETRIES):
        await asyncio.sleep(GRANULARITY)
        if _send_one(job, slot, channel, destination):
            return
    job.errors[slot // job.count] = f"sendto {destination[0]}: send buffer full"
    job.sent_mono[slot] = job.sent_real[slot] = 0  # never left: not counted as sent


async def _wait_for_replies(job: _Job, last_send_ns: int, timeout: float) -> None:
    remaining = (last_send_ns - time.monotonic_ns()) / 1e9 + timeout
    if not job.done.done() and remaining > 0:
        await asyncio.wait([job.done], timeout=remaining)


def _result(
    job: _Job, host: int, subject: str, timeout: float, unavailable: str | None
) -> ProbeResult:
    first, end = host * job.count, (host + 1) * job.count
    replies = job.rtts[first:end]
    rtts = tuple([r for r in replies if r is not None])
    # from the first echo until the last reply, or the last echo's timeout when unanswered
    started_real = started = finished = sent = 0
    for real, mono, rtt in zip(job.sent_real[first:end], job.sent_mono[first:end], replies,
                               strict=True):
        if not mono:  # never left
            continue
        sent += 1
        if not started:
            started_real, started = real, mono
        last = mono + (job.timeout_ns if rtt is None else int(rtt * 1e9))
        if last > finished:
            finished = last
    detail = IcmpDetail(sent=sent, received=len(rtts), rtts=rtts)
    if not started:
        return ProbeResult("icmp", subject, False, time.time(), 0.0,
                           unavailable or job.errors.get(host, "not sent"), detail)
    error = None
    if not rtts:
        error = job.errors.get(host) or f"no reply to {detail.sent} echo requests in {timeout:g} s"
    return ProbeResult("icmp", subject, bool(rtts), started_real / 1e9,
                       (finished - started) / 1e9, error, detail)


def _open_socket(family: socket.AddressFamily, mode: Mode) -> tuple[socket.socket, bool]:
    """A raw socket when permitted, else an unprivileged ping socket; (socket, is_raw)."""
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    if mode in ("auto", "raw"):
        try:
            return socket.socket(family, socket.SOCK_RAW, proto), True
        except PermissionError as exc:
            if mode == "raw":
                raise IcmpPermissionError(family) from exc
    try:
        return socket.socket(family, socket.SOCK_DGRAM, proto), False
    except PermissionError as exc:
        raise IcmpPermissionError(family) from exc


def _enlarge_receive_buffer(sock: socket.socket) -> None:
    """Room for a burst of replies: beyond net.core.rmem_max as root, else up to it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)


def _install_type_filter(sock: socket.socket, v4: bool, reply_type: int) -> None:
    """Let the kernel pass only echo replies to a raw socket (it sees all ICMP otherwise)."""
    if v4:
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~(1 << reply_type) & 0xFFFFFFFF))
        return
    words = [0xFFFFFFFF] * 8
    words[reply_type >> 5] &= ~(1 << (reply_type & 31)) & 0xFFFFFFFF
    sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *words))


def _random16() -> int:
    """A random 16-bit number from the system's generator (as ``secrets`` would give)."""
    return int.from_bytes(os.urandom(2), "big")


def _checksum(total: int) -> int:
    """The ICMP checksum field for words summing to ``total``: its one's complement."""
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
