"""Election-period operations on simulated time: three Đồng Nai communes (198.18.1.x, never
probed) with milestones, inspections, a drill and an election-day period; a state engine and
the operations over them, every cycle carrying its own time (no test sleeps).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from inventory.loader import loads
from inventory.model import Inventory
from monitor.alerts.event import VN_TZ, AlertEvent
from monitor.cycle.observation import CommuneObservation, HostObservation
from monitor.decide.engine import StateEngine
from monitor.decide.operations import Operations
from monitor.service.pipeline import Pipeline

INVENTORY = """\
version: 1
defaults: {interval: 30s, down_after: 2, up_after: 1}
milestones:
  - {id: line, title: "Lắp đặt đường truyền", due: 2026-01-29, requires: [link]}
  - {id: stamped, title: "Dán tem kiểm định", due: 2026-02-03, requires: [inspection],
     warn_days: 0}
provinces:
  - code: "75"
    name: "Đồng Nai"
    communes:
      - {code: "25195", name: "Phường Bình Phước", isp: VNPT, circuit: "DNI-0001",
         subnet: 198.18.1.0/29, gateway: 198.18.1.1, backup_gateway: 198.18.1.6,
         hosts: [{name: may-01, ip: 198.18.1.2}]}
      - {code: "25210", name: "Phường Đồng Xoài", isp: Viettel, circuit: "DNI-0002",
         subnet: 198.18.1.8/29, gateway: 198.18.1.9,
         hosts: [{name: may-01, ip: 198.18.1.10, inspection: {stamp: CA-2, date: 2026-01-30}}]}
      - {code: "25217", name: "Phường Phước Long", isp: VNPT, circuit: "DNI-0003",
         subnet: 198.18.1.16/29, gateway: 198.18.1.17,
         hosts: [{name: may-01, ip: 198.18.1.18, inspection: {stamp: CA-3, date: 2026-01-31}}]}
drills:
  - {id: dien-tap-1, title: "Diễn tập lần 1", from: "2026-02-06T08:00:00",
     to: "2026-02-06T11:30:00"}
periods:
  - {id: ngay-bau-cu, title: "Ngày bầu cử", from: "2026-03-15T05:00:00",
     to: "2026-03-15T23:00:00", interval: 10s, escalate_after: 10m}
"""
A, B, C = "25195", "25210", "25217"


def vn(*args: int) -> float:
    """The epoch seconds of a wall-clock time in Vietnam: ``vn(2026, 3, 15, 7, 0)``."""
    return dt.datetime(*args, tzinfo=VN_TZ).timestamp()


class Sim:
    """A state engine and the operations over one inventory, on simulated time."""

    def __init__(self, tmp_path: Path, inventory: Inventory | None = None) -> None:
        self.inventory = inventory or loads(INVENTORY)
        self.now = 0.0
        self.engine = StateEngine(self.inventory, clock=lambda: self.now)
        self.db = tmp_path / "state.db"
        self.ops = Operations(str(self.db))

    def cycle(self, at: float, up: dict[str, bool], backup: dict[str, bool] | None = None,
              gateway: dict[str, bool] | None = None) -> tuple[list[AlertEvent], ...]:
        """Every commune observed at ``at``: hosts and gateway up or not per commune code."""
        self.now = at
        for commune in self.inventory.communes():
            alive = up.get(commune.code, False)
            self.engine.apply(CommuneObservation(
                commune.province, commune.code, at,
                hosts=tuple(HostObservation(h.name, str(h.ip), alive, "icmp" if alive else None)
                            for h in commune.hosts),
                gateway_alive=(gateway or {}).get(commune.code, alive),
                backup_gateway_alive=None if commune.backup_gateway is None
                else (backup or {}).get(commune.code, alive),
            ))
        outcome = self.ops.evaluate(self.inventory, self.engine.state, at)
        return outcome.alerts, outcome.escalations

    def restart_operations(self) -> None:
        self.ops.close()
        self.ops = Operations(str(self.db))


def b_down_on_election_day(pipeline: Pipeline) -> None:
    """Election day through a started pipeline: every commune up at 06:00, then B (computers
    and line) silent at 06:01, 06:02 and 06:20, 18 minutes past the period's 10-minute
    escalation; the operations run after each cycle."""
    for minute in (0, 1, 2, 20):
        at = vn(2026, 3, 15, 6, minute)
        for c in pipeline.inventory.communes():
            alive = c.code != B or minute == 0
            pipeline.engine.apply(CommuneObservation(
                "75", c.code, at, hosts=tuple(
                    HostObservation(h.name, str(h.ip), alive, None) for h in c.hosts),
                gateway_alive=alive, backup_gateway_alive=alive if c.code == A else None,
                targets=()))
        pipeline.run_operations(at)
