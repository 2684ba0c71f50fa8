"""The line's router as a vantage in the state engine (issue 18, contract §7), and an IP
conflict confirmed over two scans (issue 14).

Router observations are made as the monitor makes them: a read's
:class:`probes.snmp.RouterArpTable` (a value, as the probe returns it) through
:func:`monitor.cycle.routers.observe_router`, the ARP probe's own judge. Simulated time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from inventory.model import Snmp
from monitor.alerts.event import AlertEvent
from monitor.cycle.routers import KEPT_READS, ROUTER, observe_router
from monitor.decide.status import CommuneStatus
from monitor.decide.verdicts import ip_config_ok
from probes.snmp import RouterArpEntry, RouterArpTable
from tests.support.engine_sim import MAC, STEP, Sim, make_commune, make_inventory, observe

COMMUNE = dataclasses.replace(
    make_commune(), snmp=Snmp("2c", community="lab-community", address=make_commune().gateway))
STRANGER = ("198.18.1.12", "02:00:00:00:0c:0c")
OTHER = "02:00:00:00:99:99"


def kinds(events: Iterable[AlertEvent]) -> list[tuple[str, str, str | None]]:
    return sorted((e.event, e.state, e.host) for e in events)


def table(at: float, macs: dict[str, str | None]) -> RouterArpTable:
    """A read of the router: ip -> MAC present (None: an INCOMPLETE row)."""
    entries = {ip: RouterArpEntry(ip, mac, "dynamic" if mac else "invalid",
                                  "reachable" if mac else "incomplete")
               for ip, mac in macs.items()}
    return RouterArpTable("198.18.1.1", True, at, 0.05, entries, "ipNetToPhysicalTable",
                          len(entries))


def failed(at: float, error: str = "timeout") -> RouterArpTable:
    return RouterArpTable("198.18.1.1", False, at, 3.0, error=error,  # type: ignore[arg-type]
                          message="no answer")


class RouterSim(Sim):
    """Central cycles and router reads of one commune with ``snmp``."""

    def __init__(self) -> None:
        super().__init__(make_inventory(COMMUNE))
        self.reads: list[RouterArpTable] = []

    def cycle(self, **kwargs: object) -> list[AlertEvent]:
        return super().cycle(commune=COMMUNE, **kwargs)

    def read(self, macs: dict[str, str | None] | None = None, *,
             error: str | None = None) -> list[AlertEvent]:
        """A central cycle, then a read of the router (default: every computer, own MAC)."""
        events = self.cycle()
        at = self.now - STEP / 2
        got = failed(at, error) if error else table(at, self.own() if macs is None else macs)
        read = self.engine.apply(observe_router(COMMUNE, got, self.reads[-KEPT_READS:]))
        self.events += read
        events += read
        if got.ok:
            self.reads.append(got)
        return events

    @staticmethod
    def own(**changes: str | None) -> dict[str, str | None]:
        macs: dict[str, str | None] = {str(h.ip): h.mac for h in COMMUNE.hosts}
        for name, mac in changes.items():
            macs[str(next(h.ip for h in COMMUNE.hosts if h.name == name.replace("_", "-")))] \
                = mac
        return macs


def fused_arp(sim: Sim, host: str) -> tuple[str, ...] | None:
    last = sim.commune.hosts[host].last
    return None if last is None or last.arp is None else last.arp.macs


def test_a_healthy_segment_read_from_the_router_raises_nothing() -> None:
    sim = RouterSim()
    assert [e for _ in range(4) for e in sim.read()] == []
    assert ROUTER in sim.commune.views
    assert all(ip_config_ok(h.last.arp, h.last.arp.expected_mac) for h in
               sim.commune.hosts.values() if h.last is not None and h.last.arp is not None)
    assert sim.commune.vantage == "central"  # the router is no agent speaking


def test_wrong_mac_unknown_device_and_absence_from_the_routers_table() -> None:
    sim = RouterSim()
    sim.read()
    macs = {**sim.own(may_02=OTHER, may_03=None), STRANGER[0]: STRANGER[1]}
    assert kinds(sim.read(macs)) == [("unknown_device", "firing", None)]  # at once
    events = sim.read(macs)  # a segment verdict holds over two reads
    assert kinds(events) == [("wrong_mac", "firing", "may-02")]
    assert fused_arp(sim, "may-02") == (OTHER,)
    assert fused_arp(sim, "may-03") == ()  # INCOMPLETE: absent, ip_config_ok 0
    # the router sees the segment, never the line: an absent computer is not down from it
    assert sim.commune.hosts["may-03"].up is True
    assert sim.commune.status is CommuneStatus.OK
    assert sim.read(macs) == []  # debounced: one alert per condition


def test_a_card_replaced_between_two_reads_is_wrong_mac_never_a_conflict() -> None:
    sim = RouterSim()
    sim.read()
    events = [e for _ in range(3) for e in sim.read(sim.own(may_01=OTHER))]
    assert kinds(events) == [("wrong_mac", "firing", "may-01")]


def test_a_flip_flop_in_the_routers_table_is_a_conflict_confirmed_once() -> None:
    """Two machines claiming one IP: the router's one MAC per IP flips back and forth."""
    sim = RouterSim()
    sim.read()
    other = sim.own(may_01=OTHER)
    assert sim.read(other) == []  # a change: maybe a new card, not confirmed yet
    assert sim.read() == []  # the first MAC came back: a flip-flop, shown at once
    assert len(fused_arp(sim, "may-01") or ()) == 2
    assert kinds(sim.read(other)) == [("ip_conflict", "firing", "may-01")]  # never wrong_mac
    quiet = 0
    while not (events := sim.read(other)):  # while the reads kept hold the flip-flop
        quiet += 1
    assert quiet == KEPT_READS - 1
    # once they hold one MAC only (and again the next read), the other card stayed
    assert kinds(events) == [("ip_conflict", "resolved", "may-01"),
                             ("wrong_mac", "firing", "may-01")]


