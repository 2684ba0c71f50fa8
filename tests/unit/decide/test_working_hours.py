"""Working hours and the backup line in the state engine (issue 17 items 1 and 5).

Simulated time: ``T0`` is Friday 2026-02-06 07:00 in Vietnam, one cycle every 30 s,
``down_after`` 3 (a failure is confirmed in 90 s). The hours below are Monday to Friday,
07:00 to 17:00.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Iterable

import pytest

from inventory.model import Commune, Drill, Inventory, WorkingHours
from monitor.alerts.event import VN_TZ, AlertEvent
from monitor.decide.status import CommuneStatus
from monitor.decide.verdicts import backup_line_down, counted, host_expected
from tests.support.engine_sim import STEP, T0, Sim, make_commune, make_inventory

HOURS = WorkingHours((0, 1, 2, 3, 4), dt.time(7), dt.time(17))
EVENING = T0 + 11 * 3600  # Friday 18:00
SETTLE = 3 * STEP  # down_after cycles


def kinds(events: Iterable[AlertEvent]) -> list[tuple[str, str, str | None]]:
    return [(e.event, e.state, e.host) for e in events]


def with_hours(inventory: Inventory, holidays: tuple[dt.date, ...] = (),
               drills: tuple[Drill, ...] = ()) -> Inventory:
    defaults = dataclasses.replace(inventory.defaults, working_hours=HOURS, holidays=holidays)
    return dataclasses.replace(inventory, defaults=defaults, drills=drills)


def office(*communes: Commune, **kwargs: object) -> Inventory:
    return with_hours(make_inventory(*communes), **kwargs)  # type: ignore[arg-type]


def at(day: int, hour: int, minute: int = 0) -> float:
    """February 2026, Vietnam time."""
    return dt.datetime(2026, 2, day, hour, minute, tzinfo=VN_TZ).timestamp()


# ----------------------------------------------------------------------- the rules


COMMUNE = make_commune()
PC = COMMUNE.hosts[0]
SERVER = dataclasses.replace(PC, always_on=True)


@pytest.mark.parametrize(("when", "settle", "expected"), [
    (at(6, 10), 0.0, True),  # Friday morning
    (at(6, 17), 0.0, False),  # "to" is excluded
    (at(7, 10), 0.0, False),  # Saturday
    (at(6, 7, 0), 0.0, True),  # the hours begin
    (at(6, 7, 0), SETTLE, False),  # ... but not yet for long enough to count a silence
    (at(6, 7, 2), SETTLE, True),
])
def test_host_expected_in_working_hours(when: float, settle: float, expected: bool) -> None:
    inventory = office()
    assert host_expected(inventory, COMMUNE, PC, when, settle) is expected
    assert host_expected(inventory, COMMUNE, SERVER, when, settle) is True  # always_on
    assert host_expected(make_inventory(), COMMUNE, PC, when, settle) is True  # no hours


def test_holidays_drills_and_periods_shape_the_hours() -> None:
    tet = office(holidays=(dt.date(2026, 2, 6),))
    assert host_expected(tet, COMMUNE, PC, at(6, 10)) is False
    drill = Drill("dt-1", "Diễn tập", dt.datetime(2026, 2, 7, 8, tzinfo=VN_TZ),
                  dt.datetime(2026, 2, 7, 11, tzinfo=VN_TZ), scope=("75/26041",))
    elsewhere = dataclasses.replace(drill, scope=("75/99999",))
    assert host_expected(office(drills=(drill,)), COMMUNE, PC, at(7, 9)) is True  # Saturday
    assert host_expected(office(drills=(elsewhere,)), COMMUNE, PC, at(7, 9)) is False
    assert host_expected(office(drills=(drill,)), COMMUNE, PC, at(7, 12)) is False


def test_counted_makes_a_silent_computer_outside_hours_off_and_keeps_answers() -> None:
    assert [counted(up, False) for up in (True, False, None)] == [True, None, None]
    assert [counted(up, True) for up in (True, False, None)] == [True, False, None]


@pytest.mark.parametrize(("primary", "backup", "present"), [
    (True, False, True), (True, True, False), (False, True, False), (None, True, False),
    (False, False, None), (None, False, None), (True, None, None), (False, None, None),
])
def test_backup_line_down_only_while_the_primary_carries(
        primary: bool | None, backup: bool | None, present: bool | None) -> None:
    assert backup_line_down(primary, backup) is present


# ------------------------------------------------------------------- working hours


def test_a_computer_going_silent_outside_hours_is_off_not_down() -> None:
    sim = Sim(office(), start=EVENING)
    sim.cycle()
    assert sim.cycles(10, hosts={"may-02": False}) == []
    pc = sim.commune.hosts["may-02"]
    assert (pc.up, pc.expected) == (False, False)  # the fact stays; it is off
    assert sim.commune.status is CommuneStatus.OK


def test_every_computer_off_at_night_leaves_the_commune_ok_but_a_cut_line_is_down() -> None:
    sim = Sim(office(), start=EVENING)
    sim.cycle()
    assert sim.cycles(5, hosts=False) == []
    assert sim.commune.status is CommuneStatus.OK
    events = sim.cycles(3, hosts=False, gateway=False)
    assert kinds(events) == [("commune_down", "firing", None)]  # the line: expected always
    assert sim.commune.status is CommuneStatus.DOWN


def test_an_always_on_computer_is_expected_at_night() -> None:
    commune = make_commune()
    server = dataclasses.replace(commune.hosts[0], always_on=True)
    commune = dataclasses.replace(commune, hosts=(server, *commune.hosts[1:]))
    sim = Sim(office(commune), start=EVENING)
    sim.cycle()
    events = sim.cycles(3, hosts={"may-01": False, "may-02": False})
    assert kinds(events) == [("host_down", "firing", "may-01")]
    assert sim.commune.status is CommuneStatus.DEGRADED


def test_a_dead_computer_alert_is_held_overnight_not_resolved_as_repaired() -> None:
    sim = Sim(office(), start=at(6, 16, 50))
    sim.cycle()
    fired = sim.cycles(3, hosts={"may-01": False})
    assert kinds(fired) == [("host_down", "firing", "may-01")]
    sim.now = at(6, 17, 5)
    assert sim.cycles(4, hosts={"may-01": False}) == []  # held open, not resolved
    assert sim.commune.status is CommuneStatus.OK  # off now: the commune is not degraded
    assert sim.engine.book.firing(("host_down", "75/26041", "may-01")) is not None
    sim.now = at(9, 7, 0)  # Monday: still dead, already alerted, nothing new
    assert sim.cycles(5, hosts={"may-01": False}) == []
    assert sim.commune.status is CommuneStatus.DEGRADED
    repaired = sim.cycles(2)
    assert kinds(repaired) == [("host_down", "resolved", "may-01")]
    assert repaired[0].id == fired[0].id


def test_computers_switched_on_in_the_morning_get_the_confirmation_time() -> None:
    sim = Sim(office(), start=at(6, 6, 55))
    sim.cycle()
    sim.cycles(10, hosts={"may-01": False})  # off overnight, until 07:00:30
    assert sim.events == []
    assert sim.commune.status is CommuneStatus.OK
    events = sim.cycles(2, hosts={"may-01": False})  # 07:00:30, 07:01:00: still settling
    assert events == [] and sim.commune.status is CommuneStatus.OK
    events = sim.cycle(hosts={"may-01": False})  # 07:01:30: expected for down_after cycles
    assert kinds(events) == [("host_down", "firing", "may-01")]
    assert sim.commune.status is CommuneStatus.DEGRADED


def test_a_holiday_in_the_week_is_outside_the_hours() -> None:
    sim = Sim(office(holidays=(dt.date(2026, 2, 6),)), start=at(6, 10))
    sim.cycle()
    assert sim.cycles(6, hosts=False) == []
    assert sim.commune.status is CommuneStatus.OK


def test_a_drill_counts_as_working_hours() -> None:
    drill = Drill("dt-1", "Diễn tập", dt.datetime(2026, 2, 7, 8, tzinfo=VN_TZ),
                  dt.datetime(2026, 2, 7, 11, tzinfo=VN_TZ))
    sim = Sim(office(drills=(drill,)), start=at(7, 9))  # Saturday, inside the drill
    sim.cycle()
    events = sim.cycles(3, hosts={"may-03": False})
    assert kinds(events) == [("host_down", "firing", "may-03")]


def test_inside_the_hours_everything_is_as_without_them() -> None:
    plain, hours = Sim(start=at(6, 9)), Sim(office(), start=at(6, 9))
    for sim in (plain, hours):
        sim.cycle()
        sim.cycles(3, hosts={"may-02": False})
        sim.cycles(4, hosts=False)
        sim.cycles(3)
    assert kinds(plain.events) == kinds(hours.events) == [
        ("host_down", "firing", "may-02"), ("commune_down", "firing", None),
        ("commune_down", "resolved", None), ("host_down", "resolved", "may-02")]


# --------------------------------------------------------------------- backup line


def backup_commune(**changes: object) -> Commune:
    commune = make_commune(backup=True)
    return dataclasses.replace(commune, backup_gateway=ipaddress.ip_address("198.19.200.1"),
                               backup_isp="Viettel", backup_circuit="DNI-B-0001", **changes)


def test_a_dead_backup_line_with_a_working_primary_is_one_warning_then_resolved() -> None:
    sim = Sim(make_inventory(backup_commune()))
    sim.cycle(backup=True)
    events = sim.cycles(6, backup=False)
    assert kinds(events) == [("backup_line_down", "firing", None)]
    (fired,) = events
    assert fired.severity == "warning"
    assert "Viettel, DNI-B-0001" in fired.message and "198.19.200.1" in fired.message
    assert fired.message.startswith("Phường Trấn Biên (VNPT, DNI-0001): ")
    assert sim.commune.status is CommuneStatus.OK  # the primary carries: no commune alert
    repaired = sim.cycles(2, backup=True)
    assert kinds(repaired) == [("backup_line_down", "resolved", None)]
    assert repaired[0].id == fired.id


def test_the_backup_line_unconfirmed_raises_nothing() -> None:
    sim = Sim(make_inventory(backup_commune()))
    sim.cycle(backup=True)
    for i in range(12):
        sim.cycle(backup=i % 3 != 1)
    assert sim.events == []


def test_both_lines_down_is_the_commune_down_and_the_backup_warning_stays_open() -> None:
    sim = Sim(make_inventory(backup_commune()))
    sim.cycle(backup=True)
    sim.cycles(3, backup=False)
    events = sim.cycles(3, gateway=False, backup=False, hosts=False)
    assert kinds(events) == [("commune_down", "firing", None)]  # not resolved as repaired
    events = sim.cycles(2, backup=True)  # both lines repaired
    assert sorted(kinds(events)) == [("backup_line_down", "resolved", None),
                                     ("commune_down", "resolved", None)]


def test_the_primary_failing_first_gives_no_backup_warning() -> None:
    sim = Sim(make_inventory(backup_commune()))
    sim.cycle(backup=True)
    events = sim.cycles(4, gateway=False, backup=False, hosts=False)
    assert kinds(events) == [("commune_down", "firing", None)]


def test_a_backup_line_removed_from_the_inventory_resolves_its_warning() -> None:
    sim = Sim(make_inventory(backup_commune()))
    sim.cycle(backup=True)
    assert kinds(sim.cycles(3, backup=False)) == [("backup_line_down", "firing", None)]
    sim.engine.set_inventory(make_inventory(make_commune()))
    assert kinds(sim.cycle()) == [("backup_line_down", "resolved", None)]


def test_an_office_computer_without_hours_or_backup_behaves_as_before() -> None:
    sim = Sim(make_inventory(make_commune(hosts=1)), start=EVENING)
    sim.cycle()
    assert kinds(sim.cycles(3, hosts=False)) == [("commune_down", "firing", None)]
