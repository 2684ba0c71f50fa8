"""Cron expressions in Vietnam time: the schedule of the reports for Sở Nội vụ."""

from __future__ import annotations

from croniter import croniter

from monitor.common import clock


class ScheduleError(ValueError):
    """A malformed cron expression."""


def parse_cron(text: str) -> str:
    text = " ".join(text.split())
    if not croniter.is_valid(text):
        raise ScheduleError(f"'{text}' is not a cron expression "
                            "(e.g. '0 7 * * 1': every Monday at 07:00, Vietnam time)")
    return text


def next_run(cron: str, now: float) -> float:
    """The first time after ``now`` that ``cron`` (in Vietnam time) matches."""
    return float(croniter(cron, clock.local(now)).get_next(float))
