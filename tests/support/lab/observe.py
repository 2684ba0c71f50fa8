"""Reading what a monitor in the lab did, from files (test-only): alert events a webhook
receiver wrote (:mod:`tests.support.lab.webhook_file`), cycles from its JSON log, its
metrics from an
exposition file; and waiting on them by polling, never on fixed sleeps."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

WAIT = 60.0  # seconds: generous for a loaded 2-core CI machine
POLL = 0.1  # seconds between two looks at the files: a wait ends soon after its condition

#: (event, commune, host) of an alert: what a test expects to fire.
Fired = tuple[str, str | None, str | None]


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def events(path: Path) -> list[dict]:
    """Alert events received so far (one JSON body a line)."""
    return [json.loads(line) for line in lines(path) if line.strip()]


def fired(received: Iterable[dict], state: str = "firing") -> list[Fired]:
    return [(e["event"], e["commune"], e["host"]) for e in received if e["state"] == state]


def still_open(received: Iterable[dict]) -> list[Fired]:
    """The alerts fired and not (yet) resolved, by id."""
    firing: dict[str, Fired] = {}
    for e in received:
        if e["state"] == "firing":
            firing[e["id"]] = (e["event"], e["commune"], e["host"])
        else:
            firing.pop(e["id"], None)
    return list(firing.values())


def log_events(path: Path, name: str) -> list[dict]:
    """Records of a JSON log with ``"event": name``."""
    out = []
    for line in lines(path):
        if f'"{name}"' in line:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == name:
                out.append(record)
    return out


def cycles(log: Path) -> int:
    return sum('"cycle_done"' in line for line in lines(log))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT,
               detail: Callable[[], object] | None = None, poll: float = POLL) -> None:
    """Poll ``condition`` every ``poll`` seconds; on time-out fail with ``what`` and
    ``detail()`` (what was seen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(poll)
    seen = f"; seen: {detail()}" if detail is not None else ""
    raise AssertionError(f"timed out waiting for {what}{seen}")


def wait_cycles(log: Path, count: int, timeout: float = WAIT) -> int:
    """Wait until ``count`` more cycles are logged; returns the new total."""
    goal = cycles(log) + count
    wait_until(lambda: cycles(log) >= goal, f"{count} more cycles", timeout)
    return cycles(log)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Samples of a Prometheus exposition: (name, labels) -> value."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def metrics(path: Path) -> Samples:
    """Samples of an exposition file (none before its first write)."""
    return parse(path.read_text(encoding="utf-8") if path.exists() else "")


def by_label(samples: Samples, name: str,
             *keys: str) -> dict[tuple[str, ...], float]:
    """One metric's values keyed by the given labels, e.g. ``("commune", "host")``."""
    out = {}
    for (metric, labels), value in samples.items():
        if metric == name:
            as_dict = dict(labels)
            out[tuple(as_dict.get(k, "") for k in keys)] = value
    return out
