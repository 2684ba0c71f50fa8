"""The SQLite state store: round trips, atomic batches, history, outbox, locked database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from structlog.testing import capture_logs

from monitor.alerts.event import AlertEvent
from monitor.store.state_db import Batch, CommuneRow, HistoryRow, Store, TrackerRow, dumps_key

FIRING = AlertEvent("a" * 24, "host_down", "firing", "warning", "75", "26041", "may-01",
                    "2026-02-06T08:15:30+07:00", "Phường Trấn Biên (VNPT): máy may-01 mất kết nối")
KEY = dumps_key(("host_down", "75/26041", "may-01"))


def full_batch() -> Batch:
    return Batch(
        trackers=[TrackerRow("host", "75/26041", "may-01", False, 100.0, 0, 3, False),
                  TrackerRow("gateway", "75/26041", "gateway", None, None, 0, 1, False)],
        communes=[CommuneRow("75", "26041", 1, 100.0, False, 130.0, "central")],
        first_passed=[("75", "26041", "link", 50.0)],
        history=[HistoryRow(100.0, "75", "26041", "may-01", "up", "down"),
                 HistoryRow(100.0, "75", "26041", None, "ok", "degraded")],
        opened=[(KEY, FIRING)],
        outbox=[FIRING],
    )


def test_wal_mode_and_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    assert store.write(full_batch())
    store.close()
    again = Store(tmp_path / "s.db")
    mode = again._db.execute("PRAGMA journal_mode").fetchone()[0]
    snap = again.load()
    assert mode == "wal"
    assert snap.trackers[("host", "75/26041", "may-01")].up is False
    assert snap.trackers[("gateway", "75/26041", "gateway")].up is None
    assert snap.communes["75/26041"].status == 1
    assert snap.first_passed == {"75/26041": {"link": 50.0}}
    assert snap.open_alerts == {KEY: FIRING}
    assert again.outbox_pending() == [FIRING]


def test_first_pass_is_never_overwritten_and_closing_removes_the_open_alert(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.write(full_batch())
    store.write(Batch(first_passed=[("75", "26041", "link", 999.0)], closed=[KEY]))
    snap = store.load()
    assert snap.first_passed["75/26041"]["link"] == 50.0
    assert snap.open_alerts == {}


def test_a_batch_that_fails_midway_leaves_nothing_half_written(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    bad = full_batch()
    bad.history.append(HistoryRow(1.0, "75", "26041", None, None, "x"))  # type: ignore[arg-type]
    with capture_logs() as logs:
        assert not store.write(bad)
    assert logs[0]["event"] == "state_store_error"
    snap = store.load()
    assert (snap.trackers, snap.communes, snap.open_alerts) == ({}, {}, {})
    assert store.history("75", "26041") == []


def test_locked_database_fails_fast_and_logs(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", busy_timeout=0.05)
    blocker = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with capture_logs() as logs:
            assert not store.write(full_batch())
        assert [entry["event"] for entry in logs] == ["state_store_error"]
        assert "locked" in logs[0]["error"]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.write(full_batch())


def test_history_of_one_commune_since_a_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.write(Batch(history=[
        HistoryRow(10.0, "75", "26041", "may-01", "unknown", "up"),
        HistoryRow(20.0, "75", "26044", "may-01", "unknown", "up"),
        HistoryRow(30.0, "75", "26041", None, "ok", "down"),
    ]))
    assert [h["at"] for h in store.history("75", "26041")] == [10.0, 30.0]
    assert store.history("75", "26041", since=15.0) == [
        {"at": 30.0, "host": None, "old": "ok", "new": "down"}]


def test_outbox_done_removes_from_pending(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.write(full_batch())
    assert store.outbox_done(FIRING)
    assert store.outbox_pending() == []


def test_removed_communes_and_trackers_are_deleted(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.write(full_batch())
    store.write(Batch(removed_trackers=[("host", "75/26041", "may-01")],
                      removed_communes=[("75", "26041")]))
    snap = store.load()
    assert list(snap.trackers) == [("gateway", "75/26041", "gateway")]
    assert snap.communes == {} and snap.first_passed == {}


def test_full_disk_is_logged_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.write(full_batch())
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk full"
    big = Batch(history=[HistoryRow(float(i), "75", "26041", "may-01", "up", "down" * 50)
                         for i in range(2000)],
                trackers=[TrackerRow("host", "75/26041", "may-01", True, 200.0, 2, 0, False)])
    with capture_logs() as logs:
        assert not store.write(big)
    assert "full" in logs[0]["error"]
    snap = store.load()
    assert snap.trackers[("host", "75/26041", "may-01")].up is False  # the old row, intact
    assert len(store.history("75", "26041")) == 2


def test_a_full_database_is_logged_as_a_full_disk_and_nothing_stored_is_lost(
        tmp_path: Path) -> None:
    """SQLITE_FULL (here from ``max_page_count``, as from a full file system) is named
    ``state_disk_full``, never "cannot rollback - no transaction is active"; what was
    stored before stays, and writing works again once there is room."""
    store = Store(tmp_path / "s.db")
    assert store.write(full_batch())
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages + 1}")
    big = Batch(history=[HistoryRow(float(i), "75", "26041", "x" * 200, "up", "down")
                         for i in range(2000)])
    with capture_logs() as logs:
        assert not store.write(big)
    events = [e for e in logs if e["log_level"] == "error"]
    assert [e["event"] for e in events] == ["state_disk_full"]
    assert "full" in events[0]["error"] and "rollback" not in events[0]["error"]
    assert store.history("75", "26041") == [
        {"at": 100.0, "host": "may-01", "old": "up", "new": "down"},
        {"at": 100.0, "host": None, "old": "ok", "new": "degraded"}]
    store._db.execute("PRAGMA max_page_count = 1073741823")
    assert store.write(big)
    assert len(store.history("75", "26041", limit=5000)) == 2002


def test_agent_seqs_round_trip_and_are_forgotten(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    assert store.write(Batch(agent_seqs=[("agent-75", 42, 10.0), ("ghost", 7, 11.0)]))
    assert store.write(Batch(agent_seqs=[("agent-75", 43, 12.0)], removed_agent_seqs=["ghost"]))
    store.close()
    assert Store(tmp_path / "s.db").agent_seqs() == {"agent-75": (43, 12.0)}
