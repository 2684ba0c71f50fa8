"""Prometheus text exposition of the monitor's state (contract section 3).

The per-host families (10,000 hosts nationwide) are written directly as text: measured
for 10,000 hosts x 8 gauges, prometheus-client's registry takes about 0.8 s per render and
its custom-collector route 0.5 s, while joining pre-escaped strings takes 0.05 s (the whole
exposition, every family below, renders in 0.12-0.2 s: ``bench/bench_exposition.py``). The
text is rendered once per cycle by :meth:`Exposition.update` (meant for
``asyncio.to_thread``) and every scrape is served the same cached bytes by
:meth:`Exposition.body` (or :meth:`Exposition.body_gzip`).

Rule for missing values: a sample is written only where a value was measured. No RTT
sample for a host that did not reply, no loss/jitter without an ICMP probe, no
``ip_config_ok``/``mac_addresses`` without an ARP vantage on the segment, no ``host_up``
for a host never judged, no ``host_alive`` for a method not tried, no TLS expiry, phase or
HTTP status where the check did not get that far. Absent series, not invented zeros, so
that ``avg``/``max`` and alerts only ever see real measurements. The exceptions are
defined values: ``tslcd_commune_status`` is 3 (unknown) for a commune never probed, and
``tslcd_milestone_met`` is 0 until the checks have passed.

Beyond the contract's table: per host ``tslcd_host_rtt_jitter_seconds``,
``tslcd_host_alive{method}``, ``tslcd_host_flapping``, ``tslcd_host_icmp_sent_total`` and
``tslcd_host_icmp_received_total`` (accumulated here, each ICMP probe counted once);
``tslcd_icmp_rtt_seconds`` (histogram by province only, to bound cardinality); per commune
``tslcd_commune_on_backup``, ``tslcd_commune_last_seen_timestamp_seconds`` and
``tslcd_commune_maintenance`` (1 inside a maintenance window, for the alert rules),
``tslcd_line_up{line}`` (contract §3: each line's router, ``primary`` and ``backup``, as
judged) with ``tslcd_line_rtt_seconds`` and ``tslcd_line_packet_loss_ratio`` (its echo of
the last cycle, from the views the line's verdict comes from; not from agents); per host
``tslcd_host_expected`` (working hours expect it now: a dashboard tells a
computer off for the night from one down, while ``tslcd_host_up`` stays the fact); per
target ``tslcd_target_phase_seconds{phase}`` and ``tslcd_target_http_status``;
``tslcd_milestone_due_timestamp_seconds{milestone}``,
``tslcd_agent_last_seen_timestamp_seconds{agent,province}`` and
``tslcd_exposition_render_seconds``. Process and Python runtime metrics (``process_*``,
``python_*``) come from prometheus-client's collectors on a private registry, appended.
"""

from __future__ import annotations

import bisect
import functools
import gzip
import itertools
import math
import threading
import time
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from inventory.model import Commune, Host, Inventory, Maintenance, Milestone
from monitor.common.log import OnceLog
from monitor.cycle.observation import CycleReport, HostObservation
from monitor.decide.status import LINES, HostState, MonitorState, TargetState, line_echo
from monitor.decide.verdicts import deadline, in_maintenance, ip_config_ok, milestone_met
from probes.result import IcmpDetail, ProbeResult, TargetDetail

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: gzip level of :meth:`Exposition.body_gzip`: level 1 takes ~20 ms for the nationwide 8 MB
#: (level 6: ~90 ms) and still shrinks it ~19x.
GZIP_LEVEL = 1

#: Upper bounds of ``tslcd_icmp_rtt_seconds`` (a dedicated line answers in ms; satellite 0.6 s).
ICMP_RTT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Upper bounds of ``tslcd_probe_cycle_duration_seconds`` (the default interval is 30 s).
CYCLE_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 45.0, 60.0, 120.0)
TARGET_PHASES = ("dns", "connect", "tls", "http")
ALIVE_METHODS = ("icmp", "tcp", "arp")
_BIT = {False: "0", True: "1"}
#: 0.0, False and -0.0 equal 0 (and hash alike): each finds "0", as fmt would write it
_SMALL_NUMBERS = {n: str(n) for n in range(256)}


