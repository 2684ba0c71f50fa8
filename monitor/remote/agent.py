"""``tslcd-monitor agent``: probes where the network is, publishes to the broker (issue #5).

An agent probes its scope of the inventory (``PROV`` or ``PROV/COMMUNE``) with the same
scheduler as ``run``, and turns every cycle into one results batch per commune on
``tslcd/v1/results/PROV/COMMUNE`` (QoS 1). Batches go through a bounded on-disk spool
(:mod:`monitor.remote.spool`) and leave it in order, once the broker acknowledged them: an outage of
the broker or of the line loses nothing within the bound. It announces itself with a retained
``online`` on ``tslcd/v1/agents/AGENT/state`` and leaves a last will ``offline``.

Privileges are used where they exist and never required: without raw or ping sockets there
is no ICMP (hosts are judged by TCP, gateways by a TCP answer, accepted or refused), without
``CAP_NET_RAW`` no ARP; every batch lists those in ``skipped_checks``. The election
system's check needs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiomqtt
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from inventory.model import Commune, Inventory
from monitor.common import topics
from monitor.common.backoff import Backoff
from monitor.common.mqtt_link import MqttLink
from monitor.common.mqtt_url import MqttUrl
from monitor.cycle.observation import CommuneObservation, CycleReport
from monitor.cycle.scheduler import Scheduler, SchedulerOptions
from monitor.remote import envelope
from monitor.remote.spool import DEFAULT_LIMIT, Spool, Spooled
from probes import arp, tcp
from probes.result import ProbeResult

log = structlog.get_logger("agent")

#: Ports on which a line router (CPE) usually answers, accepted or refused: web admin, SSH,
#: telnet, DNS. Used for the gateway only when ICMP is not available.
GATEWAY_PORTS = (80, 443, 22, 23, 53)


@dataclass(frozen=True, slots=True)
class AgentOptions:
    agent_id: str
    scope: str  # PROV or PROV/COMMUNE, official codes: also the vantage of every batch
    spool_path: Path
    spool_limit: int = DEFAULT_LIMIT
    icmp: str = "auto"  # auto | raw | dgram | off
    ca_file: str | None = None
    publish_window: int = 100  # batches in flight at once while draining the spool
    publish_timeout: float = 10.0
    retry_max: float = 30.0  # seconds between reconnection attempts, at most
    gateway_ports: tuple[int, ...] = GATEWAY_PORTS
    gateway_timeout: float = 1.0


class AgentMetrics:
    """The agent's own metrics, on a private registry (served with ``--metrics-listen``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.cycles = Counter("tslcd_agent_cycles", "Probe cycles run.", registry=self.registry)
        self.published = Counter("tslcd_agent_published_batches",
                                 "Results batches acknowledged by the broker.",
                                 registry=self.registry)
        self.dropped = Counter("tslcd_agent_spool_dropped_batches",
                               "Batches dropped, oldest first, past the spool's bound.",
                               registry=self.registry)
        self.queued = Gauge("tslcd_agent_spool_queued_batches",
                            "Batches waiting in the spool for the broker.", registry=self.registry)
        self.connected = Gauge("tslcd_agent_broker_connected",
                               "1 while connected to the broker.", registry=self.registry)


class NoIcmp:
    """Stands in for the pinger when no ICMP socket may be opened: every host gets no ICMP
    result (None), so the scheduler asks them all by TCP."""

    async def ping_each(self, hosts: Sequence[Any], **_: Any) -> list[ProbeResult | None]:
        return [None] * len(hosts)


