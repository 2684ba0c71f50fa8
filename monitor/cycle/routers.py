"""The line's router as a vantage (issue 18, contract §7): its ARP table read over SNMP
from the center, the commune's segment seen without software on the stamped computers.

Pacing: every commune with ``snmp`` is read once every ``defaults.snmp_every`` cycles, the
nation in that many equal slices (by position in the inventory), so a cycle's share stays
the same whatever the size. A slice is read after its cycle, as a task of its own beside
the cycles (:meth:`monitor.cycle.scheduler.Scheduler.run_forever`): it never holds one up,
and a slice still under way when the next is due makes that one skip (logged). Only the
communes whose gateway answered the cycle are read: a line that is down says nothing about
the segment, and the read would only time out.

A read: first one echo to every address of the commune's subnet, paced per commune as the
cycle's (the router resolves each one by ARP, so its table lists every device there, listed
or not), then the tables (:class:`probes.snmp.Poller`, each request bounded by its timeout
and retries). The earlier reads of each router are kept (:data:`KEPT_READS`): an address
whose MAC comes back after another over them flip-flops, two machines claiming it
(:func:`probes.snmp.flip_flops`). The answers go through the ARP probe's own judge, so the
router's view has the very shape of an agent's scan; a failed read is an observation with
``snmp_error`` only (never "everything absent").
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import structlog

from inventory.model import Commune, IPAddress, Snmp
from monitor.cycle.observation import CommuneObservation, observe_host
from probes import arp, snmp
from probes.icmp import Pinger
from probes.pacing import Pacer

log = structlog.get_logger("routers")

ROUTER = "router"  # the vantage's name (contract §7: series with vantage="router")
#: Earlier reads kept per router: a flip-flop shows while it lies within the last eight
#: (40 minutes at a read every 5 minutes). Reads sample the table now and then: a shorter
#: memory would make a conflict that goes on come and go; a new card never flip-flops.
KEPT_READS = 7
MAX_SWEEP = 256  # addresses swept per commune (a /24); beyond, only the listed ones


def due(communes: Sequence[Commune], cycle: int, every: int) -> list[Commune]:
    """The communes whose router is read after cycle number ``cycle``: of those with
    ``snmp``, one in ``every``, in turn."""
    readable = [c for c in communes if c.snmp is not None and c.snmp.address is not None]
    return [c for i, c in enumerate(readable) if i % every == cycle % every]


def sweep_addresses(commune: Commune) -> list[IPAddress]:
    """What to ping before reading the router: every address of the subnet (up to a /24)
    but the router's own, else the listed computers."""
    own = {commune.gateway, commune.snmp.address if commune.snmp else None}
    subnet = commune.subnet
    if subnet is None or subnet.num_addresses > MAX_SWEEP:
        return [h.ip for h in commune.hosts]
    return [ip for ip in subnet.hosts() if ip not in own]


def credentials(settings: Snmp) -> snmp.Credentials:
    """The probe's credentials from the inventory's settings; v3 keys read from their
    files now (never kept in the model, never logged). Raises ``OSError`` or ``ValueError``
    naming the file, never its content."""
    if settings.version == "2c":
        return snmp.V2c(settings.community or "")
    return snmp.V3(settings.user or "", _key(settings.auth_key_file, "auth_key_file"),
                   _key(settings.priv_key_file, "priv_key_file"),
                   auth=settings.auth or "SHA", priv=settings.priv or "AES")


def _key(path: str | None, what: str) -> str:
    if path is None:
        raise ValueError(f"snmp {what} is not set")
    text = Path(path).read_text(encoding="utf-8").strip()
    if len(text) < 8:  # net-snmp and pysnmp refuse shorter keys
        raise ValueError(f"snmp {what} {path}: the key is shorter than 8 characters")
    return text


def observe_router(commune: Commune, table: snmp.RouterArpTable,
                   earlier: Sequence[snmp.RouterArpTable]) -> CommuneObservation:
    """The router's view of the commune from one read (and the ``earlier`` ones)."""
    if not table.ok:
        return failed(commune, table.started, table.error or "error", table.message or "")
    scan = arp.judge(commune, snmp.replies(table, earlier), interface=f"snmp:{table.router}",
                     started=table.started, duration=table.duration)
    hosts = tuple(observe_host(h.name, str(h.ip), (scan.hosts[str(h.ip)],))
                  for h in commune.hosts)
    return CommuneObservation(province=commune.province, commune=commune.code,
                              at=table.started, vantage=ROUTER, hosts=hosts,
                              unknown_devices=scan.unknown)


def failed(commune: Commune, at: float, kind: str, message: str) -> CommuneObservation:
    return CommuneObservation(province=commune.province, commune=commune.code, at=at,
                              vantage=ROUTER, snmp_error=(kind, message))


class RouterReader:
    """Reads the routers' ARP tables slice by slice; one for the life of the monitor (its
    :class:`probes.snmp.Poller` keeps one SNMP engine per set of credentials)."""

    def __init__(self, pinger: Pinger, *, timeout: float, retries: int, concurrency: int,
                 max_pps: float, commune_pps: float) -> None:
        self.pinger = pinger
        self.poller = snmp.Poller(timeout=timeout, retries=retries, concurrency=concurrency)
        self.max_pps = max_pps
        self.commune_pps = commune_pps
        self.earlier: dict[str, deque[snmp.RouterArpTable]] = {}  # commune key -> reads

    async def read(self, communes: Sequence[Commune], icmp_timeout: float
                   ) -> list[CommuneObservation]:
        """Sweep the communes' subnets, then read their routers: one observation each."""
        await self._sweep(communes, icmp_timeout)
        requests, failures = [], []
        for commune in communes:
            assert commune.snmp is not None and commune.snmp.address is not None
            try:
                login = credentials(commune.snmp)
            except (OSError, ValueError) as exc:
                log.error("snmp_credentials", commune=commune.key, error=str(exc))
                failures.append(failed(commune, time.time(), "credentials", str(exc)))
                continue
            scope = (str(commune.subnet),) if commune.subnet else tuple(
                str(h.ip) for h in commune.hosts)
            requests.append((commune, snmp.RouterRequest(str(commune.snmp.address), login,
                                                         scope)))
        tables = await self.poller.poll([r for _, r in requests])
        return failures + [self._observe(c, t) for (c, _), t in zip(requests, tables,
                                                                       strict=True)]

    def _observe(self, commune: Commune, table: snmp.RouterArpTable) -> CommuneObservation:
        kept = self.earlier.setdefault(commune.key, deque(maxlen=KEPT_READS))
        obs = observe_router(commune, table, list(kept))
        if table.ok:
            kept.append(table)
        else:
            log.warning("snmp_read_failed", commune=commune.key, router=table.router,
                        error=table.error, message=table.message)
        return obs

    async def _sweep(self, communes: Sequence[Commune], icmp_timeout: float) -> None:
        addresses = [(i, ip) for i, c in enumerate(communes) for ip in sweep_addresses(c)]
        if not addresses:
            return
        try:
            await self.pinger.ping_each(
                [ip for _, ip in addresses], count=1, timeout=icmp_timeout, spread=0.0,
                pacer=Pacer(self.max_pps, self.commune_pps), groups=[i for i, _ in addresses])
        except Exception:  # the read says what it can without a fresh sweep
            log.exception("snmp_sweep_failed")

    def close(self) -> None:
        self.poller.close()
