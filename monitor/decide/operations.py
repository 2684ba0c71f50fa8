"""Election-period operations: the calendar the provincial committees run the network by.

After every cycle (``run``) or on the collector's timer, :meth:`Operations.evaluate` looks at
the state and the inventory's calendar and returns the alert events that calendar causes:

* **Deadline warnings** (``deadline``): ``warn_days`` days before a milestone's due day (from
  00:00 Vietnam time), one warning per province listing its communes that have not met the
  milestone yet; it resolves when all have met it or when the due day is over. After the
  due day, one event listing the late communes; it resolves when the last of them meets it.
  Each fires once (remembered in the state database across restarts).
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

The probe interval is the shortest ``interval`` of the periods in force
(:meth:`inventory.model.Inventory.interval_at`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from inventory.model import Commune, Inventory, Milestone, Period, Province
from monitor.alerts.event import AlertEvent, Language, alert_id, make_event, place_label
from monitor.common.clock import local, local_midnight
from monitor.decide.drills import DrillTracker
from monitor.decide.status import CommuneStatus, MonitorState
from monitor.decide.verdicts import deadline, in_maintenance, milestone_met
from monitor.store.ops_db import OpsStore

log = structlog.get_logger("operations")

MAX_NAMES = 20  # communes named in one deadline message; the rest are counted

#: Message bodies (Vietnamese, English).
MESSAGES: dict[str, tuple[str, str]] = {
    "warning": (
        "còn {days} ngày đến hạn mốc «{title}» (hạn {due}): {count}/{total} xã, phường chưa đạt: "
        "{names}",
        "{days} day(s) left for milestone \"{title}\" (due {due}): {count}/{total} communes "
        "have not met it: {names}",
    ),
    "warning_met": (
        "mốc «{title}» (hạn {due}): tất cả xã, phường đã đạt",
        "milestone \"{title}\" (due {due}): every commune has met it",
    ),
    "warning_due": (
        "mốc «{title}» đã đến hạn ({due})",
        "milestone \"{title}\" is due ({due})",
    ),
    "late": (
        "quá hạn mốc «{title}» (hạn {due}): {count}/{total} xã, phường chưa đạt: {names}",
        "milestone \"{title}\" overdue (due {due}): {count}/{total} communes have not met it: "
        "{names}",
    ),
    "late_met": (
        "mốc «{title}» (hạn {due}): các xã, phường trễ hạn nay đã đạt",
        "milestone \"{title}\" (due {due}): the late communes have now met it",
    ),
    "uninspected": (
        "máy {host} ({ip}) đang kết nối nhưng chưa có kết quả quét, dán tem kiểm định an toàn "
        "thông tin",
        "computer {host} ({ip}) is connected without a security scan and inspection stamp",
    ),
    "inspected": (
        "máy {host} ({ip}) đã có tem kiểm định {stamp} ({date})",
        "computer {host} ({ip}) now has inspection stamp {stamp} ({date})",
    ),
    "uninspected_gone": ("máy {host} không còn trong danh sách", "computer {host} removed"),
    "escalation": (
        "mất kết nối đã {minutes} phút (quá {limit} phút trong {period}): cần xử lý ngay",
        "down for {minutes} min (over the {limit} min allowed during {period}): act now",
    ),
    "escalation_end": ("đã hết mất kết nối", "no longer down"),
    "and_more": ("và {n} xã, phường khác", "and {n} more"),
}


def _met(m: Milestone, state: MonitorState, commune: Commune) -> bool:
    cs = state.communes.get(commune.key)
    return cs is not None and milestone_met(m, cs.first_passed)


def _quiet(inventory: Inventory, commune: Commune, now: float) -> bool:
    return in_maintenance(inventory.maintenance, commune.province, commune.code, now)


def stamps_required(inventory: Inventory, now: float) -> bool:
    """Whether a connected computer must have its stamp by now: after the due day of the
    first milestone that requires ``inspection`` (before it, computers are online while the
    police scan them); with no such milestone, as soon as the inventory keeps stamps at all."""
    dues = [deadline(m) for m in inventory.milestones if "inspection" in m.requires]
    if dues:
        return now >= min(dues)
    return any(h.inspection is not None for _, h in inventory.hosts())


@dataclass
class _OpenAlerts:
    """Open operations alerts and one-shot keys, written through to the store."""

    store: OpsStore
    open: dict[str, AlertEvent] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    _opened: dict[str, AlertEvent] = field(default_factory=dict)
    _closed: list[str] = field(default_factory=list)
    _done_now: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.open = self.store.open_alerts()
        self.done = self.store.done()

    def fire(self, key: str, event: str, since: float, message: str, *,
             province: str | None, commune: str | None = None, host: str | None = None,
             once: bool = False) -> AlertEvent | None:
        if key in self.open or (once and key in self.done):
            return None
        ev = make_event(event_id=alert_id(event, key, "", since), event=event, state="firing",
                        province=province, commune=commune, host=host, since=since,
                        message=message)
        self.open[key] = self._opened[key] = ev
        if once:
            self.done.add(key)
            self._done_now[key] = since
        return ev

    def resolve(self, key: str, now: float, message: str) -> AlertEvent | None:
        firing = self.open.pop(key, None)
        if firing is None:
            return None
        self._opened.pop(key, None)
        self._closed.append(key)
        return make_event(event_id=firing.id, event=firing.event, state="resolved",
                          province=firing.province, commune=firing.commune, host=firing.host,
                          since=now, message=message)

    def keys(self, prefix: str) -> list[str]:
        return [k for k in self.open if k.startswith(prefix)]

    def flush(self) -> None:
        if not (self._opened or self._closed or self._done_now):
            return
        if self.store.record_alerts(self._opened, self._closed, self._done_now):
            self._opened, self._closed, self._done_now = {}, [], {}


@dataclass(frozen=True, slots=True)
class Outcome:
    alerts: list[AlertEvent]  # for the alert sinks
    escalations: list[AlertEvent]  # for the escalation sinks


class Operations:
    """Deadline warnings, inspections, escalation and drills over one inventory's calendar."""

    def __init__(self, state_path: str | None = None, *, language: Language = "vi") -> None:
        self.store = OpsStore(state_path or ":memory:")
        self.language = language
        self.drills = DrillTracker(self.store)
        self._alerts = _OpenAlerts(self.store)

    def close(self) -> None:
        self.store.close()

    def evaluate(self, inventory: Inventory, state: MonitorState,
                 now: float | None = None) -> Outcome:
        now = time.time() if now is None else now
        self.drills.observe(inventory, state, now)
        alerts = self._deadlines(inventory, state, now) + self._inspections(inventory, state, now)
        escalations = self._escalations(inventory, state, now)
        self._alerts.flush()
        for ev in alerts + escalations:
            log.info("operations_alert", alert=ev.event, state=ev.state, province=ev.province,
                     commune=ev.commune, host=ev.host)
        return Outcome(alerts, escalations)

    # -- text ------------------------------------------------------------------------------

    def _text(self, key: str, **fields: object) -> str:
        vi, en = MESSAGES[key]
        return (vi if self.language == "vi" else en).format(**fields)

    def _names(self, communes: list[Commune]) -> str:
        names = ", ".join(c.name for c in communes[:MAX_NAMES])
        extra = len(communes) - MAX_NAMES
        return names + (f" {self._text('and_more', n=extra)}" if extra > 0 else "")

    # -- deadlines -------------------------------------------------------------------------

    def _deadlines(self, inventory: Inventory, state: MonitorState,
                   now: float) -> list[AlertEvent]:
        events: list[AlertEvent | None] = []
        for m in inventory.milestones:
            for province in inventory.provinces:
                events += self._milestone_events(m, province, state, now)
        return [e for e in events if e is not None]

    def _milestone_events(self, m: Milestone, province: Province, state: MonitorState,
                          now: float) -> list[AlertEvent | None]:
        """The warning and late events of one milestone in one province. Communes are only
        judged when an event could start or end (cheap on every cycle, nationwide)."""
        due_end = deadline(m)
        warn_from = local_midnight(m.due - dt.timedelta(days=m.warn_days))
        warning, late = (f"deadline:{m.id}:{province.code}:{kind}" for kind in ("warning", "late"))
        phase = ("late" if now >= due_end
                 else "warning" if m.warn_days and now >= warn_from else None)
        key = late if phase == "late" else warning
        out: list[AlertEvent | None] = []
        label = f"{province.name}: "
        title = {"title": m.title, "due": f"{m.due:%d/%m/%Y}"}
        if phase == "late" and warning in self._alerts.open:
            out.append(self._alerts.resolve(warning, now, label + self._text("warning_due",
                                                                             **title)))
        if phase is None or (key in self._alerts.done and key not in self._alerts.open):
            return out
        unmet = [c for c in province.communes if not _met(m, state, c)]
        if not unmet:
            ended = "late_met" if phase == "late" else "warning_met"
            out.append(self._alerts.resolve(key, now, label + self._text(ended, **title)))
            return out
        fields = {**title, "count": len(unmet), "total": len(province.communes),
                  "names": self._names(unmet), "days": (m.due - local(now).date()).days}
        out.append(self._alerts.fire(key, "deadline", due_end if phase == "late" else warn_from,
                                     label + self._text(phase, **fields),
                                     province=province.code, once=True))
        return out

    # -- inspections -----------------------------------------------------------------------

    def _inspections(self, inventory: Inventory, state: MonitorState,
                     now: float) -> list[AlertEvent]:
        events: list[AlertEvent | None] = []
        listed = set()
        for commune, host in inventory.hosts() if stamps_required(inventory, now) else ():
            key = f"uninspected:{commune.key}:{host.name}"
            listed.add(key)
            cs = state.communes.get(commune.key)
            hs = cs.hosts.get(host.name) if cs is not None else None
            label = place_label(commune.name, commune.isp, commune.circuit) + ": "
            if host.inspection is not None:
                events.append(self._alerts.resolve(key, now, label + self._text(
                    "inspected", host=host.name, ip=host.ip, stamp=host.inspection.stamp,
                    date=f"{host.inspection.date:%d/%m/%Y}")))
            elif hs is not None and hs.up is True and not _quiet(inventory, commune, now):
                events.append(self._alerts.fire(
                    key, "uninspected_host", hs.since or now,
                    label + self._text("uninspected", host=host.name, ip=host.ip),
                    province=commune.province, commune=commune.code, host=host.name))
        for key in self._alerts.keys("uninspected:"):
            if key not in listed:
                events.append(self._alerts.resolve(key, now, self._text(
                    "uninspected_gone", host=key.rsplit(":", 1)[1])))
        return [e for e in events if e is not None]

    # -- escalation ------------------------------------------------------------------------

    def _escalations(self, inventory: Inventory, state: MonitorState,
                     now: float) -> list[AlertEvent]:
        events: list[AlertEvent | None] = []
        for key in self._alerts.keys("escalation:"):
            commune_key = key.split(":", 1)[1]
            cs = state.communes.get(commune_key)
            if cs is None or cs.status != CommuneStatus.DOWN:
                commune = inventory.commune(*commune_key.split("/"))
                label = place_label(commune.name, commune.isp, commune.circuit) if commune \
                    else commune_key
                events.append(self._alerts.resolve(key, now,
                                                   f"{label}: {self._text('escalation_end')}"))
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
                    or _quiet(inventory, commune, now)):
                continue
            label = place_label(commune.name, commune.isp, commune.circuit)
            yield self._alerts.fire(
                f"escalation:{commune.key}", "escalation", cs.since,
                f"{label}: " + self._text("escalation", minutes=int((now - cs.since) // 60),
                                          limit=round(limit / 60), period=period.title),
                province=commune.province, commune=commune.code)