def test_an_agent_scan_that_heard_a_card_swapped_during_it_raises_nothing() -> None:
    sim = Sim()
    own = {f"may-{i:02d}": (MAC.format(i),) for i in (1, 2, 3)}
    sim.cycle(arp=own)
    swapped = sim.cycle(arp={**own, "may-01": (MAC.format(1), OTHER)})
    assert swapped == []
    assert sim.cycle(arp={**own, "may-01": (OTHER,)}) == []
    assert kinds(sim.cycle(arp={**own, "may-01": (OTHER,)})) == [
        ("wrong_mac", "firing", "may-01")]


def test_a_real_conflict_in_two_agent_scans_raises_once() -> None:
    sim = Sim()
    both = {f"may-{i:02d}": (MAC.format(i),) for i in (1, 2, 3)} | {
        "may-02": (MAC.format(2), OTHER)}
    assert sim.cycle(arp=both) == []
    assert kinds(sim.cycle(arp=both)) == [("ip_conflict", "firing", "may-02")]
    assert sim.cycles(3, arp=both) == []


def test_router_and_agent_disagreeing_is_a_conflict_once_both_have_looked_again() -> None:
    sim = RouterSim()
    sim.read()
    agent_sees = {f"may-{i:02d}": (MAC.format(i),) for i in (1, 2, 3)} | {"may-01": (OTHER,)}
    agent = "75/26041"
    events = sim.engine.apply(observe(sim.now, commune=COMMUNE, arp=agent_sees, vantage=agent))
    assert fused_arp(sim, "may-01") == (OTHER, MAC.format(1))  # mac_addresses 2
    assert "ip_conflict" not in [e.event for e in events]
    sim.now += 1
    again = sim.engine.apply(observe(sim.now, commune=COMMUNE, arp=agent_sees, vantage=agent))
    assert "ip_conflict" not in [e.event for e in again]  # the router has not looked again
    events = sim.read()  # the router still says the registered card
    assert ("ip_conflict", "firing", "may-01") in kinds(events)


def test_an_unreadable_router_is_one_warning_and_no_segment_alarm() -> None:
    sim = RouterSim()
    sim.read()
    assert sim.read(error="timeout") == []  # one failed read is no news
    assert fused_arp(sim, "may-01") is None  # no evidence: not "everything absent"
    events = sim.read(error="timeout")
    assert kinds(events) == [("snmp_unreachable", "firing", None)]
    assert events[0].severity == "warning"
    assert "SNMP" in events[0].message and "198.18.1.1" in events[0].message
    assert [e for _ in range(3) for e in sim.read(error="timeout")] == []
    back = sim.read()
    assert kinds(back) == [("snmp_unreachable", "resolved", None)]


def test_wrong_credentials_from_the_start_never_look_like_absent_computers() -> None:
    sim = RouterSim()
    events = [e for _ in range(4) for e in sim.read(error="auth")]
    assert kinds(events) == [("snmp_unreachable", "firing", None)]
    assert "xác thực" in events[0].message
    assert all(fused_arp(sim, h) is None for h in ("may-01", "may-02", "may-03"))


def test_a_router_unread_while_its_line_is_down_adds_no_warning() -> None:
    sim = RouterSim()
    sim.read()
    sim.cycles(3, gateway=False, hosts=False)  # the line is cut: commune_down
    events = []
    for _ in range(3):
        events += sim.cycle(gateway=False, hosts=False)
        at = sim.now - STEP / 2
        events += sim.engine.apply(observe_router(COMMUNE, failed(at), []))
    assert "snmp_unreachable" not in [e.event for e in sim.events + events]
