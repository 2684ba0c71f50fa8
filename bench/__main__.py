"""``python -m bench`` (``make bench``): every benchmark of the project, one table.

``python -m bench inventory icmp`` runs only those (module names without ``bench_``).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback

import bench
from bench import Row, machine, table


def _modules() -> list[str]:
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(bench.__path__)
                  if m.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    from monitor.common import log

    log.configure("warning", json=False)  # the program's logs on stderr, never in the table
    names = argv or _modules()
    rows: list[Row] = []
    failed = 0
    for name in names:
        started = time.monotonic()
        print(f"bench: {name} …", file=sys.stderr, flush=True)
        try:
            rows += importlib.import_module(f"bench.bench_{name}").run()
        except Exception:
            failed += 1
            traceback.print_exc()
            rows.append(Row(f"{name}: FAILED", float("nan"), "", "see the log above"))
        print(f"bench: {name} took {time.monotonic() - started:.0f} s", file=sys.stderr)
    print(f"Machine: {machine()}\n")
    print(table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
