"""Maintenance windows set while the monitor runs (API or CLI), kept in the state database.

They add to the inventory's windows, which still apply: the engine, the operations calendar
and the metrics ask :meth:`MaintenanceBook.windows` for both (see ``monitor.decide.verdicts.
in_maintenance``, the one rule). The book is a table of its own in the state database, read
through a connection of its own: the CLI (another process) writes the same file, and a
running monitor sees the change at its next cycle, with no restart. A window is never
deleted: ending it sets its end to the moment it was ended, so the record stays.

Reads are cached and re-done only when the database changed (``PRAGMA data_version``, which
another connection's commit moves), at most once per ``recheck`` seconds: the engine asks
for every subject of every cycle.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inventory import official
from inventory.model import Maintenance
from inventory.official import commune_code, province_code
from monitor.common.clock import VIETNAM_TZ, aware

#: The longest window one may set at run time (a longer one belongs in the inventory).
MAX_SPAN = dt.timedelta(days=31)
MAX_COMMENT = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS maintenance (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
    comment TEXT NOT NULL, created_by TEXT NOT NULL, created_at REAL NOT NULL,
    ended_at REAL
);
"""


@dataclass(frozen=True, slots=True)
class StoredWindow:
    """One window of the book (times are Unix seconds)."""

    id: int
    scope: str  # PROV or PROV/COMMUNE, official codes
    start: float
    end: float
    comment: str
    created_by: str
    created_at: float
    ended_at: float | None = None

    @property
    def window(self) -> Maintenance:
        """As the inventory's windows are, for ``verdicts.in_maintenance``."""
        return Maintenance(self.scope, dt.datetime.fromtimestamp(self.start, VIETNAM_TZ),
                           dt.datetime.fromtimestamp(self.end, VIETNAM_TZ))

    def as_json(self) -> dict[str, object]:
        def iso(t: float | None) -> str | None:
            return None if t is None else dt.datetime.fromtimestamp(t, VIETNAM_TZ).isoformat()

        return {"id": self.id, "scope": self.scope, "from": iso(self.start), "to": iso(self.end),
                "comment": self.comment, "by": self.created_by, "created": iso(self.created_at),
                "ended": iso(self.ended_at)}


def normalise_scope(text: str) -> str:
    """``PROV[/COMMUNE]`` with official zero-padded codes; ValueError when malformed or
    not in the official list of units (a typo would otherwise hold nothing, silently)."""
    prov, _, comm = str(text).strip().strip("/").partition("/")
    if not prov or "/" in comm:
        raise ValueError(f"scope {str(text)[:40]!r}: expected PROV or PROV/COMMUNE")
    province, commune = province_code(prov), commune_code(comm) if comm else None
    unit = official.provinces().get(province)
    if unit is None or (commune is not None and commune not in unit.communes):
        raise ValueError(f"scope {str(text)[:40]!r}: no such province or commune in the "
                         "official list")
    return province + (f"/{commune}" if commune else "")


def parse_time(text: str, what: str) -> float:
    """ISO 8601 date-time (or date: its midnight); no offset means Vietnam time."""
    try:
        return aware(dt.datetime.fromisoformat(str(text).strip())).timestamp()
    except ValueError:
        raise ValueError(f"{what} {str(text)[:40]!r}: not an ISO date-time "
                         "(2026-03-15T22:00, Vietnam time unless an offset is given)") from None


def check_window(start: float, end: float, comment: str, now: float) -> str:
    """The rule for a run-time window, written once for the API and the CLI: a comment,
    an end after its start and in the future, at most ``MAX_SPAN``. The cleaned comment;
    ValueError saying what is wrong."""
    comment = str(comment).strip()
    if not comment:
        raise ValueError("Cần ghi chú lý do / a comment is required")
    if end <= start:
        raise ValueError("the window must end after it starts")
    if end <= now:
        raise ValueError("the window is already over")
    if end - start > MAX_SPAN.total_seconds():
        raise ValueError(f"a window set at run time lasts at most {MAX_SPAN.days} days "
                         "(put longer ones in the inventory)")
    return comment[:MAX_COMMENT]


class MaintenanceBook:
    """The ``maintenance`` table of the state database (``:memory:`` without one)."""

    def __init__(self, path: str | Path, *, recheck: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self.recheck = recheck
        self.clock = clock
        self._lock = threading.Lock()  # the web thread writes, the engine's reads
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.executescript(_SCHEMA)
        self._cached: tuple[Maintenance, ...] = ()
        self._version: int | None = None
        self._checked = float("-inf")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, scope: str, start: float, end: float, comment: str,
            created_by: str) -> StoredWindow:
        """Store a window (checked by :func:`check_window`); ValueError when it is wrong."""
        now = self.clock()
        scope = normalise_scope(scope)
        comment = check_window(start, end, comment, now)
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO maintenance (scope, start, end, comment, created_by, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (scope, start, end, comment, created_by, now))
            self._stale()
        return StoredWindow(int(cursor.lastrowid or 0), scope, start, end, comment, created_by,
                            now)

    def get(self, ident: int) -> StoredWindow | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM maintenance WHERE id = ?",
                                   (ident,)).fetchone()
        return StoredWindow(*row) if row else None

    def listed(self, *, ended: bool = False) -> list[StoredWindow]:
        """Windows not over yet, soonest start first (with ``ended``: every window)."""
        query = f"SELECT {_COLUMNS} FROM maintenance"
        params: tuple[float, ...] = ()
        if not ended:
            query += " WHERE end > ?"
            params = (self.clock(),)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY start, id", params).fetchall()
        return [StoredWindow(*row) for row in rows]

    def end(self, ident: int) -> StoredWindow | None:
        """End a window now (one not started yet ends before it starts); None when there
        is no such window still running or to come."""
        now = self.clock()
        with self._lock:
            cursor = self._db.execute(
                "UPDATE maintenance SET end = MAX(start, ?), ended_at = ? "
                "WHERE id = ? AND end > ?", (now, now, ident, now))
            self._stale()
        return self.get(ident) if cursor.rowcount else None

    def _stale(self) -> None:
        """This connection wrote (its own commits do not move ``data_version``)."""
        self._version, self._checked = None, float("-inf")

    def windows(self) -> tuple[Maintenance, ...]:
        """The windows not over yet, as the inventory's are: what the engine, operations
        and metrics add to the inventory's. Cached; re-read when the database changed."""
        moment = time.monotonic()
        with self._lock:
            if moment - self._checked < self.recheck:
                return self._cached
            self._checked = moment
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM maintenance WHERE end > ?",
                                        (self.clock(),)).fetchall()
                self._cached = tuple(StoredWindow(*row).window for row in rows)
                self._version = version
            return self._cached


_COLUMNS = "id, scope, start, end, comment, created_by, created_at, ended_at"
