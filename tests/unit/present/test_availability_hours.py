"""Availability and working hours: computers switched off for the night are not an outage
(the real engine writes a real state database; the report reads it back)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from inventory.model import WorkingHours
from monitor.present import availability as av
from monitor.store.state_db import Store
from tests.support.engine_sim import STEP, T0, Sim, make_commune, make_inventory, observe

EVENING = T0 + 11 * 3600  # Friday 2026-02-06 18:00, Vietnam time


def test_a_night_of_computers_off_is_no_outage_but_a_cut_line_is(tmp_path: Path) -> None:
    office, cut = make_commune(), make_commune("26068", name="Xã Long Hưng")
    inventory = make_inventory(office, cut)
    inventory = dataclasses.replace(inventory, defaults=dataclasses.replace(
        inventory.defaults, working_hours=WorkingHours((0, 1, 2, 3, 4), dt.time(7),
                                                       dt.time(17))))
    store = Store(tmp_path / "state.db")
    sim = Sim(inventory, store, start=EVENING)
    for i in range(40):
        line = not 10 <= i < 20  # the second commune's line cut for ten cycles
        sim.engine.apply_cycle([
            observe(sim.now, commune=office, hosts=i < 5),  # every computer off from 18:02
            observe(sim.now, commune=cut, hosts=line, gateway=line)])
        sim.now += STEP
    store.close()

    report = av.availability(inventory, av.history_from_db(tmp_path / "state.db"), None, None,
                             sim.now)
    figures = {r.commune: r.figures for r in report.communes}
    assert (figures["26041"].availability, figures["26041"].outages) == (1.0, 0)
    assert figures["26068"].outages == 1
    # confirmed at the third failed cycle (12), repaired at the second good one (21)
    assert figures["26068"].down_seconds == 9 * STEP