@dataclass(frozen=True, slots=True)
class CycleStats:
    """What the runner knows about the cycle(s) since the previous update, beyond the state."""

    duration: float | None = None  # seconds one whole probe cycle took; None: no cycle ran
    probes: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (kind, ok|fail) ->
    agents: Mapping[str, float] = field(default_factory=dict)  # agent vantage -> Unix time heard

    @classmethod
    def from_report(
        cls, report: CycleReport, agents: Mapping[str, float] | None = None
    ) -> CycleStats:
        """Stats of one local cycle: its duration and its probes counted by kind and outcome."""
        results: list[ProbeResult] = list(report.targets)
        for commune in report.communes:
            results.extend(commune.targets)
            for host in commune.hosts:
                results.extend(host.results)
        return cls(report.duration, count_probes(results), dict(agents or {}))


def count_probes(results: Iterable[ProbeResult]) -> dict[tuple[str, str], int]:
    """``(kind, "ok"|"fail") -> count``: the increments of ``tslcd_probes_total``."""
    return dict(Counter((r.kind, "ok" if r.ok else "fail") for r in results))


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    value = unicodedata.normalize("NFC", value)
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(**pairs: str) -> str:
    """``{a="x",b="y"}``: the label set of a sample, values escaped."""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs.items()) + "}"


def fmt(value: float) -> str:
    """A sample value: integers without a decimal point, infinities as ``+Inf``/``-Inf``.
    The small whole numbers (0 and 1 above all: states, bits, counts, a loss of 0.0) are
    looked up: 74,000 values a nationwide render."""
    text = _SMALL_NUMBERS.get(value)
    if text is not None:
        return text
    if isinstance(value, int):  # bool included: True -> 1
        return str(int(value))
    if math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


class _Skips:
    """Rows (a host, a commune, a target) that failed to render this time, skipped so that
    one commune's bad data never stops the others; each logged once with its traceback."""

    __slots__ = ("keys", "log")

    def __init__(self, log: OnceLog) -> None:
        self.log = log
        self.keys: set[str] = set()

    @property
    def count(self) -> int:
        return len(self.keys)

    def failed(self, kind: str, key: str, families: Iterable[Family] = (),
               marker: str = "") -> None:
        """Call inside ``except``: drop the samples the row already wrote, count, log once."""
        self.keys.add(key)
        if marker:
            _drop_tail(families, marker)
        self.log.failed(key, kind=kind)  # one line per row, whichever family failed first


def _drop_tail(families: Iterable[Family], marker: str) -> None:
    """Remove the samples a failed row appended: they are the last lines of each family
    and carry its labels (``marker``), so the happy path records nothing."""
    for family in families:
        lines = family.lines
        while len(lines) > 2 and marker in lines[-1]:
            lines.pop()


class Family:
    """One metric family being written: HELP and TYPE once, then its samples (label text
    already escaped, :func:`labels`)."""

    __slots__ = ("lines", "name")

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name = name
        escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
        self.lines = [f"# HELP {name} {escaped}", f"# TYPE {name} {kind}"]

    def add(self, label_text: str, value: float, suffix: str = "") -> None:
        self.lines.append(f"{self.name}{suffix}{label_text} {fmt(value)}")


class FamilySource(Protocol):
    """Families another part of the process adds to every render (the collector's per-agent
    families): written as text like the rest. Through prometheus-client's registry the
    nation's 3 x 3,321 agent samples took 56 ms of a 290 ms render."""

    def families(self) -> list[Family]: ...


