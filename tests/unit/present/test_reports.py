"""The readiness report: milestone judgement, per-province totals, and the three formats."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
from dataclasses import replace
from pathlib import Path

import openpyxl
import pytest

from inventory.model import Commune, Drill, Inventory, Milestone, Province, Target
from monitor.cli import reports as cli_reports
from monitor.cli.main import main
from monitor.decide import drills
from monitor.decide.readiness import Evidence
from monitor.present import drill_report, reports
from monitor.present.reports import VIETNAM, readiness
from monitor.store.ops_db import Attestation
from monitor.store.state_db import Batch, Store
from tests.support import web as ws
from tests.support.operations_sim import vn

DUE = dt.date(2026, 1, 29)
IP = Milestone("ip_installed", "Cài đặt IP cho máy tính cập nhật dữ liệu", DUE,
               ("ip_config", "link"))


BEFORE_DUE = vn(2026, 1, 20)
NEXT_DAY = vn(2026, 1, 30, 0, 0, 1)


def test_report_rows_follow_the_inventory_and_totals_add_up() -> None:
    """Bare first passes (no agents, no SNMP): ip_config cannot be checked where it has not
    passed, so those communes are "not observable", neither unmet nor late."""
    inv = ws.inventory(("75", "01"), per_province=10)
    communes = list(inv.communes())
    first_passed = {c.key: {"link": BEFORE_DUE, "ip_config": BEFORE_DUE} for c in communes[:4]}
    first_passed[communes[10].key] = {"link": NEXT_DAY, "ip_config": BEFORE_DUE}  # Hà Nội, late
    report = readiness(inv, first_passed, NEXT_DAY + 60)
    assert [r.commune for r in report.communes] == [c.code for c in communes]
    dongnai, hanoi = report.provinces
    assert (dongnai.province, dongnai.communes, dongnai.met[0], dongnai.late[0]) == ("75", 10, 4, 0)
    assert dongnai.unobservable[0] == 6
    assert (hanoi.province, hanoi.met[0], hanoi.late[0], hanoi.unobservable[0]) == ("01", 1, 1, 9)
    assert report.total.communes == 20 and report.total.met[0] == 5
    assert report.total.late[0] == 1 and report.total.few_computers == 0


def test_the_report_counts_communes_with_fewer_than_two_computers() -> None:
    inv = ws.inventory(("75",), per_province=3)
    province = inv.provinces[0]
    alone = replace(province.communes[0], hosts=province.communes[0].hosts[:1])
    empty = replace(province.communes[1], hosts=())
    inv = replace(inv, provinces=(replace(province, communes=(alone, empty,
                                                               province.communes[2])),))
    report = readiness(inv, {}, vn(2026, 2, 10))
    assert [r.computers for r in report.communes] == [1, 0, 2]
    assert report.total.few_computers == 2 == report.provinces[0].few_computers
    rows = list(reports.commune_rows(report))
    assert [r[-1] for r in rows] == [1, 0, 2]
    assert rows[1][6:10] == ["Không kiểm tra được", None, None,
                             "ip_config: danh mục không có máy tính; "
                             "link: danh mục không có máy tính"]
    totals = list(reports.totals_rows(report))
    assert totals[-1][:4] == [None, "Tổng cộng", 3, 2]


def small_report(language: str = "vi") -> reports.ReadinessReport:
    """Three communes, every one watched from 20/01 by its own agent, the election system
    listed: one met on time (and unmet "connected"), one unmet with "connected" attested, one
    without computers (nothing observable)."""
    inv = ws.inventory(("75",), per_province=3)
    province = inv.provinces[0]
    odd = Commune("75", "26041", 'Phường <Trấn> "Biên" & Co', "VNPT", province.communes[0].subnet,
                  province.communes[0].gateway, (), circuit=None)
    inv = Inventory(1, inv.defaults, (Province("75", "Đồng Nai", (*province.communes[1:], odd)),),
                    targets=(Target("congtaidaibieu", "https://127.0.0.1/"),),
                    milestones=ws.MILESTONES)
    first, second, _ = inv.provinces[0].communes
    evidence = Evidence(
        {first.key: {"link": vn(2026, 1, 20, 8, 30, 15), "ip_config": vn(2026, 1, 21, 14, 5)}},
        {c.key: BEFORE_DUE for c in inv.communes()},
        {second.key: {"connected": Attestation("75", second.code, "connected",
                                               dt.date(2026, 2, 5), "Trần Thị B", BEFORE_DUE)}},
        frozenset(c.key for c in inv.communes()))
    return readiness(inv, evidence, vn(2026, 2, 10))


def test_csv_has_a_bom_vietnamese_headings_and_the_totals_after_a_blank_line() -> None:
    report = small_report()
    data = reports.to_csv(report)
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    communes, totals = text.split("\r\n\r\n")
    rows = list(csv.reader(io.StringIO(communes)))
    assert rows[0][:4] == ["Mã tỉnh", "Tỉnh, thành phố", "Mã xã", "Xã, phường"]
    assert "Cài đặt IP cho máy tính cập nhật dữ liệu (hạn 29/01/2026): kết quả" in rows[0]
    assert rows[0][-1] == "Số máy tính"
    first, second, odd = rows[1:]
    assert first[1] == "Đồng Nai"
    assert first[6:10] == ["Đạt", "2026-01-21 14:05:00", "", ""]
    assert first[10:14] == ["Chưa đạt", "", "Trễ hạn", ""]
    assert second[6:10] == ["Chưa đạt", "", "Trễ hạn", ""]
    assert second[10:14] == ["Đạt theo xác nhận", "", "",
                             "xác nhận bởi Trần Thị B, ngày 05/02/2026"]
    assert odd[6:10] == ["Không kiểm tra được", "", "",
                         "ip_config: danh mục không có máy tính; "
                         "link: danh mục không có máy tính"]
    assert [r[-1] for r in (first, second, odd)] == ["2", "2", "0"]
    total = list(csv.reader(io.StringIO(totals)))
    assert total[0][:4] == ["Mã tỉnh", "Tỉnh, thành phố", "Số xã, phường",
                            "Số xã có dưới 2 máy tính"]
    # per milestone: met, of them attested, not observable, not met, late
    assert total[1] == ["75", "Đồng Nai", "3", "1", "1", "0", "1", "1", "1",
                        "1", "1", "1", "1", "1"]
    assert total[-1][:3] == ["", "Tổng cộng", "3"]


def test_the_cells_are_in_english_on_request() -> None:
    rows = list(csv.reader(io.StringIO(reports.to_csv(small_report(), "en").decode("utf-8-sig"))))
    assert rows[1][6:14] == ["Met", "2026-01-21 14:05:00", "", "", "Not met", "", "Late", ""]
    assert rows[2][10:14] == ["Attested", "", "", "attested by Trần Thị B, 05/02/2026"]
    assert rows[3][6:8] == ["Not observable", ""]


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
    assert page.count('<tr class="late">') == 2
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
                              state=str(tmp_path / "state.db"), format=fmt, output=str(out),
                              lang="vi")
    assert cli_reports.cmd_report_readiness(args) == 0
    if fmt == "xlsx":
        rows = list(openpyxl.load_workbook(out)["Theo xã"].iter_rows(min_row=2, values_only=True))
        unseen = "Không kiểm tra được"  # ip_config: no agent, no SNMP, and it never passed
        assert [r[6] for r in rows] == [unseen, "Đạt", unseen, unseen]
        assert rows[1][7] == dt.datetime.fromtimestamp(BEFORE_DUE + 60, VIETNAM).replace(
            tzinfo=None)
    else:
        text = out.read_text(encoding="utf-8-sig")
        assert first.name in text and text.count("Không kiểm tra được") >= 3


def test_command_fails_cleanly_on_a_missing_database(tmp_path: Path, capsys) -> None:
    from inventory.loader import dump

    (tmp_path / "inv.yaml").write_text(dump(ws.inventory(("75",), 2)), encoding="utf-8")
    args = argparse.Namespace(inventory=str(tmp_path / "inv.yaml"),
                              state=str(tmp_path / "missing.db"), format="csv", output="-",
                              lang="vi")
    assert cli_reports.cmd_report_readiness(args) == 2
    assert "missing.db" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()  # read-only: never creates a database


def test_the_report_command_offers_exactly_the_formats_both_reports_write() -> None:
    assert sorted(reports.WRITERS) == sorted(drill_report.WRITERS) == sorted(cli_reports.FORMATS)


# --- reports are inert: no formula from operators' texts (issue 13) -------------------------

EVIL = ('=HYPERLINK("http://198.18.0.1/x","bấm vào đây")', "+1+cmd|' /C calc'!A0", "-2+3",
        "@SUM(1+1)", "\t=1+1", "\r=1+1")
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def evil_inventory() -> Inventory:
    """Every operator-supplied text of the reports starting with a formula character: commune
    names, circuits, operators, milestone titles (column headers) and the drill's title."""
    inv = ws.inventory(("75",), per_province=len(EVIL))
    province = inv.provinces[0]
    communes = tuple(
        Commune(c.province, c.code, text, text, c.subnet, c.gateway, c.hosts, circuit=text)
        for c, text in zip(province.communes, EVIL, strict=True))
    milestones = tuple(Milestone(f"m{i}", text, DUE, ("link",)) for i, text in enumerate(EVIL))
    drills_ = tuple(Drill(f"d{i}", text, dt.datetime(2026, 2, 6, 7, tzinfo=VIETNAM),
                          dt.datetime(2026, 2, 6, 11, tzinfo=VIETNAM))
                    for i, text in enumerate(EVIL))
    return Inventory(1, inv.defaults, (Province("75", "Đồng Nai", communes),),
                     milestones=milestones, drills=drills_)


