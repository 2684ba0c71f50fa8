"""The order the suite starts its tests in: the longest work first.

xdist hands the worker groups out in the order of the collection, and a worker that finishes
takes the next one; started longest first, the last group to start is a short one, and no
worker is left running a four-minute lab while the others wait. The seconds come from
``tests/durations.json`` (``make durations`` rewrites it from a full run): each test's setup,
call and teardown together, for the tests that took ``RECORDED`` seconds or more.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

#: Tests quicker than this are not written down (they count their lane's default).
RECORDED = 1.0

T = TypeVar("T")


def read(path: Path) -> dict[str, float]:
    """The recorded seconds by test id (none when the file is missing); a broken file is a
    usage error naming its line."""
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise pytest.UsageError(f"{path}:{exc.lineno}: {exc.msg}") from None


def longest_first(groups: Sequence[Sequence[T]], seconds: Callable[[T], float]) -> list[T]:
    """The groups' tests, the group expected to take longest (the sum of its tests'
    ``seconds``) first; ties, and each group's own tests, keep their order."""
    def expected(group: Sequence[T]) -> float:
        return sum(seconds(test) for test in group)

    return [test for group in sorted(groups, key=expected, reverse=True) for test in group]


def collected_id(nodeid: str) -> str:
    """A test's id as collected: xdist's ``--dist loadgroup`` reports it with ``@GROUP``
    appended (an ``@`` after the last ``]``, as xdist itself tells them apart)."""
    at = nodeid.rfind("@")
    return nodeid[:at] if at > nodeid.rfind("]") else nodeid


class Report(Protocol):
    """What the recorder reads of pytest's report of a test's phase."""

    nodeid: str
    duration: float


class Recorder:
    """A pytest plugin adding up each test's setup, call and teardown, and writing them at
    the session's end over the recorded ones (the tests not run keep theirs), longest first,
    the tests under ``RECORDED`` seconds left out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: Report) -> None:
        test = collected_id(report.nodeid)
        self.seconds[test] = self.seconds.get(test, 0.0) + report.duration

    def pytest_sessionfinish(self) -> None:
        merged = {**read(self.path), **self.seconds}
        kept = {test: round(took, 1) for test, took in merged.items() if took >= RECORDED}
        ordered = dict(sorted(kept.items(), key=lambda pair: -pair[1]))
        self.path.write_text(json.dumps(ordered, ensure_ascii=False, indent=0) + "\n",
                             encoding="utf-8")
