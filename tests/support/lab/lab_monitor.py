"""The monitor of the province lab, run in the core namespace (test-only driver).

    ip netns exec CORE python -m tests.support.lab.lab_monitor --inventory INV.yaml \\
        --config CONFIG.yaml --state STATE.db --vantages VANTAGES.json --metrics OUT.prom

It is ``tslcd-monitor run`` (the product's :class:`~monitor.cycle.scheduler.Scheduler`,
:class:`~monitor.service.pipeline.Pipeline` and alert sinks) with one difference: ``run`` sits on no
commune segment, so here each commune's segment is scanned (ARP) and the election system
checked from inside that commune's router namespace, as an agent on the segment would. A
thread per commune enters the router's network namespace (``setns(2)`` is per thread, and a
socket stays in the namespace it was made in) and runs its own event loop.

Like an agent's batch, a commune vantage's results count only once they crossed the
commune's line: each cycle the vantage hands them over a TCP connection to the core
(198.18.0.1) through the line. A cut, lossy or slow line thus loses them, and the commune is
judged by the core's own probes alone, as it would be in production.

After every cycle the exposition is written to ``--metrics`` (atomically), so the test reads
the metrics without reaching into the core namespace; alerts go to the configured sinks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import structlog

from inventory.loader import load
from inventory.model import Commune, Inventory, Target
from monitor.common import config as config_mod
from monitor.common import log as log_mod
from monitor.cycle.observation import CycleReport
from monitor.cycle.scheduler import Scheduler, SchedulerOptions
from monitor.service.pipeline import Pipeline
from probes import arp, target
from probes.icmp import Pinger
from probes.result import ProbeResult

log = structlog.get_logger("lab_monitor")
T = TypeVar("T")
CLONE_NEWNET = 0x40000000
HANDOVER_HOST = "198.18.0.1"  # the core's address facing the election system
HANDOVER_PORT = 7150
HANDOVER_TIMEOUT = 0.5
#: Long enough for a TCP SYN lost once on a lossy line (retransmitted after 1 s); short
#: enough that scan, check and hand-over fit in a 3 s cycle.
TARGET_TIMEOUT = 1.5
VANTAGE_SHARE = 0.75  # of the interval: what a commune vantage may take, hand-over included
_libc = ctypes.CDLL(None, use_errno=True)


class NamespaceLoop:
    """An event loop on its own thread, inside another network namespace."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.loop = asyncio.new_event_loop()
        self._error: OSError | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True,
                                        name=f"netns-{netns}")
        self._thread.start()
        ready.wait(10)
        if self._error is not None:
            raise self._error

    def _serve(self, ready: threading.Event) -> None:
        try:
            fd = os.open(f"/run/netns/{self.netns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {self.netns}")
            finally:
                os.close(fd)
        except OSError as exc:
            self._error = exc
            ready.set()
            return
        asyncio.set_event_loop(self.loop)
        ready.set()
        self.loop.run_forever()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on this namespace's loop (its sockets are made in the namespace)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class LabScheduler(Scheduler):
    """The scheduler with each commune's segment scan and target checks made in the
    commune's own namespace; ``commune_targets`` holds the latter, per commune vantage."""

    def __init__(self, inventory: Inventory, pinger: Pinger, options: SchedulerOptions,
                 vantages: dict[str, NamespaceLoop]) -> None:
        super().__init__(inventory, pinger, options)
        self.vantages = vantages
        self.commune_targets: dict[str, list[ProbeResult]] = {}

    async def _scan_segments(self, inv: Inventory, budget: float) -> dict[str, Any]:
        """Every commune vantage at once; one that is late (a slow or dead line) is left
        out of this cycle without holding the others back."""
        communes = [c for c in inv.communes() if c.key in self.vantages]
        self.commune_targets = {}  # a cycle cut short must not leave the previous ones
        tasks = {asyncio.ensure_future(self.vantages[c.key].run(
            self._from_commune(c, inv.targets, budget))): c for c in communes}
        if not tasks:
            return {}
        done, late = await asyncio.wait(tasks, timeout=inv.defaults.interval * VANTAGE_SHARE)
        for task in late:
            task.cancel()
        scans: dict[str, Any] = {}
        for task in done:
            commune = tasks[task]
            if task.exception() is not None:
                log.error("vantage_failed", commune=commune.key, error=repr(task.exception()))
            elif task.result() is not None:
                scans[commune.key], self.commune_targets[commune.key] = task.result()
        return scans

    async def _from_commune(self, commune: Commune, targets: tuple[Target, ...],
                            budget: float) -> Any:
        """Runs in the commune's namespace: scan, check the targets, hand over the line."""
        opts = self.options
        scan, *checks = await asyncio.gather(
            arp.scan_segment(commune, window=opts.arp_window, budget=budget),
            *(target.probe(t, timeout=opts.target_timeout) for t in targets),
            return_exceptions=True)
        if isinstance(scan, BaseException):
            raise scan
        results = [c if isinstance(c, ProbeResult) else _failed(t, c)
                   for t, c in zip(targets, checks, strict=True)]
        if not await _hand_over(commune.key):
            return None  # the line did not carry them: as if never seen
        return scan, results


def _failed(tgt: Target, exc: BaseException) -> ProbeResult:
    return ProbeResult("target", tgt.name, False, time.time(), 0.0, repr(exc))


async def _hand_over(key: str) -> bool:
    """Send the commune's key to the core over the line and wait for it back."""
    try:
        async with asyncio.timeout(HANDOVER_TIMEOUT):
            reader, writer = await asyncio.open_connection(HANDOVER_HOST, HANDOVER_PORT)
            try:
                writer.write(key.encode() + b"\n")
                await writer.drain()
                return (await reader.readline()).strip() == key.encode()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        writer.write(await reader.readline())
        await writer.drain()
    writer.close()


async def monitor(args: argparse.Namespace) -> None:
    cfg = config_mod.load(args.config)
    inventory = load(args.inventory)
    pipeline = Pipeline(inventory, cfg, args.state)
    vantages = {key: NamespaceLoop(ns) for key, ns in
                json.loads(Path(args.vantages).read_text()).items()} if args.vantages else {}
    handover = await asyncio.start_server(_echo, HANDOVER_HOST, HANDOVER_PORT)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
    await pipeline.start()
    options = SchedulerOptions(arp_window=0.3, target_timeout=TARGET_TIMEOUT)
    try:
        async with Pinger() as pinger:
            scheduler = LabScheduler(inventory, pinger, options, vantages)

            async def on_report(report: CycleReport) -> None:
                for key, results in scheduler.commune_targets.items():
                    pipeline.dispatcher.publish_all(pipeline.engine.apply_targets(results, key))
                await pipeline.ingest_cycle(report)
                _write_atomically(Path(args.metrics), pipeline.exposition.body())

            probing = asyncio.create_task(scheduler.run_forever(on_report))
            log.info("lab_monitor_started", communes=len(vantages))
            await stopping.wait()
            probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probing
    finally:
        handover.close()
        await pipeline.stop()
        for vantage in vantages.values():
            vantage.close()


def _write_atomically(path: Path, body: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(body)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.lab.lab_monitor")
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--config")
    parser.add_argument("--state")
    parser.add_argument("--vantages", help="JSON: commune key -> router namespace")
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    log_mod.configure(json=True)
    asyncio.run(monitor(args))


if __name__ == "__main__":
    main()
