"""Windows stored while the engine runs (the state database's maintenance book) hold alerts
exactly as the inventory's windows do, from the next cycle, and the inventory's still apply."""

from __future__ import annotations

import datetime as dt

from inventory.model import Maintenance
from monitor.alerts.event import VN_TZ
from monitor.decide.status import CommuneStatus
from monitor.store.maintenance_db import MaintenanceBook
from tests.support.engine_sim import STEP, T0, Sim, make_inventory


def running() -> tuple[Sim, MaintenanceBook]:
    """An engine reading a book on simulated time, as the pipeline wires them."""
    book: MaintenanceBook | None = None
    sim = Sim(maintenance=lambda: book.windows() if book else ())
    book = MaintenanceBook(":memory:", recheck=0.0, clock=lambda: sim.now)
    return sim, book


def test_a_window_added_while_running_mutes_the_next_outage_and_its_end_fires_it() -> None:
    sim, book = running()
    sim.cycle()
    window = book.add("75/26041", sim.now, sim.now + 3600, "Thay cáp", "admin")
    assert sim.cycles(8, hosts=False, gateway=False) == []
    assert sim.commune.status is CommuneStatus.DOWN  # tracked all along
    began = sim.commune.since
    book.end(window.id)
    fired = sim.cycles(1, hosts=False, gateway=False)
    assert [(e.event, e.state) for e in fired] == [("commune_down", "firing")]
    assert fired[0].since == dt.datetime.fromtimestamp(began, VN_TZ).isoformat()


def test_without_a_window_the_same_outage_alerts() -> None:
    sim, _ = running()
    sim.cycle()
    fired = sim.cycles(3, hosts=False, gateway=False)
    assert [(e.event, e.state) for e in fired] == [("commune_down", "firing")]


def test_the_inventorys_windows_still_apply_beside_the_stored_ones() -> None:
    window = Maintenance("75", dt.datetime.fromtimestamp(T0, VN_TZ),
                         dt.datetime.fromtimestamp(T0 + 20 * STEP, VN_TZ))
    book = MaintenanceBook(":memory:")
    sim = Sim(make_inventory(maintenance=[window]), maintenance=book.windows)
    sim.cycle()
    assert sim.cycles(8, hosts=False, gateway=False) == []
    assert sim.engine.maintenance_windows() == (window,)
