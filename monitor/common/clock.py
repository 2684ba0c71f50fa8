"""Vietnam time, written once: the zone is the inventory's (:data:`inventory.model.VIETNAM_TZ`,
the ground floor), and these are the only helpers that turn Unix times and naive datetimes
into it. Vietnam keeps +07:00 all year (no daylight saving), so a fixed offset is exact."""

from __future__ import annotations

import datetime as dt

from inventory.model import VIETNAM_TZ

__all__ = ["VIETNAM_TZ", "aware", "iso", "local", "local_midnight"]


def local(timestamp: float) -> dt.datetime:
    """Unix time as an aware datetime in Vietnam time."""
    return dt.datetime.fromtimestamp(timestamp, VIETNAM_TZ)


def iso(timestamp: float) -> str:
    """Unix time as ISO 8601 at +07:00, e.g. ``2026-02-06T08:15:30+07:00`` (contract §4)."""
    return local(timestamp).isoformat(timespec="seconds")


def aware(when: dt.datetime) -> dt.datetime:
    """A datetime without an offset is Vietnam's local time (inventory maintenance windows,
    drills, token expiries are written that way); one with an offset is kept as it is."""
    return when if when.tzinfo is not None else when.replace(tzinfo=VIETNAM_TZ)


def local_midnight(day: dt.date) -> float:
    """The Unix time at which ``day`` begins in Vietnam."""
    return dt.datetime.combine(day, dt.time(), VIETNAM_TZ).timestamp()
