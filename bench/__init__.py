"""The project's benchmarks: `python -m bench` runs them all and prints one table.

Each benchmark module ``bench/bench_*.py`` defines ``run() -> list[Row]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Row:
    benchmark: str  # what was measured, e.g. "validate nationwide inventory"
    value: float
    unit: str  # "s", "ms", "MB", "x", "msg/s" ...
    note: str = ""  # conditions, comparison, goal


def machine() -> str:
    """One line naming the machine the numbers were measured on."""
    import os
    import platform

    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (the README shows the latest one)."""
    lines = ["| benchmark | value | unit | note |", "| --- | ---: | --- | --- |"]
    lines += [f"| {r.benchmark} | {r.value:.3g} | {r.unit} | {r.note} |" for r in rows]
    return "\n".join(lines)


def main(run: Callable[[], list[Row]]) -> None:
    """``python -m bench.bench_x``: one benchmark's rows as a table."""
    print(table(run()))