def every_report(inv: Inventory, fmt: str) -> list[bytes]:
    now = vn(2026, 2, 10)
    return [reports.WRITERS[fmt](readiness(inv, {}, now)),
            *(drill_report.WRITERS[fmt](drills.drill_report(d, inv, {}, now)) for d in inv.drills)]


def assert_inert_csv(data: bytes) -> list[str]:
    cells = [cell for row in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
             for cell in row]
    assert cells and not [c for c in cells if c.startswith(TRIGGERS)]
    return cells


def assert_inert_xlsx(data: bytes) -> list[str]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    cells = [cell for sheet in book for row in sheet.iter_rows() for cell in row
             if cell.value is not None]
    assert cells and not [c.coordinate for c in cells if c.data_type == "f"]
    texts = [c.value for c in cells if isinstance(c.value, str)]
    assert not [t for t in texts if t.startswith(TRIGGERS)]
    return texts


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@x", "\t=1", "\r=1"])
def test_inert_prefixes_a_quote_to_formula_text_only(text: str) -> None:
    assert reports.inert(text) == "'" + text
    assert reports.inert("Phường 1 - Biên Hòa") == "Phường 1 - Biên Hòa"
    assert reports.inert(-1) == -1 and reports.inert(None) is None


def test_csv_reports_hold_no_cell_a_spreadsheet_would_evaluate() -> None:
    for data in every_report(evil_inventory(), "csv"):
        cells = assert_inert_csv(data)
        assert any(c.startswith("'=HYPERLINK(") for c in cells)
    readiness_cells = assert_inert_csv(every_report(evil_inventory(), "csv")[0])
    for text in EVIL:  # names, circuits, operators and headers kept, behind the quote
        assert readiness_cells.count("'" + text) == 3
        assert f"'{text} (hạn 29/01/2026): kết quả" in readiness_cells
    drill_cells = assert_inert_csv(every_report(evil_inventory(), "csv")[1])
    assert any(c.startswith("'" + EVIL[0] + " (d0)") for c in drill_cells)


