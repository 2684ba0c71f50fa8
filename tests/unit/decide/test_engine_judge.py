"""The engine skips judging a commune whose conditions are made of the same things as last
time (StateEngine._judge): it must open and close exactly what judging every time does.

Two engines get the same random observations from two vantages (central and the commune's
agent) over working hours, a maintenance window, a backup line, ARP verdicts, foreign
devices and silences; one of them judges every observation. Their alerts must agree."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest

from inventory.model import Maintenance, WorkingHours
from monitor.alerts.event import VN_TZ, AlertEvent
from monitor.decide.engine import StateEngine
from probes.result import UnknownDevice
from tests.support.engine_sim import MAC, STEP, make_commune, make_inventory, observe

FRIDAY = dt.datetime(2026, 2, 6, 16, 0, tzinfo=VN_TZ).timestamp()  # an hour before closing
STRANGER = "02:00:00:00:09:09"
MONDAY = dt.datetime(2026, 2, 9, 6, 30, tzinfo=VN_TZ).timestamp()  # half an hour before opening
WINDOW = Maintenance("75/26041", dt.datetime(2026, 2, 6, 16, 30, tzinfo=VN_TZ),
                     dt.datetime(2026, 2, 6, 16, 50, tzinfo=VN_TZ), "thay thiết bị")


def _inventory():  # type: ignore[no-untyped-def]
    commune = make_commune(backup=True)
    inventory = make_inventory(commune, maintenance=(WINDOW,))
    return commune, dataclasses.replace(inventory, defaults=dataclasses.replace(
        inventory.defaults, working_hours=WorkingHours((0, 1, 2, 3, 4), dt.time(7),
                                                       dt.time(17))))


def _script(seed: int, steps: int) -> list[tuple[str, dict[str, object]]]:
    """What happens, step by step: an observation (its arguments), a silence, the central
    uplink lost or back. The world's faults last (each flips with a small chance a step
    when calm, often in a storm), as real ones do; the central vantage and the commune's
    agent take turns observing it."""
    rng = random.Random(seed)
    commune, _ = _inventory()
    flip = rng.choice([0.01, 0.03, 0.3])
    names = [h.name for h in commune.hosts]
    world: dict[str, bool] = {name: True for name in [*names, "gateway", "backup", "line"]}
    macs = {name: (MAC.format(i + 1),) for i, name in enumerate(names)}
    foreign = False
    script: list[tuple[str, dict[str, object]]] = []
    for _ in range(steps):
        for key in world:
            world[key] ^= rng.random() < flip
        for i, name in enumerate(names):
            if rng.random() < flip:
                macs[name] = rng.choice([(MAC.format(i + 1),), (MAC.format(i + 1), STRANGER),
                                         (STRANGER,), ()])
        foreign ^= rng.random() < flip
        roll = rng.random()
        if roll < 0.02:
            script.append(("silent", {}))
        elif roll < 0.04:
            script.append(("upstream", {"reachable": rng.random() < 0.5}))
        elif roll < 0.52:  # the centre, across the line
            line = world["line"]
            script.append(("observe", {
                "hosts": {n: line and world[n] for n in names}, "gateway": line and
                world["gateway"], "backup": world["backup"], "commune": commune}))
        else:  # the commune's agent, on the segment
            script.append(("observe", {
                "hosts": {n: world[n] for n in names}, "gateway": world["gateway"],
                "vantage": "75/26041", "commune": commune,
                "arp": {n: macs[n] if world[n] else () for n in names},
                "devices": (UnknownDevice("198.18.1.9", STRANGER),) if foreign else ()}))
    return script


def _play(script: list[tuple[str, dict[str, object]]], start: float, *, judge_always: bool,
          monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    _, inventory = _inventory()
    now = start
    engine = StateEngine(inventory, clock=lambda: now)
    if judge_always:
        monkeypatch.setattr(engine, "_judged_on", lambda *args: None)
    out: list[tuple[object, ...]] = []
    for step, (what, args) in enumerate(script):
        if what == "silent":
            events = engine.mark_silent("75", "26041")
        elif what == "upstream":
            events = engine.central_upstream(bool(args["reachable"]), now)
        else:
            events = engine.apply(observe(now, **args))  # type: ignore[arg-type]
        out += [(step, e.event, e.state, e.host, e.id, e.since, e.message) for e in events]
        now += STEP / 3
    return out


@pytest.mark.parametrize("start", [FRIDAY, MONDAY], ids=["closing", "opening"])
@pytest.mark.parametrize("seed", range(16))
def test_skipping_unchanged_judgements_opens_and_closes_the_same_alerts(
        seed: int, start: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """400 steps of 10 s: Friday across the 16:30-16:50 maintenance and the 17:00 close,
    Monday across the 07:00 opening."""
    script = _script(seed, 400)
    with monkeypatch.context() as patch:
        always = _play(script, start, judge_always=True, monkeypatch=patch)
    skipping = _play(script, start, judge_always=False, monkeypatch=monkeypatch)
    assert skipping == always
    assert always  # the script did raise alerts: the comparison compared something


def test_an_alert_closed_behind_the_engines_back_is_judged_again() -> None:
    """The book's count is part of what a judgement stands on: the same observation after
    someone else closed the commune's alert finds the condition still there and fires anew."""
    _, inventory = _inventory()
    now = FRIDAY
    engine = StateEngine(inventory, clock=lambda: now)
    fired: list[AlertEvent] = []
    for _ in range(4):
        fired += engine.apply(observe(now, hosts={"may-02": False}))
        now += STEP
    assert [(e.event, e.host) for e in fired] == [("host_down", "may-02")]
    engine.book.resolve(("host_down", "75/26041", "may-02"), now)
    again = engine.apply(observe(now, hosts={"may-02": False}))
    assert [(e.event, e.state, e.host) for e in again] == [("host_down", "firing", "may-02")]
