"""The readiness rule (monitor.decide.readiness): each of its states, and when "late" is said."""

from __future__ import annotations

import datetime as dt
from ipaddress import ip_address

import pytest

from inventory.model import Commune, Host, Milestone, Snmp
from monitor.decide import readiness
from monitor.decide.readiness import CommuneEvidence, Missing, Readiness, judge, unobservable
from monitor.decide.status import CommuneState, MonitorState, VantageView
from monitor.store.ops_db import Attestation
from tests.support.operations_sim import vn

DUE = dt.date(2026, 1, 29)
IP = Milestone("ip_installed", "Cài đặt IP cho máy tính cập nhật dữ liệu", DUE,
               ("ip_config", "link"))
BEFORE_DUE = vn(2026, 1, 20)
LAST_SECOND = vn(2026, 1, 29, 23, 59, 59)  # the due day ends at midnight, Vietnam time
NEXT_DAY = vn(2026, 1, 30, 0, 0, 1)
LATER = vn(2026, 2, 10)
BOTH = {"link": BEFORE_DUE, "ip_config": BEFORE_DUE}


def attested(day: dt.date, who: str = "Nguyễn Văn A") -> dict[str, Attestation]:
    return {IP.id: Attestation("75", "26041", IP.id, day, who, LATER)}


def state_of(evidence: CommuneEvidence, now: float = LATER) -> tuple[Readiness, bool]:
    result = judge(IP, evidence, now)
    return result.state, result.late


@pytest.mark.parametrize(
    ("evidence", "now", "expected"),
    [
        # met on time: the last required check passed on the due day's last second
        (CommuneEvidence({"link": BEFORE_DUE, "ip_config": LAST_SECOND}, BEFORE_DUE), LATER,
         (Readiness.MET, False)),
        # met late: passed after the due day, the monitor watching since before it
        (CommuneEvidence({"link": NEXT_DAY, "ip_config": BEFORE_DUE}, BEFORE_DUE), LATER,
         (Readiness.MET_LATE, True)),
        # first seen after the due day, passes at once: met, not observed before due, not late
        (CommuneEvidence({"link": LATER, "ip_config": LATER}, LATER), LATER,
         (Readiness.MET_UNWATCHED, False)),
        # not met, due day over while watching: late
        (CommuneEvidence({"link": BEFORE_DUE}, BEFORE_DUE), NEXT_DAY, (Readiness.NOT_MET, True)),
        # not met before the due day ends: not late yet
        (CommuneEvidence({}, BEFORE_DUE), LAST_SECOND, (Readiness.NOT_MET, False)),
        # not met, but first observed after the due day: not late (nobody watched it pass)
        (CommuneEvidence({}, NEXT_DAY), LATER, (Readiness.NOT_MET, False)),
        # never observed at all: not late either
        (CommuneEvidence({}, None), LATER, (Readiness.NOT_MET, False)),
        # no vantage can check ip_config: not observable, never late
        (CommuneEvidence({"link": BEFORE_DUE}, BEFORE_DUE,
                         unobservable={"ip_config": Missing.SEGMENT}), LATER,
         (Readiness.NOT_OBSERVABLE, False)),
        # attested on time, the check unobservable: attested, not late
        (CommuneEvidence({"link": BEFORE_DUE}, BEFORE_DUE, attested=attested(DUE),
                         unobservable={"ip_config": Missing.SEGMENT}), LATER,
         (Readiness.ATTESTED, False)),
        # attested for a day after the due day: attested, late
        (CommuneEvidence({}, None, attested=attested(dt.date(2026, 1, 30))), LATER,
         (Readiness.ATTESTED, True)),
        # first seen after due and passing, but attested in time: the attestation speaks
        (CommuneEvidence({"link": LATER, "ip_config": LATER}, LATER,
                         attested=attested(dt.date(2026, 1, 10))), LATER,
         (Readiness.ATTESTED, False)),
        # measured on time while watching: the measurement stands over an attestation
        (CommuneEvidence(BOTH, BEFORE_DUE, attested=attested(dt.date(2026, 1, 30))), LATER,
         (Readiness.MET, False)),
        # measured late while watching: the measurement stands (the delay was seen)
        (CommuneEvidence({"link": NEXT_DAY, "ip_config": NEXT_DAY}, BEFORE_DUE,
                         attested=attested(dt.date(2026, 1, 10))), LATER,
         (Readiness.MET_LATE, True)),
        # first observations unknown (a caller without them): judged as watched all along
        (CommuneEvidence({"link": NEXT_DAY, "ip_config": NEXT_DAY}, None, watching_known=False),
         LATER, (Readiness.MET_LATE, True)),
    ],
)
def test_each_state_and_when_it_is_late(evidence: CommuneEvidence, now: float,
                                         expected: tuple[Readiness, bool]) -> None:
    assert state_of(evidence, now) == expected


