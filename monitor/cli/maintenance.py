"""``tslcd-monitor maintenance add|list|end``: run-time maintenance windows in the state
database, on the machine of the monitor.

The command writes the monitor's own state database (``--state``, the ``state`` of its
configuration), which the running monitor re-reads at its next cycle: no restart, no token,
no network (whoever may write that file runs the monitor anyway). From elsewhere, the API
does the same with a token: ``POST/GET /api/v1/maintenance``, ``DELETE
/api/v1/maintenance/ID``. The inventory's windows still apply and are not listed here.
"""

from __future__ import annotations

import argparse
import getpass
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from monitor.common.exits import EXIT_BAD_INPUT, EXIT_OK
from monitor.store.maintenance_db import MaintenanceBook, StoredWindow, parse_time

#: ``end ID`` of a window that does not exist or is over already.
EXIT_NOT_FOUND = 1


def register(sub: Any) -> None:
    """Add ``maintenance add``, ``list`` and ``end`` to the subcommands."""
    maintenance = sub.add_parser("maintenance", help="maintenance windows set while the monitor "
                                                     "runs (alerts held; no restart)")
    verbs = maintenance.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = verbs.add_parser("add", help="hold the alerts of a province or commune for a while")
    _state(p)
    p.add_argument("--scope", required=True, metavar="PROV[/COMMUNE]")
    p.add_argument("--from", dest="start", metavar="TIME",
                   help="ISO date-time, Vietnam time unless an offset is given (default: now)")
    p.add_argument("--to", dest="end", required=True, metavar="TIME")
    p.add_argument("--comment", required=True, help="why (shown with the window)")
    p.add_argument("--by", default=None, help="who sets it (default: the login name)")
    p.set_defaults(handler=cmd_add)
    p = verbs.add_parser("list", help="the windows not over yet (with --all: every one)")
    _state(p)
    p.add_argument("--all", action="store_true")
    p.set_defaults(handler=cmd_list)
    p = verbs.add_parser("end", help="end a window now")
    _state(p)
    p.add_argument("id", type=int)
    p.set_defaults(handler=cmd_end)


def _state(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", required=True, help="the monitor's SQLite state database")


@contextmanager
def _book(path: str) -> Iterator[MaintenanceBook]:
    """The state database's book; its absence or unreadability is bad input (exit 2)."""
    if not Path(path).is_file():
        raise ValueError(f"--state {path}: no such state database (the monitor's `state`)")
    try:
        book = MaintenanceBook(path)
    except sqlite3.Error as exc:
        raise ValueError(f"--state {path}: cannot open the state database: {exc}") from None
    try:
        yield book
    finally:
        book.close()


def _line(w: StoredWindow) -> str:
    shown = w.as_json()
    ended = f" (kết thúc sớm / ended {shown['ended']})" if w.ended_at is not None else ""
    return (f"{w.id}\t{w.scope}\t{shown['from']} → {shown['to']}{ended}\t"
            f"{w.created_by}\t{w.comment}")


def _guarded(command: Any) -> Any:
    """Bad input -> its message on stderr and exit 2, as the other commands do."""
    def run(args: argparse.Namespace) -> int:
        try:
            return int(command(args))
        except (ValueError, sqlite3.Error) as exc:
            print(f"maintenance {args.verb}: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT

    run.__doc__ = command.__doc__
    return run


@_guarded
def cmd_add(args: argparse.Namespace) -> int:
    """Store the window; print it (its id first)."""
    start = parse_time(args.start, "--from") if args.start else time.time()
    end = parse_time(args.end, "--to")
    with _book(args.state) as book:
        window = book.add(args.scope, start, end, args.comment, args.by or getpass.getuser())
    print(_line(window))
    return EXIT_OK


@_guarded
def cmd_list(args: argparse.Namespace) -> int:
    """One line per window: id, scope, from → to, by, comment."""
    with _book(args.state) as book:
        for window in book.listed(ended=args.all):
            print(_line(window))
    return EXIT_OK


@_guarded
def cmd_end(args: argparse.Namespace) -> int:
    """End the window now; exit 1 when there is no such window still running or to come."""
    with _book(args.state) as book:
        ended = book.end(args.id)
    if ended is None:
        print(f"maintenance end: no window {args.id} running or to come", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(_line(ended))
    return EXIT_OK
