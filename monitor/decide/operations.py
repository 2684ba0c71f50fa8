"""Election-period operations: the calendar the provincial committees run the network by.

After every cycle (``run``) or on the collector's timer, :meth:`Operations.evaluate` looks at
the state and the inventory's calendar and returns the alert events that calendar causes:

* **Deadline warnings** (``deadline``): ``warn_days`` days before a milestone's due day (from
  00:00 Vietnam time), one warning per province listing its communes that have not met the
  milestone yet; it resolves when all have met it or when the due day is over. After the
  due day, one event listing the communes still not met; it resolves when the last of them
  meets it. Each fires once (remembered in the state database across restarts). Which
  communes have met a milestone is :func:`monitor.decide.readiness.judge`'s word: a commune
  whose milestone a person attested, or that no vantage can check (not observable), is not
  listed — the readiness report shows those as they are.
* **First observations**: the first cycle that observes a commune is recorded
  (``watched``), so that a milestone is late only when its due day ended while the monitor
  was watching; :meth:`Operations.evidence` hands them, with the attestations, to every
  reader of readiness.
* **Uninspected computers** (``uninspected_host``): a computer that answers on the network
  without an ``inspection`` record (the police security scan and stamp it needs before it
  may connect) is flagged once (held inside a maintenance window); it resolves when the
  record is added to the inventory. Only once stamps are due: after the due day of the
  first milestone that requires ``inspection`` (before it, computers are legitimately
  online while being scanned; the deadline warning lists those communes), or, with no such
  milestone, when the inventory keeps stamps at all. (The API and the page show each
  computer's record, or its absence, always.)
  (A device the inventory does not list at all is ``unknown_device``, from the state engine:
  critical, and never held back by a maintenance window.)
* **Escalation** (``escalation``, for a second set of sinks, e.g. a supervisor's topic):
  inside a period with ``escalate_after``, a commune down longer than that is escalated
  once (held inside a maintenance window like any alert); it resolves when the commune is
  no longer down, even after the period.
* **Drills**: every active drill is sampled (see :mod:`monitor.decide.drills`).

Their alerts go through the one alert book (:mod:`monitor.decide.book`): the state
engine's when one is given (``engine=``; its store keeps them open across restarts and its
outbox delivers them), else a book of their own kept in the operations tables. Which
one-shot warnings already fired stays in the operations tables (``ops_done``).

The probe interval is the shortest ``interval`` of the periods in force
(:meth:`inventory.model.Inventory.interval_at`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from inventory.model import Commune, Inventory, Milestone, Period, Province
from monitor.alerts.event import AlertEvent, Language, place_label, word
from monitor.common.clock import local, local_midnight
from monitor.decide import readiness
from monitor.decide.book import AlertBook, AlertKey
from monitor.decide.drills import DrillTracker
from monitor.decide.readiness import Evidence, Readiness
from monitor.decide.status import CommuneStatus, MonitorState
from monitor.decide.verdicts import deadline, in_maintenance
from monitor.store.ops_db import Attestation, OpsStore

if TYPE_CHECKING:
    from monitor.decide.engine import StateEngine

log = structlog.get_logger("operations")

MAX_NAMES = 20  # communes named in one deadline message; the rest are counted


def stamps_required(inventory: Inventory, now: float) -> bool:
    """Whether a connected computer must have its stamp by now: after the due day of the
    first milestone that requires ``inspection`` (before it, computers are online while the
    police scan them); with no such milestone, as soon as the inventory keeps stamps at all."""
    dues = [deadline(m) for m in inventory.milestones if "inspection" in m.requires]
    if dues:
        return now >= min(dues)
    return any(h.inspection is not None for _, h in inventory.hosts())


def stored_key(text: str) -> AlertKey:
    """An ``ops_alerts`` row's key: JSON ``[event, scope, subject]``, or as older monitors
    wrote it (``deadline:MILESTONE:PROV:PHASE``, ``uninspected:PROV/COMMUNE:HOST``,
    ``escalation:PROV/COMMUNE``)."""
    if text.startswith("["):
        event, scope, subject = json.loads(text)
        return (event, scope, subject)
    kind, _, rest = text.partition(":")
    if kind == "deadline":
        milestone, province, phase = rest.rsplit(":", 2)
        return ("deadline", province, f"{milestone}:{phase}")
    if kind == "uninspected":
        commune, _, host = rest.partition(":")
        return ("uninspected_host", commune, host)
    return ("escalation", rest, "")


def _not_met(m: Milestone, commune: Commune, *, evidence: Callable[[], Evidence],
             has_targets: bool, now: float) -> bool:
    """Whether a deadline message lists the commune: the monitor can check the milestone
    there and has not seen it met, and no person attested it."""
    result = readiness.judge(m, evidence().of(commune, has_targets), now)
    return result.state == Readiness.NOT_MET


class _OpsJournal:
    """A book's journal into the operations tables (an Operations without an engine)."""

    def __init__(self, store: OpsStore) -> None:
        self.store = store
        self.texts: dict[AlertKey, str] = {}  # the key as stored, for rows of older monitors
        self._opened: dict[str, AlertEvent] = {}
        self._closed: list[str] = []

    def open(self, key: AlertKey, ev: AlertEvent) -> None:
        text = self.texts.setdefault(key, json.dumps(list(key), ensure_ascii=False))
        self._opened[text] = ev

    def close(self, key: AlertKey, ev: AlertEvent) -> None:
        text = self.texts.pop(key, json.dumps(list(key), ensure_ascii=False))
        self._opened.pop(text, None)
        self._closed.append(text)

    def flush(self, done: dict[str, float]) -> bool:
        if not (self._opened or self._closed or done):
            return True
        if self.store.record_alerts(self._opened, self._closed, done):
            self._opened, self._closed = {}, []
            return True
        return False