def test_a_first_pass_before_the_recorded_first_observation_counts_as_watched() -> None:
    """A database from before the ``watched`` record: the first passes prove watching."""
    evidence = CommuneEvidence({"link": BEFORE_DUE, "ip_config": NEXT_DAY}, LATER)
    assert state_of(evidence) == (Readiness.MET_LATE, True)


def test_met_at_is_the_last_required_first_pass_and_other_checks_change_nothing() -> None:
    result = judge(IP, CommuneEvidence({**BOTH, "ip_config": LAST_SECOND, "target": NEXT_DAY},
                                       BEFORE_DUE), LATER)
    assert (result.state, result.met_at, result.met) == (Readiness.MET, LAST_SECOND, True)


def test_not_observable_names_every_unobservable_check_not_passed() -> None:
    m = Milestone("all", "t", DUE, ("ip_config", "link", "target"))
    evidence = CommuneEvidence({"link": BEFORE_DUE}, BEFORE_DUE,
                               unobservable={"ip_config": Missing.SEGMENT,
                                             "target": Missing.TARGET})
    result = judge(m, evidence, LATER)
    assert result.missing == (("ip_config", Missing.SEGMENT), ("target", Missing.TARGET))
    assert result.met is False


def test_a_passed_check_is_observable_whatever_the_configuration_says() -> None:
    evidence = CommuneEvidence(BOTH, BEFORE_DUE, unobservable={"ip_config": Missing.SEGMENT})
    assert state_of(evidence) == (Readiness.MET, False)


def commune(hosts: int = 2, snmp: Snmp | None = None) -> Commune:
    return Commune("75", "26041", "Phường Trấn Biên", "VNPT", None, None,
                   tuple(Host(f"may-{i}", ip_address(f"198.18.1.{i + 2}")) for i in range(hosts)),
                   snmp=snmp)


def test_what_each_check_needs_to_be_observable() -> None:
    assert unobservable(commune(), True, False) == {"ip_config": Missing.SEGMENT}
    assert unobservable(commune(), True, True) == {}  # the commune's agent reads the segment
    assert unobservable(commune(snmp=Snmp("2c", community="x")), True, False) == {}
    assert unobservable(commune(0), False, True) == {
        "link": Missing.HOSTS, "ip_config": Missing.HOSTS, "inspection": Missing.HOSTS,
        "target": Missing.TARGET}


def test_the_state_shows_a_commune_agent_as_a_vantage_on_the_segment() -> None:
    agent, central = CommuneState("75", "26041"), CommuneState("75", "26042")
    agent.views = {"75/26041": VantageView("75/26041"), "central": VantageView("central")}
    central.views = {"central": VantageView("central"), "75": VantageView("75")}
    state = MonitorState({"75/26041": agent, "75/26042": central})
    assert readiness.segment_vantages(state) == {"75/26041"}
    assert readiness.of_state(commune(), agent, True).unobservable == {}
    evidence = readiness.from_state(state)
    assert evidence.of(commune(), True).watching_known is False
