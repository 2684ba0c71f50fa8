"""The agent's bounded on-disk queue of result batches (issue #5).

Every batch an agent produces goes through here before it is published, so a broker outage
or a restart of the agent loses nothing within the bound: batches leave in the order they
came, and only once the broker acknowledged them (QoS 1). Past the bound the *oldest* are
dropped (recent results matter more than old ones) and the count is kept, for a log line and
a metric.

SQLite in WAL mode with ``synchronous=FULL``: each append is one fsync'd transaction that
survives a crash of the agent or a power cut of the commune's PC. The row id doubles as the
batch's sequence number: ``AUTOINCREMENT`` never reuses one, not even after a restart.

A batch's number is never below the Unix time in milliseconds when it is queued (one
above the last, or the clock if that is higher): the collector refuses a batch whose
``seq`` is not above the last it accepted from the agent (replay guard, docs/mqtt.md), so
an agent whose spool was wiped (reinstalled PC, deleted directory) still continues above
its old numbers, as long as it never averaged 1,000 batches a second (a province agent
sends about 3); and a guard raised by a forged batch (the collector takes a ``seq`` up to
30 s ahead of its clock) is passed by the real agent's numbers within those 30 s, instead
of locking it out until it has sent as many batches.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LIMIT = 100_000  # batches: a province agent's ~100 communes for ~8 hours at 30 s

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('dropped', 0);
"""


@dataclass(frozen=True, slots=True)
class Spooled:
    seq: int  # sequence number of the batch, increasing for the life of the spool file
    topic: str
    body: bytes


class Spool:
    """A FIFO of ``(topic, body)`` on disk, at most ``limit`` entries."""

    def __init__(self, path: str | Path, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("the spool limit must be at least 1")
        self.path = str(path)
        self.limit = limit
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def _raise_sequence(self, floor: int) -> None:
        """The next seq is at least ``floor + 1`` (see the module doc); never lowered."""
        updated = self._db.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'batches'", (floor,))
        if updated.rowcount == 0:
            self._db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('batches', ?)",
                             (floor,))

    def append(self, items: Sequence[tuple[str, bytes]]) -> int:
        """Queue the items in one durable transaction; returns how many old ones were dropped
        to stay within the limit."""
        with self._lock, self._transaction():
            self._raise_sequence(int(time.time() * 1000))
            self._db.executemany("INSERT INTO batches (topic, body) VALUES (?, ?)", items)
            excess = self._count() - self.limit
            if excess <= 0:
                return 0
            self._db.execute(
                "DELETE FROM batches WHERE seq IN (SELECT seq FROM batches ORDER BY seq LIMIT ?)",
                (excess,),
            )
            self._db.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'",
                             (excess,))
            return excess

    def head(self, limit: int) -> list[Spooled]:
        """The oldest ``limit`` entries, in order (they stay queued until :meth:`remove`)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, body FROM batches ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [Spooled(seq, topic, bytes(body)) for seq, topic, body in rows]

    def remove(self, seqs: Sequence[int]) -> None:
        """Forget entries once the broker acknowledged them."""
        with self._lock, self._transaction():
            self._db.executemany("DELETE FROM batches WHERE seq = ?", [(s,) for s in seqs])

    def __len__(self) -> int:
        with self._lock:
            return self._count()

    @property
    def dropped(self) -> int:
        """Batches dropped past the limit over the life of the spool file."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM batches").fetchone()[0])

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN IMMEDIATE`` .. ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit handle."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
