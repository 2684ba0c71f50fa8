"""``tslcd-monitor report drill``: a drill's report from the inventory and the state database."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

from inventory.model import Drill, Inventory
from monitor import drills
from monitor.ops_store import read_spans


def register(kinds: Any) -> None:
    """Add ``drill`` to the subcommands of ``report``."""
    p = kinds.add_parser("drill", help="per commune: connected during the drill, from when to "
                                       "when; the communes that never connected")
    p.add_argument("--inventory", required=True)
    p.add_argument("--state", required=True, help="the monitor's SQLite state database")
    p.add_argument("--drill", help="the drill's id (default: the one running, else the latest)")
    p.add_argument("--format", choices=sorted(drills.WRITERS), default="csv")
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    p.set_defaults(handler=cmd_report_drill)


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
    from inventory.loader import InventoryError, load

    now = time.time()
    try:
        inventory = load(args.inventory)
        drill = pick_drill(inventory, args.drill, now)
        spans = read_spans(args.state, drill.id)
    except (InventoryError, ValueError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 2
    live = None
    if drill.active(dt.datetime.fromtimestamp(now, dt.UTC)) and spans:
        # the monitor's latest sample: the live count is of the communes it saw connected
        live = drills.LiveCount(0, 0, max(s.end for ss in spans.values() for s in ss))
    data = drills.WRITERS[args.format](drills.drill_report(drill, inventory, spans, now, live))
    if args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        Path(args.output).write_bytes(data)
    return 0
