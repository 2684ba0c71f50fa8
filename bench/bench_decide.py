"""The decision path of ``run --mqtt`` in process, without sockets: what the nation's
agents' batches and the central cycles cost once they are in hand (issue 14, item 7).

The nationwide loopback inventory (3,321 communes, 3 hosts each) in a real
:class:`~monitor.service.pipeline.Pipeline` (SQLite state file) with a real
:class:`~monitor.remote.collector.Collector`: each cycle, one central observation of every
commune through ``apply_cycle`` (as the scheduler delivers it), then every commune agent's
encoded batch through ``Collector.handle`` (decoding, validation, the state engine), one
store transaction per province as a burst from the broker would be. After ``WARMUP``
cycles (every view and tracker made and settled), the process CPU of each later cycle.
The best cycle is the figure (the machine is shared: a slow cycle is a neighbour's
doing); the mean is in the note, and the share of the garbage collector's passes.

Narrower than ``bench run_mqtt`` (no ICMP, MQTT or /metrics), and so steadier: the
place to see a change to decoding or the state engine. ``TSLCD_BENCH_CYCLES`` (default 8)
measured cycles.
"""

from __future__ import annotations

import gc
import os
import random
import time

from bench import Row, main
from bench.mqtt_rig import Agents, answering, national_workdir
from inventory.model import Inventory
from monitor.common.config import Config
from monitor.common.mqtt_url import parse_mqtt_url
from monitor.cycle.observation import CommuneObservation
from monitor.remote.collector import Collector, CollectorOptions
from monitor.service.memory import freeze_long_lived, thaw
from monitor.service.pipeline import Pipeline
from probes.result import IcmpDetail

INTERVAL = 10.0
WARMUP = 4
CYCLES = int(os.environ.get("TSLCD_BENCH_CYCLES", "8"))


def run() -> list[Row]:
    random.seed(1)
    with national_workdir("tslcd-bench-decide-") as (workdir, _, inventory):
        pipeline = Pipeline(inventory, Config(), str(workdir / "state.db"))
        collector = Collector(pipeline, CollectorOptions(
            broker=parse_mqtt_url("mqtt://127.0.0.1:1")))  # never connected: handle() only
        agents = Agents(inventory, 1, per_commune=True)
        start = time.time() - (WARMUP + CYCLES) * INTERVAL - 5
        for cycle in range(WARMUP):
            _cycle(pipeline, collector, agents, inventory, start + cycle * INTERVAL)
        freeze_long_lived()  # as the service does once settled
        spent, collected = [], _GcClock()
        try:
            with collected:
                for cycle in range(WARMUP, WARMUP + CYCLES):
                    spent.append(_cycle(pipeline, collector, agents, inventory,
                                        start + cycle * INTERVAL))
        finally:
            thaw()  # the other benchmarks of this process start as they would alone
        pipeline.store.close()
        pipeline.maintenance.close()
        pipeline.operations.close()
    central = [c for c, _ in spent]
    batches = [a for _, a in spent]
    communes = sum(1 for _ in inventory.communes())
    total = sum(central) + sum(batches)
    gc_note = f"garbage collector {collected.seconds / total:.0%} of it"
    return [
        Row("decide: central cycle, nation", min(central) * 1000, "ms",
            f"best of {CYCLES} cycles of {communes} communes (mean "
            f"{sum(central) / CYCLES * 1000:.0f} ms): {min(central) / INTERVAL:.3f} core at "
            f"{INTERVAL:.0f} s; {gc_note}"),
        Row("decide: agents' batches, nation", min(batches) * 1000, "ms",
            f"best of {CYCLES} cycles of {communes} batches (mean "
            f"{sum(batches) / CYCLES * 1000:.0f} ms): {min(batches) / INTERVAL:.3f} core at "
            f"{INTERVAL:.0f} s, {min(batches) / communes * 1e6:.0f} µs a batch"),
    ]


def _cycle(pipeline: Pipeline, collector: Collector, agents: Agents, inventory: Inventory,
           at: float) -> tuple[float, float]:
    """One cycle: the central observation of every commune, then every agent's batch; the
    process CPU of each part."""
    observations = _central(inventory, at)
    batches = [agents.batches(p.code, at + 1) for p in inventory.provinces]
    t0 = time.process_time()
    pipeline.dispatcher.publish_all(pipeline.engine.apply_cycle(observations, (), "central"))
    for obs in observations:
        pipeline.record_line(obs)
    t1 = time.process_time()
    for province in batches:
        with pipeline.engine.batch():
            accepted = sum(collector.handle(topic, payload) for topic, payload in province)
        assert accepted == len(province), "a batch was refused"
    return t1 - t0, time.process_time() - t1


def _central(inventory: Inventory, at: float) -> list[CommuneObservation]:
    """What the central scheduler delivers for a healthy nation: three echoes a host."""
    echo = IcmpDetail(3, 3, (0.010, 0.011, 0.012))
    return [CommuneObservation(
        commune.province, commune.code, at, "central",
        tuple(answering(h, at) for h in commune.hosts),
        gateway_alive=True, line_icmp=(echo, None)) for commune in inventory.communes()]


class _GcClock:
    """CPU seconds the garbage collector's passes took while entered."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> _GcClock:
        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._note)

    def _note(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started


if __name__ == "__main__":
    main(run)
