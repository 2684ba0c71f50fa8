"""One probe cycle over the inventory, and the loop that runs one per interval.

A cycle pings every host and gateway through the shared pinger, asks the hosts that did
not answer ICMP by TCP (Windows PCs drop echo), scans the commune segments this vantage sits
on by ARP, and checks the election system. Every probe is isolated: one that raises or
hangs yields a failed result and never stalls the others; the whole cycle is bounded by its
interval, and cycles never overlap.

Beside the cycles, what failed is confirmed fast (:mod:`monitor.cycle.retry`): a host,
gateway or target whose result disagrees with its confirmed state is re-probed
``retry_interval`` after its last result, each re-probe a small report of its own handed to
``on_report`` (the state counts it like a cycle's). The central vantage also pings
``defaults.upstream`` each cycle (``CycleReport.upstream_ok``), and after each cycle reads
a slice of the line routers' ARP tables over SNMP, as a task of its own
(:mod:`monitor.cycle.routers`): a report of vantage ``router``, never counted as a cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from inventory.model import Commune, Inventory, IPAddress, Target
from monitor.cycle.observation import (
    CommuneObservation,
    CycleReport,
    HostObservation,
    answered,
    observe_host,
)
from monitor.cycle.retry import Streak, pending, recheck_spacing, step
from monitor.cycle.routers import ROUTER, RouterReader, due
from probes import target, tcp
from probes.icmp import DEFAULT_SPACING, Pinger
from probes.pacing import Pacer
from probes.result import IcmpDetail, ProbeResult

log = structlog.get_logger("scheduler")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SchedulerOptions:
    vantage: str = "central"
    spread: float | None = None  # seconds to spread host probes over; None: half the interval
    max_pps: float = 50_000.0  # all echo requests of this process (about 34 Mbit/s)
    commune_pps: float = 50.0  # per commune, so a thin line is never flooded
    tcp_concurrency: int = 1_000
    tcp_timeout: float = 1.0
    arp: bool = True  # scan the segments this vantage sits on, where privileges allow
    arp_window: float = 1.5
    target_timeout: float = 5.0
    upstream: bool = False  # ping defaults.upstream each cycle (the central vantage)
    confirm: bool = True  # re-probe what fails every retry_interval between cycles
    snmp: bool = True  # central only: read the routers of communes with ``snmp`` (paced)
    snmp_timeout: float = 1.0  # per SNMP request; with the retries a silent router costs 3 s
    snmp_retries: int = 2  # (its first request fails: the read ends there)
    snmp_concurrency: int = 32  # routers in flight (docs/snmp.md: 256 saturated 2 cores)


#: A subject of fast confirmation: (kind, PROV/COMMUNE or "", host or target name).
Subject = tuple[str, str, str]
BATCH = 0.25  # seconds: subjects due this close together are re-probed in one report
SLICE_BOUND = 4  # a slice of router reads may take this many times its share of time


class Scheduler:
    def __init__(self, inventory: Inventory, pinger: Pinger, options: SchedulerOptions) -> None:
        self.inventory = inventory
        self.pinger = pinger
        self.options = options
        self.streaks: dict[Subject, Streak] = {}
        self._due: dict[Subject, float] = {}  # pending subject -> when to re-probe it
        self._new_due = asyncio.Event()
        self._delivering = asyncio.Lock()
        self._rechecked: dict[str, float] = {}  # PROV/COMMUNE -> its latest re-probe's time
        self.routers = RouterReader(
            pinger, timeout=options.snmp_timeout, retries=options.snmp_retries,
            concurrency=options.snmp_concurrency, max_pps=options.max_pps,
            commune_pps=options.commune_pps,
        ) if options.snmp and options.vantage == "central" else None
        self._cycles = 0  # cycles run: which slice of the routers is read after this one
        self._reading: asyncio.Task[None] | None = None  # the routers' slice under way

    async def cycle(self) -> CycleReport:
        """Probe everything once; returns within about one interval whatever the network does."""
        inv = self.inventory
        started = time.time()
        t0 = time.monotonic()
        interval = inv.interval_at(started)  # shorter inside a period such as election day
        budget = max(interval * 0.9, inv.defaults.icmp.timeout + 1.0)
        segment_task = asyncio.create_task(self._scan_segments(inv, budget))
        target_tasks = [asyncio.create_task(self._probe_target(t)) for t in inv.targets]
        communes = list(inv.communes())
        upstream = list(inv.defaults.upstream) if self.options.upstream else []
        icmp = await self._ping_all(inv, communes, budget, interval, upstream)
        upstream_results = icmp.pop()
        upstream_ok = any(r is not None and answered(r) for r in upstream_results) \
            if upstream else None

        def remaining() -> float:
            return t0 + budget - time.monotonic()

        tcp_results = await self._tcp_fallback(communes, icmp, remaining())
        segments = await _bounded(segment_task, remaining(), {})
        targets = [
            await _bounded(task, remaining(), _failed("target", tgt.name, "deadline"))
            for task, tgt in zip(target_tasks, inv.targets, strict=True)
        ]
        report = CycleReport(started=started, vantage=self.options.vantage, targets=targets)
        report.upstream_ok = upstream_ok
        report.communes = [
            self._observe_commune(c, started, icmp[i], tcp_results.get(i, {}), segments.get(c.key))
            for i, c in enumerate(communes)
        ]
        report.duration = time.monotonic() - t0
        return report

    async def run_forever(self, on_report: Callable[[CycleReport], Awaitable[None]]) -> None:
        """A cycle per interval on a fixed grid (an overrun skips slots, never overlaps),
        and beside it the confirmation of what failed, at its own pace."""
        confirming = asyncio.create_task(self._confirm_forever(on_report),
                                         name="fast confirmation") \
            if self.options.confirm else None
        try:
            await self._cycle_forever(on_report)
        finally:
            for task in (confirming, self._reading):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if self.routers is not None:
                self.routers.close()

    async def _cycle_forever(self, on_report: Callable[[CycleReport], Awaitable[None]]) -> None:
        next_start = time.monotonic()
        while True:
            try:
                report = await self.cycle()
                lines_up = {f"{o.province}/{o.commune}" for o in report.communes
                            if o.gateway_alive is not False}  # before _deliver trims it
                await self._deliver(report, on_report)
                self._read_routers(lines_up, on_report)
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken cycle must not end the monitor
                log.exception("cycle_failed")
            interval = self.inventory.interval_at(time.time())
            next_start += interval
            now = time.monotonic()
            if now > next_start:
                skipped = math.ceil((now - next_start) / interval)
                log.warning("cycle_overrun", skipped_cycles=skipped)
                next_start += skipped * interval
            await asyncio.sleep(next_start - now)

    async def _deliver(self, report: CycleReport,
                       on_report: Callable[[CycleReport], Awaitable[None]]) -> None:
        """Count the report's results in the streaks, then hand it on: one report at a
        time (cycles and re-probes run side by side, their consumers need not care). A
        cycle's observation of a commune re-probed since the cycle began is left out: it
        is older than what the state (or the collector) already has, which would refuse it
        as stale."""
        async with self._delivering:
            if report.vantage == ROUTER:  # the routers' tables: no streak, no re-probe
                await on_report(report)
                return
            if report.recheck:
                self._rechecked.update((f"{o.province}/{o.commune}", o.at)
                                       for o in report.communes)
            else:
                report.communes = [o for o in report.communes if o.at > self._rechecked.pop(
                    f"{o.province}/{o.commune}", float("-inf"))]
            # subjects are due again retry_interval after the probing that judged them
            # started (a re-probe's pace is the interval, whatever a probe takes); for a
            # cycle that is at once when it took longer than retry_interval: its failures
            # were seen seconds before its report, and waiting retry_interval more after
            # the report made a cut line's alert late by as much
            self._count(report, time.monotonic() - report.duration)
            await on_report(report)

    def _read_routers(self, lines_up: set[str],
                      on_report: Callable[[CycleReport], Awaitable[None]]) -> None:
        """Start reading this cycle's slice of routers (:func:`monitor.cycle.routers.due`)
        whose line answered the cycle (``lines_up``: commune keys): a task of its own; its
        report goes to ``on_report`` as a re-probe's does. Each request is bounded by its
        timeout and retries; the slice as a whole (against an agent that trickles) by
        ``SLICE_BOUND`` times its share of time, ``snmp_every`` intervals. A slice under
        way is not joined by the next one (that one is skipped and logged)."""
        self._cycles += 1
        if self.routers is None:
            return
        inv = self.inventory
        communes = [c for c in due(list(inv.communes()), self._cycles, inv.defaults.snmp_every)
                    if c.key in lines_up]
        if not communes:
            return
        if self._reading is not None and not self._reading.done():
            log.warning("snmp_overrun", skipped_routers=len(communes))
            return
        bound = SLICE_BOUND * inv.interval_at(time.time()) * inv.defaults.snmp_every
        self._reading = asyncio.create_task(self._routers_report(communes, bound, on_report),
                                            name="router reads")

    async def _routers_report(self, communes: list[Commune], bound: float,
                              on_report: Callable[[CycleReport], Awaitable[None]]) -> None:
        assert self.routers is not None
        started, t0 = time.time(), time.monotonic()
        try:
            async with asyncio.timeout(bound):
                observations = await self.routers.read(communes,
                                                       self.inventory.defaults.icmp.timeout)
        except TimeoutError:
            log.warning("snmp_deadline", routers=len(communes), seconds=bound)
            return
        except Exception:  # a broken read must not end the monitor
            log.exception("snmp_read_failed")
            return
        report = CycleReport(started=started, vantage=ROUTER, communes=observations,
                             recheck=True, duration=time.monotonic() - t0)
        try:
            await self._deliver(report, on_report)
        except Exception:
            log.exception("snmp_report_failed")

    async def _confirm_forever(self, on_report: Callable[[CycleReport], Awaitable[None]]
                               ) -> None:
        """Re-probe each pending subject when due (``retry_interval`` after its last
        re-probe started, or after the cycle that found it; those due within ``BATCH`` of
        each other together), whatever the cycle is doing."""
        while True:
            if not self._due:
                self._new_due.clear()
                await self._new_due.wait()
                continue
            wake = min(self._due.values())
            await asyncio.sleep(max(0.0, wake - time.monotonic()))
            now = time.monotonic()
            subjects = {s for s, due in self._due.items() if due <= now + BATCH}
            if not subjects:
                continue
            for subject in subjects:
                del self._due[subject]
            try:
                await self._deliver(await self.recheck(subjects), on_report)
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken re-probe must not end the confirmation
                log.exception("recheck_failed")

    def pending(self) -> set[Subject]:
        """The subjects whose last result disagrees with their confirmed state."""
        return {subject for subject, streak in self.streaks.items() if pending(streak)}

    def _count(self, report: CycleReport, now: float) -> None:
        """Each result of the report in its subject's streak (unjudged ones are left); a
        subject left pending is due again ``retry_interval`` from now. A steady streak comes
        back from :func:`step` as it was: not pending, so not due either."""
        d = self.inventory.defaults
        streaks, due_at = self.streaks, self._due
        for subject, ok in _results(report):
            if ok is None:
                continue
            old = streaks.get(subject, _NEW)
            streak = step(old, ok, d.down_after, d.up_after)
            if streak is old:
                continue
            streaks[subject] = streak
            if pending(streak):
                due_at[subject] = now + d.retry_interval
            else:
                due_at.pop(subject, None)
        if due_at:
            self._new_due.set()

    async def recheck(self, subjects: set[Subject]) -> CycleReport:
        """Probe only ``subjects`` once (no spread, no ARP scan): a report whose communes
        carry only those hosts and gateways (the others unjudged), and those targets."""
        inv = self.inventory
        started = time.time()
        t0 = time.monotonic()
        targets = {name for kind, _, name in subjects if kind == "target"}
        target_tasks = [asyncio.create_task(self._probe_target(t))
                        for t in inv.targets if t.name in targets]
        plans = [(c, _rechecked(c, subjects)) for c in inv.communes()
                 if any(key == c.key for _, key, _ in subjects)]
        addresses = [ip for _, plan in plans for _, _, ip in plan]
        groups = [index for index, (_, plan) in enumerate(plans) for _ in plan]
        icmp = inv.defaults.icmp
        try:
            pings = await self.pinger.ping_each(
                addresses, count=icmp.count, timeout=icmp.timeout, spread=0.0,
                spacing=recheck_spacing(icmp.count, icmp.timeout, inv.defaults.retry_interval,
                                        DEFAULT_SPACING),
                pacer=Pacer(self.options.max_pps, self.options.commune_pps), groups=groups)
        except Exception as exc:
            log.exception("icmp_recheck_failed")
            pings = [_failed("icmp", str(ip), repr(exc)) for ip in addresses]
        report = CycleReport(started=started, vantage=self.options.vantage, recheck=True)
        results = iter(pings)
        gate = asyncio.Semaphore(self.options.tcp_concurrency)
        report.communes = list(await asyncio.gather(*(
            self._recheck_commune(commune, started, gate,
                                  [(kind, name, ip, next(results)) for kind, name, ip in plan])
            for commune, plan in plans)))
        report.targets = [await task for task in target_tasks]
        report.duration = time.monotonic() - t0
        return report

    async def _recheck_commune(self, commune: Commune, at: float, gate: asyncio.Semaphore,
                               probed: list[tuple[str, str, IPAddress, ProbeResult | None]]
                               ) -> CommuneObservation:
        """One commune's re-probed subjects: hosts silent to echo asked by TCP too."""
        hosts = {h.name: h for h in commune.hosts}
        alive: dict[str, bool | None] = {}

        async def host(name: str, ip: IPAddress, ping: ProbeResult | None) -> HostObservation:
            results = tuple(r for r in (ping,) if r is not None)
            ports = hosts[name].tcp_ports
            if ports and not _answered_echo(ping):
                async with gate:
                    results += (await _isolated(tcp.probe_any(
                        str(ip), ports, self.options.tcp_timeout), "tcp", str(ip)),)
            return observe_host(name, str(ip), results)

        for kind, _, _, ping in probed:
            if kind != "host":  # no ICMP from this vantage: unjudged, as in the cycle
                alive[kind] = None if ping is None else answered(ping)
        observed = await asyncio.gather(*(host(name, ip, ping)
                                          for kind, name, ip, ping in probed if kind == "host"))
        return CommuneObservation(
            province=commune.province, commune=commune.code, at=at,
            vantage=self.options.vantage, hosts=tuple(observed),
            gateway_alive=alive.get("gateway"), backup_gateway_alive=alive.get("backup_gateway"))

    async def _ping_all(self, inv: Inventory, communes: list[Commune], budget: float,
                        interval: float, upstream: list[IPAddress]
                        ) -> list[list[ProbeResult | None]]:
        """Every commune's addresses (:func:`_commune_addresses`) in one ICMP job; the
        results per commune, in that order (None: no ICMP from this vantage); then those
        of the ``upstream`` addresses, in the same job."""
        addresses: list[IPAddress] = []
        groups: list[int] = []
        sizes: list[int] = []
        for index, own in enumerate([*map(_commune_addresses, communes), upstream]):
            addresses += own
            groups += [index] * len(own)
            sizes.append(len(own))
        opts = self.options
        spread = opts.spread if opts.spread is not None else interval / 2
        icmp = inv.defaults.icmp
        # the last echo of a host must be answered before the budget ends
        spread = max(0.0, min(spread, budget - icmp.count * icmp.timeout - 1.0))
        try:
            results = await self.pinger.ping_each(
                addresses,
                count=icmp.count,
                timeout=icmp.timeout,
                spread=spread,
                pacer=Pacer(opts.max_pps, opts.commune_pps),
                groups=groups,
            )
        except Exception as exc:
            log.exception("icmp_cycle_failed")
            results = [_failed("icmp", str(ip), repr(exc)) for ip in addresses]
        per_commune, start = [], 0
        for size in sizes:
            per_commune.append(results[start:start + size])
            start += size
        return per_commune

    async def _tcp_fallback(
        self, communes: list[Commune], icmp: list[list[ProbeResult | None]], budget: float
    ) -> dict[int, dict[int, ProbeResult]]:
        """TCP connect for the computers that did not answer echo (Windows firewalls drop it):
        results by commune and host position."""
        silent = [
            (c, h, host)
            for c, commune in enumerate(communes)
            for h, host in enumerate(commune.hosts)
            if host.tcp_ports and not _answered_echo(icmp[c][h])
        ]
        if not silent:
            return {}
        gate = asyncio.Semaphore(self.options.tcp_concurrency)
        timeout = max(0.1, min(self.options.tcp_timeout, budget))

        async def one(ip: str, ports: tuple[int, ...]) -> ProbeResult:
            async with gate:
                return await tcp.probe_any(ip, ports, timeout)

        texts = [str(host.ip) for _, _, host in silent]
        results = await asyncio.gather(*(
            _isolated(one(text, host.tcp_ports), "tcp", text)
            for text, (_, _, host) in zip(texts, silent, strict=True)
        ))
        found: dict[int, dict[int, ProbeResult]] = {}
        for (c, h, _), result in zip(silent, results, strict=True):
            found.setdefault(c, {})[h] = result
        return found

    async def _scan_segments(self, inv: Inventory, budget: float) -> dict[str, Any]:
        """ARP-scan the commune segments this vantage is attached to (needs CAP_NET_RAW),
        within the cycle's budget: a short cycle shortens the listening, never the scan."""
        if not self.options.arp:
            return {}
        from probes import arp

        interfaces = arp.interface_addresses()
        local = [c for c in inv.communes() if arp.segment_interface(c.subnet, interfaces)]
        if not local or not arp.arp_permitted():
            return {}
        scans = await asyncio.gather(
            *(arp.scan_segment(c, window=self.options.arp_window, budget=budget - 0.1)
              for c in local),
            return_exceptions=True,
        )
        found = {}
        for commune, scan in zip(local, scans, strict=True):
            if isinstance(scan, BaseException):
                log.error("arp_scan_failed", commune=commune.key, error=repr(scan))
            else:
                found[commune.key] = scan
        return found

    async def _probe_target(self, tgt: Target) -> ProbeResult:
        return await _isolated(
            target.probe(tgt, timeout=self.options.target_timeout), "target", tgt.name
        )

    def _observe_commune(
        self,
        commune: Commune,
        at: float,
        icmp: list[ProbeResult | None],
        tcp_results: dict[int, ProbeResult],
        scan: Any,
    ) -> CommuneObservation:
        """``icmp`` holds the results for :func:`_commune_addresses`, ``tcp_results`` those
        of the hosts that were asked by TCP, by position."""
        hosts = []
        for position, host in enumerate(commune.hosts):
            ping = icmp[position]
            # the address as text, made once by the pinger
            text = str(host.ip) if ping is None else ping.subject
            results = tuple(r for r in (ping, tcp_results.get(position)) if r is not None)
            if scan is not None and text in scan.hosts:
                results += (scan.hosts[text],)
            hosts.append(observe_host(host.name, text, results))
        gateways = iter(icmp[len(commune.hosts):])
        primary = next(gateways) if commune.gateway is not None else None
        backup = next(gateways) if commune.backup_gateway is not None else None
        return CommuneObservation(
            province=commune.province,
            commune=commune.code,
            at=at,
            vantage=self.options.vantage,
            hosts=tuple(hosts),
            gateway_alive=_gateway_alive(commune.gateway, primary, scan, "gateway"),
            backup_gateway_alive=_gateway_alive(
                commune.backup_gateway, backup, scan, "backup_gateway"
            ),
            unknown_devices=None if scan is None else tuple(scan.unknown),
            line_icmp=(_echo(primary), _echo(backup)),
        )


