"""One table of exit statuses, used by every command (contract section 1)."""

from __future__ import annotations

from pathlib import Path

from monitor.cli.main import main
from monitor.common.exits import EXIT_BAD_INPUT


def test_bad_input_exits_2_in_check_and_in_the_distributed_commands(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    assert EXIT_BAD_INPUT == 2
    assert main(["check", "--inventory", missing]) == EXIT_BAD_INPUT
    assert main(["agent", "--inventory", missing, "--scope", "75",
                 "--mqtt", "mqtt://127.0.0.1:1"]) == EXIT_BAD_INPUT
    assert main(["run", "--inventory", missing, "--mqtt", "mqtt://127.0.0.1:1"]) == EXIT_BAD_INPUT
    assert main(["run", "--mqtt", "http://127.0.0.1:1"]) == EXIT_BAD_INPUT
