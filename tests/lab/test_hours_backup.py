"""Issue 17's "done when" for working hours and the backup line, through the shipped
process: one `tslcd-monitor run` (1 s cycles, down after 2) inside a namespace of its own,
probing three demo communes on that namespace's loopback addresses (127.75.0.0/27 and a
backup router outside its commune's subnet, 127.75.9.1); silences made by iptables in the
namespace. Today is a holiday in the inventory, so the present moment is outside the
working hours:

* a computer going silent raises nothing, its commune stays ok, the page calls it off,
  its ``tslcd_host_up`` is 0 and ``tslcd_host_expected`` 0;
* a cut line elsewhere (router and computers silent) still raises ``commune_down``;
* a dead backup line with a working primary gives exactly one ``backup_line_down`` and no
  ``commune_down``, ``tslcd_line_up{line="backup"}`` 0 (its loss 1, the primary's RTT
  measured), and is resolved after the repair.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

from inventory.loader import demo_path, dump, load
from inventory.model import WorkingHours
from monitor.alerts.event import VN_TZ
from tests.support import ROOT
from tests.support.lab.harness import MONITOR
from tests.support.lab.netns import Lab, Node
from tests.support.lab.observe import by_label, cycles, events, parse, wait_until
from tests.support.lab.run_files import block, unblock

LISTEN = "127.0.0.1:19750"
HOOK_PORT = 19000
BACKUP_ROUTER = "127.75.9.1"  # the backup router's own address, outside 127.75.0.16/29


def _inventory(path: Path) -> tuple[list[Any], Path]:
    """Three demo communes of Đồng Nai, the third with a backup line; working hours with
    yesterday, today and tomorrow as holidays (the present is outside them, at any hour)."""
    demo = load(demo_path()).scoped("75")
    province = demo.provinces[0]
    a, b, c = province.communes[:3]
    c = dataclasses.replace(c, backup_gateway=ipaddress.ip_address(BACKUP_ROUTER),
                            backup_isp="Viettel", backup_circuit="DNI-B-0003")
    today = dt.datetime.now(VN_TZ).date()
    defaults = dataclasses.replace(
        demo.defaults, interval=1.0, down_after=2, up_after=2,
        icmp=dataclasses.replace(demo.defaults.icmp, timeout=0.3),
        working_hours=WorkingHours(tuple(range(7)), dt.time(7), dt.time(17)),
        holidays=tuple(today + dt.timedelta(days=d) for d in (-1, 0, 1)))
    inventory = dataclasses.replace(
        demo, provinces=(dataclasses.replace(province, communes=(a, b, c)),),
        defaults=defaults, targets=(), milestones=())
    path.write_text(dump(inventory), encoding="utf-8")
    return [a, b, c], path


def _start(node: Node, tmp_path: Path, inventory: Path, files: contextlib.ExitStack) -> Path:
    """The webhook receiver and `tslcd-monitor run` inside ``node``; returns run's log."""
    node.popen(sys.executable, "-m", "tests.support.lab.webhook_file", "--port",
               str(HOOK_PORT), "--out", str(tmp_path / "hook.jsonl"), cwd=str(ROOT))
    config = tmp_path / "config.yaml"
    config.write_text(f"listen: {LISTEN}\nalerts:\n  webhooks:\n"
                      f"    - url: http://127.0.0.1:{HOOK_PORT}/hook\n", encoding="utf-8")
    log = tmp_path / "run.log"
    proc = node.popen(MONITOR, "run", "--config", str(config), "--inventory", str(inventory),
                      "--state", str(tmp_path / "state.db"),
                      stderr=files.enter_context(log.open("wb")), cwd=str(ROOT))
    wait_until(lambda: cycles(log) >= 3 or proc.poll() is not None, "three monitor cycles")
    assert proc.poll() is None, log.read_text(encoding="utf-8")[-2000:]
    return log


