"""What the election-period operations must not forget across a restart.

Kept in the monitor's state database (its own tables, its own connection; the database is in
WAL mode, so the state engine's writes and these never block each other for long):

* ``drill_spans``: per drill and commune, the spans of time it was connected (the drill
  report is rebuilt from them, also by ``tslcd-monitor report drill --state DB``);
* ``ops_alerts``: the open deadline, escalation and inspection alerts, so that a restart
  neither sends a warning twice nor forgets to resolve one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from monitor.alerts.event import AlertEvent

log = structlog.get_logger("ops_store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drill_spans (
    drill TEXT NOT NULL, province TEXT NOT NULL, commune TEXT NOT NULL,
    start REAL NOT NULL, end REAL NOT NULL, open INTEGER NOT NULL,
    PRIMARY KEY (drill, province, commune, start)
);
CREATE TABLE IF NOT EXISTS ops_alerts (
    key TEXT PRIMARY KEY, payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ops_done (
    key TEXT PRIMARY KEY, at REAL NOT NULL
);
"""


@dataclass(slots=True)
class Span:
    """A commune connected from ``start`` to ``end`` (Unix times of the first and last
    cycles that saw it connected); ``open`` while the latest cycle still saw it."""

    province: str
    commune: str
    start: float
    end: float
    open: bool


class OpsStore:
    """SQLite tables of the operations; ``:memory:`` keeps them for this process only.

    Reports are built in worker threads (the web, the schedule) while the event loop records
    samples: one connection, shared under a lock."""

    def __init__(self, path: str | Path = ":memory:", *, busy_timeout: float = 0.5) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- drills ----------------------------------------------------------------------------

    def spans(self, drill: str) -> dict[str, list[Span]]:
        """``PROV/COMMUNE`` -> its spans in time order."""
        with self._lock:
            return _query_spans(self._db, drill)

    def save_spans(self, drill: str, spans: list[Span]) -> bool:
        """Insert or update the given spans in one transaction; False when the write failed."""
        with self._lock:
            return self._write(lambda db: db.executemany(
                "INSERT OR REPLACE INTO drill_spans VALUES (?, ?, ?, ?, ?, ?)",
                [(drill, s.province, s.commune, s.start, s.end, int(s.open)) for s in spans]))

    # -- alerts ----------------------------------------------------------------------------

    def open_alerts(self) -> dict[str, AlertEvent]:
        with self._lock:
            rows = self._db.execute("SELECT key, payload FROM ops_alerts").fetchall()
        return {key: AlertEvent.from_json(payload) for key, payload in rows}

    def done(self) -> set[str]:
        with self._lock:
            return {key for (key,) in self._db.execute("SELECT key FROM ops_done")}

    def record_alerts(self, opened: dict[str, AlertEvent], closed: list[str],
                      done: dict[str, float]) -> bool:
        def write(db: sqlite3.Connection) -> None:
            db.executemany("INSERT OR REPLACE INTO ops_alerts VALUES (?, ?)",
                           [(k, ev.to_json()) for k, ev in opened.items()])
            db.executemany("DELETE FROM ops_alerts WHERE key = ?", [(k,) for k in closed])
            db.executemany("INSERT OR IGNORE INTO ops_done VALUES (?, ?)", done.items())

        with self._lock:
            return self._write(write)

    def _write(self, statements: Callable[[sqlite3.Connection], object]) -> bool:
        """Run ``statements`` in one transaction; False (and logged) when it failed."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            statements(self._db)
            self._db.execute("COMMIT")
            return True
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            log.error("ops_store_error", path=self.path, error=str(exc))
            return False


def read_spans(path: str | Path, drill: str) -> dict[str, list[Span]]:
    """The drill's spans from a state database on disk (read-only); ValueError if unreadable."""
    uri = f"file:{Path(path).resolve()}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise ValueError(f"{path}: cannot open the state database: {exc}") from exc
    try:
        has_table = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'drill_spans'").fetchone()
        return _query_spans(db, drill) if has_table else {}
    except sqlite3.Error as exc:
        raise ValueError(f"{path}: cannot read the drill from the state database: {exc}") \
            from exc
    finally:
        db.close()


def _query_spans(db: sqlite3.Connection, drill: str) -> dict[str, list[Span]]:
    out: dict[str, list[Span]] = {}
    rows = db.execute(
        "SELECT province, commune, start, end, open FROM drill_spans WHERE drill = ? "
        "ORDER BY province, commune, start", (drill,))
    for province, commune, start, end, is_open in rows:
        out.setdefault(f"{province}/{commune}", []).append(
            Span(province, commune, start, end, bool(is_open)))
    return out
