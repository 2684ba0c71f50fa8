"""The store is written only what changed: a steady tracker is not rewritten each cycle."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from monitor.decide.engine import StateEngine
from monitor.decide.status import HostState
from monitor.store.state_db import Batch, Store, TrackerKey
from tests.support.engine_scripts import FRIDAY, random_script, script_inventory
from tests.support.engine_sim import STEP, Sim, observe


class CountingStore(Store):
    """The real store, remembering the tracker rows of each write."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.rows: list[int] = []

    def write(self, batch: Batch) -> bool:
        self.rows.append(len(batch.trackers))
        return super().write(batch)


def test_a_steady_commune_writes_no_tracker_rows(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "state.db")
    sim = Sim(store=store)
    sim.cycles(6)  # up at once; the run counters reach up_after and down_after (3)
    store.rows.clear()
    sim.cycles(3)
    assert store.rows == [0, 0, 0]
    sim.cycle(hosts={"may-01": False})  # a failure: the host's view and fused rows change
    assert store.rows[-1] > 0


def test_a_restart_decides_as_the_running_engine_did(tmp_path: Path) -> None:
    """Counters stored clamped: the restored engine confirms the next outage as soon as
    the running one would have (3 failures), not sooner nor later."""
    db = tmp_path / "state.db"
    first = Sim(store=Store(str(db)))
    first.cycles(8)
    first.cycles(2, hosts={"may-01": False})
    first.engine.store.close()  # type: ignore[union-attr]
    second = Sim(store=Store(str(db)), start=first.now)
    assert second.commune.hosts["may-01"].up is True
    fired = second.cycle(hosts={"may-01": False})
    assert [(e.event, e.state, e.host) for e in fired] == [("host_down", "firing", "may-01")]


@pytest.mark.parametrize("seed", range(8))
def test_what_is_stored_is_what_runs_at_every_step(tmp_path: Path, seed: int) -> None:
    """Random scripts of two vantages (faults, silences, a lost uplink): after each step an
    engine restored from the store holds every tracker as the running one does (state,
    since, run counters clamped at the cap, flapping). The engine leaves steady trackers
    out of the write; this holds it to leaving out only those."""
    _, inventory = script_inventory()
    now = FRIDAY
    store = Store(str(tmp_path / "state.db"))
    engine = StateEngine(inventory, store, clock=lambda: now)
    cap = max(inventory.defaults.down_after, inventory.defaults.up_after)
    for step, (what, args) in enumerate(random_script(seed, 150)):
        if what == "silent":
            engine.mark_silent("75", "26041")
        elif what == "upstream":
            engine.central_upstream(bool(args["reachable"]), now)
        else:
            engine.apply(observe(now, **args))  # type: ignore[arg-type]
        now += STEP / 3
        if step % 5 == 4:
            restored = StateEngine(inventory, Store(str(tmp_path / "state.db")))
            assert _rows(restored._trackers, cap) == _rows(engine._trackers, cap), step


def _rows(trackers: Mapping[TrackerKey, HostState], cap: int) -> dict[TrackerKey, tuple]:
    return {key: (t.up, t.since, min(t.consecutive_ok, cap), min(t.consecutive_fail, cap),
                  t.flapping) for key, t in trackers.items()
            if t.up is not None or t.consecutive_ok or t.consecutive_fail}
