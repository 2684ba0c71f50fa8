"""Render time of ``/metrics`` for the nationwide network, and the event-loop stall it causes.

Nationwide: 34 provinces, 3,321 communes, 3 hosts each (9,963 hosts), every host observed
(ICMP, some TCP and ARP), two targets from the centre and one agent per province. Goal: a
render under 250 ms, run in a worker thread (``asyncio.to_thread``) so that the event loop
keeps serving; the stall is how late a 1 ms periodic timer fires meanwhile.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bench import Row, main
from inventory.model import Inventory
from monitor.decide.status import MonitorState
from monitor.present.metrics import CycleStats, Exposition
from tests.support.populate import populated_state, synthetic_inventory

RENDERS = 7
GOAL_SECONDS = 0.250


def _render_times(
    inventory: Inventory, state: MonitorState
) -> tuple[float, float, int, int]:
    """(first render, which also escapes every label once; median of the rest; body bytes;
    gzipped body bytes)."""
    exposition = Exposition()
    times = []
    for _ in range(RENDERS + 1):
        t0 = time.perf_counter()
        exposition.update(inventory, state, CycleStats(duration=12.0, probes={("icmp", "ok"): 1}))
        times.append(time.perf_counter() - t0)
    sizes = len(exposition.body()), len(exposition.body_gzip())
    return times[0], statistics.median(times[1:]), *sizes


async def _timer_lateness_p99(inventory: Inventory | None, state: MonitorState) -> float:
    """p99 lateness (s) of a 1 ms periodic timer while renders run via asyncio.to_thread.

    With no inventory, the same timer over as long with the loop otherwise idle: the baseline.
    """
    exposition = Exposition()
    lateness: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            due = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            lateness.append(max(0.0, time.perf_counter() - due))

    ticker = asyncio.create_task(tick())
    for _ in range(RENDERS):
        if inventory is None:
            await asyncio.sleep(0.15)
        else:
            await asyncio.to_thread(exposition.update, inventory, state, CycleStats())
    done.set()
    await ticker
    return statistics.quantiles(lateness, n=100)[98]


def run() -> list[Row]:
    inventory = synthetic_inventory()
    state = populated_state(inventory, time.time())
    hosts = inventory.host_count
    cold, median, size, gzipped = _render_times(inventory, state)
    stall = asyncio.run(_timer_lateness_p99(inventory, state))
    idle = asyncio.run(_timer_lateness_p99(None, state))
    goal = "met" if median < GOAL_SECONDS else "NOT met"
    return [
        Row("metrics render, nationwide", median * 1000, "ms",
            f"median of {RENDERS}, {hosts} hosts, gzip included; goal < 250 ms {goal}"),
        Row("metrics first render, nationwide", cold * 1000, "ms",
            "includes escaping every label once (cached per inventory)"),
        Row("metrics body size, nationwide", size / 1e6, "MB",
            f"{hosts} hosts; gzipped (served to Prometheus) {gzipped / 1e6:.2f} MB"),
        Row("event-loop stall during threaded render", stall * 1000, "ms",
            f"p99 lateness of a 1 ms timer while rendering via asyncio.to_thread "
            f"(idle loop: {idle * 1000:.2f} ms)"),
    ]


if __name__ == "__main__":
    main(run)
