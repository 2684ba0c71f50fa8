"""The commune's page data: a computer off outside working hours, and both lines."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress

from inventory.model import WorkingHours
from monitor.present.rtt_history import RttHistory
from monitor.present.web.api import ListFilter, ScopedView, commune_detail, commune_list
from tests.support.engine_sim import T0, Sim, make_commune, make_inventory

EVENING = T0 + 11 * 3600  # Friday 18:00, Vietnam time


def test_an_office_computer_at_night_is_off_and_both_lines_are_shown() -> None:
    commune = dataclasses.replace(
        make_commune(backup=True), backup_gateway=ipaddress.ip_address("198.19.200.1"),
        backup_isp="Viettel", backup_circuit="DNI-B-0001")
    inventory = make_inventory(commune)
    inventory = dataclasses.replace(inventory, defaults=dataclasses.replace(
        inventory.defaults, working_hours=WorkingHours((0, 1, 2, 3, 4), dt.time(7),
                                                       dt.time(17))))
    sim = Sim(inventory, start=EVENING)
    sim.cycles(4, hosts={"may-02": False}, backup=False)

    detail = commune_detail(commune, "Đồng Nai", (), sim.engine.state, RttHistory(), [],
                            sim.now)
    assert [(h["name"], h["state"], h["up"]) for h in detail["hosts"]] == [
        ("may-01", "up", True), ("may-02", "off", False), ("may-03", "up", True)]
    assert detail["status"] == "ok"
    assert detail["lines"] == [
        {"line": "primary", "gateway": "198.18.1.1", "isp": "VNPT", "circuit": "DNI-0001",
         "up": True, "rtt": None, "loss": None},  # no echo measured in this simulation
        {"line": "backup", "gateway": "198.19.200.1", "isp": "Viettel",
         "circuit": "DNI-B-0001", "up": False, "rtt": None, "loss": None}]
    (row,) = commune_list(ScopedView(inventory), sim.engine.state, ListFilter())["communes"]
    assert (row["hosts_up"], row["hosts_off"], row["status"]) == (2, 1, "ok")


def test_inside_the_hours_a_silent_computer_is_down() -> None:
    sim = Sim()  # no working hours: expected always
    sim.cycles(4, hosts={"may-02": False})
    detail = commune_detail(make_commune(), "Đồng Nai", (), sim.engine.state, RttHistory(),
                            [], sim.now)
    assert [h["state"] for h in detail["hosts"]] == ["up", "down", "up"]
    assert [line["line"] for line in detail["lines"]] == ["primary"]
