"""Operations and honest readiness: first observations kept across restarts, deadline messages
that list only what the monitor can check and nobody attested (real sqlite, simulated time)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from inventory.loader import loads
from monitor.decide.readiness import Readiness, judge
from monitor.store.ops_db import Attestation, OpsStore, read_readiness
from monitor.store.state_db import Batch, HistoryRow, Store
from tests.support.operations_sim import INVENTORY, A, B, C, Sim, vn

AFTER_DUE = vn(2026, 1, 31, 9, 0)  # "line" was due 29/01
#: "line" (link) also needs ip_config here: no agent, no SNMP router, so it cannot be checked
IP_INVENTORY = INVENTORY.replace("requires: [link]}", "requires: [link, ip_config]}")


def deadline_messages(alerts: list) -> list[str]:
    return [e.message for e in alerts if e.event == "deadline" and e.state == "firing"]


def test_first_observations_are_kept_and_survive_a_restart(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    sim.cycle(vn(2026, 1, 20, 9, 0), {A: True})
    sim.cycle(vn(2026, 1, 21, 9, 0), {A: True, B: True})
    first = vn(2026, 1, 20, 9, 0)
    assert sim.ops.store.watched() == {f"75/{c}": first for c in (A, B, C)}
    sim.restart_operations()
    sim.cycle(vn(2026, 1, 22, 9, 0), {A: True})
    assert read_readiness(sim.db).watched == {f"75/{c}": first for c in (A, B, C)}


def test_a_monitor_started_after_the_due_day_calls_nothing_late_that_passes(
        tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    alerts, _ = sim.cycle(AFTER_DUE, {A: True, B: True})
    line = sim.inventory.milestones[0]
    evidence = sim.ops.evidence(sim.engine.state)
    states = {c.code: judge(line, evidence.of(c, False), AFTER_DUE).state
              for c in sim.inventory.communes()}
    assert states == {A: Readiness.MET_UNWATCHED, B: Readiness.MET_UNWATCHED,
                      C: Readiness.NOT_MET}
    late = [m for m in deadline_messages(alerts) if "Lắp đặt" in m]
    assert len(late) == 1 and "1/3" in late[0] and "Phường Phước Long" in late[0]


def test_deadline_messages_leave_out_what_cannot_be_checked(tmp_path: Path) -> None:
    sim = Sim(tmp_path, loads(IP_INVENTORY))
    alerts, _ = sim.cycle(vn(2026, 1, 27, 9, 0), {A: True, B: True, C: True})
    assert [m for m in deadline_messages(alerts) if "Lắp đặt" in m] == []  # no 3/3 warning
    alerts, _ = sim.cycle(AFTER_DUE, {A: True, B: True, C: True})
    assert [m for m in deadline_messages(alerts) if "Lắp đặt" in m] == []  # nor a late one
    evidence = sim.ops.evidence(sim.engine.state)
    result = judge(sim.inventory.milestones[0], evidence.of(next(sim.inventory.communes()), False),
                   AFTER_DUE)
    assert result.state == Readiness.NOT_OBSERVABLE
    assert result.missing[0][0] == "ip_config"


def test_an_attestation_stored_while_running_takes_the_commune_off_the_late_list(
        tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    sim.cycle(vn(2026, 1, 27, 9, 0), {A: True, B: True})
    alerts, _ = sim.cycle(AFTER_DUE, {A: True, B: True})
    assert any("Phường Phước Long" in m for m in deadline_messages(alerts))
    writer = OpsStore(sim.db)  # ``report attest`` from another process
    assert writer.attest([Attestation("75", C, "line", dt.date(2026, 1, 28), "Lê Văn C",
                                      AFTER_DUE)])
    writer.close()
    alerts, _ = sim.cycle(AFTER_DUE + 60, {A: True, B: True})
    resolved = [e for e in alerts if e.event == "deadline" and e.state == "resolved"]
    assert len(resolved) == 1 and "Lắp đặt" in resolved[0].message
    evidence = sim.ops.evidence(sim.engine.state)
    commune = sim.inventory.commune("75", C)
    assert commune is not None
    result = judge(sim.inventory.milestones[0], evidence.of(commune, False), AFTER_DUE)
    assert (result.state, result.late) == (Readiness.ATTESTED, False)


def test_a_database_from_before_the_record_takes_the_first_status_change(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    early, later = vn(2026, 1, 10), vn(2026, 1, 12)
    store.write(Batch(history=[HistoryRow(later, "75", A, None, "ok", "down"),
                               HistoryRow(early, "75", A, None, "unknown", "ok"),
                               HistoryRow(early - 5, "75", A, "may-01", "unknown", "up")]))
    store.close()
    assert read_readiness(tmp_path / "state.db").watched == {f"75/{A}": early}
    ops = OpsStore(tmp_path / "state.db")
    assert ops.record_watched([("75", A, later), ("75", B, later)])
    assert ops.watched() == {f"75/{A}": early, f"75/{B}": later}  # never moved later
    ops.close()
