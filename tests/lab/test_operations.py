"""End to end in namespace labs: `tslcd-monitor run` with real probes, real webhook receivers.

* A commune with a primary and a backup line (two CPEs on its segment, 198.18.1.0/29): the
  primary goes down (its interface, for real), the commune runs on the backup (one
  ``commune_degraded`` naming the primary line's operator and circuit; the API says which
  line carries it), then both go down (``commune_down``, and inside the election-day period
  an ``escalation`` on the supervisors' webhook only). The computer answers without an
  inspection record: ``uninspected_host``. A foreign device plugged in during a maintenance
  window is still a critical ``unknown_device`` naming its MAC and IP.
* A drill whose window is now, over real probes on the namespace's own loopback: one commune
  cut by iptables never connects; the API and the page show the live count, ``report drill``
  reads the state database while the drill runs, and ``--report-schedule`` writes the
  readiness and drill reports to their folder.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.event import VN_TZ
from tests.support.lab.netns import Lab, Node
from tests.support.lab.observe import cycles as _cycles
from tests.support.lab.observe import events as _events
from tests.support.lab.observe import wait_until as _wait
from tests.support.lab.run_files import block as _block
from tests.support.lab.run_files import small_demo as _small_demo

ROOT = Path(__file__).resolve().parents[2]
PRIMARY, BACKUP, PC, ROGUE = "198.18.1.1", "198.18.1.6", "198.18.1.2", "198.18.1.4"
MONITOR_IP = "198.18.1.5"


def _window(before: float, after: float) -> tuple[str, str]:
    now = dt.datetime.now(VN_TZ).replace(microsecond=0)
    return ((now - dt.timedelta(seconds=before)).isoformat(),
            (now + dt.timedelta(seconds=after)).isoformat())


def _backup_inventory(maintenance: bool, interval: str = "1s") -> str:
    start, end = _window(3600, 3600)
    stamping_due = (dt.datetime.now(VN_TZ) - dt.timedelta(days=1)).date()  # stamps are due
    text = f"""\
version: 1
defaults: {{interval: {interval}, icmp: {{count: 2, timeout: 300ms}}, down_after: 2, up_after: 2,
           tcp_ports: []}}
milestones:
  - {{id: stamped, title: "Dán tem kiểm định", due: {stamping_due}, requires: [inspection],
     warn_days: 0}}
provinces:
  - code: "75"
    name: "Đồng Nai"
    communes:
      - code: "25195"
        name: "Phường Bình Phước"
        isp: VNPT
        circuit: "DNI-0001"
        subnet: 198.18.1.0/29
        gateway: {PRIMARY}
        backup_gateway: {BACKUP}
        hosts:
          - {{name: may-01, ip: {PC}}}
periods:
  - {{id: ngay-bau-cu, title: "Ngày bầu cử", from: "{start}", to: "{end}", escalate_after: 3s}}
