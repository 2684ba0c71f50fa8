"""The readiness report: milestone judgement, per-province totals, and the three formats."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
from pathlib import Path

import openpyxl
import pytest

from inventory.model import Commune, Inventory, Milestone, Province
from monitor import cli_reports, drills, reports
from monitor.reports import VIETNAM, judge, readiness
from monitor.store import Batch, Store
from tests import web_support as ws

DUE = dt.date(2026, 1, 29)
IP = Milestone("ip_installed", "Cài đặt IP cho máy tính cập nhật dữ liệu", DUE,
               ("ip_config", "link"))


def vn(*args: int) -> float:
    return dt.datetime(*args, tzinfo=VIETNAM).timestamp()


BEFORE_DUE = vn(2026, 1, 20)
LAST_SECOND = vn(2026, 1, 29, 23, 59, 59)  # the due day ends at midnight, Vietnam time
NEXT_DAY = vn(2026, 1, 30, 0, 0, 1)


@pytest.mark.parametrize(
    ("passed", "now", "met", "met_at", "late"),
    [
        ({}, BEFORE_DUE, False, None, False),  # not yet, not yet due
        ({}, NEXT_DAY, False, None, True),  # still not met after the due day
        ({"link": BEFORE_DUE}, NEXT_DAY, False, None, True),  # only part of the checks
        ({"link": BEFORE_DUE, "ip_config": LAST_SECOND}, NEXT_DAY, True, LAST_SECOND, False),
        ({"link": NEXT_DAY, "ip_config": BEFORE_DUE}, NEXT_DAY + 9, True, NEXT_DAY, True),
        ({"link": BEFORE_DUE, "ip_config": BEFORE_DUE, "target": NEXT_DAY}, LAST_SECOND, True,
         BEFORE_DUE, False),  # a check the milestone does not require changes nothing
    ],
)
def test_milestone_is_met_at_the_last_required_first_pass_and_late_by_vietnam_day(
    passed, now, met, met_at, late
) -> None:
    assert judge(IP, passed, now) == reports.MilestoneResult(met, met_at, late)


def test_report_rows_follow_the_inventory_and_totals_add_up() -> None:
    inv = ws.inventory(("75", "01"), per_province=10)
    communes = list(inv.communes())
    first_passed = {c.key: {"link": BEFORE_DUE, "ip_config": BEFORE_DUE} for c in communes[:4]}
    first_passed[communes[10].key] = {"link": NEXT_DAY, "ip_config": BEFORE_DUE}  # Hà Nội, late
    report = readiness(inv, first_passed, NEXT_DAY + 60)
    assert [r.commune for r in report.communes] == [c.code for c in communes]
    dongnai, hanoi = report.provinces
    assert (dongnai.province, dongnai.communes, dongnai.met[0], dongnai.late[0]) == ("75", 10, 4, 6)
    assert (hanoi.province, hanoi.met[0], hanoi.late[0]) == ("01", 1, 10)
    assert report.total.communes == 20 and report.total.met[0] == 5
    assert report.total.late[0] == 16


def small_report() -> reports.ReadinessReport:
    inv = ws.inventory(("75",), per_province=3)
    province = inv.provinces[0]
    odd = Commune("75", "26041", 'Phường <Trấn> "Biên" & Co', "VNPT", province.communes[0].subnet,
                  province.communes[0].gateway, (), circuit=None)
    inv = Inventory(1, inv.defaults, (Province("75", "Đồng Nai", (*province.communes[1:], odd)),),
                    milestones=ws.MILESTONES)
    first_passed = {inv.provinces[0].communes[0].key: {"link": vn(2026, 1, 20, 8, 30, 15),
                                                      "ip_config": vn(2026, 1, 21, 14, 5)}}
    return readiness(inv, first_passed, vn(2026, 2, 10))


def test_csv_has_a_bom_vietnamese_headings_and_the_totals_after_a_blank_line() -> None:
    report = small_report()
    data = reports.to_csv(report)
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    communes, totals = text.split("\r\n\r\n")
    rows = list(csv.reader(io.StringIO(communes)))
    assert rows[0][:4] == ["Mã tỉnh", "Tỉnh, thành phố", "Mã xã", "Xã, phường"]
    assert "Cài đặt IP cho máy tính cập nhật dữ liệu (hạn 29/01/2026): kết quả" in rows[0]
    first = rows[1]
    assert first[1] == "Đồng Nai"
    assert first[6:9] == ["Đạt", "2026-01-21 14:05:00", ""]
    assert first[9:12] == ["Chưa đạt", "", "Trễ hạn"]
    total = list(csv.reader(io.StringIO(totals)))
    assert total[1][:6] == ["75", "Đồng Nai", "3", "1", "2", "2"]
    assert total[-1][:3] == ["", "Tổng cộng", "3"]


def test_xlsx_reopens_with_every_value_intact() -> None:
    report = small_report()
    book = openpyxl.load_workbook(io.BytesIO(reports.to_xlsx(report)))
    assert book.sheetnames == ["Theo xã", "Tổng hợp"]
    for sheet, heads, rows in (
        (book["Theo xã"], reports.commune_headings(report), reports.commune_rows(report)),
        (book["Tổng hợp"], reports.totals_headings(report), reports.totals_rows(report)),
    ):
        values = [list(r) for r in sheet.iter_rows(values_only=True)]
        assert values == [heads, *rows]
    met_at = book["Theo xã"].cell(row=2, column=8)
    assert met_at.value == dt.datetime(2026, 1, 21, 14, 5)
    assert met_at.number_format == "dd/mm/yyyy hh:mm"
    assert book["Theo xã"].cell(row=4, column=4).value == 'Phường <Trấn> "Biên" & Co'


def test_html_escapes_names_and_marks_late_rows() -> None:
    page = reports.to_html(small_report())
    assert page.startswith("<!doctype html>") and 'lang="vi"' in page
    assert "Phường &lt;Trấn&gt; &quot;Biên&quot; &amp; Co" in page
    assert "<Trấn>" not in page
    assert page.count('<tr class="late">') == 3
    assert "Tổng hợp theo tỉnh, thành phố" in page


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "html"])
def test_command_reads_inventory_and_state_database(tmp_path: Path, fmt: str, capsys) -> None:
    from inventory.loader import dump

    inv = ws.inventory(("75",), per_province=4)
    (tmp_path / "inv.yaml").write_text(dump(inv), encoding="utf-8")
    store = Store(tmp_path / "state.db")
    first = inv.provinces[0].communes[1]
    store.write(Batch(first_passed=[("75", first.code, "link", BEFORE_DUE),
                                    ("75", first.code, "ip_config", BEFORE_DUE + 60)]))
    store.close()
    out = tmp_path / f"report.{fmt}"
    args = argparse.Namespace(inventory=str(tmp_path / "inv.yaml"),
                              state=str(tmp_path / "state.db"), format=fmt, output=str(out))
    assert cli_reports.cmd_report_readiness(args) == 0
    if fmt == "xlsx":
        rows = list(openpyxl.load_workbook(out)["Theo xã"].iter_rows(min_row=2, values_only=True))
        assert [r[6] for r in rows] == ["Chưa đạt", "Đạt", "Chưa đạt", "Chưa đạt"]
        assert rows[1][7] == dt.datetime.fromtimestamp(BEFORE_DUE + 60, VIETNAM).replace(
            tzinfo=None)
    else:
        text = out.read_text(encoding="utf-8-sig")
        assert first.name in text and text.count("Chưa đạt") >= 3


def test_command_fails_cleanly_on_a_missing_database(tmp_path: Path, capsys) -> None:
    from inventory.loader import dump

    (tmp_path / "inv.yaml").write_text(dump(ws.inventory(("75",), 2)), encoding="utf-8")
    args = argparse.Namespace(inventory=str(tmp_path / "inv.yaml"),
                              state=str(tmp_path / "missing.db"), format="csv", output="-")
    assert cli_reports.cmd_report_readiness(args) == 2
    assert "missing.db" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()  # read-only: never creates a database


def test_the_report_command_offers_exactly_the_formats_both_reports_write() -> None:
    assert sorted(reports.WRITERS) == sorted(drills.WRITERS) == sorted(cli_reports.FORMATS)
