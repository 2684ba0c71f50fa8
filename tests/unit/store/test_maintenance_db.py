"""The run-time maintenance book: real SQLite files, two connections as the CLI and a running
monitor have them; windows seen by the other connection without reopening it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from monitor.decide.verdicts import in_maintenance
from monitor.store.maintenance_db import (
    MAX_SPAN,
    MaintenanceBook,
    check_window,
    normalise_scope,
    parse_time,
)

NOW = dt.datetime(2026, 3, 15, 8, 0, tzinfo=dt.UTC).timestamp()
HOUR = 3600.0


def book(path: Path | str, now: float = NOW) -> MaintenanceBook:
    return MaintenanceBook(path, recheck=0.0, clock=lambda: now)


def test_a_window_written_by_one_connection_is_seen_by_the_other(tmp_path: Path) -> None:
    running, cli = book(tmp_path / "state.db"), book(tmp_path / "state.db")
    assert running.windows() == ()
    stored = cli.add("75/26041", NOW, NOW + HOUR, " Thay thiết bị ", "cli")
    assert (stored.scope, stored.comment, stored.created_by) == ("75/26041", "Thay thiết bị", "cli")
    windows = running.windows()
    assert in_maintenance(windows, "75", "26041", NOW + 60)
    assert not in_maintenance(windows, "75", "26068", NOW + 60)
    assert not in_maintenance(windows, "75", "26041", NOW + HOUR)

    ended = cli.end(stored.id)
    assert ended is not None and ended.end == NOW and ended.ended_at == NOW
    assert not in_maintenance(running.windows(), "75", "26041", NOW + 60)
    assert cli.end(stored.id) is None  # over already
    assert [w.id for w in running.listed(ended=True)] == [stored.id]
    assert running.listed() == []


def test_own_writes_are_seen_at_once_and_a_province_window_covers_its_communes() -> None:
    memory = book(":memory:")
    memory.windows()
    memory.add("1", NOW + HOUR, NOW + 2 * HOUR, "Cắt điện theo lịch", "admin")
    windows = memory.windows()
    assert in_maintenance(windows, "01", "00004", NOW + 1.5 * HOUR)
    assert not in_maintenance(windows, "01", "00004", NOW)  # not started yet
    assert memory.listed()[0].scope == "01"


def test_ending_a_window_not_started_leaves_it_empty(tmp_path: Path) -> None:
    b = book(tmp_path / "s.db")
    later = b.add("75", NOW + HOUR, NOW + 2 * HOUR, "x", "admin")
    ended = b.end(later.id)
    assert ended is not None and ended.end == ended.start == NOW + HOUR
    assert not in_maintenance(b.windows(), "75", None, NOW + 1.5 * HOUR)


def test_the_running_monitor_rechecks_at_most_every_recheck_seconds(tmp_path: Path) -> None:
    running = MaintenanceBook(tmp_path / "s.db", recheck=3600.0, clock=lambda: NOW)
    assert running.windows() == ()
    book(tmp_path / "s.db").add("75", NOW, NOW + HOUR, "x", "cli")
    assert running.windows() == ()  # cached within its recheck period


@pytest.mark.parametrize(("start", "end", "comment", "message"), [
    (NOW, NOW + HOUR, "  ", "comment is required"),
    (NOW, NOW, "x", "end after it starts"),
    (NOW - 2 * HOUR, NOW - HOUR, "x", "already over"),
    (NOW, NOW + MAX_SPAN.total_seconds() + 1, "x", "at most 31 days"),
])
def test_the_window_rule(start: float, end: float, comment: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_window(start, end, comment, NOW)


def test_scopes_and_times_are_read_as_the_inventory_reads_them() -> None:
    assert normalise_scope("1/4") == "01/00004" and normalise_scope("75") == "75"
    for bad in ("", "75/1/2", "/"):
        with pytest.raises(ValueError, match="PROV or PROV/COMMUNE"):
            normalise_scope(bad)
    for unknown in ("99", "75/abc", "75/00004"):
        with pytest.raises(ValueError, match="official list"):
            normalise_scope(unknown)
    assert parse_time("2026-03-15T15:00", "--from") == NOW  # Vietnam time, 08:00 UTC
    assert parse_time("2026-03-15T08:00+00:00", "--from") == NOW
    with pytest.raises(ValueError, match="--to 'tomorrow'"):
        parse_time("tomorrow", "--to")
