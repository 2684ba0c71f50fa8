"""The engine's changes not yet in the store: gathered during a cycle (or any batch of
changes), written as one :class:`~monitor.store.state_db.Batch` in one transaction, and
kept (bounded) while the store fails, to be merged into the next try."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from monitor.alerts.event import ESCALATION_EVENTS, AlertEvent
from monitor.decide.book import AlertKey
from monitor.decide.status import CommuneState, HostState
from monitor.store.state_db import (
    Batch,
    CommuneRow,
    HistoryRow,
    TrackerKey,
    TrackerRow,
    dumps_key,
)

MAX_PENDING_ROWS = 100_000  # history/outbox rows kept for the store while it fails


@dataclass(slots=True)
class Pending:
    """Changes not yet in the store; kept (and merged) while the store fails."""

    trackers: set[TrackerKey] = field(default_factory=set)
    communes: set[str] = field(default_factory=set)
    first_passed: list[tuple[str, str, str, float]] = field(default_factory=list)
    history: list[HistoryRow] = field(default_factory=list)
    opened: dict[AlertKey, AlertEvent] = field(default_factory=dict)
    closed: set[AlertKey] = field(default_factory=set)
    outbox: list[AlertEvent] = field(default_factory=list)
    removed_trackers: list[TrackerKey] = field(default_factory=list)
    removed_communes: list[tuple[str, str]] = field(default_factory=list)
    agent_seqs: dict[str, tuple[int, float]] = field(default_factory=dict)
    removed_agent_seqs: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not any((self.trackers, self.communes, self.first_passed, self.history,
                        self.opened, self.closed, self.outbox, self.removed_trackers,
                        self.removed_communes, self.agent_seqs, self.removed_agent_seqs))

    def add_history(self, row: HistoryRow) -> None:
        self.history.append(row)

    def open(self, key: AlertKey, ev: AlertEvent) -> None:
        self.opened[key] = ev
        self._deliver(ev)

    def close(self, key: AlertKey, ev: AlertEvent) -> None:
        self.opened.pop(key, None)
        self.closed.add(key)
        self._deliver(ev)

    def _deliver(self, ev: AlertEvent) -> None:
        if ev.event not in ESCALATION_EVENTS:  # the escalation sinks are not the outbox's
            self.outbox.append(ev)

    def trim(self) -> None:
        """Bound memory while the store keeps failing: drop the oldest rows first."""
        del self.history[:-MAX_PENDING_ROWS]
        del self.outbox[:-MAX_PENDING_ROWS]

    def to_batch(self, trackers_now: Mapping[TrackerKey, HostState],
                 communes_now: Mapping[str, CommuneState], stored: StoredTrackers) -> Batch:
        """The rows to write, read from the current trackers and communes (of the trackers,
        only those whose row differs from what the store holds)."""
        trackers = stored.changed_rows(self.trackers, trackers_now)
        communes = [
            CommuneRow(cs.province, cs.commune, int(cs.status), cs.since, cs.on_backup,
                       cs.last_seen, cs.vantage)
            for k in self.communes if (cs := communes_now.get(k)) is not None
        ]
        return Batch(
            trackers=trackers,
            communes=communes,
            first_passed=list(self.first_passed),
            history=list(self.history),
            opened=[(dumps_key(k), ev) for k, ev in self.opened.items()],
            closed=[dumps_key(k) for k in self.closed],
            outbox=list(self.outbox),
            removed_trackers=list(self.removed_trackers),
            removed_communes=list(self.removed_communes),
            agent_seqs=[(a, seq, at) for a, (seq, at) in self.agent_seqs.items()],
            removed_agent_seqs=list(self.removed_agent_seqs),
        )



class StoredTrackers:
    """What the store holds of each tracker, so that a write carries only the trackers whose
    row changed: a steady host is otherwise rewritten at every observation of every vantage
    (the nation in ``run --mqtt``: ~50,000 rows each cycle, a sixth of the process's CPU).

    The run counters are stored clamped at ``cap``, the most consecutive results any
    debouncing threshold asks for (``max(down_after, up_after)``): past it one more changes
    no decision (:func:`~monitor.decide.verdicts.debounce` compares with the thresholds,
    the line's suspicion with zero), so a steady tracker's row stops changing, and one
    restored from it decides exactly as the one that was running."""

    def __init__(self) -> None:
        self.cap = 1  # set from the inventory (StateEngine.set_inventory)
        #: key -> (up, since, ok, fail, flapping) as stored
        self._rows: dict[TrackerKey, tuple[bool | None, float | None, int, int, bool]] = {}

    def changed_rows(self, keys: Iterable[TrackerKey],
                     trackers: Mapping[TrackerKey, HostState]) -> list[TrackerRow]:
        """The rows to write of the trackers ``keys`` names that still exist: those the
        store does not hold yet (in one loop: a nationwide cycle asks it of ~60,000
        trackers)."""
        cap, stored, out = self.cap, self._rows, []
        for key in keys:
            t = trackers.get(key)
            if t is None:
                continue
            ok, fail = t.consecutive_ok, t.consecutive_fail
            row = (t.up, t.since, ok if ok < cap else cap, fail if fail < cap else cap,
                   t.flapping)
            if stored.get(key) != row:
                out.append(TrackerRow(*key, *row))
        return out

    def counts_moved(self, t: HostState, before: tuple[int, int]) -> bool:
        """Whether a tracker's run counters, as stored (clamped at ``cap``), differ from
        ``before`` (its ok and fail counts before it was last counted). With a change of
        state, the only way its row can move: a steady tracker is then not even looked at
        when writing."""
        cap, (ok, fail) = self.cap, before
        return (min(ok, cap), min(fail, cap)) != (min(t.consecutive_ok, cap),
                                                  min(t.consecutive_fail, cap))

    def saved(self, batch: Batch) -> None:
        """The store committed the batch: its rows are what it holds now."""
        for row in batch.trackers:
            self._rows[row.key] = (row.up, row.since, row.ok, row.fail, row.flapping)
        for key in batch.removed_trackers:
            self._rows.pop(key, None)
