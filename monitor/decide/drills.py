"""Drills ("diễn tập"): which communes were connected during the window, from when to when.

On a drill day every commune in the drill's scope is expected online. Each cycle inside the
window samples every such commune: it counts as *connected* when its line carries it (status
ok or degraded, i.e. also on the backup line), at least one of its computers is up, and,
where an agent reports from the commune itself, the election system is reachable from there
(from a central vantage that says nothing about the commune, so only the hosts count).

Consecutive connected samples make one span (start: the first cycle that saw it connected,
end: the last one); a disconnected cycle, or a gap of more than three cycles (the monitor
was stopped), starts a new span. Spans are kept in the state database, so the report can be
written during the drill (the page shows "connected X of N" live), after it, and by
``tslcd-monitor report drill`` from the database alone. The report's data is built here;
its writers (CSV, XLSX, HTML) are :mod:`monitor.present.drill_report`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from inventory.model import Commune, Drill, Inventory, Target
from monitor.decide.heading import CommuneHeading
from monitor.decide.status import CommuneState, CommuneStatus, MonitorState, live_vantages
from monitor.decide.verdicts import own_vantage
from monitor.store.ops_db import OpsStore, Span

GAP_CYCLES = 3  # a longer silence between connected samples splits the span


def connected(commune: Commune, cs: CommuneState | None, state: MonitorState,
              targets: tuple[Target, ...]) -> bool:
    """Whether the commune takes part in the drill right now (see the module docstring)."""
    if cs is None or cs.status not in (CommuneStatus.OK, CommuneStatus.DEGRADED):
        return False
    if not any(h.up is True for h in cs.hosts.values()):
        return False
    vantage = own_vantage(live_vantages(cs), commune.province, commune.code)
    if "/" in vantage and targets:  # the commune's own agent
        return all((ts := state.targets.get((t.name, vantage))) is not None and ts.up
                   for t in targets)
    return True


def drill_communes(drill: Drill, inventory: Inventory) -> Iterator[Commune]:
    return (c for c in inventory.communes() if drill.covers(c.province, c.code))


def active_drills(inventory: Inventory, now: float) -> list[Drill]:
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    return [d for d in inventory.drills if d.active(at)]


@dataclass(frozen=True, slots=True)
class LiveCount:
    connected: int
    total: int
    at: float  # the cycle it was counted at


@dataclass
class DrillTracker:
    """Samples the communes of every active drill after each cycle; keeps the spans."""

    store: OpsStore
    live: dict[str, LiveCount] = field(default_factory=dict)
    _latest: dict[str, dict[str, Span]] = field(default_factory=dict)  # drill -> commune ->

    def observe(self, inventory: Inventory, state: MonitorState, now: float) -> None:
        gap = GAP_CYCLES * inventory.defaults.interval
        active = active_drills(inventory, now)
        for drill in active:
            self._sample(drill, inventory, state, now, gap)
        for ident in [i for i in self.live if i not in {d.id for d in active}]:
            del self.live[ident]  # the count is shown only while the drill runs

    def spans(self, drill: str) -> dict[str, list[Span]]:
        return self.store.spans(drill)

    def _sample(self, drill: Drill, inventory: Inventory, state: MonitorState, now: float,
                gap: float) -> None:
        latest = self._latest_spans(drill.id)
        changed, count, total = [], 0, 0
        for commune in drill_communes(drill, inventory):
            total += 1
            last = latest.get(commune.key)
            if connected(commune, state.communes.get(commune.key), state, inventory.targets):
                count += 1
                if last is not None and last.open and now - last.end <= gap:
                    last.end = now
                else:
                    last = latest[commune.key] = Span(commune.province, commune.code, now, now,
                                                      True)
                changed.append(last)
            elif last is not None and last.open:
                last.open = False
                changed.append(last)
        self.store.save_spans(drill.id, changed)
        self.live[drill.id] = LiveCount(count, total, now)

    def _latest_spans(self, drill: str) -> dict[str, Span]:
        latest = self._latest.get(drill)
        if latest is None:  # first sample since start: continue from the database
            latest = self._latest[drill] = {k: v[-1] for k, v in self.store.spans(drill).items()}
        return latest


# --- the report's data (written out by monitor.present.drill_report) -----------------------


@dataclass(frozen=True, slots=True)
class CommuneDrill(CommuneHeading):
    spans: tuple[Span, ...]

    @property
    def appeared(self) -> bool:
        return bool(self.spans)

    @property
    def first(self) -> float | None:
        return self.spans[0].start if self.spans else None

    @property
    def last(self) -> float | None:
        return self.spans[-1].end if self.spans else None

    @property
    def seconds(self) -> float:
        return sum(s.end - s.start for s in self.spans)


@dataclass(frozen=True, slots=True)
class DrillReport:
    drill: Drill
    generated: float
    communes: tuple[CommuneDrill, ...]
    live: LiveCount | None = None  # while the drill runs

    @property
    def appeared(self) -> int:
        return sum(c.appeared for c in self.communes)

    @property
    def never(self) -> list[CommuneDrill]:
        return [c for c in self.communes if not c.appeared]


def drill_report(drill: Drill, inventory: Inventory, spans: Mapping[str, list[Span]],
                 now: float, live: LiveCount | None = None) -> DrillReport:
    """The drill's report over the (already scoped) inventory; spans clipped to the window.
    With ``live`` (the drill runs), the live count is recounted over these communes: those
    whose latest span was still open at the latest sample."""
    start, end = drill.start.timestamp(), drill.end.timestamp()
    rows, now_connected = [], 0
    for province in inventory.provinces:
        for c in province.communes:
            if not drill.covers(c.province, c.code):
                continue
            clipped = tuple(
                Span(s.province, s.commune, max(s.start, start), min(s.end, end), s.open)
                for s in spans.get(c.key, ()) if s.end >= start and s.start < end)
            rows.append(CommuneDrill(*CommuneHeading.of(c, province.name), clipped))
            latest = spans.get(c.key, [])[-1:]
            now_connected += bool(live and latest and latest[0].open and latest[0].end >= live.at)
    scoped_live = LiveCount(now_connected, len(rows), live.at) if live is not None else None
    return DrillReport(drill, now, tuple(rows), scoped_live)
