"""Cost of the election-period operations per cycle, nationwide, during a drill.

:meth:`monitor.decide.operations.Operations.evaluate` runs on the event loop after every cycle:
deadline checks (milestones x communes), inspection flags (every host), escalation (every
commune inside a period) and the drill sample, whose spans are written to SQLite in one
transaction. 3,321 communes, 9,963 hosts, 2 milestones, a drill and a period in force, a
state database on disk. Goal: well under a second, so a 30 s cycle never notices it.
Also the drill report (xlsx) over the whole country, built in a worker thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from bench import Row, main
from inventory.model import Drill, Period
from monitor.alerts.event import VN_TZ
from monitor.decide import drills
from monitor.decide.operations import Operations
from monitor.present import drill_report
from tests.support.populate import populated_state, synthetic_inventory

CYCLES = 7
GOAL_SECONDS = 0.250


def run() -> list[Row]:
    start = dt.datetime(2026, 3, 15, 6, 0, tzinfo=VN_TZ)
    inventory = dataclasses.replace(
        synthetic_inventory(),
        drills=(Drill("tong-dien-tap", "Tổng diễn tập", start, start + dt.timedelta(hours=4)),),
        periods=(Period("ngay-bau-cu", "Ngày bầu cử", start, start + dt.timedelta(hours=16),
                        interval=10.0, escalate_after=900.0),),
    )
    now = start.timestamp() + 60
    state = populated_state(inventory, now)
    with tempfile.TemporaryDirectory() as tmp:
        ops = Operations(str(Path(tmp) / "state.db"))
        times = []
        for cycle in range(CYCLES):
            t0 = time.perf_counter()
            ops.evaluate(inventory, state, now + cycle * 30)
            times.append(time.perf_counter() - t0)
        drill = inventory.drills[0]
        t0 = time.perf_counter()
        report = drills.drill_report(drill, inventory, ops.drills.spans(drill.id),
                                     now + CYCLES * 30)
        body = drill_report.to_xlsx(report)
        report_seconds = time.perf_counter() - t0
        ops.close()
    communes = len(report.communes)
    return [
        Row("operations per cycle, nationwide drill (median)", statistics.median(times) * 1000,
            "ms", f"{communes} communes, {inventory.host_count} hosts; goal < "
                  f"{GOAL_SECONDS * 1000:.0f} ms; first cycle {times[0] * 1000:.0f} ms"),
        Row("drill report xlsx, nationwide", report_seconds, "s",
            f"{communes} communes, {len(body) / 1024:.0f} KiB"),
    ]


if __name__ == "__main__":
    main(run)
