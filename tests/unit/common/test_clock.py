"""Vietnam time: one zone (the inventory's), +07:00 all year."""

from __future__ import annotations

import datetime as dt

from inventory.model import VIETNAM_TZ
from monitor.common import clock

# 2026-02-06 01:15:30 UTC is 08:15:30 in Hà Nội
T = dt.datetime(2026, 2, 6, 1, 15, 30, tzinfo=dt.UTC).timestamp()


def test_iso_is_at_plus_seven() -> None:
    assert clock.iso(T) == "2026-02-06T08:15:30+07:00"


def test_local_is_the_inventorys_zone() -> None:
    when = clock.local(T)
    assert when.tzinfo is VIETNAM_TZ and (when.hour, when.minute) == (8, 15)


def test_naive_is_vietnam_and_aware_is_kept() -> None:
    naive = dt.datetime(2026, 2, 6, 8, 15, 30)
    assert clock.aware(naive).timestamp() == T
    utc = dt.datetime(2026, 2, 6, 1, 15, 30, tzinfo=dt.UTC)
    assert clock.aware(utc) is utc


def test_local_midnight_starts_the_day_in_vietnam() -> None:
    midnight = clock.local_midnight(dt.date(2026, 2, 6))
    assert clock.iso(midnight) == "2026-02-06T00:00:00+07:00"
    assert midnight == dt.datetime(2026, 2, 5, 17, tzinfo=dt.UTC).timestamp()
