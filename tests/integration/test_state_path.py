"""An unusable ``--state`` path (read-only folder or file, a directory, a file that is not a
database, a missing folder): one line naming the path and exit 2, no traceback, for ``run``,
``collector`` and the report commands, through the real executable.

The tests run as root, whom permission bits do not stop: a read-only folder or file is made
immutable (``chattr +i``), which stops root too, and made mutable again afterwards.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from inventory.loader import dump
from inventory.model import Drill, Inventory
from monitor.cli.main import main
from monitor.store.path_check import check_writable
from monitor.store.state_db import Batch, Store
from tests.support import web as ws

EXE = str(Path(sys.executable).with_name("tslcd-monitor"))
VN = dt.timezone(dt.timedelta(hours=7))


@contextmanager
def immutable(path: Path) -> Iterator[Path]:
    """``path`` read-only even for root while the block runs."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def database(path: Path) -> Path:
    Store(path).close()
    return path


def garbage(path: Path) -> Path:
    path.write_bytes(b"not a database, just text an operator saved here\n" * 200)
    return path


@contextmanager
def read_only_folder(tmp: Path) -> Iterator[Path]:
    folder = tmp / "ro"
    folder.mkdir()
    database(folder / "state.db")
    with immutable(folder):
        yield folder / "new.db"


@contextmanager
def read_only_folder_with_database(tmp: Path) -> Iterator[Path]:
    folder = tmp / "ro"
    folder.mkdir()
    store = Store(folder / "state.db")
    store.write(Batch(first_passed=[("75", "25195", "link", 1.0)]))
    store.close()
    with immutable(folder):
        yield folder / "state.db"


@contextmanager
def read_only_file(tmp: Path) -> Iterator[Path]:
    with immutable(database(tmp / "state.db")) as path:
        yield path


@contextmanager
def a_directory(tmp: Path) -> Iterator[Path]:
    (tmp / "state.db").mkdir()
    yield tmp / "state.db"


@contextmanager
def not_a_database(tmp: Path) -> Iterator[Path]:
    yield garbage(tmp / "state.db")


@contextmanager
def missing_folder(tmp: Path) -> Iterator[Path]:
    yield tmp / "no" / "such" / "folder" / "state.db"


@contextmanager
def dangling_symlink(tmp: Path) -> Iterator[Path]:
    link = tmp / "state.db"
    link.symlink_to(tmp / "gone" / "state.db")
    yield link


@contextmanager
def a_device(tmp: Path) -> Iterator[Path]:
    yield Path("/dev/null")


WRITE_CASES = {  # case -> what the message says
    "read-only folder": (read_only_folder, "cannot write in its folder"),
    "read-only file": (read_only_file, "cannot open it for writing"),
    "directory": (a_directory, "is a directory"),
    "not a database": (not_a_database, "not a usable SQLite database"),
    "missing folder": (missing_folder, "does not exist"),
    "dangling symlink": (dangling_symlink, "symbolic link to nothing"),
    "device": (a_device, "not a regular file"),
}
READ_CASES = {  # (a WAL database cannot even be read without writing beside it)
    "read-only folder": (read_only_folder_with_database, "cannot write in its folder"),
    "directory": (a_directory, "is a directory"),
    "not a database": (not_a_database, "not a usable SQLite database"),
    "missing folder": (missing_folder, "no such file"),
    "dangling symlink": (dangling_symlink, "symbolic link to nothing"),
    "device": (a_device, "not a regular file"),
}


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *argv], capture_output=True, text=True, timeout=60,
                          check=False)


def assert_refused(result: subprocess.CompletedProcess[str], path: Path, message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"state database {path}: ") and message in result.stderr


@pytest.mark.parametrize("case", WRITE_CASES)
@pytest.mark.parametrize("command", [["run"], ["collector", "--mqtt", "mqtt://127.0.0.1:1"]])
def test_run_and_collector_refuse_an_unusable_state_path(
        tmp_path: Path, case: str, command: list[str]) -> None:
    make, message = WRITE_CASES[case]
    with make(tmp_path) as path:
        result = cli(*command, "--state", str(path), "--listen", "127.0.0.1:1")
        assert_refused(result, path, message)
    assert sorted(p.name for p in tmp_path.rglob(".tslcd-state-check-*")) == []


def drill_inventory(tmp_path: Path) -> Path:
    inv = ws.inventory(("75",), per_province=2)
    drill = Drill("dt-1", "Diễn tập", dt.datetime(2026, 2, 6, 7, tzinfo=VN),
                  dt.datetime(2026, 2, 6, 11, tzinfo=VN))
    path = tmp_path / "inv.yaml"
    path.write_text(dump(Inventory(1, inv.defaults, inv.provinces, milestones=inv.milestones,
                                   drills=(drill,))), encoding="utf-8")
    return path


@pytest.mark.parametrize("case", READ_CASES)
@pytest.mark.parametrize("report", [["readiness"], ["drill", "--drill", "dt-1"]])
def test_report_commands_refuse_an_unusable_state_path(
        tmp_path: Path, case: str, report: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    inventory = drill_inventory(tmp_path)
    make, message = READ_CASES[case]
    with make(tmp_path) as path:
        code = main(["report", *report, "--inventory", str(inventory), "--state", str(path),
                     "-o", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"state database {path}: ") and message in err
    assert not (tmp_path / "out.csv").exists()


def test_a_usable_path_passes_and_leaves_nothing_behind(tmp_path: Path) -> None:
    check_writable(tmp_path / "new.db")
    check_writable(database(tmp_path / "state.db"))
    (tmp_path / "empty.db").touch()
    check_writable(tmp_path / "empty.db")  # an empty file is an empty database
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db", "state.db"]


def test_a_report_output_that_cannot_be_written_is_exit_2_naming_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = drill_inventory(tmp_path)
    out = tmp_path / "no" / "folder" / "report.csv"
    code = main(["report", "readiness", "--inventory", str(inventory), "--state",
                 str(database(tmp_path / "state.db")), "-o", str(out)])
    assert code == 2
    assert capsys.readouterr().err == (f"{out}: cannot write the report: "
                                       "No such file or directory\n")
