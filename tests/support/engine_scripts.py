"""Random scripts for the state engine: two vantages (central and the commune's agent)
observing one commune with a backup line over working hours, a maintenance window, ARP
verdicts, foreign devices, silences and a lost central uplink. Used where two engines
(or an engine and its restored copy) must agree step by step."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

from inventory.model import Commune, Inventory, Maintenance, WorkingHours
from monitor.alerts.event import VN_TZ
from probes.result import UnknownDevice
from tests.support.engine_sim import MAC, make_commune, make_inventory

FRIDAY = dt.datetime(2026, 2, 6, 16, 0, tzinfo=VN_TZ).timestamp()  # an hour before closing
STRANGER = "02:00:00:00:09:09"
MONDAY = dt.datetime(2026, 2, 9, 6, 30, tzinfo=VN_TZ).timestamp()  # half an hour before opening
WINDOW = Maintenance("75/26041", dt.datetime(2026, 2, 6, 16, 30, tzinfo=VN_TZ),
                     dt.datetime(2026, 2, 6, 16, 50, tzinfo=VN_TZ), "thay thiết bị")


def script_inventory() -> tuple[Commune, Inventory]:
    commune = make_commune(backup=True)
    inventory = make_inventory(commune, maintenance=(WINDOW,))
    return commune, dataclasses.replace(inventory, defaults=dataclasses.replace(
        inventory.defaults, working_hours=WorkingHours((0, 1, 2, 3, 4), dt.time(7),
                                                       dt.time(17))))


def random_script(seed: int, steps: int) -> list[tuple[str, dict[str, object]]]:
    """What happens, step by step: an observation (its arguments), a silence, the central
    uplink lost or back. The world's faults last (each flips with a small chance a step
    when calm, often in a storm), as real ones do; the central vantage and the commune's
    agent take turns observing it."""
    rng = random.Random(seed)
    commune, _ = script_inventory()
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
