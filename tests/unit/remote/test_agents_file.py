"""The agents file: every problem as FILE:LINE in one run, exit 2 from the collector command,
never a traceback; a valid file gives official zero-padded scopes."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory import official
from monitor.cli.main import main
from monitor.remote.agents_file import AgentsFileError, load_agents
from tests.support import problem_files

DONG_NAI_COMMUNE = sorted(official.provinces()["75"].communes)[0]
HANOI_COMMUNE = sorted(official.provinces()["01"].communes)[0]


def write(tmp_path: Path, text: str) -> Path:
    return problem_files.write(tmp_path, "agents.yaml", text)


def problems(path: Path) -> list[str]:
    return problem_files.problems(load_agents, AgentsFileError, path)


def test_a_valid_file_gives_official_codes(tmp_path: Path) -> None:
    path = write(tmp_path, f'agents:\n  agent-75: "75"\n  agent-hn: 1\n'
                           f'  agent-x: "75/{int(DONG_NAI_COMMUNE)}"\n  agent-y: /01/\n')
    assert load_agents(path) == {"agent-75": "75", "agent-hn": "01",
                                 "agent-x": f"75/{DONG_NAI_COMMUNE}", "agent-y": "01"}


def test_every_problem_is_reported_at_its_line_in_one_run(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join([
        "agents:",
        '  agent-75: "75"',  # 2
        "  agent-99: 99999",  # 3: no such province
        '  agent-75: "01"',  # 4: duplicate key, YAML would keep this one silently
        '  agent-bad: "75/abc"',  # 5
        '  agent-list: ["75"]',  # 6
        '  "a+b": "75"',  # 7: not one topic level
        f'  agent-wrong: "75/{HANOI_COMMUNE}"',  # 8: a Hà Nội commune under Đồng Nai
        '  agent-deep: "75/1/2"',  # 9
        "agnets: {}",  # 10
    ]) + "\n")
    found = problems(path)
    assert [p.split(":")[1] for p in found] == ["3", "4", "5", "6", "7", "8", "9", "10"]
    assert all(p.startswith(f"{path}:") for p in found)
    assert "unknown province code '99999'" in found[0]
    assert "duplicate agent id 'agent-75' (first at line 2)" in found[1]
    assert "'75/abc' is not PROV or PROV/COMMUNE" in found[2]
    assert "expected text, got a list" in found[3]
    assert "'a+b'" in found[4]
    assert f"commune code {HANOI_COMMUNE} is not in the official list of province 75" in found[5]
    assert "not PROV or PROV/COMMUNE" in found[6]
    assert "unknown key 'agnets' (did you mean 'agents'?)" in found[7]


@pytest.mark.parametrize(("text", "line", "message"), [
    ("", 1, "empty"),
    ("- agent-75\n", 1, "expected a mapping"),
    ("agents: [agent-75]\n", 1, "agents: expected"),
    ("agents:\n  a: 1\n  b: [" + "[" * 10_000 + "]" * 10_000 + "]\n", 3, "nested more than"),
    ("agents:\n  a: 'x\n", 3, "YAML syntax error"),
])
def test_malformed_files_give_one_clear_problem(tmp_path: Path, text: str, line: int,
                                               message: str) -> None:
    found = problems(write(tmp_path, text))
    assert len(found) == 1 and found[0].startswith(f"{tmp_path / 'agents.yaml'}:{line}: ")
    assert message in found[0]


def test_unreadable_and_not_utf8_files(tmp_path: Path) -> None:
    assert "cannot read the file" in problems(tmp_path / "missing.yaml")[0]
    path = tmp_path / "agents.yaml"
    path.write_bytes(b"agents:\n  a: \xff\n")
    assert problems(path) == [f"{path}:2: not UTF-8 (byte 0xff); save the file as UTF-8 "
                              "/ tệp không phải UTF-8, hãy lưu lại với mã UTF-8"]


def test_the_collector_command_exits_2_with_every_line_and_no_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, 'agents:\n  a: "99999"\n  a: "75"\n')
    code = main(["collector", "--mqtt", "mqtt://127.0.0.1:1", "--agents", str(path),
                 "--state", str(tmp_path / "state.db")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        f"{path}:2: agent a: scope: unknown province code '99999' (not in the official list)",
        f"{path}:3: duplicate agent id 'a' (first at line 2)"]
    assert not (tmp_path / "state.db").exists()
