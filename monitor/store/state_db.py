"""The state database (SQLite, WAL): what a restart must not forget.

Debounced host/gateway/target states with their counters, commune statuses, open alerts
(so a restart neither re-sends an alert nor forgets one: the recovery after a restart
resolves the id opened before it), the history of state changes, the first time each
commune passed each check (for the readiness report) and the outbox of alert deliveries.

The engine hands one :class:`Batch` per cycle; it is written in one transaction, so the
database never holds half a cycle. A failed write is logged as ``state_disk_full``
(SQLITE_FULL) or ``state_store_error`` (locked database, anything else) and reported to the
caller, which keeps the batch and retries later.
"""

from __future__ import annotations

import errno
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from monitor.alerts.event import AlertEvent

log = structlog.get_logger("store")

OUTBOX_KEEP = 7 * 86400.0  # seconds a delivered event stays in the outbox (for inspection)

#: (kind, scope, name): kind is host, gateway, backup_gateway or target; scope PROV/COMMUNE
#: (or the vantage, for targets).
TrackerKey = tuple[str, str, str]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trackers (
    kind TEXT NOT NULL, scope TEXT NOT NULL, name TEXT NOT NULL,
    up INTEGER, since REAL, ok INTEGER NOT NULL, fail INTEGER NOT NULL,
    flapping INTEGER NOT NULL,
    PRIMARY KEY (kind, scope, name)
);
CREATE TABLE IF NOT EXISTS communes (
    province TEXT NOT NULL, commune TEXT NOT NULL,
    status INTEGER NOT NULL, since REAL, on_backup INTEGER NOT NULL,
    last_seen REAL, vantage TEXT,
    PRIMARY KEY (province, commune)
);
CREATE TABLE IF NOT EXISTS first_passed (
    province TEXT NOT NULL, commune TEXT NOT NULL, check_name TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (province, commune, check_name)
);
CREATE TABLE IF NOT EXISTS open_alerts (
    key TEXT PRIMARY KEY, id TEXT NOT NULL, payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    at REAL NOT NULL, province TEXT NOT NULL, commune TEXT NOT NULL, host TEXT,
    old TEXT NOT NULL, new TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_commune ON history (province, commune, at);
CREATE TABLE IF NOT EXISTS agent_seq (
    agent TEXT PRIMARY KEY, seq INTEGER NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT NOT NULL, state TEXT NOT NULL, payload TEXT NOT NULL,
    created REAL NOT NULL, delivered REAL,
    PRIMARY KEY (id, state)
);
"""


@dataclass(slots=True)
class TrackerRow:
    kind: str
    scope: str
    name: str
    up: bool | None
    since: float | None
    ok: int
    fail: int
    flapping: bool

    @property
    def key(self) -> TrackerKey:
        return (self.kind, self.scope, self.name)


@dataclass(slots=True)
class CommuneRow:
    province: str
    commune: str
    status: int
    since: float | None
    on_backup: bool
    last_seen: float | None
    vantage: str | None


@dataclass(slots=True)
class HistoryRow:
    at: float
    province: str
    commune: str
    host: str | None  # None: the commune's status; "(gateway)", "(backup_gateway)"
    old: str
    new: str


@dataclass(slots=True)
class Batch:
    """Everything one cycle changed; written in one transaction."""

    trackers: list[TrackerRow] = field(default_factory=list)
    communes: list[CommuneRow] = field(default_factory=list)
    first_passed: list[tuple[str, str, str, float]] = field(default_factory=list)
    history: list[HistoryRow] = field(default_factory=list)
    opened: list[tuple[str, AlertEvent]] = field(default_factory=list)  # (key, firing event)
    closed: list[str] = field(default_factory=list)  # keys; deleted before ``opened`` inserts
    outbox: list[AlertEvent] = field(default_factory=list)
    removed_trackers: list[TrackerKey] = field(default_factory=list)
    removed_communes: list[tuple[str, str]] = field(default_factory=list)
    agent_seqs: list[tuple[str, int, float]] = field(default_factory=list)  # (agent, seq, at)
    removed_agent_seqs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Snapshot:
    trackers: dict[TrackerKey, TrackerRow]
    communes: dict[str, CommuneRow]  # "PROV/COMMUNE" ->
    first_passed: dict[str, dict[str, float]]  # "PROV/COMMUNE" -> check -> at
    open_alerts: dict[str, AlertEvent]  # key -> firing event


class Store:
    """SQLite state database; every method runs on the caller's (event loop's) thread."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 0.5) -> None:
        self.path = str(path)
        # A short busy timeout: a locked database must not stall the probe loop; the
        # engine keeps the batch and retries with the next cycle.
        self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def load(self) -> Snapshot:
        db = self._db
        trackers = {
            (r[0], r[1], r[2]): TrackerRow(
                r[0], r[1], r[2], None if r[3] is None else bool(r[3]), r[4], r[5], r[6],
                bool(r[7]),
            )
            for r in db.execute("SELECT * FROM trackers")
        }
        communes = {
            f"{r[0]}/{r[1]}": CommuneRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6])
            for r in db.execute("SELECT * FROM communes")
        }
        first_passed: dict[str, dict[str, float]] = {}
        for prov, comm, check, at in db.execute("SELECT * FROM first_passed"):
            first_passed.setdefault(f"{prov}/{comm}", {})[check] = at
        open_alerts = {
            key: AlertEvent.from_json(payload)
            for key, payload in db.execute("SELECT key, payload FROM open_alerts")
        }
        return Snapshot(trackers, communes, first_passed, open_alerts)

    def agent_seqs(self) -> dict[str, tuple[int, float]]:
        """Per agent, the last accepted batch's seq and when it was accepted (replay guard
        across collector restarts)."""
        return {agent: (seq, at) for agent, seq, at in
                self._db.execute("SELECT agent, seq, at FROM agent_seq")}

    def write(self, batch: Batch) -> bool:
        """Write the batch atomically; False (and ``state_store_error`` or
        ``state_disk_full`` logged) on failure. Nothing written before is lost: the
        transaction is all or nothing."""
        try:
            with _transaction(self._db) as db:
                _write_batch(db, batch)
        except (sqlite3.Error, OSError) as exc:
            _log_write_error(self.path, exc)
            return False
        return True

    def history(
        self, province: str, commune: str, since: float | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """State changes of one commune (its status, gateways and hosts), oldest first."""
        rows = self._db.execute(
            "SELECT at, host, old, new FROM history WHERE province = ? AND commune = ? "
            "AND at >= ? ORDER BY at, rowid LIMIT ?",
            (province, commune, since if since is not None else float("-inf"), limit),
        )
        return [{"at": at, "host": host, "old": old, "new": new} for at, host, old, new in rows]


    def outbox_pending(self, limit: int = 1000) -> list[AlertEvent]:
        """Alert events not yet handed to every sink (e.g. the process stopped first)."""
        rows = self._db.execute(
            "SELECT payload FROM outbox WHERE delivered IS NULL ORDER BY created, rowid LIMIT ?",
            (limit,),
        )
        return [AlertEvent.from_json(payload) for (payload,) in rows]

    def outbox_done(self, event: AlertEvent) -> bool:
        """Mark an event handed to every sink; forgets deliveries older than a week."""
        now = time.time()
        try:
            with _transaction(self._db) as db:
                db.execute("UPDATE outbox SET delivered = ? WHERE id = ? AND state = ?",
                           (now, event.id, event.state))
                db.execute("DELETE FROM outbox WHERE delivered < ?", (now - OUTBOX_KEEP,))
        except sqlite3.Error as exc:
            _log_write_error(self.path, exc)
            return False
        return True


def is_disk_full(exc: BaseException) -> bool:
    """SQLITE_FULL (or ENOSPC from the file system): the disk holding the state is full."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
        return True
    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or \
        "database or disk is full" in str(exc)


def _log_write_error(path: str, exc: BaseException) -> None:
    """A full disk is named as such (``state_disk_full``): the operator frees space, nothing
    already stored is lost (the transaction is all or nothing) and the engine keeps the
    changes in memory to write them again. Anything else is ``state_store_error``."""
    if is_disk_full(exc):
        log.error("state_disk_full", path=path, error=str(exc),
                  message="Ổ đĩa chứa cơ sở dữ liệu trạng thái đã đầy: thay đổi được giữ "
                          "trong bộ nhớ và ghi lại khi có chỗ trống; dữ liệu đã lưu không mất "
                          "(disk full: changes kept in memory, nothing stored is lost)")
    else:
        log.error("state_store_error", path=path, error=str(exc))


class _transaction:
    """``BEGIN IMMEDIATE`` .. ``COMMIT``, rolled back on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error:
                # SQLite may already have rolled back (SQLITE_FULL does): a second ROLLBACK
                # would replace the real error with "no transaction is active"
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")


def _write_batch(db: sqlite3.Connection, b: Batch) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO trackers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(t.kind, t.scope, t.name, t.up, t.since, t.ok, t.fail, t.flapping) for t in b.trackers],
    )
    db.executemany("DELETE FROM trackers WHERE kind = ? AND scope = ? AND name = ?",
                   b.removed_trackers)
    db.executemany(
        "INSERT OR REPLACE INTO communes VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (c.province, c.commune, c.status, c.since, c.on_backup, c.last_seen, c.vantage)
            for c in b.communes
        ],
    )
    for table in ("communes", "first_passed"):
        db.executemany(f"DELETE FROM {table} WHERE province = ? AND commune = ?",
                       b.removed_communes)
    db.executemany("INSERT OR IGNORE INTO first_passed VALUES (?, ?, ?, ?)", b.first_passed)
    db.executemany(
        "INSERT INTO history VALUES (?, ?, ?, ?, ?, ?)",
        [(h.at, h.province, h.commune, h.host, h.old, h.new) for h in b.history],
    )
    db.executemany("DELETE FROM open_alerts WHERE key = ?", [(k,) for k in b.closed])
    db.executemany(
        "INSERT OR REPLACE INTO open_alerts VALUES (?, ?, ?)",
        [(key, ev.id, ev.to_json()) for key, ev in b.opened],
    )
    db.executemany("DELETE FROM agent_seq WHERE agent = ?", [(a,) for a in b.removed_agent_seqs])
    db.executemany("INSERT OR REPLACE INTO agent_seq VALUES (?, ?, ?)", b.agent_seqs)
    now = time.time()
    db.executemany(
        "INSERT OR IGNORE INTO outbox VALUES (?, ?, ?, ?, NULL)",
        [(ev.id, ev.state, ev.to_json(), now) for ev in b.outbox],
    )


def dumps_key(key: tuple[str, str, str]) -> str:
    """An alert key (event, scope, subject) as the text stored in ``open_alerts``."""
    return json.dumps(list(key), ensure_ascii=False)


def loads_key(text: str) -> tuple[str, str, str]:
    event, scope, subject = json.loads(text)
    return (event, scope, subject)
