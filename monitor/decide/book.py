"""The alert book: every open alert of every kind, one class for the state engine's
conditions (commune, host, device, target, agent, vantage) and the calendar's (deadline,
uninspected computer, escalation).

An alert is keyed ``(event, scope, subject)``: scope ``PROV/COMMUNE``, ``PROV``,
``target@VANTAGE`` or ``central``; subject a host's name, a device's MAC, a target's name,
a milestone and phase, or "". Alerts are the difference between the conditions that hold
and the alerts that are open: a condition that starts fires (``since`` = when it began),
one that ends resolves (same id). ``held`` holds back a new firing (suppression), never a
resolution; a held condition keeps its start, so it fires with it once no longer held.

Every opening and closing goes to a :class:`Journal` (the engine's store batch: open
alerts and the outbox of deliveries, in the same transaction as the state they follow from).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from monitor.alerts.event import (
    AlertEvent,
    AlertState,
    Language,
    alert_id,
    make_event,
    render,
    resolved_fallback,
)

AlertKey = tuple[str, str, str]


@dataclass(slots=True)
class Condition:
    """Whether an alert's condition holds now (None: not observed, leave as is)."""

    key: AlertKey
    present: bool | None
    since: float
    province: str | None
    commune: str | None
    host: str | None = None
    held: bool = False  # hold back a new firing (suppression); never a resolution
    fields: dict[str, object] = field(default_factory=dict)  # "label" and the wording's


class Journal(Protocol):
    """Where the book's changes go to be kept (and delivered after a crash)."""

    def open(self, key: AlertKey, ev: AlertEvent) -> None: ...

    def close(self, key: AlertKey, ev: AlertEvent) -> None: ...


class AlertBook:
    def __init__(self, journal: Journal, language: Language = "vi") -> None:
        self.journal = journal
        self.language = language
        self._open: dict[str, dict[tuple[str, str], AlertEvent]] = {}  # scope -> (event, subj)
        self._since: dict[AlertKey, float] = {}  # conditions present, fired or held
        self._changes: dict[str, int] = {}  # scope -> how often its alerts or conditions moved

    # ---------------------------------------------------------------- reading

    def firing(self, key: AlertKey) -> AlertEvent | None:
        return self._open.get(key[1], {}).get((key[0], key[2]))

    def open_in(self, scope: str) -> list[tuple[AlertKey, AlertEvent]]:
        return [((event, scope, subject), ev)
                for (event, subject), ev in list(self._open.get(scope, {}).items())]

    def open_of(self, event: str) -> list[tuple[AlertKey, AlertEvent]]:
        return [((ev_name, scope, subject), ev)
                for scope, alerts in list(self._open.items())
                for (ev_name, subject), ev in list(alerts.items()) if ev_name == event]

    def scopes(self) -> list[str]:
        return [scope for scope, alerts in self._open.items() if alerts]

    def pending(self, key: AlertKey) -> bool:
        """The condition holds (fired, or held back and waiting)."""
        return key in self._since

    def changes(self, scope: str) -> int:
        """A count that moves whenever an alert of ``scope`` opens or closes or one of its
        conditions starts or ends: equal counts, the same book for that scope."""
        return self._changes.get(scope, 0)

    # ------------------------------------------------------------- conditions

    def reconcile_all(self, conditions: Iterable[Condition], now: float) -> list[AlertEvent]:
        return [ev for c in conditions if (ev := self.reconcile(c, now)) is not None]

    def reconcile(self, c: Condition, now: float) -> AlertEvent | None:
        firing = self.firing(c.key)
        if c.present is None:
            return None
        if not c.present:
            if self._since.pop(c.key, None) is not None:
                self._changed(c.key[1])
            if firing is None:
                return None
            return self.resolve(c.key, now, self._resolved_message(firing, c.fields))
        since = self._since.get(c.key)
        if since is None:
            since = self._since[c.key] = c.since
            self._changed(c.key[1])
        if firing is not None or c.held:
            return None
        return self.fire(c.key, since, self.message(c.key[0], "firing", c.fields),
                         province=c.province, commune=c.commune, host=c.host)

    def resolve_stale(self, scope: str, evaluated: set[AlertKey], events: frozenset[str],
                      now: float) -> list[AlertEvent]:
        """Open alerts of ``events`` in ``scope`` that no condition evaluated any more."""
        return [self.resolve(key, now, self._resolved_message(ev, {}))
                for key, ev in self.open_in(scope) if key[0] in events and key not in evaluated]

    # ---------------------------------------------------------- fire, resolve

    def fire(self, key: AlertKey, since: float, message: str, *, province: str | None,
             commune: str | None = None, host: str | None = None) -> AlertEvent | None:
        """Open an alert (None when it is open already); the id is stable for (key, since)."""
        if self.firing(key) is not None:
            return None
        event, scope, subject = key
        ev = make_event(event_id=alert_id(event, scope, subject, since), event=event,
                        state="firing", province=province, commune=commune, host=host,
                        since=since, message=message)
        self._open.setdefault(scope, {})[(event, subject)] = ev
        self._since.setdefault(key, since)
        self._changed(scope)
        self.journal.open(key, ev)
        return ev

    def resolve(self, key: AlertKey, now: float, message: str | None = None) -> AlertEvent | None:
        """Close an open alert (None when it is not open); the resolution repeats its id.
        Without a message: the firing's own words, marked as over."""
        event, scope, subject = key
        firing = self._open.get(scope, {}).pop((event, subject), None)
        if self._since.pop(key, None) is not None or firing is not None:
            self._changed(scope)
        if firing is None:
            return None
        ev = make_event(event_id=firing.id, event=event, state="resolved",
                        province=firing.province, commune=firing.commune, host=firing.host,
                        since=now, message=message or self._resolved_message(firing, {}))
        self.journal.close(key, ev)
        return ev

    def restore(self, key: AlertKey, firing: AlertEvent) -> None:
        """An alert open before a restart (its id and its start kept)."""
        self._open.setdefault(key[1], {})[(key[0], key[2])] = firing
        self._changed(key[1])

    def _changed(self, scope: str) -> None:
        self._changes[scope] = self._changes.get(scope, 0) + 1

    # ---------------------------------------------------------------- wording

    def message(self, event: str, state: AlertState, fields: dict[str, object]) -> str:
        fields = dict(fields)
        label = fields.pop("label")
        return f"{label}: {render(event, state, self.language, **fields)}"

    def _resolved_message(self, firing: AlertEvent, fields: dict[str, object]) -> str:
        """Resolution text; fields missing (host or device gone) fall back to the firing's."""
        try:
            return self.message(firing.event, "resolved", fields)
        except (KeyError, IndexError):
            return resolved_fallback(firing.message, self.language)
