"""From observations to debounced state and alert events.

Rules (the why is in each docstring below; the summary is here for operators):

* Vantages (contract §7). Every observation is counted in its own vantage's view of the
  commune (``CommuneState.views``: ``central``, a province agent ``PROV``, the commune's
  agent ``PROV/COMMUNE``); no vantage's result overwrites another's. The verdict fuses the
  views that speak for the commune (observed within ``STALE_CYCLES`` intervals of the
  newest, central not isolated): a host is up when any of them saw it answer; the line
  (gateways, status, the fused RTT and loss) comes from the upstream views, a commune
  agent's only where none covers the commune; ARP from a view on the segment. A host that
  answers its agent but not across the line is a line problem (the status), not
  ``host_down``. One outage, one alert: while the line is down from upstream, the commune
  agent's ``agent_silent`` and ``target_unreachable`` are held. :meth:`central_upstream`
  (the cycle's check of ``defaults.upstream``): one ``vantage_isolated``; the central view
  stops counting and its communes' alerts are held; when back, it restarts from unknown.
* Debouncing (:func:`monitor.decide.verdicts.debounce`). Hosts, gateways, backup gateways and
  targets (per vantage) are each tracked the same way; every observation given counts.
  A never-probed subject is *unknown*. From unknown, the first good cycle makes it up
  (an answer is proof of life) while ``down_after`` consecutive failed cycles make it down
  (one lost packet proves nothing). Afterwards, up -> down takes ``down_after``
  consecutive failures and down -> up ``up_after`` consecutive good cycles. A cycle that did
  not observe a subject leaves it as it is.
* Commune status. UNKNOWN: nothing judged yet, or its agent went silent. DOWN: the gateway
  is down with no backup gateway up, or every host is down. DEGRADED: some host down, or
  running on the backup line (primary gateway down, backup up: ``on_backup``). OK otherwise.
* Alerts (kept in :class:`monitor.decide.book.AlertBook`, the one book of every kind, the
  calendar's too) are the difference between the conditions that hold and those open.
  A condition that starts fires (with ``since`` = when it began); one that ends resolves
  (same id). Suppression only holds back *new* firings; it never stops probing, state
  tracking or a resolution:
  - parent: while the commune is DOWN, its hosts' ``host_down`` are held (and, when the
    line is down, their ``host_flapping`` too), so an outage gives one ``commune_down``
    instead of one ``host_down`` per computer;
  - flapping: a host whose debounced state changed more than ``flap_changes`` times within
    ``flap_window`` seconds gets one ``host_flapping``; its ``host_down`` (and a
    ``commune_down`` caused by all hosts being down) is held until it has been stable for a
    whole window (then ``host_flapping`` resolves);
  - maintenance: inside a window, every alert of the scope is held except
    ``unknown_device`` (a foreign device is a security matter). When the window ends, the
    conditions still present fire at the next cycle, with ``since`` = when they began.
* Working hours (contract §2, :func:`monitor.decide.verdicts.host_expected`): outside them
  a silent computer is *off*: its debounced state stays a fact (``up`` False, metrics 0) but
  it counts for neither the status nor ``host_down`` (:func:`~monitor.decide.verdicts.counted`).
  An open ``host_down`` (a computer dead before the hours ended) is held open overnight,
  not resolved as if repaired: only an answer resolves it. At the start of the hours a
  computer counts once it has been expected for ``down_after`` intervals, the time any
  failure takes to be confirmed. Gateways (the line) are expected always.
* ``backup_line_down`` (warning, one per commune): the primary line's router answers, the
  backup's does not (both debounced); no commune status change; resolved when the backup
  answers; while the primary is down too the commune's own alert speaks, and the warning
  stays as it is.
* ``commune_degraded`` fires when the commune runs on its backup line (the primary line is
  down): hosts down are already reported one by one as ``host_down``, so a commune-level
  duplicate would only add noise (the status is DEGRADED in both cases). ``unknown_device``
  fires once per unknown MAC, immediately.
* First passes (``CommuneState.first_passed``, for milestones): ``inspection`` when every
  computer has its police inspection record in the inventory (at the latest stamp's day);
  ``link`` when the gateway and every host are up; ``ip_config`` when every host's ARP
  shows exactly one MAC, the expected one where the inventory has one (without an ARP
  vantage on the segment it cannot pass: the check is never guessed); ``target`` when every
  inventory target was reached in the latest result from the commune's own vantage (an
  agent whose scope covers it), or from ``central`` when the commune is observed centrally
  (no agent covers it).
* ``target_unreachable`` carries the vantage's province/commune (both null for ``central``;
  the MQTT sink publishes those on ``tslcd/v1/alerts/central``). ``agent_silent`` (from
  :meth:`StateEngine.mark_silent`) is per ``PROV`` or ``PROV/COMMUNE`` as the agent's scope;
  the next observation from that scope resolves it. A silent commune's hosts restart from
  unknown; alerts open before the silence stay open until a recovery resolves them.
* Persistence (with a :class:`~monitor.store.state_db.Store`): debounced states and
  counters (each vantage's view and the fused verdict), commune statuses, first passes and
  open alerts survive a restart; a database from before the vantages becomes the view of
  the vantage that spoke last. The flap
  history and the start of conditions held back by suppression live in memory only: a
  restart begins them anew.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager

import structlog

from inventory.model import Commune, Host, Inventory, Maintenance, in_scope
from monitor.alerts.event import (
    OPERATIONS_EVENTS,
    AlertEvent,
    Language,
    place_label,
)
from monitor.common.clock import local_midnight
from monitor.cycle.observation import CommuneObservation, HostObservation
from monitor.cycle.routers import ROUTER
from monitor.decide.book import AlertBook, AlertKey, Condition
from monitor.decide.pending import Pending, StoredTrackers
from monitor.decide.status import (
    CommuneState,
    CommuneStatus,
    HostState,
    MonitorState,
    TargetState,
    VantageView,
    live_vantages,
)
from monitor.decide.verdicts import (
    SegmentVerdict,
    any_up,
    arp_verdict,
    backup_line_down,
    commune_status,
    confirm_segment,
    counted,
    debounce,
    fresh,
    host_expected,
    in_maintenance,
    line_vantages,
    own_vantage,
    segment_arp,
    upstream_of,
)
from monitor.store.state_db import (
    HistoryRow,
    Snapshot,
    Store,
    TrackerKey,
    TrackerRow,
    loads_key,
)
from probes.result import ArpDetail, ArpVerdict, ProbeResult, UnknownDevice

log = structlog.get_logger("state")

GATEWAY_KINDS = ("gateway", "backup_gateway")
#: Events evaluated from a commune's observation: an open one no longer evaluated resolves.
COMMUNE_EVENTS = frozenset(
    {"commune_down", "commune_degraded", "host_down", "host_flapping", "ip_conflict",
     "wrong_mac", "unknown_device", "backup_line_down", "snmp_unreachable"}
)
NEVER_SILENCED = frozenset({"unknown_device"})
#: A vantage's view stops speaking for a commune when it has not observed it for this many
#: probe intervals while others have (contract §7: no stale view holds the verdict).
STALE_CYCLES = 3
OUTAGES_KEPT = 8  # per commune, the latest line outages remembered (in memory)
CENTRAL = "central"
#: Consecutive failed SNMP reads of a line's router before its one warning (a lost read on
#: a busy line is no news; each read is ``snmp_every`` cycles apart).
SNMP_FAIL_AFTER = 2


class StateEngine:
    def __init__(
        self,
        inventory: Inventory,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
        *,
        flap_changes: int = 4,
        flap_window: float = 600.0,
        language: Language = "vi",
        maintenance: Callable[[], Iterable[Maintenance]] | None = None,
    ) -> None:
        """``maintenance``: windows kept beside the inventory's (set while running, e.g.
        the state database's), read at every judgement."""
        self.store = store
        self.clock = clock
        self._stored_windows = maintenance
        self.flap_changes = flap_changes
        self.flap_window = flap_window
        self.language = language
        self.state = MonitorState()
        self._inventory = inventory
        self._trackers: dict[TrackerKey, HostState] = {}
        self._by_scope: dict[str, set[TrackerKey]] = {}  # index of _trackers by scope
        self._flaps: dict[TrackerKey, deque[float]] = {}
        self.book = AlertBook(_ToPending(self), language)  # every open alert, every kind
        self._last_at: dict[tuple[str, str], float] = {}  # (commune, vantage) -> latest cycle
        self._isolated = False  # the central vantage lost its upstream (vantage_isolated)
        #: commune -> [start, end] of its latest line outages seen upstream (end None: now)
        self._outages: dict[str, list[list[float | None]]] = {}
        #: (commune, host) -> its segment verdict as the alerts see it (over two scans)
        self._segment_verdicts: dict[tuple[str, str], SegmentVerdict] = {}
        #: commune -> vantage -> the unknown devices of its latest scan (the router's table,
        #: an agent's ARP sweep): the commune's are all of them together
        self._devices: dict[str, dict[str, tuple[UnknownDevice, ...]]] = {}
        #: commune -> (consecutive failed SNMP reads, since, the latest (kind, message))
        self._snmp: dict[str, tuple[int, float, tuple[str, str]]] = {}
        #: commune -> what its conditions were last judged on (:meth:`_judge`)
        self._judgements: dict[str, tuple[object, ...] | None] = {}
        self._pending = Pending()
        self._stored = StoredTrackers()
        self._batch_depth = 0
        self.store = None  # building from the inventory is not a change to store
        self.set_inventory(inventory)
        if store is not None:
            self._restore(store)
            self.store = store
            with self.batch():
                self._resolve_orphans()

    # ----------------------------------------------------------------- public API

    @property
    def inventory(self) -> Inventory:
        return self._inventory

    def apply(self, obs: CommuneObservation) -> list[AlertEvent]:
        """Fold one commune's cycle into the state; returns the alert events it caused."""
        commune = self._inventory.commune(obs.province, obs.commune)
        cs = self.state.communes.get(f"{obs.province}/{obs.commune}")
        if commune is None or cs is None:
            log.warning("observation_unknown_commune", province=obs.province,
                        commune=obs.commune, vantage=obs.vantage)
            return []
        if self.is_stale(obs):
            # MQTT QoS 1 may deliver a batch twice: counting it again would skew debouncing.
            log.debug("observation_stale", commune=commune.key, vantage=obs.vantage, at=obs.at)
            return []
        with self.batch():
            events = self.apply_targets(obs.targets, obs.vantage) if obs.targets else []
            if obs.snmp_error is not None:
                self._router_failed(commune, cs, obs.at, obs.snmp_error)
            else:
                self._observe(commune, cs, obs)
            events += self._judge(commune, cs, obs.at, held=self._discounted(obs.vantage))
            events += self.book.reconcile_all(self._silence_ended(commune, obs.vantage, obs.at)
                                              + self._silence_held(commune, cs, obs), obs.at)
        self._last_at[(commune.key, obs.vantage)] = obs.at
        return events

    def is_stale(self, obs: CommuneObservation) -> bool:
        """Whether a cycle at least as recent from the same vantage was already applied (the
        collector asks before anything else changes, so a replay refreshes nothing)."""
        key = (f"{obs.province}/{obs.commune}", obs.vantage)
        return obs.at <= self._last_at.get(key, float("-inf"))

    def note_agent_seq(self, agent: str, seq: int, at: float) -> None:
        """The collector's replay guard, written in the same transaction as the batch."""
        self._pending.agent_seqs[agent] = (seq, at)

    def forget_agent_seqs(self, agents: Iterable[str]) -> None:
        for agent in agents:
            self._pending.agent_seqs.pop(agent, None)
            self._pending.removed_agent_seqs.append(agent)

    def apply_cycle(
        self,
        observations: Iterable[CommuneObservation],
        targets: Iterable[ProbeResult] = (),
        vantage: str = "central",
    ) -> list[AlertEvent]:
        """A whole cycle in one store transaction; targets first so ``target`` passes now."""
        with self.batch():
            events = self.apply_targets(targets, vantage)
            for obs in observations:
                events += self.apply(obs)
        return events

    def apply_targets(self, results: Iterable[ProbeResult], vantage: str) -> list[AlertEvent]:
        """Election-system checks from one vantage, debounced like hosts per (target, vantage)."""
        conditions = []
        with self.batch():
            for result in results:
                if result.kind != "target":
                    continue
                key: TrackerKey = ("target", vantage, result.subject)
                tracker = self._tracker(key, result.subject, vantage)
                self._count(key, tracker, result.ok, result.started)
                up = tracker.up if tracker.up is not None else result.ok
                self.state.targets[(result.subject, vantage)] = TargetState(
                    result.subject, vantage, up, result)
                conditions.append(self._target_condition(tracker, result, vantage))
            return self.book.reconcile_all(conditions, self.clock())

    def mark_silent(self, province: str, commune: str | None = None,
                    only: Collection[str] | None = None) -> list[AlertEvent]:
        """An agent covering ``PROV[/COMMUNE]`` went quiet: its communes become UNKNOWN.
        ``only`` (commune keys) narrows that to the communes the agent actually reported on:
        an agent no agents file vouches for must not blank a province it merely claimed."""
        now = self.clock()
        scope = f"{province}/{commune}" if commune else province
        with self.batch():
            covered = [c for c in self._communes_in(province, commune)
                       if only is None or c.key in only]
            for c in covered:
                self._forget_view(c, self.state.communes[c.key], scope, now)
            label = self._scope_label(province, commune)
            # one outage, one alert: a commune agent falls silent because its line is down
            consequence = commune is not None and any(
                self._consequence(self.state.communes[c.key], now) for c in covered)
            cond = Condition(("agent_silent", scope, ""), True, now, province, commune,
                             held=self._in_maintenance(province, commune, now) or consequence,
                             fields={"label": label})
            return self.book.reconcile_all([cond], now)

    def central_upstream(self, reachable: bool, at: float | None = None) -> list[AlertEvent]:
        """The central vantage's own uplink (every ``defaults.upstream`` address failed, or
        one answers again), from the cycle. Isolated: one ``vantage_isolated`` alert, and
        the central view stops counting (its failures measure our uplink, not the
        communes): the communes' alerts from it are held, the agents' views keep counting.
        Back: the central views restart from unknown, so a commune that answers is up at
        once and one still down is confirmed anew and fires then."""
        now = self.clock() if at is None else at
        was, self._isolated = self._isolated, not reachable
        with self.batch():
            if was and reachable:
                for c in self._inventory.communes():
                    self._forget_view(c, self.state.communes[c.key], CENTRAL, now)
            cond = Condition(("vantage_isolated", CENTRAL, ""), not reachable, now, None, None,
                             fields={"label": self._vantage_label(CENTRAL)})
            return self.book.reconcile_all([cond], now)

    def adopt_alerts(self, alerts: dict[AlertKey, AlertEvent]) -> None:
        """Open alerts kept elsewhere until now (the operations' own table, before the one
        book) join the book and the store's open alerts, undelivered again."""
        with self.batch():
            for key, firing in alerts.items():
                if self.book.firing(key) is None:
                    self.book.restore(key, firing)
                    self._pending.opened[key] = firing

    def set_inventory(self, inventory: Inventory) -> list[AlertEvent]:
        """Reload: keeps the state of communes/hosts that still exist; resolves the alerts of
        those that are gone (returned, to be published like any other)."""
        now = self.clock()
        self._inventory = inventory
        self._judgements.clear()  # names, addresses, MACs and windows may have changed
        self._stored.cap = max(inventory.defaults.down_after, inventory.defaults.up_after, 1)
        wanted = {c.key: c for c in inventory.communes()}
        events: list[AlertEvent] = []
        with self.batch():
            for key in [k for k in self.state.communes if k not in wanted]:
                events += self._drop_commune(key, now)
            for key, commune in wanted.items():
                cs = self.state.communes.setdefault(
                    key, CommuneState(commune.province, commune.code))
                events += self._sync_hosts(commune, cs, now)
        return events

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group changes into one store transaction (nested uses join the outer one)."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                self.flush()

    def flush(self) -> bool:
        """Write pending changes; on failure keep them in memory for the next try."""
        if self.store is None:
            self._pending = Pending()
            return True
        pending = self._pending
        if pending.empty():
            return True
        batch = pending.to_batch(self._trackers, self.state.communes, self._stored)
        if self.store.write(batch):
            self._stored.saved(batch)
            self._pending = Pending()
            return True
        self._pending.trim()
        return False

    # --------------------------------------------------------------- observation

    def _observe(self, commune: Commune, cs: CommuneState, obs: CommuneObservation) -> None:
        """Count the observation in its own vantage's view, then fuse the views."""
        at = obs.at
        if obs.vantage == ROUTER:  # read from the center: no agent's word, no line's
            self._snmp.pop(commune.key, None)
        else:
            cs.last_seen, cs.vantage = at, obs.vantage
        view = self._view(commune, cs, obs.vantage)
        view.last_seen = at
        scope = _view_scope(commune.key, obs.vantage)
        for h in obs.hosts:
            tracker = view.hosts.get(h.name)
            if tracker is not None:
                tracker.last = h
                self._count(("host", scope, h.name), tracker, h.alive, at)
        for kind, alive, echo in zip(GATEWAY_KINDS,
                                     (obs.gateway_alive, obs.backup_gateway_alive),
                                     obs.line_icmp, strict=True):
            tracker = getattr(view, kind)
            if tracker is not None and alive is not None:
                self._count((kind, scope, kind), tracker, alive, at)
                if echo is not None:  # the line's RTT and loss (status.line_echo)
                    tracker.last = HostObservation(kind, tracker.ip, alive, None, echo)
        if obs.unknown_devices is not None:
            seen = self._devices.setdefault(commune.key, {})
            seen[obs.vantage] = obs.unknown_devices
            cs.unknown_devices = tuple(dict.fromkeys(d for v in seen.values() for d in v))
        self._fuse(commune, cs, at)
        self._record_first_passes(commune, cs, obs)
        self._pending.communes.add(commune.key)

    # ------------------------------------------------------------------ vantages

    def _view(self, commune: Commune, cs: CommuneState, vantage: str) -> VantageView:
        view = cs.views.get(vantage)
        if view is None:
            view = cs.views[vantage] = VantageView(vantage)
            self._fill_view(commune, view)
        return view

    def _fill_view(self, commune: Commune, view: VantageView) -> None:
        """The view's trackers for the commune's hosts and gateways as the inventory has
        them (kept across reloads; a changed address starts anew)."""
        scope = _view_scope(commune.key, view.vantage)
        ips = {h.name: str(h.ip) for h in commune.hosts}
        view.hosts, view.gateway, view.backup_gateway = {}, None, None
        for kind, name in _tracker_names(commune):
            ip = ips.get(name) or str(getattr(commune, kind, "") or "")
            tracker = self._tracker((kind, scope, name), name, ip)
            if kind == "host":
                view.hosts[name] = tracker
            else:
                setattr(view, kind, tracker)

    def _count(self, key: TrackerKey, tracker: HostState, alive: bool, at: float) -> None:
        """One observation into a vantage's tracker (debounced), noted for the next write
        only when its stored row can have moved."""
        d = self._inventory.defaults
        before = tracker.consecutive_ok, tracker.consecutive_fail
        changed = debounce(tracker, alive, at, d.down_after, d.up_after)
        if changed or self._stored.counts_moved(tracker, before):
            self._pending.trackers.add(key)

    def _take_counts(self, key: TrackerKey, fused: HostState, seen: list[HostState]) -> None:
        """The fused subject's run counters are its first counting view's (noted for the
        next write when that moved its stored row; its state is :meth:`_settle`'s)."""
        before = fused.consecutive_ok, fused.consecutive_fail
        if seen:
            fused.consecutive_ok = seen[0].consecutive_ok
            fused.consecutive_fail = seen[0].consecutive_fail
        if self._stored.counts_moved(fused, before):
            self._pending.trackers.add(key)

    def _discounted(self, vantage: str) -> bool:
        """The central vantage does not count while it is isolated from its upstream."""
        return self._isolated and vantage == CENTRAL

    def _counting(self, commune: Commune, cs: CommuneState) -> list[VantageView]:
        """The views that speak for the commune now: recent ones, central not isolated
        (the router's is not among them: it sees the segment only, :meth:`_segment`)."""
        views = [v for v in cs.views.values() if v.vantage != ROUTER]
        seen = [v.last_seen for v in views if v.last_seen is not None]
        if not seen:
            return []
        newest, window = max(seen), STALE_CYCLES * self._inventory.defaults.interval
        return [v for v in views
                if fresh(v.last_seen, newest, window) and not self._discounted(v.vantage)]

    def _segment(self, commune: Commune, cs: CommuneState,
                 counting: list[VantageView]) -> list[VantageView]:
        """The views whose ARP makes the segment's verdict: the counting ones and the line's
        router while its latest read stands (it is read every ``snmp_every`` cycles: its
        view lasts until a read fails, :meth:`_router_failed`)."""
        router = cs.views.get(ROUTER)
        live = router is not None and router.last_seen is not None and commune.snmp is not None
        return [*counting, router] if live and router is not None else counting

    def _router_failed(self, commune: Commune, cs: CommuneState, at: float,
                       error: tuple[str, str]) -> None:
        """A failed SNMP read of the line's router is no evidence about the segment: its
        view stops counting (no "everything absent", no conflict), and the failures are
        counted for ``snmp_unreachable``."""
        failures, since, _ = self._snmp.get(commune.key, (0, at, error))
        self._snmp[commune.key] = (failures + 1, since, error)
        self._forget_view(commune, cs, ROUTER, at)

    def _fuse(self, commune: Commune, cs: CommuneState, at: float) -> None:
        """The verdict of contract §7 from the counting views: a host is up when any of
        them saw it answer; the line (gateways, the status) from the upstream views (a
        commune agent's only where none covers the commune); RTT and loss from the line's
        view, ARP from a view on the segment."""
        views = self._counting(commune, cs)
        line = line_vantages([v.vantage for v in views], commune.province, commune.code)
        line_views = [cs.views[v] for v in line]
        cs.line_vantages = tuple(line)
        segment = self._segment(commune, cs, views)
        settle = self._inventory.defaults.down_after * self._inventory.defaults.interval
        key = commune.key
        line_hosts = []
        for host in commune.hosts:
            name = host.name
            fused = self._trackers[("host", key, name)]
            fused.expected = host_expected(self._inventory, commune, host, at, settle)
            seen = [t for v in views if (t := v.hosts.get(name)) is not None]
            self._settle(commune, ("host", key, name), fused, any_up(t.up for t in seen), at)
            fused.last = _fused_last(name, line_views, segment)
            self._take_counts(("host", key, name), fused, seen)
            # a computer silent outside working hours is off: it neither degrades nor downs
            line_hosts.append(counted(any_up(t.up for v in line_views
                                             if (t := v.hosts.get(name)) is not None),
                                      fused.expected))
        for kind in GATEWAY_KINDS:
            fused_gateway = self._trackers.get((kind, key, kind))
            if fused_gateway is None:
                continue
            seen = [t for v in line_views if (t := getattr(v, kind)) is not None]
            self._settle(commune, (kind, key, kind), fused_gateway,
                         any_up(t.up for t in seen), at)
            self._take_counts((kind, key, kind), fused_gateway, seen)
        cs.gateway_up = self._tracker_up("gateway", key)
        cs.backup_gateway_up = self._tracker_up("backup_gateway", key)
        self._update_status(cs, at, *commune_status(cs.gateway_up, cs.backup_gateway_up,
                                                    line_hosts))

    def _note_outage(self, cs: CommuneState, at: float, status: CommuneStatus) -> None:
        """Remember when the line was down from upstream: its consequences seen from inside
        (held) may arrive later, from an agent's spool. It began ``down_after`` cycles
        before it was confirmed."""
        key = f"{cs.province}/{cs.commune}"
        spans = self._outages.setdefault(key, [])
        if status == CommuneStatus.DOWN and self._line_upstream(cs):
            d = self._inventory.defaults
            spans.append([at - d.down_after * d.interval, None])
            del spans[:-OUTAGES_KEPT]
        elif cs.status == CommuneStatus.DOWN and spans and spans[-1][1] is None:
            spans[-1][1] = at

    def _during_outage(self, commune_key: str, at: float) -> bool:
        return any(start is not None and start <= at and (end is None or at <= end)
                   for start, end in self._outages.get(commune_key, ()))

    def _consequence(self, cs: CommuneState, at: float) -> bool:
        """A commune agent's silence is the line's doing: the line is suspect from upstream,
        or was down until lately (``STALE_CYCLES`` intervals for the agent to come back)."""
        grace = STALE_CYCLES * self._inventory.defaults.interval
        return self._line_suspect(cs) or self._during_outage(f"{cs.province}/{cs.commune}",
                                                             at - grace)

    def _line_upstream(self, cs: CommuneState) -> bool:
        return any(upstream_of(v, cs.province, cs.commune) for v in cs.line_vantages)

    def _line_suspect(self, cs: CommuneState) -> bool:
        """The line is down from upstream, or an upstream view has begun failing it (its
        gateway, or without one every host, failed the latest observation)."""
        if self._line_down_upstream(cs):
            return True
        for vantage in cs.line_vantages:
            view = cs.views.get(vantage)
            if view is None or not upstream_of(vantage, cs.province, cs.commune):
                continue
            subjects = [view.gateway] if view.gateway is not None else list(view.hosts.values())
            if subjects and all(t.consecutive_fail > 0 for t in subjects):
                return True
        return False

    def _line_down_upstream(self, cs: CommuneState) -> bool:
        """The commune is down as seen from upstream of its line (central, province)."""
        return cs.status == CommuneStatus.DOWN and any(
            upstream_of(v, cs.province, cs.commune) for v in cs.line_vantages)

    def _settle(self, commune: Commune, key: TrackerKey, hs: HostState, up: bool | None,
                at: float) -> None:
        """Set a fused subject's state; a change is history and counts toward flapping."""
        old, flapping = hs.up, hs.flapping
        if up != old:
            hs.up, hs.since = up, at
            label = key[2] if key[0] == "host" else f"({key[0]})"
            self._pending.add_history(HistoryRow(at, commune.province, commune.code, label,
                                                 _word(old), _word(up)))
            if old is not None and up is not None:
                self._note_flap(key, hs, at)
        self._settle_flapping(key, hs, at)
        if up != old or hs.flapping != flapping:  # a fused subject's row: state and flapping
            self._pending.trackers.add(key)

    def _note_flap(self, key: TrackerKey, hs: HostState, at: float) -> None:
        changes = self._flaps.setdefault(key, deque())
        changes.append(at)
        while changes and changes[0] <= at - self.flap_window:
            changes.popleft()
        if len(changes) > self.flap_changes:
            hs.flapping = True

    def _settle_flapping(self, key: TrackerKey, hs: HostState, at: float) -> None:
        """A flapping subject is stable again once a whole window passed without a change."""
        changes = self._flaps.get(key)
        if hs.flapping and (not changes or at - changes[-1] >= self.flap_window):
            hs.flapping = False
            self._flaps.pop(key, None)

    def _update_status(self, cs: CommuneState, at: float, status: CommuneStatus,
                       on_backup: bool) -> None:
        cs.on_backup = on_backup
        if status != cs.status:
            self._note_outage(cs, at, status)
            self._pending.add_history(HistoryRow(at, cs.province, cs.commune, None,
                                                 cs.status.name.lower(), status.name.lower()))
            log.debug("commune_status", province=cs.province, commune=cs.commune,
                     old=cs.status.name, new=status.name)
            cs.status, cs.since = status, at

    def _record_first_passes(self, commune: Commune, cs: CommuneState,
                             obs: CommuneObservation) -> None:
        hosts = [cs.hosts[h.name] for h in commune.hosts]
        gateway_ok = cs.gateway_up is True or not _has_gateway(commune)
        passed = {
            "link": bool(hosts) and gateway_ok and all(h.up is True for h in hosts),
            "ip_config": bool(hosts) and all(
                h.last is not None and arp_verdict(h.last.arp, host.mac) == "ok"
                for h, host in zip(hosts, commune.hosts, strict=True)),
            "target": self._target_reached(commune, cs),
            "inspection": (stamped := _inspected_on(commune)) is not None,
        }
        for check, ok in passed.items():
            if ok and check not in cs.first_passed:
                at = min(obs.at, stamped) if check == "inspection" and stamped else obs.at
                cs.first_passed[check] = at
                self._pending.first_passed.append((cs.province, cs.commune, check, at))

    def _target_reached(self, commune: Commune, cs: CommuneState) -> bool:
        targets = self._inventory.targets
        vantage = own_vantage(live_vantages(cs), commune.province, commune.code)
        return bool(targets) and all(
            (ts := self.state.targets.get((t.name, vantage))) is not None and ts.last.ok
            for t in targets)

    # ----------------------------------------------------------------- conditions

    def _judge(self, commune: Commune, cs: CommuneState, at: float,
               held: bool) -> list[AlertEvent]:
        """The commune's conditions reconciled with the book: alerts opened and closed.
        Skipped when nothing the conditions are made of moved since the last judgement
        (:meth:`_judged_on`): most observations of a calm day change nothing, and the
        same conditions on the same book open and close nothing."""
        inputs = self._judged_on(commune, cs, at, held)
        if inputs is not None and self._judgements.get(commune.key) == inputs:
            return []
        conditions = self._commune_conditions(commune, cs, at, held=held)
        events = self.book.reconcile_all(conditions, at)
        events += self.book.resolve_stale(commune.key, {c.key for c in conditions},
                                          COMMUNE_EVENTS, at)
        # read again: judging moved the book's count and may have confirmed a verdict
        self._judgements[commune.key] = self._judged_on(commune, cs, at, held)
        return events

    def _judged_on(self, commune: Commune, cs: CommuneState, at: float,
                   held: bool) -> tuple[object, ...] | None:
        """What :meth:`_commune_conditions` reads, as one comparable value: the status,
        each computer's debounced state and segment verdict, the devices, whether the
        alerts are held (the vantage, maintenance now) and the book's count for the
        commune. None (judge every time) while something it reads moves with time alone:
        a segment verdict awaiting its second scan, failed reads of the line's router."""
        if commune.key in self._snmp:
            return None
        hosts = []
        for host in commune.hosts:
            hs = cs.hosts[host.name]
            arp = hs.last.arp if hs.last is not None else None
            segment = self._segment_verdicts.get((commune.key, host.name))
            if arp is not None and (segment is None or segment.pending is not None
                                    or segment.confirmed != arp_verdict(arp, host.mac)):
                return None
            hosts.append((hs.up, hs.since, hs.expected, hs.flapping, arp is not None))
        backup = self._trackers.get(("backup_gateway", commune.key, "backup_gateway"))
        return (held, self._in_maintenance(commune.province, commune.code, at), cs.status,
                cs.since, cs.gateway_up, cs.backup_gateway_up,  # (on_backup follows)
                backup.since if backup is not None else None, *hosts, cs.unknown_devices,
                self.book.changes(commune.key))

    def _commune_conditions(self, commune: Commune, cs: CommuneState, at: float,
                            held: bool = False) -> list[Condition]:
        """``held``: the observation came from a vantage that does not count (isolated)."""
        quiet = held or self._in_maintenance(commune.province, commune.code, at)
        down = cs.status == CommuneStatus.DOWN
        reason = _down_reason(cs)
        held_by_parent = {
            "host_down": down,
            "backup_line_down": down,
            "host_flapping": down and reason == "gateway",
            "commune_down": reason == "hosts" and any(h.flapping for h in cs.hosts.values()),
        }
        label = place_label(commune.name, commune.isp, commune.circuit)
        base = {"province": commune.province, "commune": commune.code}

        def cond(event: str, subject: str, present: bool | None, since: float | None,
                 host: str | None = None, **fields: object) -> Condition:
            held = (quiet and event not in NEVER_SILENCED) or held_by_parent.get(event, False)
            return Condition((event, commune.key, subject), present,
                             since if since is not None else at, host=host, held=held,
                             fields={"label": label, "host": host, **fields}, **base)

        known = cs.status != CommuneStatus.UNKNOWN
        out = [
            cond("commune_down", "", down if known else None, cs.since,
                 reason=reason, gateway=commune.gateway),
            cond("commune_degraded", "", cs.on_backup and not down if known else None,
                 cs.since, reason="backup"),
            self._backup_condition(cond, commune, cs),
        ]
        for host in commune.hosts:
            out += self._host_conditions(cond, commune.key, cs.hosts[host.name], host)
        out += self._device_conditions(cond, commune, cs)
        out.append(self._snmp_condition(cond, commune, cs))
        return out

    def _snmp_condition(self, cond: Callable[..., Condition], commune: Commune,
                        cs: CommuneState) -> Condition:
        """``snmp_unreachable`` (warning, one per commune): the line's router has failed
        ``SNMP_FAIL_AFTER`` reads in a row; resolved by a read. Held while the line is down
        or failing from upstream, or losing packets: the line's own alert speaks then."""
        failures, since, (kind, message) = self._snmp.get(commune.key, (0, 0.0, ("", "")))
        present = None if 0 < failures < SNMP_FAIL_AFTER else failures > 0
        router = commune.snmp.address if commune.snmp is not None else None
        c = cond("snmp_unreachable", "", present and commune.snmp is not None, since or None,
                 reason=f"snmp_{kind}" if present else None, router=router, detail=message)
        if c.present:  # held matters to a firing only (most communes: no router read)
            c.held = c.held or self._line_suspect(cs) or _lossy(cs)
        return c

    def _backup_condition(self, cond: Callable[..., Condition], commune: Commune,
                          cs: CommuneState) -> Condition:
        """``backup_line_down``, one per commune: found while the primary still carries
        the commune, not when it fails (too late). Gone from the inventory: resolved."""
        if commune.backup_gateway is None:
            return cond("backup_line_down", "", False, None)
        tracker = self._trackers[("backup_gateway", commune.key, "backup_gateway")]
        present = backup_line_down(cs.gateway_up, cs.backup_gateway_up)
        return cond("backup_line_down", "", present, tracker.since,
                    backup_gateway=commune.backup_gateway, line=_backup_line(commune))

    def _host_conditions(self, cond: Callable[..., Condition], scope: str, hs: HostState,
                         host: Host) -> list[Condition]:
        f = {"ip": hs.ip}
        # outside working hours a silent computer is off: no new host_down, and one open
        # since the hours (a really dead computer) is held open, not resolved as repaired
        up = counted(hs.up, hs.expected)
        down = cond("host_down", hs.name, None if up is None else not up, hs.since,
                    host=hs.name, **f)
        down.held = down.held or hs.flapping
        changes = len(self._flaps.get(("host", scope, hs.name), ()))
        out = [down, cond("host_flapping", hs.name, hs.flapping, None, host=hs.name,
                          changes=changes, minutes=round(self.flap_window / 60), **f)]
        arp = hs.last.arp if hs.last is not None else None
        verdict = self._segment_verdict(scope, hs.name, arp, host.mac)
        seen = verdict != "none" if verdict is not None else None
        macs = ", ".join(arp.macs) if arp is not None else ""
        out.append(cond("ip_conflict", hs.name, seen and verdict == "conflict", None,
                        host=hs.name, macs=macs, **f))
        out.append(cond("wrong_mac", hs.name, seen and verdict == "wrong", None, host=hs.name,
                        mac=macs,
                        expected=host.mac or (arp.expected_mac if arp else None), **f))
        return out

    def _segment_verdict(self, scope: str, name: str, arp: ArpDetail | None,
                         expected: str | None) -> ArpVerdict | None:
        """The host's IP-configuration verdict as the alerts see it: confirmed over two
        scans of every view on the segment (:func:`~monitor.decide.verdicts.confirm_segment`);
        None until one is, or while no view on the segment looks."""
        key = (scope, name)
        state = self._segment_verdicts.get(key, SegmentVerdict())
        if arp is None:
            return state.confirmed
        commune = self._inventory.commune(*scope.split("/", 1))
        cs = self.state.communes[scope]
        assert commune is not None
        scans = [v.last_seen for v in self._segment(commune, cs, self._counting(commune, cs))
                 if v.last_seen is not None and (t := v.hosts.get(name)) is not None
                 and t.last is not None and t.last.arp is not None]
        state = self._segment_verdicts[key] = confirm_segment(
            state, arp_verdict(arp, expected), scans)
        return state.confirmed

    def _device_conditions(self, cond: Callable[..., Condition], commune: Commune,
                           cs: CommuneState) -> list[Condition]:
        if cs.unknown_devices is None:  # never scanned: keep what is open
            return [cond("unknown_device", subj, None, None)
                    for (ev, _, subj), _ in self.book.open_in(commune.key)
                    if ev == "unknown_device"]
        return [cond("unknown_device", d.mac.lower(), True, None, ip=d.ip, mac=d.mac.lower())
                for d in cs.unknown_devices]

    def _target_condition(self, tracker: HostState, result: ProbeResult,
                          vantage: str) -> Condition:
        province, _, commune = vantage.partition("/")
        prov = None if vantage == CENTRAL else province
        comm = commune or None
        held = self._discounted(vantage) or (
            prov is not None and self._in_maintenance(prov, comm, result.started))
        cs = self.state.communes.get(vantage) if comm else None
        # one outage, one alert: from inside a commune cut off upstream, of course not (also
        # when its batches from the outage arrive after the repair)
        held = held or (cs is not None and (
            self._line_suspect(cs)
            or self._during_outage(vantage, tracker.since or result.started)))
        return Condition(
            ("target_unreachable", f"target@{vantage}", result.subject),
            None if tracker.up is None else not tracker.up,
            tracker.since or result.started, prov, comm, held=held,
            fields={"label": self._vantage_label(vantage), "target": result.subject,
                    "vantage": vantage},
        )

    def _silence_ended(self, commune: Commune, vantage: str, at: float) -> list[Condition]:
        """Data from the silent agent itself (commune- or province-wide) ends its silence."""
        return [
            Condition(("agent_silent", scope, ""), False, at, commune.province, comm,
                      fields={"label": self._scope_label(commune.province, comm)})
            for scope, comm in ((commune.key, commune.code), (commune.province, None))
            if scope == vantage and (self.book.pending(("agent_silent", scope, ""))
                                     or self.book.firing(("agent_silent", scope, "")) is not None)
        ]

    def _silence_held(self, commune: Commune, cs: CommuneState,
                      obs: CommuneObservation) -> list[Condition]:
        """A commune agent's silence held back as a consequence of its line is judged again
        with every other vantage's observation of the commune: when the line turns out
        fine, it fires (the agent's own word ends it instead)."""
        key, at = ("agent_silent", commune.key, ""), obs.at
        if (obs.vantage == commune.key or not self.book.pending(key)
                or self.book.firing(key) is not None):
            return []
        held = self._consequence(cs, at) or self._in_maintenance(commune.province, commune.code,
                                                                 at)
        return [Condition(key, True, at, commune.province, commune.code, held=held,
                          fields={"label": self._scope_label(commune.province, commune.code)})]

    # ------------------------------------------------------------------- helpers

    def maintenance_windows(self) -> tuple[Maintenance, ...]:
        """The inventory's maintenance windows and those stored while running."""
        stored = tuple(self._stored_windows()) if self._stored_windows is not None else ()
        return (*self._inventory.maintenance, *stored)

    def _in_maintenance(self, province: str, commune: str | None, at: float) -> bool:
        return in_maintenance(self.maintenance_windows(), province, commune, at)

    def _tracker(self, key: TrackerKey, name: str, ip: str) -> HostState:
        tracker = self._trackers.get(key)
        if tracker is None or tracker.ip != ip:
            tracker = self._trackers[key] = HostState(name, ip)
            self._by_scope.setdefault(_index(key), set()).add(key)
        return tracker

    def _tracker_up(self, kind: str, scope: str) -> bool | None:
        tracker = self._trackers.get((kind, scope, kind))
        return None if tracker is None else tracker.up

    def _communes_in(self, province: str, commune: str | None) -> list[Commune]:
        return [c for c in self._inventory.communes() if in_scope(
            f"{province}/{commune}" if commune else province, c.province, c.code)]

    def _scope_label(self, province: str, commune: str | None) -> str:
        c = self._inventory.commune(province, commune) if commune else None
        if c is not None:
            return place_label(c.name, c.isp, c.circuit)
        p = self._inventory.province(province)
        return p.name if p is not None else province

    def _vantage_label(self, vantage: str) -> str:
        if vantage == "central":
            return "Trung tâm giám sát" if self.language == "vi" else "Central monitor"
        province, _, commune = vantage.partition("/")
        return self._scope_label(province, commune or None)

    def _forget_view(self, commune: Commune, cs: CommuneState, vantage: str,
                     now: float) -> None:
        """A vantage fell silent (or could not see): its view restarts from unknown and
        stops counting. With no other view speaking for the commune nothing is known any
        more: the commune is UNKNOWN and its hosts restart from unknown."""
        view = cs.views.get(vantage)
        if view is None:
            return
        scope = _view_scope(commune.key, vantage)
        for kind, name in _tracker_names(commune):
            tracker = self._trackers.get((kind, scope, name))
            if tracker is not None:
                _reset(tracker, now)
                tracker.last = None
                self._pending.trackers.add((kind, scope, name))
        view.last_seen = None
        if self._counting(commune, cs):
            self._fuse(commune, cs, now)
        else:
            self._forget(commune, cs, now)
        self._pending.communes.add(commune.key)

    def _forget(self, commune: Commune, cs: CommuneState, now: float) -> None:
        """Nothing is known any more: fused states restart from unknown."""
        for kind, name in _tracker_names(commune):
            _reset(self._trackers[(kind, commune.key, name)], now)
            self._flaps.pop((kind, commune.key, name), None)
            self._pending.trackers.add((kind, commune.key, name))
        cs.gateway_up = cs.backup_gateway_up = None
        cs.on_backup = False
        cs.line_vantages = ()
        if cs.status != CommuneStatus.UNKNOWN:
            self._pending.add_history(HistoryRow(now, cs.province, cs.commune, None,
                                                 cs.status.name.lower(), "unknown"))
            cs.status, cs.since = CommuneStatus.UNKNOWN, now

    def _sync_hosts(self, commune: Commune, cs: CommuneState, now: float) -> list[AlertEvent]:
        """Create trackers for new hosts/gateways; drop (and resolve) those that are gone."""
        wanted = set(_tracker_names(commune))
        ips = {h.name: str(h.ip) for h in commune.hosts}
        for kind, name in wanted:
            ip = ips.get(name) or str(getattr(commune, kind, "") or "")
            tracker = self._tracker((kind, commune.key, name), name, ip)
            if kind == "host":
                cs.hosts[name] = tracker
        events: list[AlertEvent] = []
        for kind, scope, name in list(self._by_scope.get(commune.key, ())):
            if kind != "target" and (kind, name) not in wanted:
                events += self._drop_tracker((kind, scope, name), now)
        cs.hosts = {h.name: cs.hosts[h.name] for h in commune.hosts}  # inventory order
        for view in cs.views.values():
            self._fill_view(commune, view)
        return events

    def _drop_tracker(self, key: TrackerKey, now: float) -> list[AlertEvent]:
        _, scope, name = key
        del self._trackers[key]
        self._by_scope.get(_index(key), set()).discard(key)
        self._flaps.pop(key, None)
        self._pending.removed_trackers.append(key)
        return [ev for key, _ in self.book.open_in(scope)
                if key[2] == name and key[0] not in OPERATIONS_EVENTS
                and (ev := self.book.resolve(key, now)) is not None]

    def _drop_commune(self, key: str, now: float) -> list[AlertEvent]:
        cs = self.state.communes.pop(key)
        events: list[AlertEvent] = []
        for tkey in list(self._by_scope.pop(key, ())):
            events += self._drop_tracker(tkey, now)
        events += [ev for akey, _ in self.book.open_in(key) if akey[0] not in OPERATIONS_EVENTS
                   and (ev := self.book.resolve(akey, now)) is not None]
        self._pending.removed_communes.append((cs.province, cs.commune))
        return events

    def _resolve_orphans(self) -> None:
        """Alerts restored for communes the inventory no longer has are resolved; the
        resolutions go through the store's outbox, which the dispatcher sends at start."""
        now = self.clock()
        for scope in [s for s in self.book.scopes() if "/" in s and not s.startswith("target@")]:
            if scope not in self.state.communes:
                for key, _ in self.book.open_in(scope):
                    if key[0] not in OPERATIONS_EVENTS:
                        self.book.resolve(key, now)
        # targets the inventory does not have (e.g. made up by a batch before the collector
        # checked them): their alerts would never resolve, their trackers never go
        targets = {t.name for t in self._inventory.targets}
        for scope in [s for s in self.book.scopes() if s.startswith("target@")]:
            for key, _ in self.book.open_in(scope):
                if key[2] not in targets:
                    self.book.resolve(key, now)
        for key in [k for k in self._trackers if k[0] == "target" and k[2] not in targets]:
            del self._trackers[key]
            self._by_scope.get(key[1], set()).discard(key)
            self._pending.removed_trackers.append(key)

    def _restore_view_tracker(self, key: TrackerKey) -> HostState | None:
        commune_key, _, vantage = key[1].partition("@")
        cs = self.state.communes.get(commune_key)
        commune = self._inventory.commune(*commune_key.split("/", 1))
        if cs is None or commune is None:
            return None
        self._view(commune, cs, vantage)
        return self._trackers.get(key)

    def _migrate_view(self, key: str, cs: CommuneState, vantage: str) -> None:
        """A database from before the vantage model holds one tracker per host: it was the
        view of the vantage that spoke last, and becomes that vantage's view."""
        commune = self._inventory.commune(cs.province, cs.commune)
        if commune is None:
            return
        view = self._view(commune, cs, vantage)
        scope = _view_scope(key, vantage)
        for kind, name in _tracker_names(commune):
            fused, mine = self._trackers[(kind, key, name)], self._trackers[(kind, scope, name)]
            mine.up, mine.since = fused.up, fused.since
            mine.consecutive_ok, mine.consecutive_fail = fused.consecutive_ok, \
                fused.consecutive_fail
        log.info("state_migrated_view", commune=key, vantage=view.vantage)

    def _restore(self, store: Store) -> None:
        try:
            snap = store.load()
        except Exception as exc:  # a corrupt or unreadable database must not stop the monitor
            log.error("state_store_error", path=store.path, error=str(exc))
            return
        self._restore_snapshot(snap)

    def _restore_snapshot(self, snap: Snapshot) -> None:
        for key, row in snap.trackers.items():
            tracker = self._trackers.get(key)
            if tracker is None and key[0] == "target":
                tracker = self._tracker(key, key[2], key[1])
            elif tracker is None and "@" in key[1]:
                tracker = self._restore_view_tracker(key)
            if tracker is not None:
                _load_row(tracker, row)
        for key, cs in self.state.communes.items():
            row = snap.communes.get(key)
            if not cs.views and any(k[1] == key for k in snap.trackers):
                self._migrate_view(key, cs, row.vantage if row and row.vantage else CENTRAL)
        for key, cs in self.state.communes.items():
            row = snap.communes.get(key)
            if row is not None:
                cs.status, cs.since = CommuneStatus(row.status), row.since
                cs.on_backup, cs.last_seen, cs.vantage = row.on_backup, row.last_seen, row.vantage
                if row.last_seen is not None and row.vantage is not None:
                    self._last_at[(key, row.vantage)] = row.last_seen
            cs.gateway_up = self._tracker_up("gateway", key)
            cs.backup_gateway_up = self._tracker_up("backup_gateway", key)
            cs.first_passed.update(snap.first_passed.get(key, {}))
        for text, firing in snap.open_alerts.items():
            self.book.restore(loads_key(text), firing)