class Agent:
    def __init__(self, inventory: Inventory, broker: MqttUrl, options: AgentOptions) -> None:
        self.inventory = inventory
        self.broker = broker
        self.options = options
        self.metrics = AgentMetrics()
        self.spool = Spool(options.spool_path, options.spool_limit)
        self.skipped: tuple[str, ...] = ()
        self._wake = asyncio.Event()
        self._icmp = False

    async def run(self, stop: asyncio.Event) -> None:
        """Probe and publish until ``stop`` is set; then say ``offline`` and leave."""
        log.info("agent_started", agent=self.options.agent_id, scope=self.options.scope,
                 broker=self.broker.redacted(), communes=sum(1 for _ in
                 self.inventory.communes()), spooled=len(self.spool))
        try:
            async with self._pinger() as pinger:
                self.skipped = self._skipped_checks()
                if self.skipped:
                    log.warning("agent_checks_skipped", agent=self.options.agent_id,
                                checks=list(self.skipped))
                scheduler = Scheduler(self.inventory, pinger, SchedulerOptions(
                    vantage=self.options.scope))
                probing = asyncio.create_task(scheduler.run_forever(self.on_report))
                try:
                    await self._link(stop)
                finally:
                    probing.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await probing
        finally:
            self.spool.close()
            log.info("agent_stopped", agent=self.options.agent_id)

    # ------------------------------------------------------------------ probing

    @contextlib.asynccontextmanager
    async def _pinger(self) -> AsyncIterator[Any]:
        if self.options.icmp != "off" and sys.platform != "win32":  # raw ICMP needs Linux
            from probes.icmp import IcmpPermissionError, Pinger

            try:
                async with Pinger(mode=self.options.icmp) as pinger:  # type: ignore[arg-type]
                    self._icmp = True
                    yield pinger
                    return
            except IcmpPermissionError as exc:
                log.warning("icmp_unavailable", agent=self.options.agent_id, error=str(exc))
        self._icmp = False
        yield NoIcmp()

    def _skipped_checks(self) -> tuple[str, ...]:
        skipped = [] if self._icmp else ["icmp"]
        if not arp.arp_permitted():
            skipped.append("arp")
        return tuple(skipped)

    async def on_report(self, report: CycleReport) -> None:
        """A finished cycle: complete it with the agent's own checks and spool its batches."""
        observations = await self.complete(report)
        items = [(topics.results_topic(o.province, o.commune), envelope.encode_body(o))
                 for o in observations]
        dropped = await asyncio.to_thread(self.spool.append, items)
        self.metrics.cycles.inc()
        if dropped:
            self.metrics.dropped.inc(dropped)
            log.warning("spool_overflow", agent=self.options.agent_id, dropped=dropped,
                        dropped_total=self.spool.dropped, limit=self.spool.limit)
        self.metrics.queued.set(len(self.spool))
        self._wake.set()

    async def complete(self, report: CycleReport) -> list[CommuneObservation]:
        """The scheduler's observations plus what only an agent adds: skipped checks, the
        gateway by TCP when there is no ICMP, and this vantage's targets (once per cycle,
        with the first commune, so the collector counts them once)."""
        communes = {c.key: c for c in self.inventory.communes()}
        observed = report.communes or _carrier(report, self.inventory)
        gateways = {} if self._icmp else await self._gateways_by_tcp(
            communes[f"{o.province}/{o.commune}"] for o in observed)
        completed = []
        for index, obs in enumerate(observed):
            commune = communes[f"{obs.province}/{obs.commune}"]
            obs = replace(obs, skipped_checks=self.skipped,
                          targets=tuple(report.targets) if index == 0 else ())
            if not self._icmp:
                obs = replace(obs, gateway_alive=gateways.get(commune.key),
                              backup_gateway_alive=None)
            completed.append(obs)
        return completed

    async def _gateways_by_tcp(self, communes: Any) -> dict[str, bool | None]:
        """A gateway that answers TCP (accepted or refused) is alive; silence proves nothing
        (many routers drop it), so it stays unjudged (None) rather than down."""
        with_gateway = [c for c in communes if c.gateway is not None]
        gate = asyncio.Semaphore(200)

        async def one(commune: Commune) -> bool | None:
            async with gate:
                result = await tcp.probe_any(str(commune.gateway), self.options.gateway_ports,
                                             self.options.gateway_timeout)
            return True if result.ok else None

        answers = await asyncio.gather(*(one(c) for c in with_gateway))
        return {c.key: a for c, a in zip(with_gateway, answers, strict=True)}

    # --------------------------------------------------------------- publishing

    async def _link(self, stop: asyncio.Event) -> None:
        """Stay connected to the broker (the one link) and drain the spool into it."""
        link = MqttLink(
            self.broker, name=f"agent {self.options.agent_id}", ca_file=self.options.ca_file,
            backoff=Backoff(cap=self.options.retry_max),
            identifier=f"tslcd-agent-{self.options.agent_id}",
            will=aiomqtt.Will(self._state_topic, envelope.OFFLINE, qos=1, retain=True),
            timeout=self.options.publish_timeout, keepalive=30)

        async def session(client: aiomqtt.Client, stop: asyncio.Event) -> None:
            await client.publish(self._state_topic, envelope.ONLINE, qos=1, retain=True,
                                 timeout=self.options.publish_timeout)
            self.metrics.connected.set(1)
            log.info("agent_online", agent=self.options.agent_id, spooled=len(self.spool))
            await self._serve(client, stop)
            await client.publish(self._state_topic, envelope.OFFLINE, qos=1, retain=True,
                                 timeout=self.options.publish_timeout)

        await link.run(stop, session, on_down=lambda: self.metrics.connected.set(0))

    async def _serve(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        while True:
            await self._drain(client)
            if stop.is_set():
                return
            self._wake.clear()
            waiters = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
            try:
                await asyncio.wait(waiters, timeout=5.0, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish the spool oldest first, a window at a time; forget only the acknowledged
        prefix, so that what follows a failure is sent again, in order."""
        while batch := await asyncio.to_thread(self.spool.head, self.options.publish_window):
            queued, dropped = len(self.spool), self.spool.dropped
            outcomes = await asyncio.gather(
                *(self._publish(client, item, queued, dropped) for item in batch),
                return_exceptions=True)
            acked = 0
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    break
                acked += 1
            if acked:
                await asyncio.to_thread(self.spool.remove, [i.seq for i in batch[:acked]])
                self.metrics.published.inc(acked)
                self.metrics.queued.set(len(self.spool))
            failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
            if failure is not None:
                raise failure if isinstance(failure, aiomqtt.MqttError) else aiomqtt.MqttError(
                    f"publish failed: {failure!r}")

    async def _publish(self, client: aiomqtt.Client, item: Spooled, queued: int,
                       dropped: int) -> None:
        payload = envelope.encode(self.options.agent_id, item.seq, time.time(), queued, dropped,
                                  item.body)
        await client.publish(item.topic, payload, qos=1, retain=False,
                             timeout=self.options.publish_timeout)

    @property
    def _state_topic(self) -> str:
        return topics.agent_state_topic(self.options.agent_id)


def _carrier(report: CycleReport, inventory: Inventory) -> list[CommuneObservation]:
    """A re-probe of targets alone still travels in a commune's batch (the scope's first
    commune, judging none of its hosts), as a cycle's targets travel with its first."""
    first = next(iter(inventory.communes()), None)
    if not report.targets or first is None:
        return []
    return [CommuneObservation(first.province, first.code, report.started, report.vantage)]
