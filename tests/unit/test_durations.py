"""The suite's start order (tests/support/durations.py): the longest group first, and the
recorded seconds kept up to date without losing the tests a run did not include."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT, durations


@dataclass
class Phase:
    """One phase's report, as pytest hands it to the recorder."""

    nodeid: str
    duration: float


def test_the_group_expected_longest_comes_first_and_groups_stay_whole() -> None:
    seconds = {"a1": 1.0, "a2": 1.0, "b": 30.0, "c1": 0.5, "c2": 3.0, "d": 2.0}
    groups = [["a1", "a2"], ["b"], ["c1", "c2"], ["d"]]
    assert durations.longest_first(groups, seconds.__getitem__) == [
        "b", "c1", "c2", "a1", "a2", "d"]  # a (2 s) before d (2 s): ties keep their order


def test_a_run_records_its_tests_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "durations.json"
    path.write_text(json.dumps({"old::kept": 12.0, "t::again": 50.0, "t::faster": 9.0}))
    recorder = durations.Recorder(path)
    for nodeid, took in [("t::again", 0.5), ("t::again", 4.0), ("t::again", 0.25),
                         ("t::new", 2.04), ("t::faster", 0.3), ("t::quick", 0.01)]:
        recorder.pytest_runtest_logreport(Phase(nodeid, took))
    recorder.pytest_sessionfinish()
    # setup, call and teardown add up; under a second is left out; longest first
    assert list(durations.read(path).items()) == [
        ("old::kept", 12.0), ("t::again", 4.8), ("t::new", 2.0)]


def test_a_missing_file_is_no_durations_and_a_broken_one_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "durations.json"
    assert durations.read(path) == {}
    path.write_text('{\n"t::a": 1.0,\n"t::b" 2.0\n}\n')
    with pytest.raises(pytest.UsageError, match=rf"^{path}:3: Expecting ':' delimiter$"):
        durations.read(path)


def test_the_committed_durations_name_tests_by_their_ids() -> None:
    recorded = durations.read(ROOT / "tests" / "durations.json")
    assert recorded and all(took >= durations.RECORDED for took in recorded.values())
    assert all(test.startswith("tests/") and "::" in test for test in recorded)


@pytest.mark.parametrize(("reported", "test"), [
    ("tests/lab/test_a.py::test_x@tests/lab/test_a.py", "tests/lab/test_a.py::test_x"),
    ("tests/unit/test_b.py::test_y[a@b]", "tests/unit/test_b.py::test_y[a@b]"),
    ("tests/unit/test_b.py::test_y[a@b]@grp", "tests/unit/test_b.py::test_y[a@b]"),
    ("tests/unit/test_c.py::test_z", "tests/unit/test_c.py::test_z"),
])
def test_a_grouped_test_is_recorded_under_its_collected_id(tmp_path: Path, reported: str,
                                                           test: str) -> None:
    recorder = durations.Recorder(tmp_path / "d.json")
    recorder.pytest_runtest_logreport(Phase(reported, 1.5))
    recorder.pytest_runtest_logreport(Phase(reported, 1.0))
    recorder.pytest_sessionfinish()
    assert json.loads((tmp_path / "d.json").read_text(encoding="utf-8")) == {test: 2.5}
