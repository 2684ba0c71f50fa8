"""Validating the nationwide inventory (3,321 communes, ~10,000 hosts): time and memory;
reading its YAML into nodes, the block reader against libyaml; importing the same as a
spreadsheet (one CSV row per computer).

    python -m bench.bench_inventory
"""

from __future__ import annotations

import csv
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import yaml

from bench import Row, main
from inventory import generate, loader, nodes
from inventory.importer import import_spreadsheet
from inventory.model import Inventory

RUNS = 5
GOAL_SECONDS = 2.0


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="tslcd-bench-") as tmp:
        path = Path(tmp) / "national.yaml"
        path.write_text(generate.national(hosts_per_commune=3), encoding="utf-8")
        size_mb = path.stat().st_size / 1e6
        times, inventory = _time_validation(path)
        text = path.read_text(encoding="utf-8")
        block = _best(lambda: nodes._BlockReader(text).document())
        libyaml = _best(lambda: nodes.from_yaml(yaml.compose(text, Loader=nodes._Loader)))
        peak_mb = _peak_memory_mb(path)
        import_seconds = _time_import(inventory, Path(tmp) / "national.csv")
    communes = sum(len(p.communes) for p in inventory.provinces)
    what = f"{communes} communes, {inventory.host_count} hosts, {size_mb:.2f} MB YAML"
    return [
        Row("validate nationwide inventory (median)", statistics.median(times), "s",
            f"{what}; {RUNS} runs; goal < {GOAL_SECONDS:g} s"),
        Row("validate nationwide inventory (best)", min(times), "s", what),
        Row("validate nationwide inventory (peak Python memory)", peak_mb, "MB",
            "tracemalloc, one run"),
        Row("read nationwide YAML into nodes: block reader", block * 1000, "ms",
            f"best of {RUNS}; the tree freed included"),
        Row("read nationwide YAML into nodes: libyaml", libyaml * 1000, "ms",
            f"best of {RUNS}; what the block reader hands over to (with its nodes converted)"),
        Row("import nationwide CSV", import_seconds, "s",
            f"{inventory.host_count} rows, UTF-8; includes validation"),
    ]


def _time_validation(path: Path) -> tuple[list[float], Inventory]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        inventory, problems = loader.validate(path)
        times.append(time.perf_counter() - start)
        assert inventory is not None and not problems, problems[:3]
    return times, inventory


def _best(read: Callable[[], object]) -> float:
    """Best time of ``read``, as the loader runs it: the cyclic GC paused, the tree freed."""
    times = []
    for _ in range(RUNS):
        with loader.gc_paused():
            start = time.perf_counter()
            read()
            times.append(time.perf_counter() - start)
    return min(times)


def _time_import(inventory: Inventory, path: Path) -> float:
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["Mã tỉnh", "Mã xã", "Tên xã", "Nhà mạng", "Mã đường truyền", "Dải IP",
                      "Gateway", "Tên máy", "Địa chỉ IP"])
        for c, h in inventory.hosts():
            out.writerow([c.province, c.code, c.name, c.isp, c.circuit, c.subnet, c.gateway,
                          h.name, h.ip])
    start = time.perf_counter()
    text, problems = import_spreadsheet(path)
    elapsed = time.perf_counter() - start
    assert text is not None, problems[:3]
    return elapsed


def _peak_memory_mb(path: Path) -> float:
    tracemalloc.start()
    try:
        loader.validate(path)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


if __name__ == "__main__":
    main(run)
