"""Fault cases in a province lab, and how a test checks them (test-only).

A :class:`Case` is one fault kind put on a commune of its own: how to inject it
(:mod:`tests.support.lab.faults`), the one alert it deserves and what the metrics must show
meanwhile. :func:`check_cases` injects a plan of them into a running lab
(:class:`tests.support.lab.harness.LabRun`), waits until every one shows with its alert,
lets the lab settle and checks that each still shows and raised exactly what it deserves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from tests.support.lab import observe
from tests.support.lab.faults import Fault
from tests.support.lab.harness import METRICS_POLL, LabRun
from tests.support.lab.province import CommuneLab, ProvinceLab

MAY_ALERT = "at most one"
SETTLE_CYCLES = 2  # after the faults show: nothing more may arrive


@dataclass(frozen=True)
class Case:
    """One fault kind on its own commune: how to inject it, the alert it deserves (None:
    none at all; ``MAY_ALERT``: at most one), and what the metrics must show meanwhile."""

    name: str
    inject: Callable[[ProvinceLab, CommuneLab], Fault]
    alert: tuple[str, str | None] | str | None
    shows: Callable[[observe.Samples, CommuneLab], bool]
    passing: tuple[tuple[str, str | None], ...] = ()
    """Alerts the evidence may raise on the way, resolved before the case settles: a
    router's table that holds one MAC per IP shows the first half of a flip-flop exactly
    as a swapped card (arpwatch's "changed ethernet address" before its "flip flop")."""


def value(samples: observe.Samples, name: str, **labels: str) -> float | None:
    """The one sample of ``name`` whose labels include ``labels`` (None: none, or several)."""
    want = set(labels.items())
    found = [v for (metric, ls), v in samples.items() if metric == name and want <= ls]
    return found[0] if len(found) == 1 else None


def hosts_of(place: CommuneLab) -> list[str]:
    return [h.name for h in place.commune.hosts]


def unhealthy(samples: observe.Samples, place: CommuneLab) -> list[str]:
    """What a commune shows that no healthy one may, whatever the vantage (empty: nothing):
    a status other than OK, unknown devices, a host down or with its IP configuration wrong.
    Each lab adds what its own vantages should show."""
    wrong = []
    if value(samples, "tslcd_commune_status", commune=place.code) != 0:
        wrong.append("status")
    if value(samples, "tslcd_commune_unknown_devices", commune=place.code) != 0:
        wrong.append("unknown devices")
    for h in hosts_of(place):
        if value(samples, "tslcd_host_up", commune=place.code, host=h) != 1:
            wrong.append(f"{h} up")
        if value(samples, "tslcd_host_ip_config_ok", commune=place.code, host=h) != 1:
            wrong.append(f"{h} ip config")
    return wrong


def alerts_of(events: list[dict], code: str, state: str = "firing"
              ) -> list[tuple[str, str | None]]:
    """(event, host) of the firings (or resolutions) for commune ``code``."""
    return [(e["event"], e["host"]) for e in events
            if e["commune"] == code and e["state"] == state]


def raised(case: Case, events: list[dict], code: str) -> list[tuple[str, str | None]]:
    """The firings a case is judged by: its passing alerts left out once each is resolved."""
    got = alerts_of(events, code)
    resolved = alerts_of(events, code, "resolved")
    return [a for a in got if a not in case.passing or got.count(a) > resolved.count(a)]


def check_cases(run: LabRun, plan: list[tuple[Case, CommuneLab]], *, timeout: float = 120,
                settle: int = SETTLE_CYCLES, still: float = 15.0
                ) -> tuple[observe.Samples, list[dict]]:
    """Inject every case of ``plan`` at once, wait until each shows with its alert, settle,
    and check each case again (shown within ``still`` seconds: a 30 % lossy line can have a
    cycle without loss); returns the metrics and the events since the injection
    (the faults still in force when the caller looks at them, cleared on return)."""
    start = len(run.events())
    with contextlib.ExitStack() as stack:
        for case, place in plan:
            stack.enter_context(case.inject(run.province, place))

        def missing() -> list[str]:
            samples, events = run.metrics(), run.events()[start:]
            out = [c.name for c, p in plan if not c.shows(samples, p)]
            out += [f"{c.name} alert" for c, p in plan if isinstance(c.alert, tuple)
                    and c.alert not in alerts_of(events, p.code)]
            return out

        observe.wait_until(lambda: not missing(), "every fault in the metrics and alerts",
                           timeout=timeout, detail=missing, poll=METRICS_POLL)
        run.wait_cycles(settle)
        for case, place in plan:
            observe.wait_until(lambda c=case, p=place: c.shows(run.metrics(), p),
                               f"{case.name} still shown", timeout=still, poll=METRICS_POLL)
        samples, events = run.metrics(), run.events()[start:]
        for case, place in plan:
            got = raised(case, events, place.code)
            if case.alert is None:
                assert got == [], (case.name, got)
            elif case.alert == MAY_ALERT:
                assert len(got) <= 1, (case.name, got)
            else:
                assert got == [case.alert], (case.name, got)
        return samples, events
