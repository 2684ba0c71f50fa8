"""One collector for the nation: CPU at the real load, and the most it takes (issue #5).

Real parts on loopback: a mosquitto, the ``tslcd-monitor collector`` command (its own
process, SQLite state file, /metrics rendered every 5 s) over the nationwide inventory
(34 provinces, 3,321 communes, 3 hosts each: 9,963 hosts), and 34 simulated agents (MQTT
clients in this process) publishing results batches as real agents do: every 30 s, each
its whole province at once, at its own moment of the cycle.

* steady: ``CYCLES`` real 30 s cycles; the collector's CPU (user + system, from /proc) over
  wall time. Goal: under half a core.
* burst: the same batches published as fast as 34 clients can; batches (and host results)
  per second until the collector counted them all: the headroom above the real load.

``TSLCD_BENCH_CYCLES`` (default 3) shortens or lengthens the steady phase.
"""

from __future__ import annotations

import asyncio
import os
import time

import psutil

from bench import Row, main
from bench.mqtt_rig import (
    Agents,
    MonitorProcess,
    MosquittoProcess,
    cpu_seconds,
    metrics,
    national_workdir,
    peak_rss_mib,
    rejections,
    wait_for_batches,
)

INTERVAL = 30.0
CYCLES = int(os.environ.get("TSLCD_BENCH_CYCLES", "3"))
BURST_CYCLES = 10
GOAL_CORES = 0.5


def run() -> list[Row]:
    return asyncio.run(_run())


async def _run() -> list[Row]:
    with national_workdir("tslcd-bench-collector-") as (workdir, inventory_path, inventory):
        rows: list[Row] = []
        for per_commune in (False, True):
            with MosquittoProcess(workdir) as port, \
                    MonitorProcess("collector", workdir, inventory_path, port) as (pid, web):
                await wait_for_batches(web, 0, 60)
                async with Agents(inventory, port, per_commune) as agents:
                    rows += await _steady(agents, pid, web)
                    if not per_commune:
                        rows += await _burst(agents, pid, web)
        return rows


async def _steady(agents: Agents, pid: int, web: int) -> list[Row]:
    provinces = list(agents.clients)
    offsets = {p: i * INTERVAL / len(provinces) for i, p in enumerate(provinces)}
    start = time.monotonic()
    cpu0 = cpu_seconds(pid)
    for cycle in range(CYCLES):
        cycle_start = start + cycle * INTERVAL
        for province in provinces:  # in offset order
            await asyncio.sleep(max(0.0, cycle_start + offsets[province] - time.monotonic()))
            await agents.publish(province, time.time())
    await asyncio.sleep(max(0.0, start + CYCLES * INTERVAL - time.monotonic()))
    await wait_for_batches(web, agents.published, 60)
    wall, cpu = time.monotonic() - start, cpu_seconds(pid) - cpu0
    cores = cpu / wall
    hosts = agents.inventory.host_count
    rss = psutil.Process(pid).memory_info().rss / 2**20
    verdict = "meets" if cores < GOAL_CORES else "MISSES"
    who = (f"{sum(1 for _ in agents.inventory.communes())} commune agents"
           if agents.per_commune else f"{len(provinces)} province agents")
    return [
        Row(f"collector CPU, nation every 30 s, {who}", cores, "cores",
            f"{hosts} hosts, {CYCLES} cycles; {verdict} goal < {GOAL_CORES}"),
        Row(f"collector RSS, {who}", rss, "MiB", "after the steady phase"),
    ]


async def _burst(agents: Agents, pid: int, web: int) -> list[Row]:
    """Batches built beforehand, so that only publishing competes with the collector."""
    base = agents.published
    cycles = []
    for n in range(BURST_CYCLES):
        at = time.time() + n
        cycles.append({p: agents.batches(p, at) for p in agents.clients})
    start = time.monotonic()
    cpu0 = cpu_seconds(pid)
    for cycle in cycles:
        await asyncio.gather(*(agents.send(p, batch) for p, batch in cycle.items()))
    await wait_for_batches(web, agents.published, 300)
    wall, cpu = time.monotonic() - start, cpu_seconds(pid) - cpu0
    batches = agents.published - base
    shed = rejections(await asyncio.to_thread(metrics, web)).get("overload", 0.0)
    peak = peak_rss_mib(pid)
    hosts_per_batch = agents.inventory.host_count / sum(1 for _ in agents.inventory.communes())
    return [
        Row("collector burst throughput", batches / wall, "batches/s",
            f"{batches} batches; {batches * hosts_per_batch / wall:,.0f} host results/s; "
            f"real load is {sum(1 for _ in agents.inventory.communes()) / INTERVAL:.0f}/s; "
            "lower bound (/metrics counts every 5 s)"),
        Row("collector batches shed in the burst", shed, "batches",
            "rejected{reason=\"overload\"}; flow control keeps a burst in the broker"),
        Row("collector peak RSS by the end of the burst", peak, "MiB", "kernel VmHWM"),
        Row("collector CPU during the burst", cpu / wall, "cores", "one Python process"),
        Row("collector CPU per batch", cpu / batches * 1000, "ms", "3 hosts, ICMP results"),
    ]


if __name__ == "__main__":
    main(run)