def test_xlsx_reports_have_no_formula_cell_and_keep_the_text() -> None:
    for data in every_report(evil_inventory(), "xlsx"):
        texts = assert_inert_xlsx(data)
        assert "'" + EVIL[0] in texts
    texts = assert_inert_xlsx(every_report(evil_inventory(), "xlsx")[0])
    for text in EVIL:  # a header is a string cell too (XML reads a CR back as LF)
        assert f"'{text} (hạn 29/01/2026): kết quả".replace("\r", "\n") in texts


def test_xlsx_text_that_looks_like_an_error_code_or_has_control_characters_is_a_string() -> None:
    data = reports.xlsx_bytes("t", [("s", (["#N/A", "=A1"], [["#DIV/0!", "a\x01=b\x02"]]))])
    sheet = openpyxl.load_workbook(io.BytesIO(data))["s"]
    assert [(c.value, c.data_type) for row in sheet.iter_rows() for c in row] == [
        ("#N/A", "s"), ("'=A1", "s"), ("#DIV/0!", "s"), ("a=b", "s")]


def test_html_reports_stay_escaped_and_unprefixed() -> None:
    inv = evil_inventory()
    for page in every_report(inv, "html"):
        text = page.decode("utf-8")
        assert "HYPERLINK(&quot;http://198.18.0.1/x&quot;" in text
        assert 'HYPERLINK("' not in text and "'=" not in text


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_report_commands_on_an_inventory_file_with_formula_names_write_inert_files(
        tmp_path: Path, fmt: str) -> None:
    """Through the inventory file (names off the official list only warn) and the CLI."""
    from inventory.loader import dump, load

    (tmp_path / "inv.yaml").write_text(dump(evil_inventory()), encoding="utf-8")
    inv = load(tmp_path / "inv.yaml")  # loads: only warnings
    assert [m.title for m in inv.milestones][:4] == list(EVIL[:4])
    Store(tmp_path / "state.db").close()
    check = assert_inert_csv if fmt == "csv" else assert_inert_xlsx
    for command, extra in (("readiness", []), ("drill", ["--drill", "d0"])):
        out = tmp_path / f"{command}.{fmt}"
        assert main(["report", command, "--inventory", str(tmp_path / "inv.yaml"), "--state",
                     str(tmp_path / "state.db"), "--format", fmt, "-o", str(out), *extra]) == 0
        assert any(t.startswith("'=HYPERLINK(") for t in check(out.read_bytes()))
