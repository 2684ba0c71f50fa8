"""The RTT history of a host (the commune page's sparklines) is its line's: from the
vantages the line's verdict comes from, never averaged with the LAN seen by the commune's
own agent."""

from __future__ import annotations

import time
from pathlib import Path

from inventory.loader import load
from inventory.model import Commune
from monitor.common.config import Config
from monitor.cycle.observation import CommuneObservation, HostObservation
from monitor.service.pipeline import Pipeline
from probes.result import IcmpDetail
from tests.support.agentlab import write_inventory

LINE, LAN = 0.020, 0.0002


def seen(commune: Commune, vantage: str, rtt: float, at: float) -> CommuneObservation:
    echo = IcmpDetail(3, 3, (rtt, rtt, rtt))
    return CommuneObservation(
        commune.province, commune.code, at, vantage,
        hosts=tuple(HostObservation(h.name, str(h.ip), True, "icmp", echo)
                    for h in commune.hosts),
        gateway_alive=True)


def history_rtts(pipeline: Pipeline, commune: Commune) -> list[float | None]:
    return [p["rtt"] for p in pipeline.samples.samples(
        commune.province, commune.code, commune.hosts[0].name)]


def test_the_line_history_keeps_the_centre_and_leaves_the_commune_agents_lan(
        tmp_path: Path) -> None:
    inventory = load(write_inventory(tmp_path / "inv.yaml"))
    watched, alone = list(inventory.communes())[:2]
    pipeline = Pipeline(inventory, Config(), None)
    try:
        at = time.time()
        for _ in range(3):
            pipeline.ingest_commune(seen(watched, "central", LINE, at), "central")
            pipeline.ingest_commune(seen(watched, watched.key, LAN, at + 1), watched.key)
            pipeline.ingest_commune(seen(alone, alone.key, LAN, at + 1), alone.key)
        assert history_rtts(pipeline, watched) == [LINE]  # the centre's only
        assert history_rtts(pipeline, alone) == [LAN]  # no upstream view: its agent's
    finally:
        pipeline.store.close()
        pipeline.maintenance.close()
        pipeline.operations.close()
