"""Helpers of the agent and collector tests: small loopback inventories, an in-process
collector that remembers what it accepted, polling without fixed sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from inventory.generate import _inventory
from inventory.loader import dump
from inventory.model import Defaults, IcmpSettings, Inventory, Target
from monitor.common.config import Config
from monitor.common.mqtt_url import parse_mqtt_url
from monitor.cycle.observation import CommuneObservation
from monitor.remote.collector import Collector, CollectorOptions
from monitor.remote.envelope import Batch
from monitor.service.pipeline import Pipeline

ACL = """\
pattern write tslcd/v1/agents/%u/state

user collector
topic read tslcd/v1/results/#
topic read tslcd/v1/agents/#
topic readwrite tslcd/v1/status/#
topic write tslcd/v1/alerts/#

user agent-75
topic write tslcd/v1/results/75/#

user agent-01
topic write tslcd/v1/results/01/#

user vnpt
topic read tslcd/v1/status/VNPT/#
"""
USERS = {"collector": "c-pass", "agent-75": "a75-pass", "agent-01": "a01-pass",
         "vnpt": "vnpt-pass"}


def write_inventory(path: Path, provinces: Sequence[str] = ("01", "75"), communes: int = 2,
                    hosts: int = 2, interval: float = 1.0, target: str | None = None) -> Path:
    """Loopback inventory: the first ``communes`` communes of each province (127.P.x.y)."""
    base = _inventory(list(provinces), hosts)
    defaults = Defaults(interval=interval, icmp=IcmpSettings(1, 0.3), down_after=2, up_after=1,
                        tcp_ports=(9,))
    inventory = Inventory(
        1, defaults,
        tuple(dataclasses.replace(p, communes=p.communes[:communes]) for p in base.provinces),
        targets=(Target("bau-cu", target),) if target else ())
    path.write_text(dump(inventory), encoding="utf-8")
    return path


class RecordingCollector(Collector):
    """The collector, remembering every accepted batch as (agent, seq, PROV/COMMUNE)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.received: list[tuple[str, int, str]] = []

    def _accept(self, obs: CommuneObservation, batch: Batch) -> None:
        super()._accept(obs, batch)
        self.received.append((batch.agent, batch.seq, f"{obs.province}/{obs.commune}"))


@contextlib.asynccontextmanager
async def running_collector(inventory: Inventory, url: str, *, state: str | None = None,
                            agents: dict[str, str] | None = None, refresh: float = 0.5,
                            ca_file: str | None = None) -> AsyncIterator[RecordingCollector]:
    """A collector connected to ``url``, receiving in a task until the block ends."""
    pipeline = Pipeline(inventory, Config(), state)
    await pipeline.start()
    collector = RecordingCollector(pipeline, CollectorOptions(
        broker=parse_mqtt_url(url), agents=agents, refresh=refresh, retry_max=1.0,
        ca_file=ca_file))
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    try:
        await wait_until(lambda: collector._client is not None, what="collector connected")
        yield collector
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await pipeline.stop()


async def wait_until(predicate: Callable[[], bool], timeout: float = 30.0,
                     what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def seqs_of(received: list[tuple[str, int, str]], agent: str) -> list[int]:
    return [seq for a, seq, _ in received if a == agent]


def assert_in_order(seqs: list[int]) -> None:
    """In order: duplicates (a re-sent, unacknowledged batch) may repeat the latest sequence
    numbers, but nothing goes backwards past them. (A spool's numbers have gaps: never below
    its clock in ms; what is missing is told by :func:`wait_all_received`.)"""
    first_seen = list(dict.fromkeys(seqs))
    assert first_seen == sorted(first_seen), f"out of order: {seqs}"


async def wait_all_received(received: Callable[[], list[int]], published: Callable[[], float],
                            timeout: float = 10.0) -> None:
    """Every batch the broker acknowledged to the agent (its published counter) reached the
    collector: as many distinct sequence numbers received, none more, none fewer."""
    await wait_until(lambda: len(set(received())) >= published(), timeout,
                     what="every published batch received")
    assert len(set(received())) == published(), (sorted(set(received())), published())
