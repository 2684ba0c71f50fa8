"""The agent's on-disk spool: order, durability across a restart, the bound."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitor.remote.spool import Spool


def test_entries_leave_in_order_and_only_when_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", limit=10)
    spool.append([("t/1", b"a"), ("t/2", b"b")])
    spool.append([("t/1", b"c")])
    head = spool.head(10)
    assert [(i.topic, i.body) for i in head] == [("t/1", b"a"), ("t/2", b"b"), ("t/1", b"c")]
    assert [i.seq for i in head] == sorted(i.seq for i in head)
    spool.remove([head[0].seq])
    assert [i.body for i in spool.head(10)] == [b"b", b"c"]
    assert len(spool) == 2


def test_spool_survives_a_restart_and_never_reuses_a_sequence_number(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    spool = Spool(path)
    spool.append([("t", b"one"), ("t", b"two")])
    last = spool.head(2)[-1].seq
    spool.remove([last])
    spool.close()
    reopened = Spool(path)
    assert [i.body for i in reopened.head(10)] == [b"one"]
    reopened.remove([i.seq for i in reopened.head(10)])
    reopened.append([("t", b"three")])
    assert reopened.head(1)[0].seq > last
    reopened.close()


def test_past_the_bound_the_oldest_are_dropped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    spool = Spool(path, limit=3)
    assert spool.append([("t", b"1"), ("t", b"2")]) == 0
    assert spool.append([("t", b"3"), ("t", b"4"), ("t", b"5")]) == 2
    assert [i.body for i in spool.head(10)] == [b"3", b"4", b"5"]
    assert spool.append([("t", b"6")]) == 1
    assert spool.dropped == 3
    spool.close()
    assert Spool(path, limit=3).dropped == 3  # the count survives a restart too


def test_a_bound_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Spool(tmp_path / "s.db", limit=0)


def test_a_wiped_spool_continues_above_the_old_sequence_numbers(tmp_path: Path) -> None:
    """The collector refuses a seq not above the last it accepted: a reinstalled agent (its
    spool file gone) must not be locked out, so a new spool starts at the clock (ms)."""
    path = tmp_path / "s.db"
    spool = Spool(path)
    spool.append([("t", b"x")] * 50)
    old = spool.head(100)[-1].seq
    spool.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    time.sleep(0.1)  # 50 batches in 0.1 s: within the 1,000 a second the scheme allows
    fresh = Spool(path)
    fresh.append([("t", b"y")])
    first = fresh.head(1)[0].seq
    assert first > old
    fresh.close()
    reopened = Spool(path)  # an existing file keeps its numbering, never below the clock
    reopened.append([("t", b"z")] * 3)
    later = [i.seq for i in reopened.head(4)]
    assert later[0] == first and later[1] > first and later[1:] == [later[1] + n for n in range(3)]
    reopened.close()


def test_numbers_never_fall_behind_the_clock_so_a_forged_guard_is_passed(
        tmp_path: Path) -> None:
    """A forged batch may raise the collector's guard up to 30 s ahead of the clock (ms):
    a long-lived spool numbered one by one would stay below it for millions of batches;
    numbered from the clock, it is above it once the clock passes it."""
    spool = Spool(tmp_path / "s.db")
    spool.append([("t", b"a")])
    first = spool.head(1)[0].seq
    forged_guard = first + 50  # 50 ms ahead of this spool's clock
    time.sleep(0.1)
    spool.append([("t", b"b")])
    assert spool.head(2)[1].seq > forged_guard
    spool.append([("t", b"c")] * 2)  # within one millisecond: still one above the last
    seqs = [i.seq for i in spool.head(4)]
    assert seqs == sorted(set(seqs))
    spool.close()
