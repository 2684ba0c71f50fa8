"""Election-period operations on simulated time: deadline warnings, inspections, escalation,
drills and their reports, the line carrying a commune. No test sleeps: each cycle carries its
own time and the engine's clock is a variable."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook

from inventory.loader import loads
from inventory.model import Inspection, Inventory
from monitor.alerts.event import VN_TZ, AlertEvent
from monitor.common.config import Config, WebhookConfig
from monitor.cycle.observation import CommuneObservation, HostObservation
from monitor.decide import drills
from monitor.decide.status import CommuneStatus, carrying_line
from monitor.present import drill_report
from monitor.service.pipeline import Pipeline
from tests.support.operations_sim import INVENTORY, A, B, C, Sim, b_down_on_election_day, vn
from tests.support.servers import WebhookReceiver


def brief(events: list[AlertEvent]) -> list[tuple[str, str, str | None, str | None]]:
    return [(e.event, e.state, e.commune, e.host) for e in events]


# --- deadline warnings ----------------------------------------------------------------------


def test_deadline_warning_once_n_days_before_listing_unmet_communes(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    before = sim.cycle(vn(2026, 1, 25, 23, 59), {A: True})[0]  # before the 3 days
    assert [e for e in before if e.event == "deadline"] == []

    alerts, _ = sim.cycle(vn(2026, 1, 26, 8, 0), {A: True})
    deadline = [e for e in alerts if e.event == "deadline"]
    assert brief(deadline) == [("deadline", "firing", None, None)]
    warning = deadline[0]
    assert warning.province == "75" and warning.severity == "warning"
    assert "còn 3 ngày" in warning.message and "2/3" in warning.message
    assert "Phường Đồng Xoài" in warning.message and "Phường Phước Long" in warning.message
    assert "Phường Bình Phước" not in warning.message  # it met the milestone
    assert warning.since == "2026-01-26T00:00:00+07:00"

    assert [e for e in sim.cycle(vn(2026, 1, 26, 8, 1), {A: True})[0]
            if e.event == "deadline"] == []
    sim.restart_operations()  # remembered in the state database: not sent again
    assert [e for e in sim.cycle(vn(2026, 1, 27, 8, 0), {A: True})[0]
            if e.event == "deadline"] == []

    alerts, _ = sim.cycle(vn(2026, 1, 27, 9, 0), {A: True, B: True, C: True})
    resolved = [e for e in alerts if e.event == "deadline"]
    assert brief(resolved) == [("deadline", "resolved", None, None)]
    assert resolved[0].id == warning.id and "tất cả" in resolved[0].message


def test_after_the_due_day_one_event_lists_the_late_communes(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    alerts, _ = sim.cycle(vn(2026, 1, 28, 8, 0), {A: True, B: True})
    assert brief([e for e in alerts if e.event == "deadline"]) == [
        ("deadline", "firing", None, None)]  # the warning, C unmet

    alerts, _ = sim.cycle(vn(2026, 1, 30, 0, 0), {A: True, B: True})
    late = [e for e in alerts if e.event == "deadline"]
    assert [e.state for e in late] == ["resolved", "firing"]  # the warning ends, late fires
    assert "quá hạn" in late[1].message and "Phường Phước Long" in late[1].message
    assert "Phường Đồng Xoài" not in late[1].message and "1/3" in late[1].message
    assert late[1].since == "2026-01-30T00:00:00+07:00"

    assert [e for e in sim.cycle(vn(2026, 1, 30, 9, 0), {A: True, B: True})[0]
            if e.event == "deadline"] == []
    alerts, _ = sim.cycle(vn(2026, 1, 31, 9, 0), {A: True, B: True, C: True})
    done = [e for e in alerts if e.event == "deadline"]
    assert brief(done) == [("deadline", "resolved", None, None)] and done[0].id == late[1].id


def test_inspection_check_passes_at_the_stamp_day_and_late_list_names_the_rest(
        tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    alerts, _ = sim.cycle(vn(2026, 2, 4, 8, 0), {A: True, B: True, C: True})
    passed = sim.engine.state.communes[f"75/{B}"].first_passed["inspection"]
    assert passed == vn(2026, 1, 30)  # the stamp's day, not when the monitor noticed
    late = [e for e in alerts if e.event == "deadline" and "Dán tem" in e.message]
    assert len(late) == 1 and "Phường Bình Phước" in late[0].message
    assert "1/3" in late[0].message  # warn_days 0: no warning before, only the late list


# --- inspections ----------------------------------------------------------------------------


def test_computer_answering_without_inspection_is_flagged_until_stamped(tmp_path: Path) -> None:
    (tmp_path / "early").mkdir()
    early = Sim(tmp_path / "early")
    assert [e for e in early.cycle(vn(2026, 2, 3, 23, 59), {A: True})[0]
            if e.event == "uninspected_host"] == []  # stamps are due by the end of 03/02
    sim = Sim(tmp_path)
    assert [e for e in sim.cycle(vn(2026, 2, 4, 8, 0), {})[0]
            if e.event == "uninspected_host"] == []  # not answering: nothing to flag
    alerts, _ = sim.cycle(vn(2026, 2, 4, 8, 1), {A: True, B: True})
    flagged = [e for e in alerts if e.event == "uninspected_host"]
    assert brief(flagged) == [("uninspected_host", "firing", A, "may-01")]
    assert "198.18.1.2" in flagged[0].message and "VNPT, DNI-0001" in flagged[0].message
    assert [e for e in sim.cycle(vn(2026, 2, 4, 8, 2), {A: True})[0]
            if e.event == "uninspected_host"] == []

    stamped = _with_inspection(sim.inventory, A, Inspection("CA-1", dt.date(2026, 2, 2)))
    sim.inventory = stamped
    sim.engine.set_inventory(stamped)
    alerts, _ = sim.cycle(vn(2026, 2, 5, 9, 0), {A: True})
    cleared = [e for e in alerts if e.event == "uninspected_host"]
    assert brief(cleared) == [("uninspected_host", "resolved", A, "may-01")]
    assert cleared[0].id == flagged[0].id and "CA-1" in cleared[0].message


def _with_inspection(inv: Inventory, code: str, inspection: Inspection) -> Inventory:
    province = inv.provinces[0]
    communes = tuple(
        dataclasses.replace(c, hosts=tuple(dataclasses.replace(h, inspection=inspection)
                                           for h in c.hosts)) if c.code == code else c
        for c in province.communes)
    return dataclasses.replace(inv, provinces=(dataclasses.replace(province,
                                                                   communes=communes),))


# --- backup line ----------------------------------------------------------------------------


def test_backup_line_degrades_with_one_alert_naming_the_primary_line(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    everyone = {A: True, B: True, C: True}
    sim.cycle(vn(2026, 2, 6, 7, 0), everyone)
    assert carrying_line(sim.engine.state.communes[f"75/{A}"]) == "primary"
    events = []
    for minute in range(1, 4):  # primary gateway silent, backup up, computers up
        sim.now = vn(2026, 2, 6, 7, minute)
        events += sim.engine.apply(_obs(sim, A, minute, gateway=False, backup=True))
    cs = sim.engine.state.communes[f"75/{A}"]
    assert cs.status == CommuneStatus.DEGRADED and carrying_line(cs) == "backup"
    assert brief(events) == [("commune_degraded", "firing", A, None)]
    assert "(VNPT, DNI-0001)" in events[0].message and "dự phòng" in events[0].message

    for minute in range(4, 7):  # both lines down
        sim.now = vn(2026, 2, 6, 7, minute)
        events += sim.engine.apply(_obs(sim, A, minute, gateway=False, backup=False))
    assert carrying_line(sim.engine.state.communes[f"75/{A}"]) == "none"
    assert brief(events[1:]) == [("commune_down", "firing", A, None),
                                 ("commune_degraded", "resolved", A, None)]


def _obs(sim: Sim, code: str, minute: int, *, gateway: bool, backup: bool) -> CommuneObservation:
    commune = sim.inventory.commune("75", code)
    assert commune is not None
    return CommuneObservation(
        "75", code, vn(2026, 2, 6, 7, minute),
        hosts=tuple(HostObservation(h.name, str(h.ip), True, "icmp") for h in commune.hosts),
        gateway_alive=gateway, backup_gateway_alive=backup)


# --- escalation -----------------------------------------------------------------------------


def test_escalation_inside_the_period_once_after_the_limit_then_resolved(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    everyone = {A: True, B: True, C: True}
    sim.cycle(vn(2026, 3, 15, 6, 0), everyone)
    sim.cycle(vn(2026, 3, 15, 6, 1), {A: True, C: True})
    sim.cycle(vn(2026, 3, 15, 6, 2), {A: True, C: True})  # B down from 06:02 (down_after 2)
    assert sim.engine.state.communes[f"75/{B}"].status == CommuneStatus.DOWN
    assert sim.cycle(vn(2026, 3, 15, 6, 11), {A: True, C: True})[1] == []  # 9 min: not yet
    _, escalations = sim.cycle(vn(2026, 3, 15, 6, 13), {A: True, C: True})
    assert brief(escalations) == [("escalation", "firing", B, None)]
    assert escalations[0].severity == "critical"
    assert "(Viettel, DNI-0002)" in escalations[0].message and "11 phút" in escalations[0].message
    assert "Ngày bầu cử" in escalations[0].message
    assert sim.cycle(vn(2026, 3, 15, 6, 14), {A: True, C: True})[1] == []
    sim.restart_operations()
    assert sim.cycle(vn(2026, 3, 15, 6, 15), {A: True, C: True})[1] == []
    _, ended = sim.cycle(vn(2026, 3, 15, 6, 16), everyone)
    assert brief(ended) == [("escalation", "resolved", B, None)]
    assert ended[0].id == escalations[0].id


def test_no_escalation_outside_the_period_or_inside_maintenance(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    for minute in range(0, 40, 2):  # the day before: long outage, no period
        assert sim.cycle(vn(2026, 3, 14, 6, minute), {A: True, C: True})[1] == []
    inv = loads(INVENTORY + f"""maintenance:
  - {{scope: "75/{B}", from: "2026-03-15T05:00:00", to: "2026-03-15T08:00:00"}}
