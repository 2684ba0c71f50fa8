"""What the election-period operations must not forget across a restart.

Kept in the monitor's state database (its own tables, its own connection; the database is in
WAL mode, so the state engine's writes and these never block each other for long):

* ``drill_spans``: per drill and commune, the spans of time it was connected (the drill
  report is rebuilt from them, also by ``tslcd-monitor report drill --state DB``);
* ``ops_alerts``: the open deadline, escalation and inspection alerts, so that a restart
  neither sends a warning twice nor forgets to resolve one;
* ``attested``: milestones recorded by a person (``tslcd-monitor report attest``), one row per
  commune and milestone, the latest record replacing an earlier one;
* ``watched``: when the monitor first observed each commune (a milestone is "late" only when
  its due day ended while the monitor was watching). A database from before this table takes
  each commune's first recorded status change (the ``history`` table) as its first observation.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import structlog

from monitor.alerts.event import AlertEvent

log = structlog.get_logger("ops_store")
T = TypeVar("T")

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
CREATE TABLE IF NOT EXISTS attested (
    province TEXT NOT NULL, commune TEXT NOT NULL, milestone TEXT NOT NULL,
    day TEXT NOT NULL, who TEXT NOT NULL, recorded REAL NOT NULL,
    PRIMARY KEY (province, commune, milestone)
);
CREATE TABLE IF NOT EXISTS watched (
    province TEXT NOT NULL, commune TEXT NOT NULL, since REAL NOT NULL,
    PRIMARY KEY (province, commune)
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


@dataclass(frozen=True, slots=True)
class Attestation:
    """A milestone recorded by a person: met on ``day`` per ``who`` (``recorded``: when the
    record was stored, Unix time)."""

    province: str
    commune: str
    milestone: str
    day: dt.date
    who: str
    recorded: float

    @property
    def key(self) -> str:
        return f"{self.province}/{self.commune}"


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

    # -- readiness -------------------------------------------------------------------------

    def watched(self) -> dict[str, float]:
        """``PROV/COMMUNE`` -> when the monitor first observed it (see :func:`_query_watched`)."""
        with self._lock:
            return _query_watched(self._db)

    def record_watched(self, first: list[tuple[str, str, float]]) -> bool:
        """Communes observed for the first time: (province, commune, at); never overwritten."""
        with self._lock:
            return self._write(lambda db: db.executemany(
                "INSERT OR IGNORE INTO watched VALUES (?, ?, ?)", first))

    def attestations(self) -> list[Attestation]:
        with self._lock:
            return _query_attestations(self._db)

    def attested_version(self) -> tuple[int, float | None]:
        """Changes whenever an attestation is stored (``report attest`` while running)."""
        with self._lock:
            count, latest = self._db.execute(
                "SELECT COUNT(*), MAX(recorded) FROM attested").fetchone()
        return int(count), latest

    def attest(self, records: list[Attestation]) -> bool:
        """Store the records in one transaction (all or none); one per commune and
        milestone, a later record replacing an earlier one."""
        with self._lock:
            return self._write(lambda db: db.executemany(
                "INSERT OR REPLACE INTO attested VALUES (?, ?, ?, ?, ?, ?)",
                [(a.province, a.commune, a.milestone, a.day.isoformat(), a.who, a.recorded)
                 for a in records]))

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
    return _read_only(path, "the drill", lambda db: _query_spans(db, drill)
                      if "drill_spans" in _tables(db) else {})


def _read_only(path: str | Path, what: str, read: Callable[[sqlite3.Connection], T]) -> T:
    """``read`` on the database at ``path`` opened read-only (a report never creates or
    changes the state); ValueError naming the file and ``what`` could not be read."""
    uri = f"file:{Path(path).resolve()}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise ValueError(f"{path}: cannot open the state database: {exc}") from exc
    try:
        return read(db)
    except sqlite3.Error as exc:
        raise ValueError(f"{path}: cannot read {what} from the state database: {exc}") from exc
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


@dataclass(frozen=True, slots=True)
class ReadinessRecord:
    """What a state database holds for the readiness report."""

    first_passed: dict[str, dict[str, float]]  # "PROV/COMMUNE" -> check -> Unix time
    watched: dict[str, float]  # "PROV/COMMUNE" -> first observation
    attestations: list[Attestation]
    segment: frozenset[str]  # "PROV/COMMUNE" whose own agent has reported


def read_readiness(path: str | Path) -> ReadinessRecord:
    """The readiness inputs of a state database on disk (read-only); ValueError naming the
    file if unreadable. Tables a database does not have yet read as empty."""
    return _read_only(path, "the readiness", _query_readiness)


def _query_readiness(db: sqlite3.Connection) -> ReadinessRecord:
    tables = _tables(db)
    first: dict[str, dict[str, float]] = {}
    if "first_passed" in tables:
        for province, commune, check, at in db.execute(
                "SELECT province, commune, check_name, at FROM first_passed"):
            first.setdefault(f"{province}/{commune}", {})[check] = float(at)
    return ReadinessRecord(
        first, _query_watched(db),
        _query_attestations(db) if "attested" in tables else [],
        _segment_scopes(db) if "trackers" in tables else frozenset())


def _tables(db: sqlite3.Connection) -> set[str]:
    return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _query_watched(db: sqlite3.Connection) -> dict[str, float]:
    """The first observation of each commune: the ``watched`` record, or, for communes a
    database from before it does not list, the commune's first recorded status change."""
    tables = _tables(db)
    parts = [f"SELECT province, commune, {column} AS seen FROM {table}{where}"
             for table, column, where in (("watched", "since", ""),
                                          ("history", "at", " WHERE host IS NULL"))
             if table in tables]
    if not parts:
        return {}
    rows = db.execute(f"SELECT province, commune, MIN(seen) FROM ({' UNION ALL '.join(parts)}) "
                      "GROUP BY province, commune")
    return {f"{province}/{commune}": float(since) for province, commune, since in rows}


def _query_attestations(db: sqlite3.Connection) -> list[Attestation]:
    return [Attestation(province, commune, milestone, dt.date.fromisoformat(day), who,
                        float(recorded))
            for province, commune, milestone, day, who, recorded in db.execute(
                "SELECT province, commune, milestone, day, who, recorded FROM attested "
                "ORDER BY province, commune, milestone")]


def _segment_scopes(db: sqlite3.Connection) -> frozenset[str]:
    """Communes whose own agent has trackers (``PROV/COMMUNE@PROV/COMMUNE``, the state
    database's per-vantage scopes)."""
    rows = db.execute("SELECT DISTINCT scope FROM trackers WHERE scope LIKE '%@%'")
    return frozenset(key for (scope,) in rows
                     for key, _, vantage in [scope.partition("@")] if key == vantage)
