"""The commune's page data: a computer off outside working hours, and both lines."""

from __future__ import annotations

from monitor.present.rtt_history import RttHistory
from monitor.present.web.api import ListFilter, ScopedView, commune_detail, commune_list
from tests.support.engine_sim import Sim, make_commune, office_evening


def test_an_office_computer_at_night_is_off_and_both_lines_are_shown() -> None:
    sim = office_evening()
    commune = sim.inventory.commune("75", "26041")
    assert commune is not None
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
    (row,) = commune_list(ScopedView(sim.inventory), sim.engine.state, ListFilter())["communes"]
    assert (row["hosts_up"], row["hosts_off"], row["status"]) == (2, 1, "ok")


def test_inside_the_hours_a_silent_computer_is_down() -> None:
    sim = Sim()  # no working hours: expected always
    sim.cycles(4, hosts={"may-02": False})
    detail = commune_detail(make_commune(), "Đồng Nai", (), sim.engine.state, RttHistory(),
                            [], sim.now)
    assert [h["state"] for h in detail["hosts"]] == ["up", "down", "up"]
    assert [line["line"] for line in detail["lines"]] == ["primary"]
