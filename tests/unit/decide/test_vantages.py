"""The vantage model (contract §7): one commune seen at once from the centre and from its own
agent, each view debounced on its own, one fused verdict and one alert per outage."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import pytest

from inventory.model import Target
from monitor.alerts.event import AlertEvent
from monitor.cycle.observation import CommuneObservation
from monitor.decide.status import CommuneStatus
from monitor.present.metrics import Exposition
from monitor.store.state_db import Store
from probes.result import IcmpDetail, ProbeResult, UnknownDevice
from tests.support.engine_sim import MAC, STEP, Sim, make_commune, make_inventory, observe

AGENT = "75/26041"
CENTRAL = "central"


def kinds(events: Iterable[AlertEvent]) -> list[tuple[str, str, str | None]]:
    return [(e.event, e.state, e.host) for e in events]


def with_icmp(obs: CommuneObservation, loss: float, rtt: float) -> CommuneObservation:
    """Every answering host measured with 10 echoes at that loss and round trip."""
    received = round(10 * (1 - loss))
    hosts = tuple(dataclasses.replace(h, icmp=IcmpDetail(10, received, (rtt,) * received))
                  if h.alive else h for h in obs.hosts)
    return dataclasses.replace(obs, hosts=hosts)


class Both(Sim):
    """Each cycle: the centre's observation, then the commune agent's (a second later)."""

    def both(self, central: dict[str, object] | None = None,
             agent: dict[str, object] | None = None, n: int = 1) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for _ in range(n):
            if central is not None:
                events += self.engine.apply(observe(self.now, **central))  # type: ignore[arg-type]
            if agent is not None:
                events += self.engine.apply(
                    observe(self.now + 1, vantage=AGENT, **agent))  # type: ignore[arg-type]
            self.now += STEP
        self.events += events
        return events


def test_healthy_commune_seen_from_both_sides_raises_nothing() -> None:
    sim = Both()
    assert sim.both({}, {}, n=10) == []
    assert sim.commune.status is CommuneStatus.OK
    assert set(sim.commune.views) == {CENTRAL, AGENT}
    assert sim.commune.line_vantages == (CENTRAL,)


def test_the_line_is_the_centres_view_not_the_lan_view() -> None:
    """30 % loss and 300 ms across the line; 0 % and 1 ms on the LAN: the fused series
    show the line, each vantage's own series its own view."""
    sim = Both()
    for _ in range(3):
        sim.engine.apply(with_icmp(observe(sim.now), 0.3, 0.3))
        sim.engine.apply(with_icmp(observe(sim.now + 1, vantage=AGENT), 0.0, 0.001))
        sim.now += STEP
    fused = sim.commune.hosts["may-01"].last
    assert fused is not None and fused.icmp is not None
    assert (fused.icmp.loss_ratio, fused.icmp.rtt_mean) == pytest.approx((0.3, 0.3))
    exposition = Exposition(process_metrics=False)
    exposition.update(sim.inventory, sim.engine.state)
    samples = {line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
               for line in exposition.body().decode().splitlines() if "may-01" in line}
    host = 'province="75",commune="26041",host="may-01"'
    assert samples[f"tslcd_host_packet_loss_ratio{{{host}}}"] == pytest.approx(0.3)
    assert samples[f"tslcd_host_rtt_seconds{{{host}}}"] == pytest.approx(0.3)
    for vantage, loss, rtt in ((CENTRAL, 0.3, 0.3), (AGENT, 0.0, 0.001)):
        labels = f'{{{host},vantage="{vantage}"}}'
        assert samples[f"tslcd_vantage_host_rtt_seconds{labels}"] == pytest.approx(rtt)
        assert samples[f"tslcd_vantage_host_packet_loss_ratio{labels}"] == pytest.approx(loss)
        assert samples[f"tslcd_vantage_host_up{labels}"] == 1


def test_a_cut_line_is_one_commune_down_and_nothing_from_the_silent_agent() -> None:
    target = ProbeResult("target", "congtaidaibieu", False, 0.0, 0.1)
    sim = Both(make_inventory())
    sim.both({}, {}, n=2)
    events = sim.both({"hosts": False, "gateway": False}, None, n=3)  # the agent can't talk
    assert kinds(events) == [("commune_down", "firing", None)]
    assert sim.commune.status is CommuneStatus.DOWN
    silent = sim.engine.mark_silent("75", "26041")
    assert silent == []  # a consequence of the outage, not a second alert
    late = observe(sim.now, vantage=AGENT, targets=(dataclasses.replace(target,
                                                                        started=sim.now),))
    # a batch spooled inside the cut arrives: its failures to reach the system are held too
    for i in range(3):
        late = dataclasses.replace(late, at=sim.now + i,
                                   targets=(dataclasses.replace(target, started=sim.now + i),))
        assert [e.event for e in sim.engine.apply(late)
                if e.event == "target_unreachable"] == []
    repaired = sim.both({}, {}, n=2)
    assert kinds(repaired) == [("commune_down", "resolved", None)]
    assert all(e.event not in ("agent_silent", "host_down") for e in sim.events)


