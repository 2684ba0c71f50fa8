"""``tslcd-monitor check``, the installed executable, as the contract (section 1) describes it.

One cycle, then a table or JSON lines (province, commune, host, ip, up, ...); exit 0 when
every host is up, 1 when any is not, 2 on bad input. The failing cases run inside a network
namespace of the test's own, where 198.18.0.0/15 has no route: those computers are silent
and no packet leaves the namespace.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from inventory.loader import demo_path, load
from tests.support.lab.netns import Lab, Node

CHECK = str(Path(sys.executable).parent / "tslcd-monitor")
pytestmark = pytest.mark.timeout(120)

INVENTORY = """\
version: 1
defaults:
  icmp: {count: 2, timeout: 500ms}
  tcp_ports: [3389]
provinces:
  - code: "75"
    name: Đồng Nai
    communes:
      - code: "26041"
        name: Phường Trấn Biên
        isp: VNPT
        subnet: 127.75.200.0/29
        gateway: 127.75.200.1
        hosts:
          - {name: may-01, ip: 127.75.200.2}
          - {name: may-02, ip: 127.75.200.3}
      - code: "25195"
        name: Phường Bình Phước
        isp: Viettel
        subnet: 198.18.7.0/29
        gateway: 198.18.7.1
        hosts:
          - {name: may-01, ip: 198.18.7.2}
"""


def check(*args: str, node: Node | None = None) -> subprocess.CompletedProcess[str]:
    argv = [CHECK, "check", *args]
    if node is not None:
        return node.run(*argv, timeout=60, check=False)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def node(netns_ready: None) -> Iterator[Node]:
    """A namespace with only loopback: 127.0.0.0/8 answers, 198.18.0.0/15 has no route."""
    with Lab() as lab:
        yield lab.node("check")


def test_every_demo_host_is_up_and_listed_once() -> None:
    done = check("--inventory", str(demo_path()), "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]  # all of it, flushed
    hosts = {(c.province, c.code, h.name, str(h.ip)) for c in load(demo_path()).communes()
             for h in c.hosts}
    assert {(r["province"], r["commune"], r["host"], r["ip"]) for r in rows} == hosts
    assert len(rows) == len(hosts) and all(r["up"] is True for r in rows)
    assert all(r["method"] == "icmp" and r["sent"] == 3 == r["received"] for r in rows)


def test_the_table_names_each_host_and_counts_them() -> None:
    done = check("--inventory", str(demo_path()))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:5] == ["province", "commune", "commune_name", "host", "ip"]
    total = sum(len(c.hosts) for c in load(demo_path()).communes())
    assert lines[-1] == f"{total} hosts, {total} up, 0 down"
    assert len(lines) == total + 2


def test_a_silent_commune_makes_the_exit_status_1(node: Node, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    done = check("--inventory", str(inventory), "--json", node=node)
    assert done.returncode == 1, done.stderr
    rows = {(r["commune"], r["host"]): r for r in map(json.loads, done.stdout.splitlines())}
    assert {k: r["up"] for k, r in rows.items()} == {
        ("26041", "may-01"): True, ("26041", "may-02"): True, ("25195", "may-01"): False}
    silent = rows[("25195", "may-01")]
    assert (silent["ip"], silent["received"], silent["method"]) == ("198.18.7.2", 0, None)
    assert silent["commune_name"] == "Phường Bình Phước" and silent["isp"] == "Viettel"


def test_scope_narrows_the_cycle_to_one_commune(node: Node, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    done = check("--inventory", str(inventory), "--json", "--scope", "75/26041", node=node)
    assert done.returncode == 0, done.stderr
    assert {json.loads(line)["commune"] for line in done.stdout.splitlines()} == {"26041"}
    unknown = check("--inventory", str(inventory), "--scope", "75/99999", node=node)
    assert unknown.returncode == 2 and "no such province or commune" in unknown.stderr


def test_bad_input_is_exit_2_with_the_file_and_line(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY.replace("ip: 127.75.200.3", "ip: 127.75.200.300"),
                         encoding="utf-8")
    done = check("--inventory", str(inventory))
    assert done.returncode == 2 and done.stdout == ""
    assert f"{inventory}:16: ip: malformed IP address '127.75.200.300'" in done.stderr
    missing = check("--inventory", str(tmp_path / "nowhere.yaml"))
    assert missing.returncode == 2 and "nowhere.yaml:1: cannot read the file" in missing.stderr
