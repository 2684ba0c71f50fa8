"""The pure verdict functions: each rule once, checked on its own."""

from __future__ import annotations

import datetime as dt

import pytest

from inventory.model import VIETNAM_TZ, Maintenance, Milestone
from monitor.decide.status import CommuneStatus, HostState
from monitor.decide.verdicts import (
    any_up,
    arp_verdict,
    commune_status,
    deadline,
    debounce,
    fresh,
    in_maintenance,
    ip_config_ok,
    line_vantages,
    milestone_met,
    own_vantage,
    upstream_of,
)
from probes.result import ArpDetail

OK, DEGRADED, DOWN, UNKNOWN = (CommuneStatus.OK, CommuneStatus.DEGRADED, CommuneStatus.DOWN,
                               CommuneStatus.UNKNOWN)


def run(steps: str, down_after: int = 3, up_after: int = 2) -> list[bool | None]:
    """Feed ``+`` (answered) and ``-`` (failed) observations; the state after each."""
    t = HostState("may-01", "198.18.1.2")
    out = []
    for i, step in enumerate(steps):
        debounce(t, step == "+", float(i), down_after, up_after)
        out.append(t.up)
    return out


def test_debounce_first_answer_is_up_failures_need_down_after() -> None:
    assert run("+") == [True]
    assert run("---") == [None, None, False]
    assert run("+--+---") == [True, True, True, True, True, True, False]
    assert run("---++") == [None, None, False, False, True]  # up_after=2


def test_debounce_reports_a_change_and_its_time() -> None:
    t = HostState("may-01", "198.18.1.2")
    assert debounce(t, True, 10.0, 3, 2) is True
    assert (t.up, t.since) == (True, 10.0)
    assert debounce(t, True, 20.0, 3, 2) is False
    assert t.since == 10.0


@pytest.mark.parametrize(("gateway", "backup", "hosts", "expected"), [
    (None, None, [None, None], (UNKNOWN, False)),
    (True, None, [True, True], (OK, False)),
    (True, None, [True, False], (DEGRADED, False)),
    (True, None, [False, False], (DOWN, False)),
    (False, None, [True, True], (DOWN, False)),
    (False, True, [True, True], (DEGRADED, True)),
    (False, True, [False, False], (DOWN, True)),
    (None, None, [True, None], (OK, False)),
])
def test_commune_status(gateway: bool | None, backup: bool | None,
                        hosts: list[bool | None], expected: tuple[CommuneStatus, bool]) -> None:
    assert commune_status(gateway, backup, hosts) == expected


@pytest.mark.parametrize(("macs", "expected", "verdict"), [
    ((), None, "none"),
    (("02:00:00:00:01:01",), None, "ok"),
    (("02:00:00:00:01:01",), "02:00:00:00:01:01", "ok"),
    (("02:AA:00:00:01:01",), "02:aa:00:00:01:01", "ok"),  # case never matters
    (("02:aa:00:00:01:01",), "02:AA:00:00:01:01", "ok"),
    (("02:00:00:00:01:02",), "02:00:00:00:01:01", "wrong"),
    (("02:00:00:00:01:01", "02:00:00:00:01:02"), None, "conflict"),
    (("02:AA:00:00:01:01", "02:aa:00:00:01:01"), None, "ok"),  # one MAC, written twice
])
def test_arp_verdict(macs: tuple[str, ...], expected: str | None, verdict: str) -> None:
    assert arp_verdict(ArpDetail(macs, expected)) == verdict
    assert arp_verdict(ArpDetail(macs), expected) == verdict  # the inventory's MAC given
    assert ip_config_ok(ArpDetail(macs, expected)) is (verdict == "ok")
    assert ArpDetail(macs, expected).mac_ok is (verdict == "ok")  # the probes ask the same


def test_no_arp_means_no_verdict() -> None:
    assert arp_verdict(None) == "none"
    assert ip_config_ok(None) is None


def test_maintenance_naive_times_are_vietnam_time() -> None:
    window = Maintenance("75/26041", dt.datetime(2026, 2, 6, 8, 0), dt.datetime(2026, 2, 6, 9, 0))
    start = dt.datetime(2026, 2, 6, 8, 0, tzinfo=VIETNAM_TZ).timestamp()
    assert in_maintenance([window], "75", "26041", start)
    assert in_maintenance([window], "75", "26041", start + 3599)
    assert not in_maintenance([window], "75", "26041", start + 3600)
    assert not in_maintenance([window], "75", "26041", start - 1)
    assert not in_maintenance([window], "75", "26044", start)
    assert not in_maintenance([window], "75", None, start)  # a commune's window: not the province
    province = Maintenance("75", window.start, window.end)
    assert in_maintenance([province], "75", "26044", start)


def test_deadline_is_the_end_of_the_due_day_in_vietnam() -> None:
    m = Milestone("line", "Lắp đặt", dt.date(2026, 1, 29), ("link", "ip_config"))
    assert deadline(m) == dt.datetime(2026, 1, 30, tzinfo=VIETNAM_TZ).timestamp()


def test_milestone_met() -> None:
    m = Milestone("line", "Lắp đặt", dt.date(2026, 1, 29), ("link", "ip_config"))
    assert not milestone_met(m, {"link": 1.0})
    assert milestone_met(m, {"link": 1.0, "ip_config": 2.0, "target": 3.0})


def test_where_each_vantage_stands() -> None:
    assert upstream_of("central", "75", "26041") is True
    assert upstream_of("75", "75", "26041") is True  # the province's agent
    assert upstream_of("75/26041", "75", "26041") is False  # on the segment
    assert upstream_of("75/26044", "75", "26041") is None  # another commune's agent
    assert upstream_of("79", "75", "26041") is None


def test_the_line_is_judged_upstream_and_by_the_commune_agent_only_without_it() -> None:
    assert line_vantages(["75/26041", "central"], "75", "26041") == ["central"]
    assert line_vantages(["75/26041", "75"], "75", "26041") == ["75"]
    assert line_vantages(["75/26041"], "75", "26041") == ["75/26041"]
    assert line_vantages([], "75", "26041") == []


def test_any_up_and_freshness() -> None:
    assert any_up([False, True, None]) is True
    assert any_up([False, None]) is False
    assert any_up([None, None]) is None
    assert any_up([]) is None
    assert fresh(100.0, 100.0, 90.0)
    assert fresh(20.0, 100.0, 90.0)
    assert not fresh(10.0, 100.0, 90.0)
    assert not fresh(None, 100.0, 90.0)


def test_the_communes_own_vantage_for_the_election_system() -> None:
    assert own_vantage(["central", "75", "75/26041"], "75", "26041") == "75/26041"
    assert own_vantage(["central", "75", "75/26044"], "75", "26041") == "75"
    assert own_vantage(["central"], "75", "26041") == "central"
    assert own_vantage([], "75", "26041") == "central"
