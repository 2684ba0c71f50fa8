"""``tslcd-monitor report attest FILE.csv``: people's records kept in the state database (real
sqlite), bad rows named by FILE:LINE with nothing stored, and shown by ``report readiness`` as
attested, never as measured."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.store.ops_db import read_readiness
from monitor.store.state_db import Batch, HistoryRow, Store
from tests.support import ROOT
from tests.support.operations_sim import INVENTORY, A, B, C, vn

WATCHED = vn(2026, 1, 20, 9, 0)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """The operations inventory (milestones "line", due 29/01, and "stamped") and a state
    database where the monitor watched every commune from 20/01 and saw A's line pass."""
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    store = Store(tmp_path / "state.db")
    store.write(Batch(
        first_passed=[("75", A, "link", WATCHED)],
        history=[HistoryRow(WATCHED, "75", code, None, "unknown", "ok") for code in (A, B, C)]))
    store.close()
    return inventory, tmp_path / "state.db"


def attest(path: Path, inventory: Path, state: Path, text: str, encoding: str = "utf-8-sig"
           ) -> int:
    path.write_text(text, encoding=encoding)
    return main(["report", "attest", str(path), "--inventory", str(inventory),
                 "--state", str(state)])


def readiness_rows(inventory: Path, state: Path, out: Path, *lang: str) -> list[list[str]]:
    assert main(["report", "readiness", "--inventory", str(inventory), "--state", str(state),
                 "--format", "csv", "-o", str(out), *lang]) == 0
    communes = out.read_bytes().decode("utf-8-sig").split("\r\n\r\n")[0]
    return list(csv.reader(io.StringIO(communes)))


def test_a_vietnamese_sheet_is_stored_and_shown_as_attested(files, tmp_path: Path,
                                                            capsys) -> None:
    inventory, state = files
    sheet = ("Mã xã,Mốc,Ngày,Người xác nhận\r\n"
             f"{B},line,28/01/2026,Nguyễn Văn A (Sở Nội vụ)\r\n"
             f"75/{C},line,2026-01-30,Trần Thị B\r\n")
    assert attest(tmp_path / "xac-nhan.csv", inventory, state, sheet) == 0
    assert "2 attestation(s) stored" in capsys.readouterr().out
    stored = read_readiness(state).attestations
    assert [(a.commune, a.milestone, a.day.isoformat(), a.who) for a in stored] == [
        (B, "line", "2026-01-28", "Nguyễn Văn A (Sở Nội vụ)"),
        (C, "line", "2026-01-30", "Trần Thị B")]
    heads, *rows = readiness_rows(inventory, state, tmp_path / "r.csv")
    line = heads.index("Lắp đặt đường truyền (hạn 29/01/2026): kết quả")
    by_code = {r[2]: r[line:line + 4] for r in rows}
    assert by_code[A][0] == "Đạt"  # measured by the monitor
    assert by_code[B] == ["Đạt theo xác nhận", "", "",
                          "xác nhận bởi Nguyễn Văn A (Sở Nội vụ), ngày 28/01/2026"]
    assert by_code[C] == ["Đạt theo xác nhận", "", "Trễ hạn",  # attested after the due day
                          "xác nhận bởi Trần Thị B, ngày 30/01/2026"]
    english = readiness_rows(inventory, state, tmp_path / "en.csv", "--lang", "en")
    assert english[2][line:line + 2] == ["Attested", ""]


def test_english_headings_a_semicolon_sheet_and_a_later_record_replacing_an_earlier(
        files, tmp_path: Path) -> None:
    inventory, state = files
    assert attest(tmp_path / "a.csv", inventory, state,
                  f"Commune;Milestone;Date;Who\n{B};line;2026-01-28;A\n") == 0
    assert attest(tmp_path / "b.csv", inventory, state,
                  f"province,commune,milestone,date,who\n75,{B},line,2026-01-27,B\n") == 0
    assert [(a.day.isoformat(), a.who) for a in read_readiness(state).attestations] == [
        ("2026-01-27", "B")]


def test_every_bad_row_is_named_by_file_and_line_and_nothing_is_stored(
        files, tmp_path: Path, capsys) -> None:
    inventory, state = files
    sheet = tmp_path / "bad.csv"
    rows = ["commune,milestone,date,who",
            f"{B},line,2026-01-28,Nguyễn Văn A",  # 2: good
            "99999,line,2026-01-28,X",  # 3: unknown commune
            f"{B},ip_installed,2026-01-28,X",  # 4: unknown milestone
            f"{C},line,31/02/2026,X",  # 5: no such day
            "",  # 6: blank, skipped
            f"{C},stamped,2999-01-01,X",  # 7: in the future
            f"{A},line,2026-01-28,",  # 8: nobody
            f"{B},line,2026-01-29,Nguyễn Văn A"]  # 9: listed twice
    assert attest(sheet, inventory, state, "\n".join(rows) + "\n") == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[0] for line in err] == [f"{sheet}:{n}" for n in (3, 4, 5, 7, 8, 9)]
    assert "99999" in err[0] and "ip_installed" in err[1] and "31/02/2026" in err[2]
    assert "future" in err[3] and "who" in err[4] and "twice" in err[5]
    assert read_readiness(state).attestations == []  # not even line 2


def test_a_sheet_without_the_columns_names_line_1(files, tmp_path: Path, capsys) -> None:
    inventory, state = files
    sheet = tmp_path / "cols.csv"
    assert attest(sheet, inventory, state, f"Xã,Ngày\n{B},28/01/2026\n") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{sheet}:1: missing column(s) milestone, who")
    assert read_readiness(state).attestations == []


def test_a_sheet_that_is_not_utf8_is_refused(files, tmp_path: Path, capsys) -> None:
    inventory, state = files
    sheet = tmp_path / "cp1258.csv"
    assert attest(sheet, inventory, state, f"commune,milestone,date,who\n{B},line,28/01/2026,"
                  "Ngô\n", encoding="cp1252") == 2
    assert "UTF-8" in capsys.readouterr().err


def test_the_shipped_command_attests_and_reports(files, tmp_path: Path) -> None:
    """The ``tslcd-monitor`` module as a process: exit codes and the report's cells."""
    inventory, state = files
    sheet = tmp_path / "s.csv"
    sheet.write_text(f"mã xã,mốc,ngày,người xác nhận\n{C},line,27/01/2026,Lê Văn C\n",
                     encoding="utf-8")
    cli = [sys.executable, "-m", "monitor.cli.main", "report"]
    done = subprocess.run([*cli, "attest", str(sheet), "--inventory", str(inventory),
                           "--state", str(state)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    report = subprocess.run([*cli, "readiness", "--inventory", str(inventory), "--state",
                             str(state), "--format", "csv"], cwd=ROOT, capture_output=True,
                            timeout=60)
    assert report.returncode == 0
    text = report.stdout.decode("utf-8-sig")
    assert "Đạt theo xác nhận" in text and "xác nhận bởi Lê Văn C, ngày 27/01/2026" in text
