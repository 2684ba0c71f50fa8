"""From observations to everything that presents them: state, alerts, metrics, history.

``run`` feeds it whole cycles from the local scheduler; ``collector`` feeds it commune
batches from agents (``run --mqtt`` both). Either way the same state engine decides, the
same sinks alert, the same exposition and web show the result, and the same retained
status goes to the broker (:attr:`Pipeline.status`, when there is one).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time

import structlog

from inventory.model import Inventory
from monitor.alerts.event import AlertEvent
from monitor.alerts.sinks import Dispatcher, escalation_sinks_from_config, sinks_from_config
from monitor.common.config import Config
from monitor.cycle.observation import CommuneObservation, CycleReport
from monitor.decide.engine import StateEngine
from monitor.decide.operations import Operations
from monitor.present.metrics import CycleStats, Exposition
from monitor.present.rtt_history import RttHistory
from monitor.present.status_mqtt import StatusPublisher
from monitor.service.memory import limit_malloc_arenas
from monitor.store.maintenance_db import MaintenanceBook
from monitor.store.state_db import Batch, Store

log = structlog.get_logger("pipeline")


class Pipeline:
    def __init__(self, inventory: Inventory, config: Config, state_path: str | None) -> None:
        limit_malloc_arenas()  # before the worker threads that render /metrics allocate
        self.store = Store(state_path or ":memory:")
        self.maintenance = MaintenanceBook(state_path or ":memory:")  # windows set at run time
        self.engine = StateEngine(inventory, self.store, maintenance=self.maintenance.windows)
        self.exposition = Exposition()
        self.samples = RttHistory()
        self.dispatcher = Dispatcher(sinks_from_config(config, lambda: self.engine.inventory),
                                     store=self.store)
        self.operations = Operations(state_path, engine=self.engine)  # one alert book
        self.escalation = Dispatcher(escalation_sinks_from_config(config))
        self.agents_heard: dict[str, float] = {}
        self.cycles = 0
        self.cycle_rendered = -math.inf  # time.monotonic() a local cycle last rendered /metrics
        self.status: StatusPublisher | None = None  # retained status over MQTT, when a broker

    @property
    def inventory(self) -> Inventory:
        return self.engine.inventory

    async def start(self) -> None:
        await self.dispatcher.start()
        await self.escalation.start()
        await self.refresh_metrics()

    async def stop(self) -> None:
        await self.dispatcher.stop()
        await self.escalation.stop()
        self.operations.close()
        self.store.close()
        self.maintenance.close()

    async def ingest_cycle(self, report: CycleReport) -> None:
        """A local cycle, or a fast confirmation's re-probe (``report.recheck``): one store
        transaction, then one render of /metrics (the retained status goes out on the
        collector's timer). The upstream's verdict goes first, so an
        isolated central vantage's cycle is already held."""
        events: list[AlertEvent] = []
        if report.upstream_ok is not None:
            events += self.engine.central_upstream(report.upstream_ok, report.started)
        events += self.engine.apply_cycle(report.communes, report.targets, report.vantage)
        self._publish(events)
        self.run_operations()
        for obs in report.communes:
            self.record_line(obs)
        stats = CycleStats.from_report(report, self.agents_heard)
        if report.recheck:  # probes counted, but not a cycle (nor its duration)
            stats = dataclasses.replace(stats, duration=None)
        else:
            self.cycles += 1
        await self.refresh_metrics(stats)
        self.cycle_rendered = time.monotonic()
        log.info("recheck_done" if report.recheck else "cycle_done",
                 duration=round(report.duration, 3), communes=len(report.communes),
                 alerts=len(events))

    def ingest_commune(self, obs: CommuneObservation, agent: str) -> None:
        """One agent batch (already validated by the collector); the exposition is refreshed
        on its own timer (see collector). The state engine goes first: should it raise,
        neither the agent's last-heard time nor the RTT history has moved."""
        _computable(obs)
        events = self.engine.apply(obs)
        self.record_line(obs)
        self.agents_heard[agent] = time.time()
        self._publish(events)

    def run_operations(self, now: float | None = None) -> None:
        """The calendar's events (deadlines, inspections, escalation) and drill sampling;
        after each local cycle, and on the collector's timer."""
        outcome = self.operations.evaluate(self.inventory, self.engine.state, now)
        if outcome.alerts:  # through the outbox, like the engine's: sent again after a crash
            self.store.write(Batch(outbox=outcome.alerts))
        self._publish(outcome.alerts)
        self.escalation.publish_all(outcome.escalations)

    async def publish_status(self) -> None:
        """The retained status of the communes that changed, on the collector's timer (in
        ``run --mqtt`` too: at most ``refresh`` seconds after a cycle, not once more per
        cycle); nothing without a broker."""
        if self.status is not None:
            await self.status.publish(self.inventory, self.engine.state)

    def reload(self, inventory: Inventory) -> None:
        self._publish(self.engine.set_inventory(inventory))

    async def refresh_metrics(self, stats: CycleStats | None = None) -> None:
        """Render /metrics in a worker thread so the probes' event loop never stalls on it."""
        await asyncio.to_thread(self.exposition.update, self.inventory, self.engine.state, stats,
                                self.engine.maintenance_windows())

    def record_line(self, obs: CommuneObservation) -> None:
        """The RTT history (the commune page's sparklines) is the line's: kept from the
        vantages its verdict comes now from (``CommuneState.line_vantages``: upstream ones,
        a commune agent only where none watches the commune), or the line's RTT from the
        center would be averaged with the LAN's from the commune's own agent."""
        cs = self.engine.state.communes.get(f"{obs.province}/{obs.commune}")
        if cs is not None and obs.vantage in cs.line_vantages:
            self.samples.record(obs)

    def _publish(self, events: list[AlertEvent]) -> None:
        self.dispatcher.publish_all(events)


def _computable(obs: CommuneObservation) -> None:
    """The arithmetic that /metrics and the RTT history will do on this observation, done
    first: should a value slip past validation (say a string among the RTTs) it raises
    here, before the state has changed, instead of breaking every later render."""
    for host in obs.hosts:
        icmp = host.icmp
        if icmp is not None:
            for value in (icmp.rtt_mean, icmp.jitter, icmp.loss_ratio):
                if value is not None and not math.isfinite(value):
                    raise ValueError(f"host {host.name!r}: not a finite ICMP measurement")