class Histogram:
    """Cumulative buckets of one label set; small enough to own instead of a client object."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.count += 1
        self.total += value

    def write(self, family: Family, label_pairs: str) -> None:
        """Samples ``_bucket`` (with ``le``), ``_sum`` and ``_count``; ``label_pairs`` unbraced."""
        sep = "," if label_pairs else ""
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=True):
            running += n
            family.add(f'{{{label_pairs}{sep}le="{fmt(bound)}"}}', running, "_bucket")
        family.add(f'{{{label_pairs}{sep}le="+Inf"}}', self.count, "_bucket")
        braced = f"{{{label_pairs}}}" if label_pairs else ""
        family.add(braced, self.total, "_sum")
        family.add(braced, self.count, "_count")


@dataclass(slots=True)
class IcmpCounter:
    """Echo requests sent and replies received by one host, summed over every cycle seen."""

    sent: int = 0
    received: int = 0
    last: HostObservation | None = None  # the observation counted last (never count it twice)


@dataclass(frozen=True, slots=True)
class _HostRow:
    key: str  # "PROV/COMMUNE" of the state
    province: str
    host: str
    labels: str  # pre-escaped, unbraced
    braced: str  # the same in braces


@dataclass(frozen=True, slots=True)
class _CommuneRow:
    commune: Commune
    labels: str  # province, commune; pre-escaped, unbraced
    info: str  # the tslcd_commune_info label set, braced


class _LabelCache:
    """Escaped label strings of an inventory, built once per inventory object, not per render."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.communes: list[_CommuneRow] = []
        self.hosts: list[_HostRow] = []
        names = {p.code: p.name for p in inventory.provinces}
        for commune in inventory.communes():
            self.communes.append(_commune_row(commune, names[commune.province]))
            self.hosts.extend(_host_row(commune, host) for host in commune.hosts)


def _commune_row(commune: Commune, province_name: str) -> _CommuneRow:
    base = labels(province=commune.province, commune=commune.code)[1:-1]
    info = labels(
        province=commune.province,
        commune=commune.code,
        province_name=province_name,
        commune_name=commune.name,
        isp=commune.isp,
        circuit=commune.circuit or "",
    )
    return _CommuneRow(commune, base, info)


def _host_row(commune: Commune, host: Host) -> _HostRow:
    text = labels(province=commune.province, commune=commune.code, host=host.name)[1:-1]
    return _HostRow(commune.key, commune.province, host.name, text, "{" + text + "}")


