"""Scheduled reports on simulated time: weeks of "every Monday 07:00" run in milliseconds,
files land in the folder, and a real webhook on loopback receives them (with a retry)."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import re
from pathlib import Path

import pytest
from openpyxl import load_workbook

from monitor.common.cron import ScheduleError, next_run, parse_cron
from monitor.service import report_schedule as schedule
from monitor.service.report_schedule import ReportScheduler, report_files
from monitor.store.state_db import Store
from tests.support.operations_sim import A, B, Sim, vn
from tests.support.servers import MultipartReceiver

MONDAY_7 = "0 7 * * 1"


class StopSimulation(Exception):
    pass


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self, start: float, stop: float) -> None:
        self.now, self.stop = start, stop
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.now >= self.stop:
            raise StopSimulation
        await asyncio.sleep(0)


def test_next_run_is_in_vietnam_time() -> None:
    sunday_noon = vn(2026, 2, 1, 12, 0)
    assert next_run(MONDAY_7, sunday_noon) == vn(2026, 2, 2, 7, 0)
    assert next_run(MONDAY_7, vn(2026, 2, 2, 7, 0)) == vn(2026, 2, 9, 7, 0)
    assert next_run("30 16 * * *", vn(2026, 2, 2, 16, 29)) == vn(2026, 2, 2, 16, 30)


@pytest.mark.parametrize("bad", ["every monday", "0 7 * *", "61 7 * * 1"])
def test_malformed_cron_is_refused(bad: str) -> None:
    with pytest.raises(ScheduleError, match="cron"):
        parse_cron(bad)


def _monitored(tmp_path: Path) -> Sim:
    """Readiness data before the first Monday and a drill on Friday 06/02."""
    sim = Sim(tmp_path)
    sim.cycle(vn(2026, 1, 27, 9, 0), {A: True})
    for minute in range(0, 10):
        sim.cycle(vn(2026, 2, 6, 8, minute), {A: True, B: True})
    return sim


async def test_three_mondays_write_readiness_and_the_drill_once(tmp_path: Path) -> None:
    sim = _monitored(tmp_path)
    fake = FakeTime(vn(2026, 1, 31, 10, 0), vn(2026, 2, 17, 0, 0))
    runs: list[float] = []

    def build(at: float, previous: float | None) -> tuple[list, dict]:
        runs.append(at)
        return report_files(sim.inventory, sim.engine.state, sim.ops.drills, at, previous)

    scheduler = ReportScheduler(MONDAY_7, tmp_path / "out", build, clock=fake.clock,
                                sleep=fake.sleep)
    with pytest.raises(StopSimulation):
        await scheduler.run_forever()
    assert runs == [vn(2026, 2, 2, 7, 0), vn(2026, 2, 9, 7, 0), vn(2026, 2, 16, 7, 0)]
    assert max(fake.sleeps) <= schedule.MAX_SLEEP
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert [n for n in names if n.endswith(".xlsx")] == [
        "bao-cao-san-sang-20260202-0700.xlsx", "bao-cao-san-sang-20260209-0700.xlsx",
        "bao-cao-san-sang-20260216-0700.xlsx", "dien-tap-dien-tap-1-20260209-0700.xlsx"]
    assert not [n for n in names if n.startswith(".")]  # no temporary file left behind
    book = load_workbook(tmp_path / "out" / "bao-cao-san-sang-20260202-0700.xlsx")
    rows = list(book["Theo xã"].iter_rows(min_row=2, values_only=True))
    assert [r[2] for r in rows] == ["25195", "25210", "25217"]
    assert rows[0][6] == "Đạt" and rows[2][6] == "Chưa đạt"  # C was never up
    drill_csv = (tmp_path / "out" / "dien-tap-dien-tap-1-20260209-0700.csv").read_text("utf-8-sig")
    assert "2/3" in drill_csv and "Phường Phước Long" in drill_csv


async def test_report_is_posted_to_the_webhook_with_a_retry(tmp_path: Path) -> None:
    sim = _monitored(tmp_path)
    fake = FakeTime(vn(2026, 2, 6, 9, 0), vn(2026, 3, 1))

    def build(at: float, previous: float | None) -> tuple[list, dict]:
        return report_files(sim.inventory, sim.engine.state, sim.ops.drills, at, previous)

    async with MultipartReceiver(fail_first=1) as receiver:
        scheduler = ReportScheduler(MONDAY_7, tmp_path / "out", build, webhook=receiver.url,
                                    clock=fake.clock, sleep=fake.sleep)
        paths = await scheduler.run_once(vn(2026, 2, 6, 9, 0))  # during the drill
    assert len(receiver.posts) == 2  # 503 once, then delivered
    delivered = receiver.posts[1]
    summary = json.loads(delivered["summary"])
    assert summary["generated"] == "2026-02-06T09:00:00+07:00"
    assert summary["drills"] == [{"drill": "dien-tap-1", "title": "Diễn tập lần 1",
                                  "connected": 2, "communes": 3}]
    assert sorted(summary["files"]) == sorted(p.name for p in paths)
    xlsx = delivered["bao-cao-san-sang-20260206-0900.xlsx"]
    assert load_workbook(io.BytesIO(xlsx)).sheetnames == ["Theo xã", "Tổng hợp"]
    live = delivered["dien-tap-dien-tap-1-20260206-0900.csv"].decode("utf-8-sig")
    assert "hiện đang kết nối 2/3" in live  # as of the drill's latest sample (08:09)


async def test_rejected_report_is_not_retried(tmp_path: Path) -> None:
    fake = FakeTime(0.0, 1e12)
    async with MultipartReceiver(fail_first=10) as receiver:
        receiver_url = receiver.url.replace("/reports", "/nowhere")  # 404
        scheduler = ReportScheduler(MONDAY_7, tmp_path, lambda at, prev: ([], {}),
                                    webhook=receiver_url, clock=fake.clock, sleep=fake.sleep)
        assert await scheduler.send([], {}) is False
    assert fake.sleeps == []


EVIL_DRILL_IDS = ("../../escaped\r\nX-Header: 1", '"quoted"/sub\\dir', "..", "Diễn tập 2")


def _evil_drills_sim(tmp_path: Path) -> Sim:
    """The inventory's drill under ids that are no file names (the loader may refuse such
    ids: the writer must not depend on it), each followed by another drill."""
    base = Sim(tmp_path).inventory.drills[0]
    drills = tuple(dataclasses.replace(base, id=ident) for ident in
                   (*EVIL_DRILL_IDS, "dien-tap-1"))
    sim = Sim(tmp_path, dataclasses.replace(Sim(tmp_path).inventory, drills=drills))
    for minute in range(0, 10):
        sim.cycle(vn(2026, 2, 6, 8, minute), {A: True, B: True})
    return sim


async def test_drill_ids_that_are_no_file_names_still_get_their_report_in_the_folder(
        tmp_path: Path) -> None:
    sim = _evil_drills_sim(tmp_path)
    out = tmp_path / "reports" / "out"
    before = {p for p in tmp_path.rglob("*") if not p.is_relative_to(out)}

    def build(at: float, previous: float | None) -> tuple[list, dict]:
        return report_files(sim.inventory, sim.engine.state, sim.ops.drills, at, previous)

    scheduler = ReportScheduler(MONDAY_7, out, build)
    paths = await scheduler.run_once(vn(2026, 2, 6, 9, 0))  # every drill running
    assert {p.parent for p in paths} == {out}
    after = {p for p in tmp_path.rglob("*") if not p.is_relative_to(out)}
    assert after == before | {out.parent}  # nothing escaped the folder (none in its parent)
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 3 * (1 + len(EVIL_DRILL_IDS) + 1)  # readiness + every drill
    assert "dien-tap-dien-tap-1-20260206-0900.csv" in names  # an ordinary id stays as it is
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+\.(csv|html|xlsx)", n) for n in names), names
    for ident in EVIL_DRILL_IDS:  # each its own three files, the id inside intact
        drill_name = f"dien-tap-{schedule.name_part(ident)}-20260206-0900"
        assert sorted(n for n in names if n.startswith(drill_name)) == [
            f"{drill_name}.{fmt}" for fmt in ("csv", "html", "xlsx")]
        text = (out / f"{drill_name}.csv").read_bytes().decode("utf-8-sig")
        assert any(f"({ident})" in cell for row in csv.reader(io.StringIO(text, newline=""))
                   for cell in row)
    assert "dien-tap-Dien-tap-2-" in " ".join(names)
    # the next run still writes its reports
    assert len(await scheduler.run_once(vn(2026, 2, 6, 10, 0))) == len(names)


def test_name_part_keeps_safe_ids_and_never_merges_two_unsafe_ones() -> None:
    assert schedule.name_part("dien-tap_1") == "dien-tap_1"
    unsafe = ["a/b", "a:b", "a\nb", "", "..", "/", "x" * 500]
    parts = [schedule.name_part(ident) for ident in unsafe]
    assert len(set(parts)) == len(unsafe)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,69}", p) for p in parts), parts


def test_write_files_refuses_a_name_that_is_not_a_plain_file_name(tmp_path: Path) -> None:
    for name in ("../x.csv", "sub/x.csv", ".hidden", "a\\b.csv"):
        with pytest.raises(ValueError, match="not a plain file name"):
            schedule.write_files(tmp_path / "out", [schedule.ReportFile(name, "text/csv", b"")])
    assert list((tmp_path / "out").iterdir()) == []


def test_the_availability_report_joins_the_scheduled_ones_when_the_state_is_a_file(
        tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    store = Store(tmp_path / "state.db")
    sim.engine.store = store  # the engine's status changes written, as in ``run --state``
    for minute in range(10):
        sim.cycle(vn(2026, 2, 6, 9, minute), {A: True, B: not 2 <= minute <= 6})
    sim.engine.flush()
    assert schedule.status_history(":memory:") is None  # run without --state
    status = schedule.status_history(str(tmp_path / "state.db"))
    assert status is not None and status.changes
    files, summary = report_files(sim.inventory, sim.engine.state, None, vn(2026, 2, 9, 7, 0),
                                  None, status)
    assert [f.name for f in files if "kha-dung" in f.name] == [
        f"bao-cao-kha-dung-20260209-0700.{fmt}" for fmt in schedule.FORMATS]
    total = next(g for g in summary["availability"] if g["kind"] == "total")
    assert total["communes"] == len(list(sim.inventory.communes()))
    assert total["outages"] == 2 and 0 < total["availability"] < 1  # B cut; C never up
    store.close()