def _get(node: Node, path: str) -> str:
    return node.run("curl", "-sf", f"http://{LISTEN}{path}", timeout=20).stdout


def _metric(node: Node, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    return by_label(parse(_get(node, "/metrics")), name, *keys)


def _of(received: list[dict], event: str) -> list[tuple[str, str | None, str | None]]:
    return [(e["state"], e["commune"], e["host"]) for e in received if e["event"] == event]


def test_off_hours_silence_cut_line_and_dead_backup_line(lab: Lab, tmp_path: Path) -> None:
    node = lab.node("hours")
    (office, cut, backed), inventory = _inventory(tmp_path / "inventory.yaml")
    hook = tmp_path / "hook.jsonl"
    with contextlib.ExitStack() as files:
        log = _start(node, tmp_path, inventory, files)
        wait_until(lambda: set(_metric(node, "tslcd_commune_status", "commune").values())
                   == {0.0}, "every commune ok")
        assert _metric(node, "tslcd_line_up", "commune", "line")[(backed.code, "backup")] == 1

        silent = office.hosts[1]
        block(node, str(silent.ip))  # switched off for the night
        for address in (cut.gateway, *(h.ip for h in cut.hosts)):
            block(node, str(address))  # the line cut
        block(node, BACKUP_ROUTER)  # the backup line dead, the primary working

        wait_until(lambda: ("firing", cut.code, None) in _of(events(hook), "commune_down"),
                   "commune_down for the cut line", detail=lambda: events(hook))
        wait_until(lambda: _of(events(hook), "backup_line_down"), "backup_line_down",
                   detail=lambda: events(hook))
        seen = cycles(log)
        wait_until(lambda: cycles(log) >= seen + 5, "five more cycles")

        received = events(hook)
        assert _of(received, "commune_down") == [("firing", cut.code, None)]
        assert _of(received, "backup_line_down") == [("firing", backed.code, None)]
        assert _of(received, "host_down") == []  # the office computer is off, not down
        assert {e["event"] for e in received} == {"commune_down", "backup_line_down"}
        (warning,) = [e for e in received if e["event"] == "backup_line_down"]
        assert warning["severity"] == "warning" and "Viettel, DNI-B-0003" in warning["message"]

        status = _metric(node, "tslcd_commune_status", "commune")
        assert (status[(office.code,)], status[(cut.code,)], status[(backed.code,)]) == (0, 2, 0)
        host = (office.code, silent.name)
        assert _metric(node, "tslcd_host_up", "commune", "host")[host] == 0  # the fact
        assert _metric(node, "tslcd_host_expected", "commune", "host")[host] == 0
        lines = _metric(node, "tslcd_line_up", "commune", "line")
        assert (lines[(backed.code, "primary")], lines[(backed.code, "backup")]) == (1, 0)
        loss = _metric(node, "tslcd_line_packet_loss_ratio", "commune", "line")
        assert (loss[(backed.code, "primary")], loss[(backed.code, "backup")]) == (0, 1)
        rtt = _metric(node, "tslcd_line_rtt_seconds", "commune", "line")
        assert rtt[(backed.code, "primary")] > 0 and (backed.code, "backup") not in rtt
        detail = json.loads(_get(node, f"/api/v1/communes/75/{office.code}"))
        assert [h["state"] for h in detail["hosts"]] == ["up", "off"]
        assert [line["up"] for line in json.loads(
            _get(node, f"/api/v1/communes/75/{backed.code}"))["lines"]] == [True, False]

        unblock(node, BACKUP_ROUTER)  # the backup line repaired
        wait_until(lambda: len(_of(events(hook), "backup_line_down")) == 2,
                   "backup_line_down resolved", detail=lambda: events(hook))
        done = [e for e in events(hook) if e["event"] == "backup_line_down"]
        assert [e["state"] for e in done] == ["firing", "resolved"]
        assert done[0]["id"] == done[1]["id"]
        assert _of(events(hook), "commune_down") == [("firing", cut.code, None)]
