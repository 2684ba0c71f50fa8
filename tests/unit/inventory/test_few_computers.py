"""Validation of issue 17's inventory rules: a commune with fewer than two computers is a
warning at its line (``FILE:LINE: warning:``, exit 0), and the backup line's router may
sit outside the commune's subnet while its computers may not."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory.loader import validate_text
from monitor.cli.main import main
from tests.support.inventory_texts import FULL

#: commune 26068 with one computer only
ONE = FULL.replace("          - {name: may-02, ip: 198.18.1.11}\n", "")
ONE_COMPUTER_LINE = ONE.splitlines().index('      - code: "26068"') + 1


def test_a_commune_with_one_computer_is_warned_at_its_line() -> None:
    inventory, problems = validate_text(ONE, "inv.yaml")
    assert inventory is not None
    few = [p for p in problems if "at least two" in p.message]
    assert [(p.line, p.severity) for p in few] == [(ONE_COMPUTER_LINE, "warning")]
    assert str(few[0]) == (f"inv.yaml:{ONE_COMPUTER_LINE}: warning: commune 26068: "
                           "1 computer(s) listed, at least two are expected / xã cần ít nhất "
                           "hai máy tính")


def test_inventory_validate_prints_the_warning_and_exits_0(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(ONE, encoding="utf-8")
    assert main(["inventory", "validate", str(path)]) == 0
    assert f"{path}:{ONE_COMPUTER_LINE}: warning: commune 26068: 1 computer(s)" in \
        capsys.readouterr().err


def test_the_backup_router_may_be_outside_the_subnet_a_computer_may_not() -> None:
    assert validate_text(FULL, "inv.yaml")[1] == []  # two computers everywhere: no warning
    inventory, _ = validate_text(FULL, "inv.yaml")
    assert inventory is not None
    commune = inventory.commune("75", "26041")
    assert commune is not None and commune.subnet is not None
    assert commune.backup_gateway not in commune.subnet  # 198.19.200.1: its WAN side
    outside = FULL.replace("{name: may-02, ip: 198.18.1.3}", "{name: may-02, ip: 198.19.200.9}")
    inventory, problems = validate_text(outside, "inv.yaml")
    assert inventory is None
    assert any("198.19.200.9" in p.message and "outside" in p.message for p in problems)