@dataclass(frozen=True, slots=True)
class Outcome:
    alerts: list[AlertEvent]  # for the alert sinks
    escalations: list[AlertEvent]  # for the escalation sinks


class Operations:
    """Deadline warnings, inspections, escalation and drills over one inventory's calendar."""

    def __init__(self, state_path: str | None = None, *, language: Language = "vi",
                 engine: StateEngine | None = None) -> None:
        self.store = OpsStore(state_path or ":memory:")
        self.language = language
        self._engine = engine
        self.drills = DrillTracker(self.store)
        self._done = self.store.done()  # one-shot warnings fired already
        self._done_now: dict[str, float] = {}
        self._watched = self.store.watched()
        self._attested: tuple[tuple[int, float | None], dict[str, dict[str, Attestation]]] = (
            (0, None), {})
        stored = {stored_key(text): (text, ev) for text, ev in self.store.open_alerts().items()}
        self._journal: _OpsJournal | None = None
        self._batch: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext
        if engine is None:
            self._journal = _OpsJournal(self.store)
            self.book = AlertBook(self._journal, language)
            for key, (text, ev) in stored.items():
                self._journal.texts[key] = text
                self.book.restore(key, ev)
        else:
            self.book, self._batch = engine.book, engine.batch
            if stored:  # from before the one book: now kept by the engine's store
                engine.adopt_alerts({key: ev for key, (_, ev) in stored.items()})
                self.store.record_alerts({}, [text for text, _ in stored.values()], {})

    def close(self) -> None:
        self.store.close()

    def _quiet(self, inventory: Inventory, commune: Commune, now: float) -> bool:
        """Inside a maintenance window: the inventory's, and with an engine those set while
        running too (``StateEngine.maintenance_windows``)."""
        windows = (self._engine.maintenance_windows() if self._engine is not None
                   else inventory.maintenance)
        return in_maintenance(windows, commune.province, commune.code, now)

    def evidence(self, state: MonitorState) -> Evidence:
        """What every reader of readiness needs: the state's first passes and agents, the
        first observations and the attestations (re-read when ``report attest`` stored new
        ones while running)."""
        version = self.store.attested_version()
        if version != self._attested[0]:
            self._attested = (version, readiness.by_commune(self.store.attestations()))
        return readiness.from_state(state, self._watched, self._attested[1])

    def _note_watched(self, state: MonitorState) -> None:
        """Record the communes observed for the first time (kept when the write fails:
        the next cycle tries again)."""
        first = [(cs.province, cs.commune, cs.last_seen) for key, cs in state.communes.items()
                 if cs.last_seen is not None and key not in self._watched]
        if first and self.store.record_watched(first):
            self._watched.update({f"{p}/{c}": at for p, c, at in first})

    def evaluate(self, inventory: Inventory, state: MonitorState,
                 now: float | None = None) -> Outcome:
        now = time.time() if now is None else now
        self._note_watched(state)
        self.drills.observe(inventory, state, now)
        with self._batch():
            alerts = (self._deadlines(inventory, state, now)
                      + self._inspections(inventory, state, now))
            escalations = self._escalations(inventory, state, now)
        self._flush()
        for ev in alerts + escalations:
            log.info("operations_alert", alert=ev.event, state=ev.state, province=ev.province,
                     commune=ev.commune, host=ev.host)
        return Outcome(alerts, escalations)

    def _flush(self) -> None:
        if self._journal is not None:
            done = self._journal.flush(self._done_now)
        else:
            done = not self._done_now or self.store.record_alerts({}, [], self._done_now)
        if done:
            self._done_now = {}

    def _fire_once(self, key: AlertKey, once: str, since: float, message: str,
                   province: str) -> AlertEvent | None:
        if once in self._done:
            return None
        ev = self.book.fire(key, since, message, province=province)
        if ev is not None:
            self._done.add(once)
            self._done_now[once] = since
        return ev

    # -- text ------------------------------------------------------------------------------

    def _text(self, key: str, **fields: object) -> str:
        return word(key, self.language, **fields)

    def _names(self, communes: list[Commune]) -> str:
        names = ", ".join(c.name for c in communes[:MAX_NAMES])
        extra = len(communes) - MAX_NAMES
        return names + (f" {self._text('deadline.and_more', n=extra)}" if extra > 0 else "")

    # -- deadlines -------------------------------------------------------------------------

    def _deadlines(self, inventory: Inventory, state: MonitorState,
                   now: float) -> list[AlertEvent]:
        events: list[AlertEvent | None] = []
        evidence = functools.cache(lambda: self.evidence(state))  # only when judged
        unmet = functools.partial(_not_met, evidence=evidence,
                                  has_targets=bool(inventory.targets), now=now)
        for m in inventory.milestones:
            for province in inventory.provinces:
                events += self._milestone_events(m, province, unmet, now)
        return [e for e in events if e is not None]

    def _milestone_events(self, m: Milestone, province: Province,
                          not_met: Callable[[Milestone, Commune], bool],
                          now: float) -> list[AlertEvent | None]:
        """The warning and late events of one milestone in one province. Communes are only
        judged when an event could start or end (cheap on every cycle, nationwide)."""
        due_end = deadline(m)
        warn_from = local_midnight(m.due - dt.timedelta(days=m.warn_days))
        warning, late = (("deadline", province.code, f"{m.id}:{phase}")
                         for phase in ("warning", "late"))
        phase = ("late" if now >= due_end
                 else "warning" if m.warn_days and now >= warn_from else None)
        key = late if phase == "late" else warning
        once = f"deadline:{m.id}:{province.code}:{phase}"
        out: list[AlertEvent | None] = []
        label = f"{province.name}: "
        title = {"title": m.title, "due": f"{m.due:%d/%m/%Y}"}
        if phase == "late" and self.book.firing(warning) is not None:
            out.append(self.book.resolve(warning, now,
                                         label + self._text("deadline.warning_due", **title)))
        if phase is None or (once in self._done and self.book.firing(key) is None):
            return out
        unmet = [c for c in province.communes if not_met(m, c)]
        if not unmet:
            ended = "deadline.late_met" if phase == "late" else "deadline.warning_met"
            out.append(self.book.resolve(key, now, label + self._text(ended, **title)))
            return out
        fields = {**title, "count": len(unmet), "total": len(province.communes),
                  "names": self._names(unmet), "days": (m.due - local(now).date()).days}
        out.append(self._fire_once(key, once, due_end if phase == "late" else warn_from,
                                   label + self._text(f"deadline.{phase}", **fields),
                                   province.code))
        return out

    # -- inspections -----------------------------------------------------------------------

    def _inspections(self, inventory: Inventory, state: MonitorState,
                     now: float) -> list[AlertEvent]:
        events: list[AlertEvent | None] = []
        listed: set[AlertKey] = set()
        for commune, host in inventory.hosts() if stamps_required(inventory, now) else ():
            key = ("uninspected_host", commune.key, host.name)
            listed.add(key)
            cs = state.communes.get(commune.key)
            hs = cs.hosts.get(host.name) if cs is not None else None
            label = place_label(commune.name, commune.isp, commune.circuit) + ": "
            if host.inspection is not None:
                events.append(self.book.resolve(key, now, label + self._text(
                    "uninspected_host.resolved", host=host.name, ip=host.ip,
                    stamp=host.inspection.stamp, date=f"{host.inspection.date:%d/%m/%Y}")))
            elif hs is not None and hs.up is True and not self._quiet(inventory, commune, now):
                events.append(self.book.fire(
                    key, hs.since or now,
                    label + self._text("uninspected_host.firing", host=host.name, ip=host.ip),
                    province=commune.province, commune=commune.code, host=host.name))
        for key, _ in self.book.open_of("uninspected_host"):
            if key not in listed:
                events.append(self.book.resolve(key, now, self._text(
                    "uninspected_host.gone", host=key[2])))
        return [e for e in events if e is not None]

    # -- escalation ------------------------------------------------------------------------

    def _escalations(self, inventory: Inventory, state: MonitorState,
                     now: float) -> list[AlertEvent]:
        events: list[AlertEvent | None] = []
        for key, _ in self.book.open_of("escalation"):
            commune_key = key[1]
            cs = state.communes.get(commune_key)
            if cs is None or cs.status != CommuneStatus.DOWN:
                commune = inventory.commune(*commune_key.split("/"))
                label = place_label(commune.name, commune.isp, commune.circuit) if commune \
                    else commune_key
                events.append(self.book.resolve(
                    key, now, f"{label}: {self._text('escalation.resolved')}"))
        for period in inventory.active_periods(now):
            if period.escalate_after is not None:
                events += self._escalate(period, period.escalate_after, inventory, state, now)
        return [e for e in events if e is not None]

    def _escalate(self, period: Period, limit: float, inventory: Inventory, state: MonitorState,
                  now: float) -> Iterable[AlertEvent | None]:
        for commune in inventory.communes():
            cs = state.communes.get(commune.key)
            if (cs is None or cs.status != CommuneStatus.DOWN or cs.since is None
                    or now - cs.since < limit or not period.covers(commune.province, commune.code)
                    or self._quiet(inventory, commune, now)):
                continue
            label = place_label(commune.name, commune.isp, commune.circuit)
            yield self.book.fire(
                ("escalation", commune.key, ""), cs.since,
                f"{label}: " + self._text("escalation.firing",
                                          minutes=int((now - cs.since) // 60),
                                          limit=round(limit / 60), period=period.title),
                province=commune.province, commune=commune.code)