class Exposition:
    """The cached ``/metrics`` body, re-rendered once per cycle.

    :meth:`update` may run in a worker thread while the event loop serves :meth:`body`:
    updates are serialised by a lock and publish the new text (and its gzip) by swapping one
    reference to an immutable tuple of bytes, so a scrape always gets one whole, consistent
    render. The state may
    keep changing in the loop meanwhile: the render only looks dicts up by key or iterates
    atomic copies of them, so it never trips over a dict that changes size.
    """

    def __init__(self, process_metrics: bool = True) -> None:
        self._lock = threading.Lock()
        self._published = gzip.compress(b"", GZIP_LEVEL, mtime=0)  # the one copy: gzipped
        self._labels: _LabelCache | None = None
        self._maintenance: Sequence[Maintenance] = ()  # the windows of the latest update
        self._icmp: dict[tuple[str, str], IcmpCounter] = {}  # (PROV/COMMUNE, host) ->
        self._rtt: dict[str, Histogram] = {}  # province ->
        self._cycle = Histogram(CYCLE_BUCKETS)
        self._probes: Counter[tuple[str, str]] = Counter()
        self._agents: dict[str, float] = {}
        self._render_seconds: float | None = None
        self._failures = OnceLog("metrics_row_skipped")
        self._sources: list[FamilySource] = []
        self._registry = CollectorRegistry(auto_describe=False)
        if process_metrics:
            ProcessCollector(registry=self._registry)
            PlatformCollector(registry=self._registry)
            GCCollector(registry=self._registry)

    @property
    def registry(self) -> CollectorRegistry:
        """prometheus-client metrics of the command serving this exposition (e.g. the
        collector's counters): appended to every render."""
        return self._registry

    def add_source(self, source: FamilySource) -> None:
        """``source``'s families in every render from now on (before the registry's)."""
        self._sources.append(source)

    def body(self) -> bytes:
        """The text, unpacked from the one stored copy (gzipped) for a client that does not
        take gzip (Prometheus always does): nationwide ~12 MB of text is then not held
        between renders, only its ~0.6 MB gzip."""
        return gzip.decompress(self._published)

    def body_gzip(self) -> bytes:
        """The body gzip-compressed once per render (``Content-Encoding: gzip``), so a
        scrape that accepts gzip costs no compression at all."""
        return self._published

    def update(
        self, inventory: Inventory, state: MonitorState, cycle_stats: CycleStats | None = None,
        maintenance: Sequence[Maintenance] | None = None,
    ) -> None:
        """Fold in the cycle's counters and render the whole text; cheap to call from a thread.
        ``maintenance``: the windows in force (the inventory's and those set while running,
        ``StateEngine.maintenance_windows``); None: the inventory's."""
        with self._lock:
            self._maintenance = inventory.maintenance if maintenance is None else maintenance
            started = time.perf_counter()
            cache = self._label_cache(inventory)
            skips = _Skips(self._failures)
            self._accumulate(cache, state, cycle_stats or CycleStats(), skips)
            parts = self._render(cache, state, time.time(), skips)
            self._published = _gzip(itertools.chain(parts, [generate_latest(self._registry)]))
            self._render_seconds = time.perf_counter() - started

    def _label_cache(self, inventory: Inventory) -> _LabelCache:
        if self._labels is None or self._labels.inventory is not inventory:
            self._labels = _LabelCache(inventory)
            live = {(row.key, row.host) for row in self._labels.hosts}
            self._icmp = {k: v for k, v in self._icmp.items() if k in live}
        return self._labels

    def _accumulate(self, cache: _LabelCache, state: MonitorState, stats: CycleStats,
                    skips: _Skips) -> None:
        if stats.duration is not None:
            self._cycle.observe(stats.duration)
        self._probes.update(stats.probes)
        for agent, seen in _agents_seen(state, stats, skips).items():
            self._agents[agent] = max(seen, self._agents.get(agent, seen))
        for row in cache.hosts:
            host = _host_state(state, row)
            if host is not None and host.last is not None and host.last.icmp is not None:
                try:
                    self._count_icmp(row, host.last, host.last.icmp)
                except Exception:
                    skips.failed("icmp_counter", f"{row.key}/{row.host}")

    def _count_icmp(self, row: _HostRow, obs: HostObservation, icmp: IcmpDetail) -> None:
        """Add a host's ICMP probe to its counters and the RTT histogram, once per probe."""
        counter = self._icmp.setdefault((row.key, row.host), IcmpCounter())
        if counter.last is not None and _same_probe(counter.last, obs):
            return
        counter.last = obs  # a probe that fails below is not retried at every render
        sent, received = int(icmp.sent), int(icmp.received)  # bad data fails before counting
        rtts = [float(rtt) for rtt in icmp.rtts]
        counter.sent += sent
        counter.received += received
        histogram = self._rtt.get(row.province)
        if histogram is None:
            histogram = self._rtt[row.province] = Histogram(ICMP_RTT_BUCKETS)
        for rtt in rtts:
            histogram.observe(rtt)

    def _render(self, cache: _LabelCache, state: MonitorState, now: float,
                skips: _Skips) -> Iterator[bytes]:
        """Each family encoded on its own (no single long C call holds the GIL for long),
        when its turn comes, its lines let go once encoded: the whole text never exists at
        once (see :func:`_gzip`)."""
        families = _host_families(cache, state, self._icmp, skips)
        families += _vantage_families(cache, state, skips)
        families += _commune_families(cache, state, cache.inventory.milestones, skips)
        families.append(_maintenance_family(cache, self._maintenance, now))
        families += _target_families(list(state.targets.values()), skips)
        for source in self._sources:
            try:
                families += source.families()
            except Exception:
                skips.failed("source", type(source).__name__)
        families += self._own_families(skips)  # last: it counts the skips
        families.reverse()
        while families:
            yield ("\n".join(families.pop().lines) + "\n").encode()

    def _own_families(self, skips: _Skips) -> list[Family]:
        agents = Family(
            "tslcd_agent_last_seen_timestamp_seconds",
            "gauge",
            "Unix time an agent (vantage PROV or PROV/COMMUNE) was last heard from.",
        )
        for agent, seen in sorted(self._agents.items()):
            agents.add(_agent_labels(agent), seen)
        rtt = Family(
            "tslcd_icmp_rtt_seconds", "histogram", "ICMP round trips of every host, by province."
        )
        for province, histogram in sorted(self._rtt.items()):
            histogram.write(rtt, labels(province=province)[1:-1])
        cycle = Family(
            "tslcd_probe_cycle_duration_seconds", "histogram", "Duration of one whole probe cycle."
        )
        self._cycle.write(cycle, "")
        probes = Family("tslcd_probes_total", "counter", "Probes run, by kind and outcome.")
        for (kind, result), n in sorted(self._probes.items()):
            probes.add(labels(probe=kind, result=result), n)
        render = Family(
            "tslcd_exposition_render_seconds",
            "gauge",
            "Time the previous render of this /metrics text took.",
        )
        if self._render_seconds is not None:
            render.add("", self._render_seconds)
        skipped = Family(
            "tslcd_exposition_skipped_rows",
            "gauge",
            "Hosts, communes and targets left out of this render: their data failed to render "
            "(logged once each).",
        )
        skipped.add("", skips.count)
        return [agents, rtt, cycle, probes, render, skipped]


