"""``tslcd-monitor report readiness|drill|availability|attest``: from the inventory and the state.

The report modules (openpyxl, sqlite, the drill tracker) are imported by the command that
needs them, not by every start of ``tslcd-monitor``: ``check`` pays for none of them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from inventory.model import Drill, Inventory
    from monitor.store.ops_db import Span

T = TypeVar("T")

#: What both reports can be written as (``monitor.present.reports.WRITERS``,
#: ``monitor.present.drill_report.WRITERS``).
FORMATS = ("csv", "html", "xlsx")
#: ``report availability`` also as JSON (``monitor.present.availability.WRITERS``).
AVAILABILITY_FORMATS = (*FORMATS, "json")


def register(sub: Any) -> None:
    """Add ``report readiness``, ``drill``, ``availability`` and ``attest`` to the subcommands."""
    report = sub.add_parser("report", help="reports against the inventory's milestones")
    kinds = report.add_subparsers(dest="report", required=True, metavar="REPORT")
    p = kinds.add_parser("readiness", help="per commune: each milestone met (on time, late, "
                                           "attested), not met or not observable")
    _add_common(p)
    p.add_argument("--lang", choices=("vi", "en"), default="vi",
                   help="language of the cells (default: Vietnamese)")
    p.set_defaults(handler=cmd_report_readiness)
    p = kinds.add_parser("attest", help="record milestones verified by a person (CSV: commune, "
                                        "milestone, date, who), shown as attested")
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument("--inventory", required=True)
    p.add_argument("--state", required=True, help="the monitor's SQLite state database")
    p.set_defaults(handler=cmd_report_attest)
    p = kinds.add_parser("drill", help="per commune: connected during the drill, from when to "
                                       "when; the communes that never connected")
    _add_common(p)
    p.add_argument("--drill", help="the drill's id (default: the one running, else the latest)")
    p.set_defaults(handler=cmd_report_drill)
    p = kinds.add_parser("availability", help="per commune, with totals per operator and "
                                              "province: availability, outages, downtime")
    _add_common(p, AVAILABILITY_FORMATS)
    p.add_argument("--from", dest="from_day", metavar="DATE",
                   help="first day, Vietnam time (2026-02-06 or 06/02/2026; default: the "
                        "first the state holds)")
    p.add_argument("--to", dest="to_day", metavar="DATE",
                   help="last day, included (default: the last the state holds)")
    p.set_defaults(handler=cmd_report_availability)


def _add_common(p: argparse.ArgumentParser, formats: tuple[str, ...] = FORMATS) -> None:
    p.add_argument("--inventory", required=True)
    p.add_argument("--state", required=True, help="the monitor's SQLite state database")
    p.add_argument("--format", choices=formats, default="csv")
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")


def _from_state(args: argparse.Namespace, read: Callable[[Inventory], T]
                ) -> tuple[Inventory, T] | None:
    """The inventory and what ``read`` takes from the state database (opened read-only: a
    report never creates one); None, with the problem printed, on bad input."""
    from inventory.loader import InventoryError, load
    from monitor.store.path_check import StatePathError, check_readable

    try:
        inventory = load(args.inventory)
        check_readable(args.state)
        return inventory, read(inventory)
    except (InventoryError, StatePathError, ValueError, OSError) as exc:
        print(exc, file=sys.stderr)
        return None


def cmd_report_readiness(args: argparse.Namespace) -> int:
    """Exit 0 with the report written; 2 on an unreadable inventory or database."""
    from monitor.present import reports

    inputs = _from_state(args, lambda _: reports.evidence_from_db(args.state))
    if inputs is None:
        return 2
    report = reports.readiness(*inputs, time.time())
    return _write(reports.WRITERS[args.format](report, args.lang), args.output)


def cmd_report_attest(args: argparse.Namespace) -> int:
    """Exit 0 with every row stored; 2, storing nothing, on any bad row or input
    (:mod:`monitor.cli.attest`)."""
    from inventory.loader import InventoryError, load
    from monitor.cli.attest import AttestError, read_attestations
    from monitor.store.ops_db import OpsStore
    from monitor.store.path_check import StatePathError, check_writable

    try:
        inventory = load(args.inventory)
        records = read_attestations(args.file, inventory, time.time())
        check_writable(args.state)
    except (InventoryError, StatePathError, AttestError) as exc:
        print(exc, file=sys.stderr)
        return 2
    store = OpsStore(args.state)
    try:
        stored = store.attest(records)
    finally:
        store.close()
    if not stored:
        print(f"{args.state}: cannot store the attestations (see the log)", file=sys.stderr)
        return 2
    print(f"{len(records)} attestation(s) stored in {args.state}")
    return 0


def cmd_report_availability(args: argparse.Namespace) -> int:
    """Exit 0 with the report written; 2 on bad input (inventory, database, dates)."""
    from monitor.present import availability

    inputs = _from_state(args, lambda _: (availability.period(args.from_day, args.to_day),
                                          availability.history_from_db(args.state)))
    if inputs is None:
        return 2
    inventory, ((start, end), history) = inputs
    report = availability.availability(inventory, history, start, end, time.time())
    return _write(availability.WRITERS[args.format](report), args.output)


def pick_drill(inventory: Inventory, ident: str | None, now: float) -> Drill:
    """The named drill; else the one running; else the latest that started. ValueError."""
    if ident is not None:
        for drill in inventory.drills:
            if drill.id == ident:
                return drill
        known = ", ".join(d.id for d in inventory.drills) or "none"
        raise ValueError(f"--drill {ident}: no such drill in the inventory (drills: {known})")
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    started = [d for d in inventory.drills if d.start <= at]
    if not started:
        raise ValueError("the inventory has no drill that has started yet (drills:)")
    running = [d for d in started if d.active(at)]
    return max(running or started, key=lambda d: d.start)


def cmd_report_drill(args: argparse.Namespace) -> int:
    """Exit 0 with the report written; 2 on bad input (inventory, database, drill id)."""
    from monitor.decide import drills
    from monitor.present import drill_report
    from monitor.store.ops_db import read_spans

    now = time.time()

    def read(inventory: Inventory) -> tuple[Drill, dict[str, list[Span]]]:
        drill = pick_drill(inventory, args.drill, now)
        return drill, read_spans(args.state, drill.id)

    inputs = _from_state(args, read)
    if inputs is None:
        return 2
    inventory, (drill, spans) = inputs
    live = None
    if drill.active(dt.datetime.fromtimestamp(now, dt.UTC)) and spans:
        # the monitor's latest sample: the live count is of the communes it saw connected
        live = drills.LiveCount(0, 0, max(s.end for ss in spans.values() for s in ss))
    return _write(
        drill_report.WRITERS[args.format](drills.drill_report(drill, inventory, spans, now, live)),
        args.output)


def _write(data: bytes, output: str) -> int:
    """0 with the report written; 2, naming the file, when it cannot be."""
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        print(f"{output}: cannot write the report: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0