def _down_reason(cs: CommuneState) -> str:
    return "gateway" if cs.gateway_up is False and not cs.on_backup else "hosts"


def _backup_line(commune: Commune) -> str:
    """The backup line as operators name it: its operator (the primary's when the inventory
    gives none of its own) and circuit."""
    return ", ".join(p for p in (commune.backup_isp or commune.isp, commune.backup_circuit) if p)


def _has_gateway(commune: Commune) -> bool:
    return getattr(commune, "gateway", None) is not None


def _inspected_on(commune: Commune) -> float | None:
    """When the last of the commune's computers was stamped (the start of that day, Vietnam
    time), or None while any computer lacks its inspection record."""
    dates = [h.inspection.date for h in commune.hosts if h.inspection is not None]
    if not commune.hosts or len(dates) < len(commune.hosts):
        return None
    return local_midnight(max(dates))


def _tracker_names(commune: Commune) -> list[tuple[str, str]]:
    names = [("host", h.name) for h in commune.hosts]
    names += [(kind, kind) for kind in GATEWAY_KINDS if getattr(commune, kind, None) is not None]
    return names


def _view_scope(commune_key: str, vantage: str) -> str:
    """Where one vantage's trackers of a commune are kept: ``PROV/COMMUNE@VANTAGE`` (the
    fused verdict's are under ``PROV/COMMUNE``, as before the vantage model)."""
    return f"{commune_key}@{vantage}"


