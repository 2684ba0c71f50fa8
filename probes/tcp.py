"""Liveness by TCP connect, for computers whose firewall drops ICMP echo (Windows).

A host is alive when it answers a connection attempt at all: accepted (SYN-ACK) or actively
refused (RST). Only silence (timeout) or an unreachable network means it is not there.
An accepted connection is reset at once (``SO_LINGER`` 0): no data, no TIME_WAIT left
behind by thousands of probes per cycle.

A cycle may try a thousand silent hosts on two ports each, so an attempt costs no task and
no stream: a non-blocking ``connect`` that the kernel answers at once (on a local segment it
often does) is judged on the spot, the others by one writer callback per socket, and a host
waits on one future for all its ports.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
import struct
import time
from collections.abc import Sequence

from probes.result import ProbeResult, TcpDetail

_LINGER_RESET = struct.pack("ii", 1, 0)
_ANSWERED = (0, errno.ECONNREFUSED)  # accepted, or refused: the machine is there
_PENDING = (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK)


async def probe(ip: str, port: int, timeout: float) -> ProbeResult:
    """Connect to ``ip:port`` within ``timeout`` s; ok when accepted or refused."""
    return await probe_any(ip, (port,), timeout)


async def probe_any(ip: str, ports: Sequence[int], timeout: float) -> ProbeResult:
    """Try every port at once; the first that answers wins, the others are dropped.

    An accepting port is preferred to a refusing one only by arriving first: either way
    the machine answered. With no answer at all, the result names the first port and
    carries every port's error.
    """
    if not ports:
        raise ValueError("probe_any needs at least one port")
    address = ipaddress.ip_address(ip)
    attempt = _Attempt(address, ports, timeout)
    try:
        return await attempt.run()
    finally:
        attempt.close()


class _Attempt:
    """The connection attempts to one host: one socket per port, one future for all."""

    def __init__(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address,
                 ports: Sequence[int], timeout: float) -> None:
        self.subject = str(address)
        self.family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        self.ports = list(ports)
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        # (port, refused) of the first port that answered; None once every port failed
        self.done: asyncio.Future[tuple[int, bool] | None] = self.loop.create_future()
        self.errors: dict[int, str] = {}
        self.sockets: dict[int, socket.socket] = {}  # port -> socket still connecting
        self.started, self.t0 = time.time(), time.monotonic()

    async def run(self) -> ProbeResult:
        for port in self.ports:
            self._start(port)
            if self.done.done():
                break
        if not self.done.done():
            await asyncio.wait([self.done], timeout=self.timeout)
        for port in self.sockets:  # still connecting: silence
            self.errors[port] = f"tcp/{port}: no answer in {self.timeout:g} s"
        elapsed = time.monotonic() - self.t0
        answer = self.done.result() if self.done.done() else None
        if answer is not None:
            port, refused = answer
            return self._result(True, elapsed, None, TcpDetail(port, elapsed, refused))
        errors = "; ".join(self.errors[p] for p in self.ports if p in self.errors)
        return self._result(False, elapsed, errors, TcpDetail(self.ports[0]))

    def _start(self, port: int) -> None:
        try:
            sock = socket.socket(self.family, socket.SOCK_STREAM)
        except OSError as exc:  # out of file descriptors, most likely: this port fails
            self._failed(port, exc.errno or errno.EMFILE)
            return
        sock.setblocking(False)
        try:
            code = sock.connect_ex((self.subject, port))
        except OSError as exc:  # e.g. an address the socket cannot take
            code = exc.errno or errno.EINVAL
        if code in _PENDING:
            self.sockets[port] = sock
            self.loop.add_writer(sock.fileno(), self._connected, port)
            return
        self._judge(sock, port, code)

    def _connected(self, port: int) -> None:
        sock = self.sockets.pop(port)
        self.loop.remove_writer(sock.fileno())
        self._judge(sock, port, sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))

    def _judge(self, sock: socket.socket, port: int, code: int) -> None:
        """One attempt ended: answered (the host wins), or failed (the host may still)."""
        if code == 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        sock.close()
        if code in _ANSWERED:
            if not self.done.done():
                self.done.set_result((port, code == errno.ECONNREFUSED))
            return
        self._failed(port, code)

    def _failed(self, port: int, code: int) -> None:
        self.errors[port] = f"tcp/{port}: {os.strerror(code)}"
        if len(self.errors) == len(self.ports) and not self.done.done():
            self.done.set_result(None)  # every port failed before the timeout: stop waiting

    def close(self) -> None:
        for sock in self.sockets.values():
            self.loop.remove_writer(sock.fileno())
            sock.close()
        self.sockets.clear()

    def _result(self, ok: bool, elapsed: float, error: str | None,
                detail: TcpDetail) -> ProbeResult:
        return ProbeResult(kind="tcp", subject=self.subject, ok=ok, started=self.started,
                           duration=elapsed, error=error, detail=detail)