def _gzip(parts: Iterable[bytes]) -> bytes:
    """The parts' concatenation as one gzip member (mtime 0), compressed one part after the
    other as they come: nationwide, the ~12 MB of text, its joined copy and the previous
    render's were together ~35 MB of a render's peak."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [compressor.compress(part) for part in parts]
    out.append(compressor.flush())
    return b"".join(out)


def _host_state(state: MonitorState, row: _HostRow) -> HostState | None:
    commune = state.communes.get(row.key)
    return None if commune is None else commune.hosts.get(row.host)


def _same_probe(a: HostObservation, b: HostObservation) -> bool:
    """The same ICMP probe: the same observation, or one whose ICMP result started together."""
    if a is b:
        return True
    started = next((r.started for r in a.results if r.kind == "icmp"), None)
    return started is not None and started == next(
        (r.started for r in b.results if r.kind == "icmp"), None
    )


def _agents_seen(state: MonitorState, stats: CycleStats, skips: _Skips) -> dict[str, float]:
    """Latest time each agent was heard: its observations in the state, and what it reported."""
    seen = dict(stats.agents)
    for key, commune in list(state.communes.items()):  # one atomic copy: the loop may add some
        vantage = commune.vantage
        if isinstance(vantage, str) and vantage != "central" and commune.last_seen is not None:
            try:
                last = float(commune.last_seen)
                seen[vantage] = max(last, seen.get(vantage, last))
            except Exception:
                skips.failed("agent_seen", key)
    return seen


def _alive_methods(obs: HostObservation) -> list[tuple[str, bool]]:
    """Per liveness method tried in the cycle, whether it saw the host."""
    tried: dict[str, bool] = {}
    for result in obs.results:
        if result.kind in ALIVE_METHODS:
            tried[result.kind] = tried.get(result.kind, False) or result.ok
    if obs.method is not None:
        tried[obs.method] = True
    return sorted(tried.items())


def _host_families(
    cache: _LabelCache, state: MonitorState, icmp_counts: Mapping[tuple[str, str], IcmpCounter],
    skips: _Skips,
) -> list[Family]:
    """The per-host families: the hot loop (10,000 hosts), so samples are appended inline.
    A host whose data fails to render is left out whole (its lines so far removed)."""
    up = Family("tslcd_host_up", "gauge", "1 up, 0 down, after down_after/up_after debouncing.")
    rtt = Family("tslcd_host_rtt_seconds", "gauge", "Mean ICMP round trip of the last cycle.")
    loss = Family(
        "tslcd_host_packet_loss_ratio", "gauge", "ICMP packet loss over the last cycle, 0..1."
    )
    jitter = Family(
        "tslcd_host_rtt_jitter_seconds",
        "gauge",
        "Mean absolute difference of consecutive round trips of the last cycle.",
    )
    ip_ok = Family(
        "tslcd_host_ip_config_ok",
        "gauge",
        "1 when the assigned IP answers ARP with the expected MAC only (vantage on the segment).",
    )
    macs = Family(
        "tslcd_host_mac_addresses", "gauge", "Distinct MACs that answered ARP for the host's IP."
    )
    alive = Family(
        "tslcd_host_alive",
        "gauge",
        "Per liveness method tried in the last cycle, 1 if it saw the host.",
    )
    flapping = Family("tslcd_host_flapping", "gauge", "1 while the host keeps going up and down.")
    expected = Family(
        "tslcd_host_expected", "gauge",
        "1 when working hours expect the computer to answer now (always_on, drills and "
        "periods included); 0: a silent one is off, not down.")
    sent = Family("tslcd_host_icmp_sent_total", "counter", "ICMP echo requests sent to the host.")
    received = Family(
        "tslcd_host_icmp_received_total", "counter", "ICMP echo replies received from the host."
    )
    families = [up, rtt, loss, jitter, ip_ok, macs, alive, flapping, expected, sent, received]
    for row in cache.hosts:
        try:
            braced = row.braced
            counter = icmp_counts.get((row.key, row.host))
            if counter is not None:
                sent.lines.append(f"tslcd_host_icmp_sent_total{braced} {counter.sent}")
                received.lines.append(f"tslcd_host_icmp_received_total{braced} {counter.received}")
            host = _host_state(state, row)
            if host is None:
                continue
            if host.up is not None:
                up.lines.append(f"tslcd_host_up{braced} {_BIT[host.up]}")
            flapping.lines.append(f"tslcd_host_flapping{braced} {_BIT[host.flapping]}")
            expected.lines.append(f"tslcd_host_expected{braced} {_BIT[host.expected]}")
            obs = host.last
            if obs is None:
                continue
            icmp = obs.icmp
            if icmp is not None and icmp.sent:
                loss.lines.append(f"tslcd_host_packet_loss_ratio{braced} {fmt(icmp.loss_ratio)}")
                if icmp.rtts:
                    rtt.lines.append(f"tslcd_host_rtt_seconds{braced} {icmp.rtt_mean!r}")
                if len(icmp.rtts) > 1:
                    jitter.lines.append(f"tslcd_host_rtt_jitter_seconds{braced} {icmp.jitter!r}")
            if obs.arp is not None:
                ip_ok.lines.append(
                    f"tslcd_host_ip_config_ok{braced} {_BIT[ip_config_ok(obs.arp) is True]}")
                macs.lines.append(f"tslcd_host_mac_addresses{braced} {len(obs.arp.macs)}")
            for method, saw in _alive_methods(obs):
                alive.lines.append(
                    f'tslcd_host_alive{{{row.labels},method="{method}"}} {_BIT[saw]}')
        except Exception:
            skips.failed("host", f"{row.key}/{row.host}", families, row.labels)
    return families


def _vantage_families(cache: _LabelCache, state: MonitorState, skips: _Skips) -> list[Family]:
    """Each vantage's own view of each host (contract §3, §7): debounced up, RTT and loss as
    that vantage measured them; the families without ``vantage`` are the fused verdict."""
    up = Family("tslcd_vantage_host_up", "gauge",
                 "1 up, 0 down as this vantage sees the host, after its own debouncing.")
    rtt = Family("tslcd_vantage_host_rtt_seconds", "gauge",
                  "Mean ICMP round trip of this vantage's last cycle.")
    loss = Family("tslcd_vantage_host_packet_loss_ratio", "gauge",
                   "ICMP packet loss of this vantage's last cycle, 0..1.")
    families = [up, rtt, loss]
    quoted: dict[str, str] = {}  # vantage -> its escaped label value
    for row in cache.hosts:
        commune = state.communes.get(row.key)
        if commune is None or not commune.views:
            continue
        try:
            for vantage, view in list(commune.views.items()):
                host = view.hosts.get(row.host)
                if host is None:
                    continue
                value = quoted.get(vantage)
                if value is None:
                    value = quoted[vantage] = escape_label(vantage)
                braced = f'{{{row.labels},vantage="{value}"}}'
                if host.up is not None:
                    up.lines.append(f"tslcd_vantage_host_up{braced} {_BIT[host.up]}")
                icmp = host.last.icmp if host.last is not None else None
                if icmp is not None and icmp.sent:
                    loss.lines.append(
                        f"tslcd_vantage_host_packet_loss_ratio{braced} {fmt(icmp.loss_ratio)}")
                    if icmp.rtts:
                        rtt.lines.append(
                            f"tslcd_vantage_host_rtt_seconds{braced} {icmp.rtt_mean!r}")
        except Exception:
            skips.failed("vantage_host", f"{row.key}/{row.host}", families, row.labels)
    return families


def _commune_families(
    cache: _LabelCache, state: MonitorState, milestones: tuple[Milestone, ...], skips: _Skips
) -> list[Family]:
    info = Family(
        "tslcd_commune_info", "gauge", "Always 1; names, operator and circuit of a commune."
    )
    status = Family(
        "tslcd_commune_status", "gauge", "0 ok, 1 degraded, 2 down, 3 unknown (never probed)."
    )
    unknown = Family(
        "tslcd_commune_unknown_devices",
        "gauge",
        "Devices seen in the commune's subnet that the inventory does not list.",
    )
    backup = Family(
        "tslcd_commune_on_backup", "gauge", "1 while the commune is reached over its backup line."
    )
    last_seen = Family(
        "tslcd_commune_last_seen_timestamp_seconds",
        "gauge",
        "Unix time of the latest observation of the commune.",
    )
    met = Family(
        "tslcd_milestone_met", "gauge", "1 when every check the milestone requires has passed."
    )
    line = Family(
        "tslcd_line_up", "gauge",
        "1 when the line's router (line primary or backup) answers, after debouncing; "
        "probed every cycle whichever line carries the commune.")
    line_rtt = Family("tslcd_line_rtt_seconds", "gauge",
                       "Mean ICMP round trip to the line's router (line primary or backup), last "
                       "cycle.")
    line_loss = Family("tslcd_line_packet_loss_ratio", "gauge",
                        "ICMP packet loss to the line's router (line primary or backup), last "
                        "cycle, 0..1.")
    milestone_labels = [(m, f',milestone="{escape_label(m.id)}"}}') for m in milestones]
    due = Family(
        "tslcd_milestone_due_timestamp_seconds",
        "gauge",
        "End of the milestone's due day, Vietnam time, as Unix time.",
    )
    for milestone in milestones:
        due.add(labels(milestone=milestone.id), deadline(milestone))
    # the hot loop (3,321 communes): integer samples appended inline, as in _host_families
    families = [info, status, unknown, backup, last_seen, met, line, line_rtt, line_loss]
    for row in cache.communes:
        try:
            braced = "{" + row.labels + "}"
            info.lines.append(f"tslcd_commune_info{row.info} 1")
            commune = state.communes.get(row.commune.key)
            code = 3 if commune is None else int(commune.status)
            status.lines.append(f"tslcd_commune_status{braced} {code}")
            for milestone, suffix in milestone_labels:
                done = commune is not None and milestone_met(milestone, commune.first_passed)
                met.lines.append(f"tslcd_milestone_met{{{row.labels}{suffix} {_BIT[done]}")
            if commune is None:
                continue
            if commune.unknown_devices is not None:
                unknown.lines.append(
                    f"tslcd_commune_unknown_devices{braced} {len(commune.unknown_devices)}")
            if commune.last_seen is not None:
                backup.lines.append(f"tslcd_commune_on_backup{braced} {_BIT[commune.on_backup]}")
                last_seen.add(braced, commune.last_seen)
            for name, kind in LINES:
                up = commune.gateway_up if kind == "gateway" else commune.backup_gateway_up
                pairs = f'{{{row.labels},line="{name}"}}'
                if up is not None:
                    line.lines.append(f"tslcd_line_up{pairs} {_BIT[up]}")
                echo = line_echo(commune, kind)
                if echo is not None and echo.sent:
                    line_loss.lines.append(
                        f"tslcd_line_packet_loss_ratio{pairs} {fmt(echo.loss_ratio)}")
                    if echo.rtts:
                        line_rtt.lines.append(f"tslcd_line_rtt_seconds{pairs} {echo.rtt_mean!r}")
        except Exception:
            skips.failed("commune", row.commune.key, families, row.labels)
    return [*families, due]


def _maintenance_family(cache: _LabelCache, windows: Sequence[Maintenance],
                        now: float) -> Family:
    """1 for each commune inside a maintenance window now, so alert rules can skip it."""
    family = Family(
        "tslcd_commune_maintenance",
        "gauge",
        "1 while the commune is inside a maintenance window, of the inventory or set while "
        "running (no alerts).",
    )
    for row in cache.communes if windows else ():
        if in_maintenance(windows, row.commune.province, row.commune.code, now):
            family.add("{" + row.labels + "}", 1)
    return family


def _target_families(targets: Iterable[TargetState], skips: _Skips) -> list[Family]:
    up = Family(
        "tslcd_target_up", "gauge", "1 when the election system was reached (DNS, TCP, TLS, HTTP)."
    )
    expiry = Family(
        "tslcd_target_tls_expiry_timestamp_seconds",
        "gauge",
        "notAfter of the election system's TLS certificate, Unix time.",
    )
    phase = Family(
        "tslcd_target_phase_seconds", "gauge", "Duration of each phase of the last target check."
    )
    status = Family(
        "tslcd_target_http_status", "gauge", "HTTP status code of the last target check."
    )
    families = [up, expiry, phase, status]
    for target in sorted(targets, key=lambda t: (t.target, t.vantage)):
        pairs = ""
        try:
            pairs = _target_labels(target.target, target.vantage)
            up.add(pairs, target.up)
            detail = target.last.detail
            if not isinstance(detail, TargetDetail):
                continue
            if detail.tls_not_after is not None:
                expiry.add(pairs, detail.tls_not_after)
            if detail.http_status is not None:
                status.add(pairs, detail.http_status)
            for name, seconds in zip(TARGET_PHASES, _phase_seconds(detail), strict=True):
                if seconds is not None:
                    phase.add(f'{pairs[:-1]},phase="{name}"}}', seconds)
        except Exception:
            skips.failed("target", f"{target.target!r}@{target.vantage!r}", families,
                         pairs[1:-1])
    return families


#: Label sets escaped once per name, not at every render: the nation's 3,321 commune agents
#: each have an agent series and a view of the election system.
LABEL_MEMO = 32_768


@functools.lru_cache(maxsize=LABEL_MEMO)
def _target_labels(target: str, vantage: str) -> str:
    return labels(target=target, vantage=vantage)


@functools.lru_cache(maxsize=LABEL_MEMO)
def _agent_labels(agent: str) -> str:
    return labels(agent=agent, province=agent.partition("/")[0])


def _phase_seconds(detail: TargetDetail) -> tuple[float | None, ...]:
    return (detail.dns_seconds, detail.connect_seconds, detail.tls_seconds, detail.http_seconds)