""")
    (tmp_path / "m").mkdir()
    quiet = Sim(tmp_path / "m", inv)
    for minute in range(0, 40, 2):
        assert quiet.cycle(vn(2026, 3, 15, 6, minute), {A: True, C: True})[1] == []


async def test_pipeline_sends_escalations_only_to_the_escalation_sinks(tmp_path: Path) -> None:
    async with WebhookReceiver() as main_hook, WebhookReceiver() as boss_hook:
        config = Config(webhooks=(WebhookConfig(main_hook.url),),
                        escalation_webhooks=(WebhookConfig(boss_hook.url),))
        pipeline = Pipeline(loads(INVENTORY), config, str(tmp_path / "state.db"))
        await pipeline.start()
        try:
            b_down_on_election_day(pipeline)
            (boss,) = await boss_hook.wait_for(1)
            assert (boss["event"], boss["commune"]) == ("escalation", B)
            received = await main_hook.wait_for(1)
        finally:
            await pipeline.stop()
        assert "escalation" not in {e["event"] for e in received}
        assert len(boss_hook.received) == 1


# --- drills ---------------------------------------------------------------------------------


def drill_sim(tmp_path: Path) -> Sim:
    """08:00–11:30: A connected 08:00–09:00 and again from 10:00 (backup line from 10:00),
    B connected throughout, C never."""
    sim = Sim(tmp_path)
    at = vn(2026, 2, 6, 7, 58)
    while at <= vn(2026, 2, 6, 11, 40):
        a_up = at <= vn(2026, 2, 6, 9, 0) or at >= vn(2026, 2, 6, 10, 0)
        on_backup = at >= vn(2026, 2, 6, 10, 0)
        sim.cycle(at, {A: a_up, B: True}, gateway={A: a_up and not on_backup, B: True},
                  backup={A: a_up})
        at += 30
    return sim


def test_drill_spans_report_and_communes_that_never_connected(tmp_path: Path) -> None:
    sim = drill_sim(tmp_path)
    drill = sim.inventory.drills[0]
    report = drills.drill_report(drill, sim.inventory, sim.ops.drills.spans(drill.id),
                                 vn(2026, 2, 6, 12, 0))
    rows = {c.commune: c for c in report.communes}
    a_spans = [(s.start, s.end) for s in rows[A].spans]
    # down_after 2: the 09:00:30 cycle still counts A up (one failure proves nothing)
    assert a_spans == [(vn(2026, 2, 6, 8, 0), vn(2026, 2, 6, 9, 0, 30)),
                       (vn(2026, 2, 6, 10, 0), vn(2026, 2, 6, 11, 29, 30))]
    assert (rows[B].first, rows[B].last) == (vn(2026, 2, 6, 8, 0), vn(2026, 2, 6, 11, 29, 30))
    assert not rows[C].appeared and [c.commune for c in report.never] == [C]
    assert report.appeared == 2 and report.live is None
    assert not sim.ops.drills.live  # the live count only while the drill runs

    text = drill_report.to_csv(report).decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    row_a = next(r for r in table if len(r) > 6 and r[2] == A)
    assert row_a[6:10] == ["Có", "2026-02-06 08:00:00", "2026-02-06 11:29:30", "150.0"]
    assert row_a[10] == "08:00–09:00; 10:00–11:29"
    assert "2/3" in text and table[-1][2:4] == [C, "Phường Phước Long"]
    book = load_workbook(io.BytesIO(drill_report.to_xlsx(report)))
    assert book.sheetnames == ["Theo xã", "Chưa kết nối", "Tổng hợp"]
    assert [c.value for c in book["Chưa kết nối"][2]][2] == C
    page = drill_report.to_html(report)
    assert "Diễn tập lần 1" in page and page.count('class="never"') == 1


def test_live_count_while_the_drill_runs_and_spans_survive_a_restart(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    for minute in (0, 1, 2):
        sim.cycle(vn(2026, 2, 6, 8, minute), {A: True, B: True})
    assert sim.ops.drills.live["dien-tap-1"] == drills.LiveCount(2, 3, vn(2026, 2, 6, 8, 2))
    sim.cycle(vn(2026, 2, 6, 8, 3), {A: True})
    sim.cycle(vn(2026, 2, 6, 8, 4), {A: True})  # B down after two failed cycles
    assert sim.ops.drills.live["dien-tap-1"].connected == 1

    sim.restart_operations()
    sim.cycle(vn(2026, 2, 6, 8, 5), {A: True})
    spans = sim.ops.drills.spans("dien-tap-1")
    assert [(s.start, s.end) for s in spans[f"75/{A}"]] == [
        (vn(2026, 2, 6, 8, 0), vn(2026, 2, 6, 8, 5))]  # continued, not split by the restart
    assert [(s.start, s.end, s.open) for s in spans[f"75/{B}"]] == [
        (vn(2026, 2, 6, 8, 0), vn(2026, 2, 6, 8, 3), False)]
    scoped = drills.drill_report(sim.inventory.drills[0], sim.inventory.scoped(f"75/{B}"),
                                 spans, vn(2026, 2, 6, 8, 5), sim.ops.drills.live["dien-tap-1"])
    assert scoped.live == drills.LiveCount(0, 1, vn(2026, 2, 6, 8, 5))


def test_a_long_silence_splits_the_span(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    sim.cycle(vn(2026, 2, 6, 8, 0), {A: True})
    sim.cycle(vn(2026, 2, 6, 8, 1), {A: True})
    sim.cycle(vn(2026, 2, 6, 9, 0), {A: True})  # the monitor was stopped for an hour
    spans = sim.ops.drills.spans("dien-tap-1")[f"75/{A}"]
    assert [(s.start, s.end) for s in spans] == [(vn(2026, 2, 6, 8, 0), vn(2026, 2, 6, 8, 1)),
                                                 (vn(2026, 2, 6, 9, 0), vn(2026, 2, 6, 9, 0))]


@pytest.mark.parametrize("fmt", ["csv", "html", "xlsx"])
def test_report_drill_command_reads_the_state_database(tmp_path: Path, fmt: str,
                                                       capsys: pytest.CaptureFixture) -> None:
    from monitor.cli.main import main

    sim = drill_sim(tmp_path)
    sim.ops.close()
    inv_path = tmp_path / "inventory.yaml"
    inv_path.write_text(INVENTORY, encoding="utf-8")
    out = tmp_path / f"drill.{fmt}"
    assert main(["report", "drill", "--inventory", str(inv_path), "--state", str(sim.db),
                 "--drill", "dien-tap-1", "--format", fmt, "-o", str(out)]) == 0
    data = out.read_bytes()
    if fmt == "xlsx":
        names = [r[3] for r in load_workbook(io.BytesIO(data))["Chưa kết nối"].iter_rows(
            min_row=2, values_only=True)]
        assert names == ["Phường Phước Long"]
    else:
        text = data.decode("utf-8-sig")
        assert "Phường Phước Long" in text and "2/3" in text
    assert main(["report", "drill", "--inventory", str(inv_path), "--state", str(sim.db),
                 "--drill", "nope"]) == 2
    assert "no such drill" in capsys.readouterr().err


def test_no_inspection_alerts_for_an_inventory_that_keeps_no_stamps(tmp_path: Path) -> None:
    text = INVENTORY.replace(", inspection: {stamp: CA-2, date: 2026-01-30}", "").replace(
        ", inspection: {stamp: CA-3, date: 2026-01-31}", "").replace("requires: [inspection]",
                                                                      "requires: [link]")
    sim = Sim(tmp_path, loads(text))
    alerts, _ = sim.cycle(vn(2026, 2, 1, 8, 0), {A: True, B: True, C: True})
    assert [e for e in alerts if e.event == "uninspected_host"] == []


def test_drill_counts_an_agent_commune_only_when_it_reaches_the_election_system(
        tmp_path: Path) -> None:
    from probes.result import ProbeResult

    inv = loads(INVENTORY.replace("milestones:", "targets:\n  - {name: congtaidaibieu, url: "
                                  "'https://congtaidaibieu.quochoi.vn/'}\nmilestones:"))
    sim = Sim(tmp_path, inv)
    commune = inv.commune("75", A)
    assert commune is not None

    def agent_cycle(minute: int, reached: bool) -> int:
        at = vn(2026, 2, 6, 8, minute)
        sim.now = at
        target = ProbeResult("target", "congtaidaibieu", reached, at, 0.1,
                             None if reached else "timeout")
        sim.engine.apply(CommuneObservation(
            "75", A, at, vantage=f"75/{A}",
            hosts=tuple(HostObservation(h.name, str(h.ip), True, "icmp") for h in commune.hosts),
            gateway_alive=True, backup_gateway_alive=True, targets=(target,)))
        sim.ops.evaluate(inv, sim.engine.state, at)
        return sim.ops.drills.live["dien-tap-1"].connected

    assert agent_cycle(0, True) == 1
    assert agent_cycle(1, False) == 1  # one failed check proves nothing (debounced)
    assert agent_cycle(2, False) == 0  # the election system unreachable from the commune
    assert agent_cycle(3, True) == 1  # up_after 1: reached again


async def test_escalations_reach_the_supervisors_mqtt_topic(tmp_path: Path, mosquitto) -> None:
    import aiomqtt

    from monitor.alerts.sinks import Dispatcher, escalation_sinks_from_config
    from tests.support.servers import receive as _receive

    config = Config(escalation_mqtt_url=mosquitto.url, escalation_mqtt_topic="ubbc/truc-ban")
    sim = Sim(tmp_path)
    for minute in (0, 1, 2):
        sim.cycle(vn(2026, 3, 15, 6, minute), {A: True, C: True})
    _, escalations = sim.cycle(vn(2026, 3, 15, 6, 20), {A: True, C: True})
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as subscriber:
        await subscriber.subscribe("ubbc/#", qos=1)
        dispatcher = Dispatcher(escalation_sinks_from_config(config))
        await dispatcher.start()
        dispatcher.publish_all(escalations)
        (message,) = await _receive(subscriber, 1)
        await dispatcher.stop()
    assert str(message.topic) == "ubbc/truc-ban/75" and message.qos == 1
    assert json.loads(message.payload)["event"] == "escalation"  # type: ignore[arg-type]


def test_malformed_report_schedule_is_a_configuration_error(tmp_path: Path) -> None:
    from monitor.common.config import ConfigError, load

    path = tmp_path / "config.yaml"
    path.write_text('reports: {schedule: "mỗi thứ Hai"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="cron"):
        load(path)


def test_report_drill_picks_the_running_drill_else_the_latest_started() -> None:
    from monitor.cli.reports import pick_drill

    second = """  - {id: dien-tap-2, title: "Diễn tập lần 2", from: "2026-02-20T08:00:00",
     to: "2026-02-20T11:00:00"}
