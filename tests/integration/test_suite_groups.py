"""The suite's worker groups hold (tests/conftest.py): with ``--dist loadgroup`` the tests of
one file sharing a module fixture (a 24-commune lab, fixed loopback ports) run on one worker,
so the fixture is built once. pytest 9.2 with xdist 3.8 silently split every group
(pytest-xdist#1386): each lab was built once per test, minutes of the suite on 2 cores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CONFTEST = '''
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
'''

MODULE = r'''
import os
from pathlib import Path
import pytest

@pytest.fixture(scope="module")
def built():
    with (Path(__file__).parent / "built.log").open("a") as log:
        log.write(f"{__name__} {os.environ.get('PYTEST_XDIST_WORKER')}\n")
    yield

@pytest.mark.parametrize("n", range(6))
def test_one(built, n):
    pass
'''


def test_a_module_fixture_is_built_once_under_loadgroup(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    for name in ("test_first.py", "test_second.py"):
        (tmp_path / name).write_text(MODULE, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q",
         "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    built = (tmp_path / "built.log").read_text(encoding="utf-8").splitlines()
    assert sorted(line.split()[0] for line in built) == ["test_first", "test_second"], built
