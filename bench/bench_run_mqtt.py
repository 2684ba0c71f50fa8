"""``run --mqtt`` for the nation: central probing and every commune agent in one process
(issue 14, item 7).

Real parts on loopback: a mosquitto, the ``tslcd-monitor run --mqtt`` command (its own
process, SQLite state file) over the nationwide loopback inventory (``inventory generate``:
34 provinces, 3,321 communes, 3 hosts each, 9,963 hosts and 3,321 gateways, every one of
them probed centrally each cycle) at a 10 s interval, and 3,321 simulated commune agents
(``PROV/COMMUNE`` vantages, MQTT clients of this process, one per province speaking for its
communes, as :mod:`bench.bench_collector` does) publishing a batch per commune every 10 s,
each province at its own moment of the cycle, with the election system's check from that
commune (the inventory lists the election system: an HTTP stand-in on loopback, which the
central vantage checks too).

The same again with no agent publishing (central probing alone), to tell the two loads
apart. After a warm-up of ``WARMUP`` cycles, the ``run`` process's CPU (user + system, from /proc)
over ``TSLCD_BENCH_WINDOW`` seconds (default 60) of wall time, and its RSS (the most seen,
sampled every second). Goals: CPU <= 0.25 core, RSS < 300 MB.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

from bench import Row, main
from bench.mqtt_rig import (
    TARGET,
    Agents,
    MonitorProcess,
    MosquittoProcess,
    batches_accepted,
    cpu_seconds,
    metrics,
    national_workdir,
    wait_for_batches,
)
from inventory.loader import dump
from inventory.model import Inventory, Target

INTERVAL = 10.0
WARMUP = 3  # cycles before the window: the state filled, every vantage seen
WINDOW = float(os.environ.get("TSLCD_BENCH_WINDOW", "60"))
GOAL_CORES = 0.25
GOAL_RSS_MB = 300.0


def run() -> list[Row]:
    return asyncio.run(_run())


async def _run() -> list[Row]:
    with national_workdir("tslcd-bench-run-mqtt-") as (workdir, path, national), \
            ElectionStandIn() as url:
        inventory = dataclasses.replace(
            national, defaults=dataclasses.replace(national.defaults, interval=INTERVAL),
            targets=(Target(TARGET, url),))
        path.write_text(dump(inventory), encoding="utf-8")
        rows: list[Row] = []
        for with_agents in (True, False):
            with MosquittoProcess(workdir) as port, \
                    MonitorProcess("run", workdir, path, port) as (pid, web):
                async with Agents(inventory, port, per_commune=True) as agents:
                    publishing = asyncio.create_task(
                        _publish_forever(agents) if with_agents else asyncio.sleep(0))
                    try:
                        await asyncio.sleep(WARMUP * INTERVAL)
                        await wait_for_batches(web, agents.published * 0.9, 120)
                        rows += await _measure(agents, inventory, pid, web,
                                               workdir / "run.log")
                    finally:
                        publishing.cancel()
        return rows


async def _publish_forever(agents: Agents) -> None:
    """Every province's commune batches once per interval, provinces spread over it."""
    provinces = list(agents.clients)
    start = time.monotonic()
    cycle = 0
    while True:
        cycle_start = start + cycle * INTERVAL
        for i, province in enumerate(provinces):
            at = cycle_start + i * INTERVAL / len(provinces)
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            await agents.publish(province, time.time())
        cycle += 1


async def _measure(agents: Agents, inventory: Inventory, pid: int, web: int,
                   log: Path) -> list[Row]:
    process = psutil.Process(pid)
    overruns0, accepted0 = _overruns(log), await _accepted(web)
    published0, cpu0, start = agents.published, cpu_seconds(pid), time.monotonic()
    system0 = process.cpu_times().system
    rss = 0.0
    while time.monotonic() - start < WINDOW:
        rss = max(rss, process.memory_info().rss / 2**20)
        await asyncio.sleep(1.0)
    wall, cpu = time.monotonic() - start, cpu_seconds(pid) - cpu0
    system = process.cpu_times().system - system0
    batches = agents.published - published0
    overruns = _overruns(log) - overruns0
    body = await asyncio.to_thread(metrics, web)
    accepted = batches_accepted(body) - accepted0
    render = re.search(r"^tslcd_exposition_render_seconds ([0-9.e+-]+)$", body, re.M)
    cores = cpu / wall
    communes = sum(1 for _ in inventory.communes())
    who = f"{communes} commune agents + central probing" if batches else "central probing only"
    where = (f"{who} of {inventory.host_count} hosts and {communes} gateways, "
             f"every {INTERVAL:.0f} s")
    name = "nation" if batches else "nation, no agents"
    return [
        Row(f"run --mqtt CPU, {name}", cores, "cores",
            f"{where}; {wall:.0f} s window, {batches} batches published, {accepted:.0f} "
            f"accepted; one render of /metrics {float(render.group(1)) if render else 0:.2f} s; "
            f"in the kernel {system / wall:.3f} core (on loopback an echo's reply "
            "is made inside the sender's system call); "
            f"{'meets' if cores <= GOAL_CORES else 'MISSES'} goal <= {GOAL_CORES}"),
        Row(f"run --mqtt RSS, {name}", rss, "MiB",
            f"most seen in the window; {'meets' if rss < GOAL_RSS_MB else 'MISSES'} "
            f"goal < {GOAL_RSS_MB:.0f} MB"),
        Row(f"run --mqtt cycles skipped, {name}", overruns, "cycles",
            f"central cycles that overran the {INTERVAL:.0f} s interval in the window "
            f"({WINDOW / INTERVAL:.0f} due)"),
    ]


async def _accepted(web: int) -> float:
    """Batches the process accepted so far (its /metrics, rendered every 5 s)."""
    return batches_accepted(await asyncio.to_thread(metrics, web))


def _overruns(log: Path) -> int:
    """Cycles the central scheduler skipped so far (its ``cycle_overrun`` warnings)."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return sum(int(m) for m in re.findall(r'"skipped_cycles": (\d+), "event": "cycle_overrun"',
                                          text))


class ElectionStandIn:
    """The election system the agents' batches report on (the inventory must list it, or
    the batches are refused): plain HTTP 200 on a free loopback port, checked by the
    central vantage each cycle as well."""

    def __enter__(self) -> str:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        """Quiet: a request a cycle is not news."""


if __name__ == "__main__":
    main(run)
