"""A delay line for the lab, without ``netem`` (this kernel has neither netem nor fq).

    ip netns exec ROUTER python -m tests.support.lab.delayline --dev dly --delay 0.2

Creates the TUN device ``--dev`` in the namespace it runs in; every packet routed into it is
written back into it ``--delay`` seconds later, so the kernel receives it again (as if from
``--dev``) and routes it on. :func:`tests.support.lab.faults.delay` steers a router's
traffic through
it with policy routing. At most ``--limit`` packets wait at once (then new ones are dropped,
like a full queue), so the load stays bounded. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import signal
import struct

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


async def delay_line(name: str, delay: float, limit: int) -> None:
    fd = open_tun(name)
    loop = asyncio.get_running_loop()
    waiting = 0
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def release(packet: bytes) -> None:
        nonlocal waiting
        waiting -= 1
        with contextlib.suppress(OSError):  # the device went away: the lab is torn down
            os.write(fd, packet)

    def arrived() -> None:
        nonlocal waiting
        try:
            packet = os.read(fd, 65535)
        except BlockingIOError:
            return
        if waiting < limit:
            waiting += 1
            loop.call_later(delay, release, packet)

    loop.add_reader(fd, arrived)
    await stop.wait()
    loop.remove_reader(fd)
    os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.lab.delayline")
    parser.add_argument("--dev", required=True)
    parser.add_argument("--delay", type=float, required=True)
    parser.add_argument("--limit", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(delay_line(args.dev, args.delay, args.limit))


if __name__ == "__main__":
    main()
