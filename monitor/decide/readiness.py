"""Honest readiness: what can be said of one milestone in one commune, written once.

Every reader of readiness asks :func:`judge` (the readiness report, the commune's page and
API, the deadline alerts of :mod:`monitor.decide.operations`). Exactly one of:

* **met** (on time): every required check first passed by the end of the due day;
* **met late**: it passed after the due day, and the monitor was watching the commune when
  the due day ended (its first observation came before) — the delay was seen, not assumed;
* **met, not observed before due**: it passes now, but the monitor first saw the commune
  after the due day: whether it was ready in time is unknown, so it is not called late;
* **attested**: a person recorded it (``tslcd-monitor report attest``), shown as attested,
  never as measured; late when the attested day is after the due day;
* **not observable**: no vantage can check a required check — :func:`unobservable` says
  which is missing (an ``ip_config`` check needs an agent on the commune's segment or the
  line's router read by SNMP; ``link`` and ``inspection`` need computers in the inventory;
  ``target`` needs the election system in the inventory);
* **not met**: the monitor can check it and has not seen it pass; late once the due day
  ended while the monitor was watching.

Precedence: a measurement the monitor made while watching before the due day (met, met
late) stands; an attestation speaks for what the monitor did not watch (before it existed,
or a check it cannot make), so it comes next; then a pass seen only after the due day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from inventory.model import Commune, Milestone
from monitor.decide.status import CommuneState, MonitorState
from monitor.decide.verdicts import deadline, milestone_met, upstream_of
from monitor.store.ops_db import Attestation

FirstPassed = Mapping[str, Mapping[str, float]]  # "PROV/COMMUNE" -> {check: Unix time}


class Readiness(StrEnum):
    MET = "met"
    MET_LATE = "met_late"
    MET_UNWATCHED = "met_not_observed_before_due"
    ATTESTED = "attested"
    NOT_OBSERVABLE = "not_observable"
    NOT_MET = "not_met"


MET_STATES = frozenset({Readiness.MET, Readiness.MET_LATE, Readiness.MET_UNWATCHED,
                        Readiness.ATTESTED})


class Missing(StrEnum):
    """What a check lacks to be observable at all."""

    HOSTS = "hosts"  # no computer in the inventory
    SEGMENT = "segment"  # no agent in the commune and no SNMP router
    TARGET = "target"  # no election system in the inventory


@dataclass(frozen=True, slots=True)
class MilestoneResult:
    state: Readiness
    met_at: float | None  # measured: when the last required check first passed
    late: bool
    missing: tuple[tuple[str, Missing], ...] = ()  # (check, what it lacks): not observable
    attestation: Attestation | None = None

    @property
    def met(self) -> bool:
        return self.state in MET_STATES


@dataclass(frozen=True, slots=True)
class CommuneEvidence:
    """What the rule reads of one commune."""

    passed: Mapping[str, float]  # check -> first pass (``CommuneState.first_passed``)
    #: the first observation of the commune; None: never observed. ``watching_known``
    #: False: not known (a caller without the operations' record), judged as watched all along
    watched_since: float | None = None
    watching_known: bool = True
    attested: Mapping[str, Attestation] = field(default_factory=dict)  # milestone id ->
    unobservable: Mapping[str, Missing] = field(default_factory=dict)  # check ->


def unobservable(commune: Commune, has_targets: bool, segment_vantage: bool
                 ) -> dict[str, Missing]:
    """The checks no vantage can make for the commune, and what each lacks.
    ``segment_vantage``: an agent in the commune has reported (its view is on the segment)."""
    out: dict[str, Missing] = {}
    if not commune.hosts:
        out.update(link=Missing.HOSTS, ip_config=Missing.HOSTS, inspection=Missing.HOSTS)
    elif commune.snmp is None and not segment_vantage:
        out["ip_config"] = Missing.SEGMENT
    if not has_targets:
        out["target"] = Missing.TARGET
    return out


def judge(milestone: Milestone, evidence: CommuneEvidence, now: float) -> MilestoneResult:
    """The one state of the milestone for the commune (see the module docstring)."""
    due = deadline(milestone)
    passed = evidence.passed
    times = list(passed.values())
    seen = ([evidence.watched_since] if evidence.watched_since is not None else []) + times
    watched_at_due = not evidence.watching_known or (bool(seen) and min(seen) < due)
    attestation = evidence.attested.get(milestone.id)
    if milestone_met(milestone, passed):
        met_at = max((passed[check] for check in milestone.requires), default=None)
        if met_at is None or met_at <= due:
            return MilestoneResult(Readiness.MET, met_at, False)
        if watched_at_due:
            return MilestoneResult(Readiness.MET_LATE, met_at, True)
        if attestation is None:
            return MilestoneResult(Readiness.MET_UNWATCHED, met_at, False)
    if attestation is not None:
        return MilestoneResult(Readiness.ATTESTED, None, attestation.day > milestone.due,
                               attestation=attestation)
    missing = tuple((check, evidence.unobservable[check]) for check in milestone.requires
                    if check not in passed and check in evidence.unobservable)
    if missing:
        return MilestoneResult(Readiness.NOT_OBSERVABLE, None, False, missing)
    return MilestoneResult(Readiness.NOT_MET, None, now >= due and watched_at_due)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the rule reads, for every commune: first passes, first observations,
    attestations and which communes have a vantage on their segment.

    ``watched_since`` None: the first observations are not known to the caller (judged as
    watched all along, as before they were recorded)."""

    first_passed: FirstPassed
    watched_since: Mapping[str, float] | None = None
    attested: Mapping[str, Mapping[str, Attestation]] = field(default_factory=dict)
    segment: frozenset[str] = frozenset()  # "PROV/COMMUNE" with an agent in the commune

    def of(self, commune: Commune, has_targets: bool) -> CommuneEvidence:
        key = commune.key
        return CommuneEvidence(
            self.first_passed.get(key, {}),
            None if self.watched_since is None else self.watched_since.get(key),
            self.watched_since is not None,
            self.attested.get(key, {}),
            unobservable(commune, has_targets, key in self.segment))


def on_segment(cs: CommuneState) -> bool:
    """Whether a vantage on the commune's own segment (its agent) observes or observed it."""
    return any(upstream_of(v, cs.province, cs.commune) is False for v in cs.views)


def segment_vantages(state: MonitorState) -> frozenset[str]:
    """The communes :func:`on_segment`."""
    return frozenset(key for key, cs in state.communes.items() if on_segment(cs))


def of_state(commune: Commune, cs: CommuneState | None, has_targets: bool) -> CommuneEvidence:
    """One commune's evidence from a running monitor's state alone (its first passes and
    agents; first observations not known, no attestations)."""
    return CommuneEvidence(
        dict(cs.first_passed) if cs is not None else {}, None, False, {},
        unobservable(commune, has_targets, cs is not None and on_segment(cs)))


def from_state(state: MonitorState, watched_since: Mapping[str, float] | None = None,
               attested: Mapping[str, Mapping[str, Attestation]] | None = None) -> Evidence:
    """The evidence of a running monitor's state (and, from its operations, the first
    observations and attestations)."""
    return Evidence({key: dict(cs.first_passed) for key, cs in state.communes.items()
                     if cs.first_passed},
                    watched_since, attested or {}, segment_vantages(state))


def by_commune(attestations: list[Attestation]) -> dict[str, dict[str, Attestation]]:
    out: dict[str, dict[str, Attestation]] = {}
    for a in attestations:
        out.setdefault(a.key, {})[a.milestone] = a
    return out