periods:"""
    inv = loads(INVENTORY.replace("periods:", second))
    assert pick_drill(inv, None, vn(2026, 2, 6, 9, 0)).id == "dien-tap-1"  # running
    assert pick_drill(inv, None, vn(2026, 2, 10, 9, 0)).id == "dien-tap-1"  # latest started
    assert pick_drill(inv, None, vn(2026, 2, 20, 9, 0)).id == "dien-tap-2"
    assert pick_drill(inv, "dien-tap-2", vn(2026, 1, 1)).id == "dien-tap-2"
    with pytest.raises(ValueError, match="no drill that has started"):
        pick_drill(inv, None, vn(2026, 1, 1))


async def test_scheduler_cycles_at_the_periods_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a period with ``interval: 10s`` the loop waits for the next 10 s slot, not 30 s."""
    import asyncio

    from monitor.cycle import scheduler as scheduler_mod
    from monitor.cycle.observation import CycleReport

    now = dt.datetime.now(VN_TZ).replace(microsecond=0)
    inv = loads(INVENTORY.replace('from: "2026-03-15T05:00:00",\n     to: "2026-03-15T23:00:00"',
                                  f'from: "{(now - dt.timedelta(hours=1)).isoformat()}",\n'
                                  f'     to: "{(now + dt.timedelta(hours=1)).isoformat()}"'))
    waits: list[float] = []

    class Instant(scheduler_mod.Scheduler):
        async def cycle(self) -> CycleReport:
            return CycleReport(started=0.0)

    async def record(seconds: float) -> None:
        waits.append(seconds)
        raise asyncio.CancelledError

    async def ignore(report: CycleReport) -> None:
        return None

    monkeypatch.setattr(scheduler_mod.asyncio, "sleep", record)
    loop = Instant(inv, None, scheduler_mod.SchedulerOptions())  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        await loop.run_forever(ignore)
    assert len(waits) == 1 and 5.0 < waits[0] <= 10.0


def test_operators_mqtt_status_says_which_line_carries_the_commune(tmp_path: Path) -> None:
    from monitor.present.status_mqtt import status_payload

    sim = Sim(tmp_path)
    for minute in (0, 1, 2):
        sim.cycle(vn(2026, 2, 6, 7, minute), {A: True}, gateway={A: minute == 0},
                  backup={A: True})
    commune = sim.inventory.commune("75", A)
    assert commune is not None
    payload = status_payload(commune, sim.engine.state.communes[f"75/{A}"])
    assert (payload["status"], payload["on_backup"], payload["line"]) == (
        "degraded", True, "backup")
