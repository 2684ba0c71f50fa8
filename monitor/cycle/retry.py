"""Fast confirmation (contract section 2, ``retry_interval``; Nagios' soft states).

A host, gateway or target whose result disagrees with its confirmed state is re-probed
every ``retry_interval`` within the cycle, until ``down_after`` failures confirm it down (or
``up_after`` successes confirm it up again). The scheduler only paces the re-probes: each
is an observation handed to the state, which debounces it like any other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Streak:
    """A subject's confirmed state (None: never confirmed, taken as up) and its current run
    of like results."""

    up: bool | None = None
    ok: bool = True
    run: int = 0  # like results in a row, until they are confirmed (then no longer counted)


def step(streak: Streak, ok: bool, down_after: int, up_after: int) -> Streak:
    """The streak after one more result. A steady one (the result agrees with its last one
    and its confirmed state) is returned as it is, the same object: the length of such a run
    decides nothing more, and the nation's central cycle has ~17,000 steady subjects."""
    if ok == streak.ok and streak.up is ok:
        return streak
    run = streak.run + 1 if ok == streak.ok else 1
    up = streak.up
    if not ok and run >= down_after:
        up = False
    elif ok and (up is None or run >= up_after):
        up = True
    return Streak(up, ok, run)


def pending(streak: Streak) -> bool:
    """Whether the subject is to be re-probed at ``retry_interval``: its last result
    disagrees with its confirmed state (a first answer needs no confirmation)."""
    return streak.ok != (streak.up is not False)


def recheck_spacing(count: int, timeout: float, retry_interval: float, spacing: float) -> float:
    """Seconds between a re-probe's echoes: the cycle's ``spacing``, closer when that would
    make the re-probe outlast ``retry_interval`` (its ``count`` echoes and the last one's
    ``timeout`` fit in it). Echoes a second apart (ping's pace) made each re-probe of a
    silent host take 3 s, not 2, and a cut line's alert come seconds late; a re-probe asks
    the same question with as many echoes, so what it proves is unchanged."""
    if count <= 1:
        return spacing
    return max(0.0, min(spacing, (retry_interval - timeout) / (count - 1)))
