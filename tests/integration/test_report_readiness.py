"""Honest readiness through the shipped processes: a real ``tslcd-monitor run`` (loopback
communes, a state file) started long after two milestones were due, then ``report readiness``
and ``report attest`` on its state.

Started after the due day, a commune that passes at once is "met, not observed before due",
never late; a milestone needing ip_config with no agent and no SNMP router is "not
observable" (naming what is missing) and raises no deadline alert; a person's record is
shown as attested."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from pathlib import Path

from tests.support import ROOT
from tests.support.servers import daemon, free_tcp_port

INVENTORY = """\
version: 1
defaults: {interval: 5s, icmp: {count: 1, timeout: 1s}, down_after: 2, up_after: 1}
milestones:
  - {id: line, title: "Lắp đặt đường truyền", due: 2026-01-29, requires: [link]}
  - {id: ip, title: "Cài đặt IP", due: 2026-01-29, requires: [ip_config, link]}
  - {id: later, title: "Sẵn sàng ngày bầu cử", due: 2099-05-01, requires: [link]}
provinces:
  - code: "75"
    name: "Đồng Nai"
    communes:
      - {code: "25195", name: "Phường Bình Phước", isp: VNPT, subnet: 127.77.0.0/29,
         gateway: 127.77.0.1, hosts: [{name: may-01, ip: 127.77.0.2},
                                      {name: may-02, ip: 127.77.0.3}]}
      - {code: "25210", name: "Phường Đồng Xoài", isp: Viettel, subnet: 127.77.0.8/29,
         gateway: 127.77.0.9, hosts: [{name: may-01, ip: 127.77.0.10}]}
"""
CLI = [sys.executable, "-m", "monitor.cli.main"]


def run_monitor(tmp_path: Path, inventory: Path, state: Path) -> str:
    """``run`` until two cycles are done and the first passes are stored; its log."""
    log_path = tmp_path / "run.log"
    with daemon([*CLI, "run", "--inventory", str(inventory), "--state", str(state),
                 "--listen", f"127.0.0.1:{free_tcp_port()}"], log_path, cwd=ROOT) as proc:
        until = time.monotonic() + 60
        while time.monotonic() < until and proc.poll() is None:
            if log_path.read_text("utf-8", "replace").count('"event": "cycle_done"') >= 2:
                break
            time.sleep(0.5)
        assert proc.poll() is None, log_path.read_text("utf-8", "replace")[-3000:]
    return log_path.read_text("utf-8", "replace")


def report(inventory: Path, state: Path, *extra: str
           ) -> tuple[dict[str, dict[str, list[str]]], list[list[str]]]:
    """Per commune code, per milestone id: its four cells (state, met at, late, note); and
    the totals' rows."""
    done = subprocess.run([*CLI, "report", "readiness", "--inventory", str(inventory),
                           "--state", str(state), "--format", "csv", *extra],
                          cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    communes, totals = done.stdout.decode("utf-8-sig").split("\r\n\r\n")
    heads, *rows = csv.reader(io.StringIO(communes))
    ids = {"Lắp đặt đường truyền": "line", "Cài đặt IP": "ip", "Sẵn sàng ngày bầu cử": "later"}
    starts = {ids[h.split(" (hạn")[0]]: i for i, h in enumerate(heads) if h.endswith(": kết quả")}
    return ({r[2]: {m: r[i:i + 4] for m, i in starts.items()} for r in rows},
            list(csv.reader(io.StringIO(totals)))[1:])


def test_a_monitor_started_after_the_due_day_reports_honestly(tmp_path: Path) -> None:
    inventory, state = tmp_path / "inventory.yaml", tmp_path / "state.db"
    inventory.write_text(INVENTORY, encoding="utf-8")
    output = run_monitor(tmp_path, inventory, state)
    assert "Traceback" not in output
    assert "deadline" not in output, [ln for ln in output.splitlines() if "deadline" in ln]

    cells, totals = report(inventory, state)
    assert totals[-1][:4] == ["", "Tổng cộng", "2", "1"]  # Đồng Xoài has one computer
    for code in ("25195", "25210"):
        line, ip, later = cells[code]["line"], cells[code]["ip"], cells[code]["later"]
        assert (line[0], line[2]) == ("Đạt, không theo dõi trước hạn", ""), line
        assert line[1].startswith("2026-")  # when the monitor saw it pass
        assert ip == ["Không kiểm tra được", "", "",
                      "ip_config: không có agent tại xã và không đọc SNMP router"]
        assert later[0] == "Đạt" and later[2] == ""

    sheet = tmp_path / "xac-nhan.csv"
    sheet.write_text("Mã xã,Mốc,Ngày,Người xác nhận\n25195,ip,20/01/2026,Nguyễn Văn A\n",
                     encoding="utf-8")
    done = subprocess.run([*CLI, "report", "attest", str(sheet), "--inventory", str(inventory),
                           "--state", str(state)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    cells, _ = report(inventory, state, "--lang", "en")
    assert cells["25195"]["ip"] == ["Attested", "", "", "attested by Nguyễn Văn A, 20/01/2026"]
    assert cells["25210"]["ip"][0] == "Not observable"
    assert cells["25195"]["line"][0] == "Met, not observed before due"