_NEW = Streak()  # a subject's streak before its first result


def _results(report: CycleReport) -> Iterator[tuple[Subject, bool | None]]:
    """Each subject of the report with its result (None: not judged this time)."""
    for r in report.targets:
        yield ("target", "", r.subject), r.ok
    for obs in report.communes:
        key = f"{obs.province}/{obs.commune}"
        for h in obs.hosts:
            yield ("host", key, h.name), h.alive
        yield ("gateway", key, "gateway"), obs.gateway_alive
        yield ("backup_gateway", key, "backup_gateway"), obs.backup_gateway_alive


def _rechecked(commune: Commune, subjects: set[Subject]) -> list[tuple[str, str, IPAddress]]:
    """(kind, name, address) of the commune's subjects to re-probe, hosts first."""
    wanted = {(kind, name) for kind, key, name in subjects if key == commune.key}
    plan = [("host", h.name, h.ip) for h in commune.hosts if ("host", h.name) in wanted]
    for kind in ("gateway", "backup_gateway"):
        ip = getattr(commune, kind)
        if ip is not None and (kind, kind) in wanted:
            plan.append((kind, kind, ip))
    return plan


def _answered_echo(result: ProbeResult | None) -> bool:
    return result is not None and result.ok


def _gateway_alive(
    ip: IPAddress | None, icmp: ProbeResult | None, scan: Any, scan_field: str
) -> bool | None:
    """A gateway (CPE) is alive when it answers echo, or ARP from a vantage on its segment."""
    if ip is None:
        return None
    results = [r for r in (icmp, getattr(scan, scan_field, None)) if r]
    if not results:  # no ICMP from this vantage, no scan: unjudged (an agent asks by TCP)
        return None
    return any(answered(r) for r in results)