def test_hosts_answering_on_the_segment_but_not_across_the_line_are_a_line_problem() -> None:
    sim = Both()
    sim.both({}, {})
    events = sim.both({"hosts": False}, {}, n=4)  # the router answers, the LAN does not
    assert kinds(events) == [("commune_down", "firing", None)]
    assert all(h.up is True for h in sim.commune.hosts.values())  # the agent sees them
    sim.both({"hosts": {"may-01": False}}, {}, n=3)
    assert sim.commune.status is CommuneStatus.DEGRADED
    assert "host_down" not in [e.event for e in sim.events]


def test_a_host_down_from_every_vantage_is_host_down() -> None:
    sim = Both()
    sim.both({}, {})
    events = sim.both({"hosts": {"may-02": False}}, {"hosts": {"may-02": False}}, n=3)
    assert kinds(events) == [("host_down", "firing", "may-02")]


def test_segment_faults_from_the_agent_fire() -> None:
    sim = Both()
    sim.both({}, {})
    arp = {"may-01": (MAC.format(1), "02:00:00:00:09:09"), "may-02": ("02:00:00:00:09:0a",),
           "may-03": (MAC.format(3).upper(),)}
    devices = (UnknownDevice("198.18.1.12", "02:00:00:00:0c:0c"),)
    events = sim.both({}, {"arp": arp, "devices": devices})
    assert kinds(events) == [("unknown_device", "firing", None)]  # at once, a stranger
    events = sim.both({}, {"arp": arp, "devices": devices})  # the faults' second scan
    assert sorted(kinds(events)) == [("ip_conflict", "firing", "may-01"),
                                     ("wrong_mac", "firing", "may-02")]  # may-03: case only
    assert sim.commune.status is CommuneStatus.OK  # the line is fine
    fused = sim.commune.hosts["may-01"].last
    assert fused is not None and fused.arp is not None and len(fused.arp.macs) == 2


def test_without_an_upstream_vantage_a_silent_agent_makes_the_commune_unknown() -> None:
    sim = Both()
    sim.both(None, {}, n=2)
    events = sim.engine.mark_silent("75", "26041")
    assert kinds(events) == [("agent_silent", "firing", None)]
    assert sim.commune.status is CommuneStatus.UNKNOWN


def test_a_silent_agent_while_the_line_is_up_is_reported() -> None:
    sim = Both()
    sim.both({}, {}, n=2)
    events = sim.engine.mark_silent("75", "26041")
    assert kinds(events) == [("agent_silent", "firing", None)]
    assert sim.commune.status is CommuneStatus.OK  # the centre still sees it
    assert sim.commune.views[AGENT].last_seen is None


def test_vantage_isolated_holds_the_centres_alerts_and_releases_them_after() -> None:
    other = make_commune("26044", hosts=1, name="Phường Tam Hiệp")
    sim = Both(make_inventory(make_commune(), other))

    def centre_cycle(hosts: bool, gateway: bool, other_down: bool = False) -> list[AlertEvent]:
        events = sim.engine.apply(observe(sim.now, hosts=hosts, gateway=gateway))
        events += sim.engine.apply(observe(sim.now, commune=other, hosts=not other_down,
                                           gateway=not other_down))
        return events

    centre_cycle(True, True)
    sim.engine.apply(observe(sim.now + 1, vantage=AGENT))
    sim.now += STEP
    isolated = sim.engine.central_upstream(False, sim.now)
    assert kinds(isolated) == [("vantage_isolated", "firing", None)]
    assert sim.engine.central_upstream(False, sim.now) == []  # one alert
    held: list[AlertEvent] = []
    for _ in range(5):  # everything fails from the centre: its own uplink is gone
        held += centre_cycle(False, False, other_down=True)
        held += sim.engine.apply(observe(sim.now + 1, vantage=AGENT,
                                         hosts={"may-03": False}))
        sim.now += STEP
    # the agent's view keeps counting: its host_down fires; nothing from the centre
    assert kinds(held) == [("host_down", "firing", "may-03")]
    back = sim.engine.central_upstream(True, sim.now)
    assert kinds(back) == [("vantage_isolated", "resolved", None)]
    released: list[AlertEvent] = []
    for _ in range(3):  # 26044 really is down; 26041 answers again
        released += centre_cycle(True, True, other_down=True)
        sim.now += STEP
    # the centre sees may-03 answer again (a host is up when any vantage saw it answer)
    assert [(e.event, e.state, e.commune, e.host) for e in released] == [
        ("host_down", "resolved", "26041", "may-03"), ("commune_down", "firing", "26044", None)]


