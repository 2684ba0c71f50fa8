"""How fast a cut line alerts and resolves, and how quiet a lossy line stays, in the namespace
lab with the shipped processes (issue 14, item 7). Root only (network namespaces).

The province lab of :mod:`tests.support.lab.province` (``TSLCD_BENCH_LAB_COMMUNES``
communes, default 24) with Mosquitto, ``tslcd-monitor run --mqtt`` in the core namespace and
a ``tslcd-monitor agent`` in every commune router (:mod:`tests.support.lab.harness`), at a
10 s interval, ``down_after: 3``, ``up_after: 2``, ``retry_interval: 2s``:

* ``TSLCD_BENCH_CUTS`` (default 5) line cuts, each on another commune and at a random moment
  of the cycle: seconds from the cut to the ``commune_down`` webhook, and from the repair to
  its resolution (goals: 20 s and 30 s), and the alerts each cut raised (goal: one);
* ``TSLCD_BENCH_LOSS_SECONDS`` (default 300) of 30 % loss (each way) on one line: the
  notifications it raised (goal: at most one alert, never a flap);
* alerts for any commune left alone meanwhile (goal: none).
"""

from __future__ import annotations

import contextlib
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from bench import Row, main
from tests.support.lab import faults
from tests.support.lab.harness import LabRun, start_run, wait_for_alert
from tests.support.lab.netns import Lab
from tests.support.lab.province import build_province

COMMUNES = int(os.environ.get("TSLCD_BENCH_LAB_COMMUNES", "24"))
CUTS = int(os.environ.get("TSLCD_BENCH_CUTS", "5"))
LOSS_SECONDS = float(os.environ.get("TSLCD_BENCH_LOSS_SECONDS", "300"))
TIMING = {"interval": 10.0, "down_after": 3, "up_after": 2, "retry_interval": 2.0}
LOSS = 0.3
GOAL_ALERT, GOAL_RESOLVE = 20.0, 30.0


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="tslcd-bench-confirm-") as tmp, \
            contextlib.ExitStack() as stack:
        opened: list[BinaryIO] = []
        stack.callback(lambda: [f.close() for f in opened])  # after the lab is gone
        lab = stack.enter_context(Lab())
        province = build_province(lab, Path(tmp), COMMUNES)
        lab_run = start_run(province, Path(tmp), opened, **TIMING)
        lab_run.wait_all_up(timeout=300)
        rows = _cuts(lab_run)
        rows += _loss(lab_run)
        touched = {p.code for p in province.communes[:CUTS + 1]}
        elsewhere = [e for e in lab_run.events() if e["commune"] not in touched]
        rows.append(Row("alerts for communes left alone", len(elsewhere), "alerts",
                        f"{COMMUNES - len(touched)} communes, the whole run; goal 0"))
        return rows


def _cuts(lab_run: LabRun) -> list[Row]:
    to_alert, to_resolve, alerts = [], [], []
    rng = random.Random(14)
    for place in lab_run.province.communes[:CUTS]:
        time.sleep(rng.uniform(0, TIMING["interval"]))  # another moment of the cycle
        start = len(lab_run.events())
        cut = time.monotonic()
        with faults.link_down(place):
            to_alert.append(wait_for_alert(lab_run, "commune_down", place.code, "firing",
                                           start, timeout=120) - cut)
            lab_run.wait_cycles(1)
            repaired = time.monotonic()
        to_resolve.append(wait_for_alert(lab_run, "commune_down", place.code, "resolved",
                                         start, timeout=120) - repaired)
        lab_run.wait_cycles(1)
        alerts.append(sum(e["state"] == "firing" for e in lab_run.events()[start:]))
    where = f"lab, {COMMUNES} communes with agents, 10 s interval, {CUTS} cuts"
    return [
        Row("time to alert on a cut line (median)", statistics.median(to_alert), "s",
            f"{where}; max {max(to_alert):.1f} s; goal within {GOAL_ALERT:.0f} s"),
        Row("time to resolve after the repair (median)", statistics.median(to_resolve), "s",
            f"{where}; max {max(to_resolve):.1f} s; goal within {GOAL_RESOLVE:.0f} s"),
        Row("alerts per cut line (most)", max(alerts), "alerts",
            "firing events per cut, counted one cycle after the resolution; goal 1"),
    ]


def _loss(lab_run: LabRun) -> list[Row]:
    place = lab_run.province.communes[CUTS]
    lab_run.wait_all_up(timeout=120)
    start = len(lab_run.events())
    with faults.loss(place, LOSS) as fault:
        time.sleep(LOSS_SECONDS)
        dropped = faults.dropped_packets(place)
        fault.clear()
    lab_run.wait_cycles(TIMING["up_after"] + 1)
    mine = [e for e in lab_run.events()[start:] if e["commune"] == place.code]
    firing = sum(e["state"] == "firing" for e in mine)
    return [Row(f"notifications during {LOSS_SECONDS / 60:.0g} min of 30 % loss on a line",
                len(mine), "events",
                f"{firing} firing; {dropped} packets dropped; goal at most one alert, no flap")]


if __name__ == "__main__":
    main(run)