def _echo(result: ProbeResult | None) -> IcmpDetail | None:
    """A line router's echo counts and round trips (None: no ICMP from this vantage)."""
    return result.detail if result is not None and isinstance(result.detail, IcmpDetail) \
        else None


def _commune_addresses(commune: Commune) -> list[IPAddress]:
    """What a commune's ICMP results are for: its hosts, then its gateway and backup."""
    extra = [ip for ip in (commune.gateway, commune.backup_gateway) if ip is not None]
    return [h.ip for h in commune.hosts] + extra


def _failed(kind: Any, subject: str, error: str) -> ProbeResult:
    return ProbeResult(kind=kind, subject=subject, ok=False, started=time.time(), duration=0.0,
                       error=error)


async def _isolated(coro: Coroutine[Any, Any, ProbeResult], kind: str, subject: str) -> ProbeResult:
    """Run one probe so that whatever it raises becomes a failed result, not a broken cycle."""
    try:
        return await coro
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error("probe_failed", probe=kind, subject=subject, error=repr(exc))
        return _failed(kind, subject, repr(exc))


async def _bounded(task: asyncio.Task[T], remaining: float, default: T) -> T:
    """The task's result if it finishes in time; otherwise cancel it and use the default."""
    done, _ = await asyncio.wait({task}, timeout=max(0.0, remaining))
    if not done:
        task.cancel()
        log.warning("probe_deadline", task=task.get_name())
        return default
    return task.result()