def test_per_vantage_state_and_the_alert_book_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    first = Both(store=Store(db))
    first.both({}, {})
    first.both(None, {"hosts": {"may-02": False}})  # the agent's view runs ahead
    fired = first.both({"hosts": {"may-02": False}}, {"hosts": {"may-02": False}}, n=3)
    assert kinds(fired) == [("host_down", "firing", "may-02")]
    first.engine.store.close()  # type: ignore[union-attr]
    second = Both(store=Store(db), start=first.now)
    views = second.commune.views
    assert set(views) == {CENTRAL, AGENT}
    assert views[AGENT].hosts["may-02"].up is False
    # 4 and 3 failures, stored clamped at down_after: past it one more decides nothing
    assert views[AGENT].hosts["may-02"].consecutive_fail == 3
    assert views[CENTRAL].hosts["may-02"].consecutive_fail == 3
    assert second.commune.hosts["may-02"].up is False
    resolved = second.both({}, {}, n=2)
    assert kinds(resolved) == [("host_down", "resolved", "may-02")]
    assert resolved[0].id == fired[0].id


def test_a_database_from_before_the_vantages_becomes_the_last_speakers_view(
        tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    first = Sim(store=Store(db))
    first.cycle()
    fired = first.cycles(3, hosts={"may-02": False})
    first.engine.store.close()  # type: ignore[union-attr]
    with sqlite3.connect(db) as conn:  # what an older monitor wrote: no per-vantage rows
        conn.execute("DELETE FROM trackers WHERE scope LIKE '%@%'")
    second = Sim(store=Store(db), start=first.now)
    assert second.commune.views[CENTRAL].hosts["may-02"].up is False
    assert second.commune.views[CENTRAL].hosts["may-02"].consecutive_fail == 3
    assert second.cycle(hosts={"may-02": False}) == []  # still down: nothing new
    resolved = second.cycles(2)
    assert kinds(resolved) == [("host_down", "resolved", "may-02")]
    assert resolved[0].id == fired[0].id


def test_the_election_system_passes_from_the_communes_own_agent() -> None:
    """The centre reaching the system says nothing about the commune when its agent speaks."""
    target = Target("congtaidaibieu", "https://127.0.0.1:8443/")
    sim = Both(make_inventory(targets=(target,)))

    def result(ok: bool) -> tuple[ProbeResult, ...]:
        return (ProbeResult("target", target.name, ok, sim.now, 0.1),)

    sim.both(None, {"targets": result(False)})  # the agent is heard first
    sim.both({"targets": result(True)}, {"targets": result(False)}, n=2)
    assert "target" not in sim.commune.first_passed
    sim.both({"targets": result(True)}, {"targets": result(True)})
    assert "target" in sim.commune.first_passed


def test_an_agent_silent_before_the_line_is_confirmed_down_raises_nothing_more() -> None:
    sim = Both()
    sim.both({}, {}, n=2)
    sim.both({"hosts": False, "gateway": False}, None)  # the cut: one failure upstream so far
    assert sim.engine.mark_silent("75", "26041") == []  # held: the line is suspect
    down = sim.both({"hosts": False, "gateway": False}, None, n=3)
    assert kinds(down) == [("commune_down", "firing", None)]
    back = sim.both({}, None, n=2) + sim.both({}, {}, n=2)
    assert kinds(back) == [("commune_down", "resolved", None)]
    assert "agent_silent" not in [e.event for e in sim.events]


def test_a_held_silence_fires_once_the_line_proves_fine() -> None:
    sim = Both()
    sim.both({}, {}, n=2)
    sim.both({"gateway": False}, None)  # one lost answer from the router
    assert sim.engine.mark_silent("75", "26041") == []
    fired = sim.both({}, None)  # the line answers: the agent itself is the problem
    assert kinds(fired) == [("agent_silent", "firing", None)]


def test_an_agents_batches_from_the_outage_arriving_after_the_repair_raise_nothing() -> None:
    target = ProbeResult("target", "congtaidaibieu", False, 0.0, 0.1)
    sim = Both()
    sim.both({}, {}, n=2)
    cut_at = sim.now
    sim.both({"hosts": False, "gateway": False}, None, n=4)
    sim.engine.mark_silent("75", "26041")
    sim.both({}, None, n=3)  # repaired, seen from the centre
    spooled: list[AlertEvent] = []
    for i in range(4):  # the agent's spool, from inside the outage
        at = cut_at + i * STEP + 1
        spooled += sim.engine.apply(observe(
            at, vantage=AGENT, targets=(dataclasses.replace(target, started=at),)))
    assert spooled == []
    assert kinds(sim.events) == [("commune_down", "firing", None),
                                 ("commune_down", "resolved", None)]
