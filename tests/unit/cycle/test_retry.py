"""Fast confirmation's streaks: what is re-probed, and when it stops."""

from __future__ import annotations

from monitor.cycle.retry import Streak, pending, recheck_spacing, step


def run(results: list[bool], down_after: int = 3, up_after: int = 2) -> list[Streak]:
    streak, out = Streak(), []
    for ok in results:
        streak = step(streak, ok, down_after, up_after)
        out.append(streak)
    return out


def test_a_first_answer_needs_no_confirmation() -> None:
    [first] = run([True])
    assert first.up is True and not pending(first)


def test_failures_are_re_probed_until_down_after_confirms_them() -> None:
    streaks = run([True, False, False, False, False])
    assert [pending(s) for s in streaks] == [False, True, True, False, False]
    assert streaks[3].up is False


def test_a_host_never_seen_up_is_confirmed_down_too() -> None:
    streaks = run([False, False, False])
    assert [pending(s) for s in streaks] == [True, True, False]


def test_recovery_is_re_probed_until_up_after_clears_it() -> None:
    streaks = run([False, False, False, True, True, True])
    assert [pending(s) for s in streaks] == [True, True, False, True, False, False]
    assert streaks[4].up is True


def test_a_blip_resets_the_run() -> None:
    streaks = run([True, False, True, False, False])
    assert [pending(s) for s in streaks] == [False, True, False, True, True]
    assert streaks[-1].run == 2 and streaks[-1].up is True


def test_a_recheck_fits_its_retry_interval() -> None:
    # three echoes and the last one's timeout: 2 x 0.75 + 0.5 = 2 s, not 2 x 1 + 0.5
    assert recheck_spacing(3, 0.5, 2.0, 1.0) == 0.75
    assert recheck_spacing(3, 1.0, 2.0, 1.0) == 0.5


def test_a_recheck_keeps_the_cycle_pace_when_it_fits() -> None:
    assert recheck_spacing(3, 1.0, 10.0, 1.0) == 1.0
    assert recheck_spacing(1, 1.0, 0.5, 1.0) == 1.0  # one echo: no spacing to speak of


def test_a_timeout_longer_than_the_retry_interval_sends_at_once() -> None:
    assert recheck_spacing(3, 3.0, 2.0, 1.0) == 0.0


def test_a_steady_streak_comes_back_as_it_was() -> None:
    up = run([True])[-1]
    assert step(up, True, 3, 2) is up
    down = run([False, False, False])[-1]
    assert step(down, False, 3, 2) is down
    unconfirmed = run([True, False])[-1]  # a failure not yet confirmed is no steady state
    assert step(unconfirmed, False, 3, 2) is not unconfirmed


def test_a_long_steady_run_still_needs_down_after_failures() -> None:
    streaks = run([True] * 50 + [False, False, False])
    assert [s.up for s in streaks[-3:]] == [True, True, False]
    assert [pending(s) for s in streaks[-3:]] == [True, True, False]
