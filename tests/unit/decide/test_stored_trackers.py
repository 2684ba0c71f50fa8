"""The store is written only what changed: a steady tracker is not rewritten each cycle."""

from __future__ import annotations

from pathlib import Path

from monitor.store.state_db import Batch, Store
from tests.support.engine_sim import Sim


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
