"""The project's benchmarks: `python -m bench` runs them all and prints one table.

Each benchmark module ``bench/bench_*.py`` defines ``run() -> list[Row]``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Row:
    benchmark: str  # what was measured, e.g. "validate nationwide inventory"
    value: float
    unit: str  # "s", "ms", "MB", "x", "msg/s" ...
    note: str = ""  # conditions, comparison, goal
