"""The monitor's rules, each written once as a pure function: every caller (the state
engine, operations, metrics, the API, the reports) asks here, so a gauge and an alert can
never disagree about the same fact.

* :func:`debounce`: one observation of a subject counted (``down_after`` / ``up_after``);
* :func:`commune_status`: a commune's status from its gateways' and hosts' debounced states;
* :func:`arp_verdict` / :func:`ip_config_ok`: the IP-configuration verdict of one host (MACs
  compared lower-case); :func:`segment_arp`: the segment's views together;
  :func:`confirm_segment`: a segment verdict (conflict, wrong MAC) over two scans;
* :func:`in_maintenance`: whether a scope is inside a maintenance window (naive times are
  Vietnam time, :func:`monitor.common.clock.aware`);
* :func:`deadline`, :func:`milestone_met`, :func:`judge`: milestones;
* :func:`upstream_of`, :func:`line_vantages`, :func:`any_up`, :func:`fresh`: the fused
  verdict over several vantages (contract §7);
* :func:`host_expected`, :func:`counted`: working hours (a silent computer outside them is
  off, not down); :func:`backup_line_down`: the backup line's router dead while the
  primary carries the commune.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from inventory.model import (
    Commune,
    Host,
    Inventory,
    Maintenance,
    Milestone,
    always_expected,
    computer_expected,
    in_scope,
)
from monitor.common.clock import aware, local_midnight
from monitor.decide.status import CommuneStatus
from probes.result import ArpDetail, ArpVerdict, arp_verdict

__all__ = [
    "ArpVerdict", "SegmentVerdict", "Tracked", "any_up", "arp_verdict",
    "backup_line_down", "commune_status", "confirm_segment", "counted", "deadline", "debounce",
    "fresh", "host_expected",
    "in_maintenance", "ip_config_ok", "line_vantages", "milestone_met", "own_vantage",
    "segment_arp", "upstream_of",
]


class Tracked(Protocol):
    """A debounced subject (a host, a gateway, a target from one vantage)."""

    up: bool | None
    since: float | None
    consecutive_ok: int
    consecutive_fail: int


def debounce(t: Tracked, alive: bool, at: float, down_after: int, up_after: int) -> bool:
    """Count one observation; True when the debounced state changed. From unknown, one good
    observation makes it up (an answer is proof of life) while ``down_after`` failures make
    it down; afterwards ``down_after`` / ``up_after`` consecutive ones flip it. Every
    observation given counts, so re-probes at a retry pace confirm faster than whole cycles."""
    if alive:
        t.consecutive_ok, t.consecutive_fail = t.consecutive_ok + 1, 0
        new = True if t.up is None or t.consecutive_ok >= up_after else t.up
    else:
        t.consecutive_ok, t.consecutive_fail = 0, t.consecutive_fail + 1
        new = False if t.consecutive_fail >= max(down_after, 1) else t.up
    if new == t.up:
        return False
    t.up, t.since = new, at
    return True


def commune_status(gateway_up: bool | None, backup_gateway_up: bool | None,
                   hosts_up: Sequence[bool | None]) -> tuple[CommuneStatus, bool]:
    """(status, on_backup). UNKNOWN: nothing judged; DOWN: the gateway down with no backup
    up, or every host down; DEGRADED: some host down, or on the backup line; else OK."""
    on_backup = gateway_up is False and backup_gateway_up is True
    if gateway_up is None and all(h is None for h in hosts_up):
        return CommuneStatus.UNKNOWN, False
    if gateway_up is False and not on_backup:
        return CommuneStatus.DOWN, False
    if hosts_up and all(h is False for h in hosts_up):
        return CommuneStatus.DOWN, on_backup
    if on_backup or any(h is False for h in hosts_up):
        return CommuneStatus.DEGRADED, on_backup
    return CommuneStatus.OK, on_backup


def host_expected(inventory: Inventory, commune: Commune, host: Host, at: float,
                  settle: float = 0.0) -> bool:
    """Whether working hours expect the computer to answer at Unix time ``at`` (contract
    §2): :func:`inventory.model.computer_expected`, a drill or period covering the commune
    counting as working hours. ``settle``: expected over the ``settle`` seconds before
    ``at`` too, so a computer switched on at the start of the hours gets the time any
    failure takes to be confirmed (``down_after`` cycles) before its silence counts."""
    if always_expected(inventory.defaults, host):  # most inventories: no time to build
        return True
    return all(
        computer_expected(inventory.defaults, host, when, in_window=any(
            w.covers(commune.province, commune.code) and w.active(when)
            for w in (*inventory.drills, *inventory.periods)))
        for when in {dt.datetime.fromtimestamp(t, dt.UTC) for t in (at, at - settle)})


def counted(up: bool | None, expected: bool) -> bool | None:
    """A computer's debounced state as the commune's status and ``host_down`` count it: a
    silent one outside working hours is off (None, as if not judged); an answer counts at
    any hour."""
    return None if up is False and not expected else up


def backup_line_down(gateway_up: bool | None, backup_up: bool | None) -> bool | None:
    """``backup_line_down``: the primary line's router answers, the backup's does not (both
    debounced). None (leave an open alert as it is) while the backup is unjudged, or while
    the primary is not up: then the commune is down or on no line, which its own alert
    says; the backup is repaired only when it answers."""
    if backup_up is None:
        return None
    if backup_up:
        return False
    return True if gateway_up is True else None


def segment_arp(details: Iterable[ArpDetail | None]) -> ArpDetail | None:
    """One host's ARP as the segment's views saw it together (an agent's scan, the router's
    table): every MAC any of them heard answer, first seen first, so views that disagree
    make a conflict (contract §7); None when none of them looked."""
    looked = [d for d in details if d is not None]
    if len(looked) <= 1:
        return looked[0] if looked else None
    macs = tuple(dict.fromkeys(m.lower() for d in looked for m in d.macs))
    expected = next((d.expected_mac for d in looked if d.expected_mac), None)
    return ArpDetail(macs, expected)


@dataclass(frozen=True, slots=True)
class SegmentVerdict:
    """One host's IP-configuration verdict as the alerts see it (``ip_conflict``,
    ``wrong_mac``): ``confirmed`` changes only over two scans (:func:`confirm_segment`)."""

    confirmed: ArpVerdict | None = None  # None: not confirmed yet
    pending: ArpVerdict | None = None  # a different verdict awaiting its second scan
    since: float = 0.0  # the newest scan when the pending verdict showed


def confirm_segment(state: SegmentVerdict, now: ArpVerdict,
                    scans: Sequence[float]) -> SegmentVerdict:
    """Count one judgement of a host's segment (``now``, over ``scans``: the latest scan
    time of every view on the segment). A new verdict holds once every view has scanned
    the host again since it showed, still saying it: a card swapped during one scan (an
    agent hears both) or replaced between two reads of the router (a change, not yet a
    flip-flop) raises no conflict, and a view not yet told of a new card no disagreement.
    The same rule for every view on the segment, and for the end of a fault as well."""
    if now == state.confirmed:
        return SegmentVerdict(now)
    if now != state.pending:
        state = SegmentVerdict(state.confirmed, now, max(scans, default=0.0))
    if all(at > state.since for at in scans):
        return SegmentVerdict(now)
    return state


def ip_config_ok(arp: ArpDetail | None, expected: str | None = None) -> bool | None:
    """``tslcd_host_ip_config_ok``: None without a vantage on the segment (never guessed)."""
    return None if arp is None else arp_verdict(arp, expected) == "ok"


def in_maintenance(windows: Sequence[Maintenance], province: str, commune: str | None,
                   at: float) -> bool:
    """Whether ``PROV[/COMMUNE]`` is inside one of the maintenance windows at Unix time
    ``at``; a window written without an offset is Vietnam time. Asked at every commune's
    judgement: with no window at all (the usual case) it answers before making a time."""
    if not windows:
        return False
    when = dt.datetime.fromtimestamp(at, dt.UTC)
    return any(in_scope(m.scope, province, commune) and aware(m.start) <= when < aware(m.end)
               for m in windows)


def deadline(milestone: Milestone) -> float:
    """The end of the due day in Vietnam time, as Unix time."""
    return local_midnight(milestone.due + dt.timedelta(days=1))


def milestone_met(milestone: Milestone, passed: Mapping[str, float]) -> bool:
    """Every check the milestone requires has passed once (``CommuneState.first_passed``)."""
    return all(check in passed for check in milestone.requires)


def upstream_of(vantage: str, province: str, commune: str) -> bool | None:
    """Where a vantage stands for a commune (contract §7): True upstream of its line
    (``central``, the province's agent), False on its segment (the commune's own agent, and
    the line's ``router``, whose ARP table sees the segment and never judges the line), None
    when the vantage does not cover the commune."""
    if vantage == "router":
        return False
    if vantage == "central":
        return True
    if vantage == province:
        return True
    if vantage == f"{province}/{commune}":
        return False
    return None


def own_vantage(live: Iterable[str], province: str, commune: str) -> str:
    """The vantage that speaks for the commune's own reach of the election system: its own
    agent, else its province's agent, else the centre (of the vantages observing it now)."""
    live = set(live)
    return next((v for v in (f"{province}/{commune}", province) if v in live), "central")


def line_vantages(seen: Iterable[str], province: str, commune: str) -> list[str]:
    """The vantages whose view judges the commune's line: the upstream ones that observe
    it; a commune agent's only where no upstream vantage covers the commune."""
    seen = list(seen)
    upstream = [v for v in seen if upstream_of(v, province, commune)]
    return upstream or [v for v in seen if upstream_of(v, province, commune) is False]


def any_up(states: Iterable[bool | None]) -> bool | None:
    """Several vantages' debounced states of one subject: up when any saw it answer, down
    when none did and at least one judged it down, None while none has judged it."""
    result: bool | None = None
    for up in states:
        if up:
            return True
        if up is False:
            result = False
    return result


def fresh(last_seen: float | None, newest: float, window: float) -> bool:
    """Whether a vantage's view still speaks for a commune: it observed it within
    ``window`` seconds of the newest observation (a vantage that stopped looking must not
    hold the verdict forever)."""
    return last_seen is not None and newest - last_seen < window
