"""The state engine: debouncing, commune status, suppression, flapping, maintenance, restart.

Simulated time throughout: every cycle carries its own ``at`` and the clock is a variable.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from inventory.model import Maintenance, Target
from monitor.alerts.event import VN_TZ, AlertEvent
from monitor.decide.status import CommuneStatus
from monitor.store.state_db import Store
from probes.result import ProbeResult, TargetDetail, UnknownDevice
from tests.support.engine_sim import MAC, STEP, T0, Sim, make_commune, make_inventory, observe


def kinds(events: Iterable[AlertEvent]) -> list[tuple[str, str, str | None]]:
    return [(e.event, e.state, e.host) for e in events]


def test_never_probed_is_unknown_and_first_good_cycle_is_up() -> None:
    sim = Sim()
    assert sim.commune.status is CommuneStatus.UNKNOWN
    assert all(h.up is None for h in sim.commune.hosts.values())
    assert sim.cycle() == []
    assert sim.commune.status is CommuneStatus.OK
    assert all(h.up is True for h in sim.commune.hosts.values())


def test_host_down_only_after_down_after_failed_cycles_and_up_after_up_after() -> None:
    sim = Sim()
    sim.cycle()
    assert sim.cycles(2, hosts={"may-02": False}) == []
    assert sim.commune.hosts["may-02"].up is True
    fired = sim.cycle(hosts={"may-02": False})
    assert kinds(fired) == [("host_down", "firing", "may-02")]
    assert sim.commune.hosts["may-02"].up is False
    assert sim.commune.status is CommuneStatus.DEGRADED
    assert sim.cycle() == []  # one good cycle is not enough (up_after=2)
    resolved = sim.cycle()
    assert kinds(resolved) == [("host_down", "resolved", "may-02")]
    assert resolved[0].id == fired[0].id
    assert sim.commune.status is CommuneStatus.OK


def test_never_reachable_host_goes_down_after_down_after() -> None:
    sim = Sim()
    assert sim.cycles(2, hosts={"may-03": False}) == []
    assert sim.commune.hosts["may-03"].up is None
    assert kinds(sim.cycle(hosts={"may-03": False})) == [("host_down", "firing", "may-03")]


def test_one_lost_packet_now_and_then_never_alerts() -> None:
    sim = Sim()
    for i in range(40):
        sim.cycle(hosts={"may-01": i % 3 != 1}, gateway=i % 4 != 2)
    assert sim.events == []
    assert sim.commune.status is CommuneStatus.OK


def test_commune_status_transitions_with_backup_line() -> None:
    sim = Sim(make_inventory(make_commune(backup=True)))
    sim.cycle(backup=True)
    assert (sim.commune.status, sim.commune.on_backup) == (CommuneStatus.OK, False)
    events = sim.cycles(3, gateway=False, backup=True)
    assert (sim.commune.status, sim.commune.on_backup) == (CommuneStatus.DEGRADED, True)
    assert kinds(events) == [("commune_degraded", "firing", None)]
    assert "dự phòng" in events[0].message
    events = sim.cycles(3, gateway=False, backup=False, hosts=False)
    assert sim.commune.status is CommuneStatus.DOWN
    assert kinds(events) == [("commune_down", "firing", None),
                             ("commune_degraded", "resolved", None)]
    events = sim.cycles(2, backup=True)
    assert sim.commune.status is CommuneStatus.OK
    assert kinds(events) == [("commune_down", "resolved", None)]


def test_all_hosts_down_with_gateway_up_is_commune_down() -> None:
    sim = Sim()
    sim.cycle()
    events = sim.cycles(3, hosts=False)
    assert sim.commune.status is CommuneStatus.DOWN
    assert kinds(events) == [("commune_down", "firing", None)]
    assert "không máy nào" in events[0].message


def test_gateway_outage_gives_one_commune_down_and_no_host_down_storm() -> None:
    sim = Sim(make_inventory(make_commune(hosts=8)))
    sim.cycles(2)
    down = sim.cycles(10, hosts=False, gateway=False)
    assert kinds(down) == [("commune_down", "firing", None)]
    assert down[0].severity == "critical"
    assert down[0].message.startswith("Phường Trấn Biên (VNPT, DNI-0001): mất kết nối")
    back = sim.cycles(5)
    assert kinds(back) == [("commune_down", "resolved", None)]
    assert back[0].id == down[0].id


def test_host_down_before_the_outage_still_gets_its_resolution() -> None:
    sim = Sim()
    sim.cycle()
    early = sim.cycles(3, hosts={"may-01": False})
    assert kinds(early) == [("host_down", "firing", "may-01")]
    outage = sim.cycles(4, hosts=False, gateway=False)
    assert kinds(outage) == [("commune_down", "firing", None)]
    back = sim.cycles(2)
    assert sorted(kinds(back)) == [("commune_down", "resolved", None),
                                   ("host_down", "resolved", "may-01")]
    assert {e.id for e in back} == {early[0].id, outage[0].id}


def test_host_still_down_after_outage_is_alerted_with_its_original_since() -> None:
    sim = Sim()
    sim.cycle()
    sim.cycles(4, hosts=False, gateway=False)
    host_since = sim.commune.hosts["may-02"].since
    back = sim.cycles(2, hosts={"may-02": False})
    assert sorted(kinds(back)) == [("commune_down", "resolved", None),
                                   ("host_down", "firing", "may-02")]
    fired = next(e for e in back if e.event == "host_down")
    assert fired.since == dt.datetime.fromtimestamp(host_since, VN_TZ).isoformat()


def test_flapping_host_gives_exactly_one_alert_then_resolves_when_stable() -> None:
    sim = Sim(make_inventory(make_commune(hosts=2)), flap_changes=4, flap_window=600.0)
    sim.cycle()
    for i in range(30):  # down 3 cycles, up 2 cycles, again and again: a change every ~75 s
        sim.cycle(hosts={"may-01": i % 5 >= 3})
    flapping = [e for e in sim.events if e.event == "host_flapping"]
    assert kinds(flapping) == [("host_flapping", "firing", "may-01")]
    first_flap = sim.events.index(flapping[0])
    later = sim.events[first_flap + 1:]
    assert [e for e in later if e.state == "firing"] == []
    assert sim.commune.hosts["may-01"].flapping
    stable = sim.cycles(25)  # 12.5 minutes without a change
    assert ("host_flapping", "resolved", "may-01") in kinds(stable)
    assert not sim.commune.hosts["may-01"].flapping
    assert [e for e in stable if e.state == "firing"] == []
    assert sim.engine.book.open_in("75/26041") == []


def test_maintenance_silences_and_fires_what_remains_at_its_end() -> None:
    window = Maintenance("75/26041", dt.datetime.fromtimestamp(T0, VN_TZ),
                         dt.datetime.fromtimestamp(T0 + 10 * STEP, VN_TZ))
    sim = Sim(make_inventory(maintenance=[window]))
    sim.cycle()
    inside = sim.cycles(8, hosts=False, gateway=False)
    assert inside == []
    assert sim.commune.status is CommuneStatus.DOWN  # state is still tracked
    outage_since = sim.commune.since
    after = sim.cycles(2, hosts=False, gateway=False)
    assert kinds(after) == [("commune_down", "firing", None)]
    assert after[0].since == dt.datetime.fromtimestamp(outage_since, VN_TZ).isoformat()


def test_maintenance_of_the_province_covers_its_communes_and_outage_that_ends_inside_is_silent(
) -> None:
    window = Maintenance("75", dt.datetime.fromtimestamp(T0, VN_TZ),
                         dt.datetime.fromtimestamp(T0 + 20 * STEP, VN_TZ))
    sim = Sim(make_inventory(maintenance=[window]))
    sim.cycle()
    sim.cycles(5, gateway=False, hosts=False)
    sim.cycles(20)
    assert sim.events == []


def test_unknown_device_is_not_silenced_by_maintenance() -> None:
    window = Maintenance("75", dt.datetime.fromtimestamp(T0, VN_TZ),
                         dt.datetime.fromtimestamp(T0 + 3600, VN_TZ))
    sim = Sim(make_inventory(maintenance=[window]))
    stranger = UnknownDevice("198.18.1.9", "02:AA:BB:CC:DD:EE")
    events = sim.cycle(devices=(stranger,))
    assert kinds(events) == [("unknown_device", "firing", None)]
    assert events[0].severity == "critical"
    assert "198.18.1.9" in events[0].message and "02:aa:bb:cc:dd:ee" in events[0].message
    assert sim.cycle(devices=(stranger,)) == []
    assert sim.cycle(devices=None) == []  # not scanned this cycle: nothing known, nothing sent
    gone = sim.cycle(devices=())
    assert kinds(gone) == [("unknown_device", "resolved", None)]
    assert gone[0].id == events[0].id


def test_ip_conflict_and_wrong_mac_from_arp() -> None:
    sim = Sim()
    own = {f"may-{i:02d}": (MAC.format(i),) for i in (1, 2, 3)}
    assert sim.cycle(arp=own) == []
    both = {**own, "may-01": (MAC.format(1), "02:00:00:00:99:99")}
    assert sim.cycle(arp=both) == []  # one scan: a card maybe swapped during it
    conflict = sim.cycle(arp=both)
    assert kinds(conflict) == [("ip_conflict", "firing", "may-01")]
    assert conflict[0].severity == "critical"
    assert sim.cycle(arp=None) == []  # no ARP vantage this cycle: leave it open
    other = {**own, "may-01": ("02:00:00:00:99:99",)}
    assert sim.cycle(arp=other) == []  # every segment verdict holds over two scans
    wrong = sim.cycle(arp=other)
    assert sorted(kinds(wrong)) == [("ip_conflict", "resolved", "may-01"),
                                    ("wrong_mac", "firing", "may-01")]
    assert sim.cycle(arp=own) == []
    assert kinds(sim.cycle(arp=own)) == [("wrong_mac", "resolved", "may-01")]


def test_first_passed_records_link_ip_config_and_target() -> None:
    target = Target("congtaidaibieu", "https://congtaidaibieu.example/")
    sim = Sim(make_inventory(targets=[target]))
    sim.cycle(hosts={"may-01": False})
    assert "link" not in sim.commune.first_passed
    t1 = sim.now
    sim.cycle()
    assert sim.commune.first_passed["link"] == t1
    assert "ip_config" not in sim.commune.first_passed  # no ARP vantage: cannot pass
    own = {f"may-{i:02d}": (MAC.format(i),) for i in (1, 2, 3)}
    t2 = sim.now
    sim.cycle(arp=own)
    assert sim.commune.first_passed["ip_config"] == t2
    assert "target" not in sim.commune.first_passed
    reached = ProbeResult("target", "congtaidaibieu", True, sim.now, 0.1,
                          detail=TargetDetail(target.url, http_status=200))
    t3 = sim.now
    sim.cycle(vantage="75/26041", targets=(reached,))
    assert sim.commune.first_passed["target"] == t3
    sim.cycles(3, hosts=False)  # later failures never undo a first pass
    assert sim.commune.first_passed == {"link": t1, "ip_config": t2, "target": t3}


def test_target_unreachable_is_debounced_per_target_and_vantage() -> None:
    sim = Sim()

    def result(ok: bool) -> ProbeResult:
        return ProbeResult("target", "congtaidaibieu", ok, sim.now, 0.1)

    assert sim.engine.apply_targets([result(True)], "central") == []
    assert sim.engine.apply_targets([result(False)], "central") == []
    assert sim.engine.apply_targets([result(False)], "central") == []
    fired = sim.engine.apply_targets([result(False)], "central")
    assert kinds(fired) == [("target_unreachable", "firing", None)]
    assert (fired[0].province, fired[0].commune) == (None, None)
    assert "congtaidaibieu" in fired[0].message
    assert sim.engine.state.targets[("congtaidaibieu", "central")].up is False
    fired_agent = [sim.engine.apply_targets([result(False)], "75/26041") for _ in range(3)]
    assert kinds(fired_agent[-1]) == [("target_unreachable", "firing", None)]
    assert (fired_agent[-1][0].province, fired_agent[-1][0].commune) == ("75", "26041")
    sim.engine.apply_targets([result(True)], "central")
    resolved = sim.engine.apply_targets([result(True)], "central")
    assert kinds(resolved) == [("target_unreachable", "resolved", None)]
    assert resolved[0].id == fired[0].id


def test_silent_agent_makes_communes_unknown_and_resolves_when_data_returns() -> None:
    sim = Sim()
    sim.cycle(vantage="75")
    events = sim.engine.mark_silent("75")
    assert kinds(events) == [("agent_silent", "firing", None)]
    assert (events[0].province, events[0].commune) == ("75", None)
    assert sim.commune.status is CommuneStatus.UNKNOWN
    assert all(h.up is None for h in sim.commune.hosts.values())
    assert sim.engine.mark_silent("75") == []  # still the same silence
    back = sim.cycle(vantage="75")
    assert kinds(back) == [("agent_silent", "resolved", None)]
    assert back[0].id == events[0].id
    assert sim.commune.status is CommuneStatus.OK


def test_silence_keeps_an_open_outage_open_and_recovery_resolves_it() -> None:
    sim = Sim()
    sim.cycle()
    down = sim.cycles(3, hosts=False, gateway=False)
    sim.engine.mark_silent("75", "26041")
    back = sim.cycles(3, vantage="75/26041")
    assert ("commune_down", "resolved", None) in kinds(back)
    assert next(e for e in back if e.event == "commune_down").id == down[0].id


def test_messages_in_english_when_asked() -> None:
    sim = Sim(language="en")
    sim.cycle()
    events = sim.cycles(3, hosts=False, gateway=False)
    assert events[0].message.startswith("Phường Trấn Biên (VNPT, DNI-0001): connection lost")


def test_reload_keeps_state_of_communes_and_hosts_that_still_exist() -> None:
    other = make_commune("26044", hosts=1, name="Phường Tam Hiệp")
    sim = Sim(make_inventory(make_commune(), other))
    sim.cycle()
    sim.cycles(3, hosts={"may-03": False})
    smaller = make_commune(hosts=2)  # may-03 removed from the inventory
    events = sim.engine.set_inventory(make_inventory(smaller))
    assert kinds(events) == [("host_down", "resolved", "may-03")]
    assert "75/26044" not in sim.engine.state.communes
    assert list(sim.commune.hosts) == ["may-01", "may-02"]
    assert sim.commune.hosts["may-01"].up is True


def test_restart_mid_outage_sends_nothing_twice_and_resolves_the_original_id(
        tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    first = Sim(store=Store(db))
    first.cycle()
    down = first.cycles(3, hosts=False, gateway=False)
    assert kinds(down) == [("commune_down", "firing", None)]
    first.engine.store.close()

    second = Sim(store=Store(db), start=first.now)
    assert second.commune.status is CommuneStatus.DOWN
    assert second.commune.hosts["may-01"].up is False
    assert second.cycles(5, hosts=False, gateway=False) == []
    back = second.cycles(2)
    assert kinds(back) == [("commune_down", "resolved", None)]
    assert back[0].id == down[0].id
    history = second.engine.store.history("75", "26041")
    assert [(h["host"], h["old"], h["new"]) for h in history if h["host"] is None] == [
        (None, "unknown", "ok"), (None, "ok", "down"), (None, "down", "ok")]


def test_locked_database_keeps_the_engine_working_and_catches_up(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    sim = Sim(store=Store(db, busy_timeout=0.05))
    sim.cycle()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    with capture_logs() as logs:
        down = sim.cycles(3, hosts=False, gateway=False)
    assert kinds(down) == [("commune_down", "firing", None)]
    assert sim.commune.status is CommuneStatus.DOWN
    assert any(entry["event"] == "state_store_error" for entry in logs)
    blocker.execute("ROLLBACK")
    blocker.close()
    sim.cycle(hosts=False, gateway=False)  # the next cycle writes everything pending
    snapshot = Store(db).load()
    assert [ev.id for ev in snapshot.open_alerts.values()] == [down[0].id]
    assert snapshot.communes["75/26041"].status == int(CommuneStatus.DOWN)


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_alert_json_matches_the_contract(lang: str) -> None:
    sim = Sim(language=lang)
    sim.cycle()
    event = sim.cycles(3, hosts=False, gateway=False)[0]
    data = AlertEvent.from_json(event.to_json()).to_dict()
    assert list(data) == ["id", "event", "state", "severity", "province", "commune", "host",
                          "since", "message"]
    assert data["since"].endswith("+07:00")
    assert (data["province"], data["commune"], data["host"]) == ("75", "26041", None)


def test_restart_without_the_commune_resolves_its_alerts_through_the_outbox(
        tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    other = make_commune("26044", hosts=1, name="Phường Tam Hiệp")
    first = Sim(make_inventory(make_commune(), other), store=Store(db))
    first.cycle()
    down = first.cycles(3, hosts=False, gateway=False)
    first.engine.store.close()
    store = Store(db)
    for ev in store.outbox_pending():
        store.outbox_done(ev)
    Sim(make_inventory(other), store=store)
    pending = store.outbox_pending()
    assert [(e.id, e.state) for e in pending] == [(down[0].id, "resolved")]
    assert store.load().open_alerts == {}


def test_a_batch_delivered_twice_is_counted_once() -> None:
    sim = Sim()
    sim.cycle()
    repeated = observe(sim.now, hosts={"may-01": False})
    for _ in range(3):  # QoS 1 redelivery of the same cycle
        assert sim.engine.apply(repeated) == []
    assert sim.commune.hosts["may-01"].consecutive_fail == 1
    assert sim.commune.hosts["may-01"].up is True


def test_a_silence_limited_to_what_the_agent_reported_leaves_the_rest_of_its_scope() -> None:
    """An agent no agents file vouches for blanks only the communes it reported on."""
    other = make_commune("26042")
    sim = Sim(make_inventory(make_commune(), other))
    sim.cycle(vantage="75")
    sim.engine.apply(observe(sim.now, commune=other, vantage="75"))
    events = sim.engine.mark_silent("75", None, only={"75/26041"})
    assert kinds(events) == [("agent_silent", "firing", None)]
    assert sim.commune.status is CommuneStatus.UNKNOWN
    assert sim.engine.state.communes["75/26042"].status is CommuneStatus.OK


def test_staleness_is_known_before_applying_and_seqs_are_stored_with_the_batch(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    sim = Sim(store=store)
    first = observe(sim.now, vantage="75")
    assert not sim.engine.is_stale(first)
    with sim.engine.batch():
        sim.engine.apply(first)
        sim.engine.note_agent_seq("agent-75", 42, sim.now)
    assert sim.engine.is_stale(first)
    assert not sim.engine.is_stale(observe(sim.now, vantage="75/26041"))  # another vantage
    assert store.agent_seqs() == {"agent-75": (42, sim.now)}
    with sim.engine.batch():
        sim.engine.forget_agent_seqs(["agent-75"])
    assert store.agent_seqs() == {}


def test_restart_resolves_the_alerts_of_targets_the_inventory_does_not_have(
        tmp_path: Path) -> None:
    """Made-up targets (accepted before the collector checked them) must not keep alerts
    open and trackers stored forever: a restart resolves and drops them."""
    db = tmp_path / "state.db"
    real = Target("congtaidaibieu", "https://congtaidaibieu.quochoi.vn/")
    first = Sim(make_inventory(targets=(real,)), store=Store(db))
    fired = []
    for name in ("congtaidaibieu", "evil-1"):
        for _ in range(3):
            fired += first.engine.apply_targets(
                [ProbeResult("target", name, False, first.now, 0.1)], "75")
    assert len(kinds(fired)) == 2
    first.engine.store.close()
    store = Store(db)
    for ev in store.outbox_pending():
        store.outbox_done(ev)
    again = Sim(make_inventory(targets=(real,)), store=store)
    evil = next(e for e in fired if "evil-1" in e.message)
    assert [(e.id, e.state) for e in store.outbox_pending()] == [(evil.id, "resolved")]
    assert [k for k in store.load().trackers if k[0] == "target"] == [
        ("target", "75", "congtaidaibieu")]
    assert len(store.load().open_alerts) == 1
    assert again.engine.state.targets == {}