def _index(key: TrackerKey) -> str:
    """The commune a tracker belongs to (a target's: its vantage)."""
    return key[1] if key[0] == "target" else key[1].partition("@")[0]


def _reset(tracker: HostState, now: float) -> None:
    tracker.up, tracker.since = None, now
    tracker.consecutive_ok = tracker.consecutive_fail = 0
    tracker.flapping = False


def _load_row(tracker: HostState, row: TrackerRow) -> None:
    tracker.up, tracker.since, tracker.flapping = row.up, row.since, row.flapping
    tracker.consecutive_ok, tracker.consecutive_fail = row.ok, row.fail


def _fused_last(name: str, line: list[VantageView],
                segment: list[VantageView]) -> HostObservation | None:
    """The host's latest observation as the verdict shows it: ICMP (RTT, loss) from the
    line's view, ARP from every view that scanned the segment together
    (:func:`~monitor.decide.verdicts.segment_arp`)."""
    base = next((t.last for v in line if (t := v.hosts.get(name)) and t.last), None)
    arp = segment_arp(t.last.arp for v in segment if (t := v.hosts.get(name)) and t.last)
    if base is None:
        base = next((t.last for v in segment if (t := v.hosts.get(name)) and t.last), None)
        if base is None:
            return None
    return base if base.arp is arp else dataclasses.replace(base, arp=arp)


def _lossy(cs: CommuneState) -> bool:
    """The line lost echoes in its latest cycle (a host's loss as the verdict shows it)."""
    return any(h.last is not None and h.last.icmp is not None and h.last.icmp.loss_ratio > 0
               for h in cs.hosts.values())


def _word(up: bool | None) -> str:
    return "unknown" if up is None else "up" if up else "down"


class _ToPending:
    """The book's journal: the engine's pending batch (a new one after every write)."""

    def __init__(self, engine: StateEngine) -> None:
        self._engine = engine

    def open(self, key: AlertKey, ev: AlertEvent) -> None:
        self._engine._pending.open(key, ev)

    def close(self, key: AlertKey, ev: AlertEvent) -> None:
        self._engine._pending.close(key, ev)