"""
    if maintenance:
        text += f'maintenance:\n  - {{scope: "75/25195", from: "{start}", to: "{end}"}}\n'
    return text


def _start_monitor(node: Node, tmp_path: Path, inventory: str, files: contextlib.ExitStack,
                   *flags: str) -> dict[str, Path]:
    """``tslcd-monitor run`` (of this source tree) inside ``node``, with two webhook receivers:
    the alert sink (``hook``) and the escalation sink (``boss``)."""
    paths = {name: tmp_path / f"{name}.jsonl" for name in ("hook", "boss")}
    for port, name in ((19000, "hook"), (19001, "boss")):
        node.popen(sys.executable, "-m", "tests.support.lab.webhook_file", "--port", str(port),
                   "--out", str(paths[name]), cwd=str(ROOT))
    inv = tmp_path / "inventory.yaml"
    inv.write_text(inventory, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        "listen: 127.0.0.1:19750\n"
        "alerts:\n  webhooks:\n    - url: http://127.0.0.1:19000/hook\n"
        "  escalation:\n    webhooks:\n      - url: http://127.0.0.1:19001/hook\n",
        encoding="utf-8")
    log = tmp_path / "monitor.common.log"
    stderr = files.enter_context(log.open("wb"))
    proc = node.popen(sys.executable, "-m", "monitor.cli.main", "run", "--config", str(config),
                      "--inventory", str(inv), "--state", str(tmp_path / "state.db"), *flags,
                      stderr=stderr, cwd=str(ROOT))
    _wait(lambda: _cycles(log) >= 3, "three monitor cycles")
    assert proc.poll() is None, log.read_text()
    return {**paths, "log": log, "inventory": inv, "state": tmp_path / "state.db"}


def _api(node: Node, path: str) -> Any:
    proc = node.run("curl", "-sf", f"http://127.0.0.1:19750{path}", timeout=20)
    return json.loads(proc.stdout)


def _line_of(node: Node, commune: str) -> str | None:
    rows = _api(node, "/api/v1/communes")["communes"]
    return next(r["line"] for r in rows if r["commune"] == commune)


def _of(events: list[dict], event: str) -> list[dict]:
    return [e for e in events if e["event"] == event]


@pytest.fixture
def commune_segment(lab: Lab) -> Iterator[dict[str, Node]]:
    lan = lab.segment("lan", "198.18.1.0/29")
    yield {
        "monitor": lan.add_host("monitor", MONITOR_IP),
        "primary": lan.add_host("primary", PRIMARY),
        "backup": lan.add_host("backup", BACKUP),
        "pc": lan.add_host("pc", PC),
        "lan": lan,  # type: ignore[dict-item]
    }


def _link(node: Node, state: str) -> None:
    node.ip("link", "set", node.interfaces[0], state)


def test_backup_line_carries_the_commune_then_both_lines_fail_and_escalate(
        commune_segment: dict[str, Node], tmp_path: Path) -> None:
    node = commune_segment["monitor"]
    with contextlib.ExitStack() as files:
        run = _start_monitor(node, tmp_path, _backup_inventory(maintenance=False), files)
        hook, boss = run["hook"], run["boss"]
        _wait(lambda: _line_of(node, "25195") == "primary", "the primary line carrying it")
        flagged = _of(_events(hook), "uninspected_host")
        assert [(e["state"], e["host"]) for e in flagged] == [("firing", "may-01")]
        assert PC in flagged[0]["message"]

        _link(commune_segment["primary"], "down")
        _wait(lambda: _of(_events(hook), "commune_degraded"), "commune_degraded")
        _wait(lambda: _line_of(node, "25195") == "backup", "the backup line carrying it")
        seen = _cycles(run["log"])
        _wait(lambda: _cycles(run["log"]) >= seen + 3, "three more cycles")
        events = _events(hook)
        (degraded,) = _of(events, "commune_degraded")
        assert degraded["state"] == "firing" and "(VNPT, DNI-0001)" in degraded["message"]
        assert not _of(events, "commune_down") and not _of(events, "host_down")
        assert _events(boss) == []  # degraded is not down: nothing to escalate

        _link(commune_segment["backup"], "down")
        _wait(lambda: _of(_events(hook), "commune_down"), "commune_down")
        _wait(lambda: _events(boss), "the escalation")
        assert _line_of(node, "25195") == "none"
        events = _events(hook)
        assert [e["state"] for e in _of(events, "commune_degraded")] == ["firing", "resolved"]
        (escalation,) = _events(boss)
        assert (escalation["event"], escalation["state"], escalation["commune"]) == (
            "escalation", "firing", "25195")
        assert "Ngày bầu cử" in escalation["message"]
        assert not _of(events, "escalation")  # only on the supervisors' sink

        _link(commune_segment["primary"], "up")
        _wait(lambda: len(_events(boss)) >= 2, "the escalation resolved")
        assert [(e["state"], e["id"]) for e in _events(boss)] == [
            ("firing", escalation["id"]), ("resolved", escalation["id"])]
        _wait(lambda: _line_of(node, "25195") == "primary", "the primary line back")


def test_unknown_device_alerts_inside_a_maintenance_window(
        commune_segment: dict[str, Node], tmp_path: Path) -> None:
    node = commune_segment["monitor"]
    with contextlib.ExitStack() as files:
        # cycles long enough for the ARP scan of the segment (it finds foreign devices)
        run = _start_monitor(node, tmp_path, _backup_inventory(maintenance=True, interval="3s"),
                             files)
        rogue = commune_segment["lan"].add_host("rogue", ROGUE)  # type: ignore[attr-defined]
        mac = rogue.mac(rogue.interfaces[0])
        _wait(lambda: _of(_events(run["hook"]), "unknown_device"), "unknown_device")
        _link(commune_segment["primary"], "down")  # held back by the maintenance window
        seen = _cycles(run["log"])
        _wait(lambda: _cycles(run["log"]) >= seen + 5, "five more cycles")
        events = _events(run["hook"])
        (device,) = _of(events, "unknown_device")
        assert device["severity"] == "critical" and device["state"] == "firing"
        assert ROGUE in device["message"] and mac in device["message"].lower()
        assert not _of(events, "commune_degraded") and not _of(events, "uninspected_host")


def test_drill_window_over_real_probes_on_loopback(lab: Lab, tmp_path: Path) -> None:
    node = lab.node("drill")
    text, addresses = _small_demo(tmp_path / "demo.yaml")
    start, end = _window(60, 3600)
    text += (f'drills:\n  - {{id: dien-tap-1, title: "Diễn tập lần 1", from: "{start}", '
             f'to: "{end}"}}\n')
    cut = addresses[-1][0]  # the last commune's line is cut for the whole drill
    for code, _, ip in addresses:
        if code == cut:
            _block(node, ip)
    reports = tmp_path / "reports"
    with contextlib.ExitStack() as files:
        run = _start_monitor(node, tmp_path, text, files, "--report-schedule", "* * * * *",
                             "--report-dir", str(reports))
        seen = _cycles(run["log"])
        _wait(lambda: _cycles(run["log"]) >= seen + 3, "three more cycles")
        proc = node.run(sys.executable, "-m", "monitor.cli.main", "report", "drill", "--inventory",
                        str(run["inventory"]), "--state", str(run["state"]), timeout=30,
                        cwd=ROOT)
        (live,) = _api(node, "/api/v1/drills")["drills"]
        assert (live["id"], live["active"], live["connected"], live["total"]) == (
            "dien-tap-1", True, 2, 3)
        page = node.run("curl", "-sf", "http://127.0.0.1:19750/report/drill/dien-tap-1.html",
                        timeout=20).stdout
        assert "Đang diễn tập: hiện đang kết nối 2/3" in page
        # the schedule: every minute here, so the first run comes within one
        _wait(lambda: any(reports.glob("dien-tap-dien-tap-1-*.xlsx")), "a scheduled report",
              timeout=75)
        # readiness, availability (the state is a file) and the drill, three formats each
        _wait(lambda: len(list(reports.glob("*"))) == 9, "all nine files")
    for report in ("bao-cao-san-sang-*", "bao-cao-kha-dung-*", "dien-tap-dien-tap-1-*"):
        assert {p.suffix for p in reports.glob(report)} == {".xlsx", ".html", ".csv"}
    table = list(csv.reader(io.StringIO(proc.stdout.lstrip("\ufeff"))))
    by_code = {r[2]: r for r in table if len(r) == 11 and r[2].isdigit()}
    assert len(by_code) == 3
    assert [c for c, r in by_code.items() if r[6] == "Có"] == [
        c for c, _, _ in dict.fromkeys((a[0], "", "") for a in addresses) if c != cut]
    assert by_code[cut][6] == "Không" and by_code[cut][7] == ""
    never = table[table.index(["Xã, phường chưa kết nối"]) + 3:]  # title, blank, headings
    assert [r[2] for r in never] == [cut]
    assert "Đang diễn tập: hiện đang kết nối 2/3" in proc.stdout
