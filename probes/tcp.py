"""Liveness by TCP connect, for computers whose firewall drops ICMP echo (Windows).

A host is alive when it answers a connection attempt at all: accepted (SYN-ACK) or actively
refused (RST). Only silence (timeout) or an unreachable network means it is not there.
An accepted connection is reset at once (``SO_LINGER`` 0): no data, no TIME_WAIT left
behind by thousands of probes per cycle.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import time
from collections.abc import Sequence

from probes.result import ProbeResult, TcpDetail

_LINGER_RESET = struct.pack("ii", 1, 0)


async def probe(ip: str, port: int, timeout: float) -> ProbeResult:
    """Connect to ``ip:port`` within ``timeout`` s; ok when accepted or refused."""
    address = ipaddress.ip_address(ip)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    started, t0 = time.time(), time.monotonic()
    refused, error = False, None
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().sock_connect(sock, (str(address), port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except ConnectionRefusedError:
            refused = True
        except TimeoutError:
            error = f"tcp/{port}: no answer in {timeout:g} s"
        except OSError as exc:
            error = f"tcp/{port}: {exc.strerror or exc}"
    elapsed = time.monotonic() - t0
    return ProbeResult(
        kind="tcp",
        subject=str(address),
        ok=error is None,
        started=started,
        duration=elapsed,
        error=error,
        detail=TcpDetail(port, None if error else elapsed, refused),
    )


async def probe_any(ip: str, ports: Sequence[int], timeout: float) -> ProbeResult:
    """Try every port at once; the first that answers wins, the others are cancelled.

    An accepting port is preferred to a refusing one only by arriving first: either way
    the machine answered. With no answer at all, the result of the first port is returned
    with every port's error.
    """
    if not ports:
        raise ValueError("probe_any needs at least one port")
    tasks = [asyncio.create_task(probe(ip, port, timeout)) for port in ports]
    try:
        for next_done in asyncio.as_completed(tasks):
            result = await next_done
            if result.ok:
                return result
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    failed = [t.result() for t in tasks]
    errors = "; ".join(r.error or "" for r in failed)
    first = failed[0]
    return ProbeResult(
        kind="tcp", subject=first.subject, ok=False, started=first.started,
        duration=max(r.duration for r in failed), error=errors, detail=first.detail,
    )
