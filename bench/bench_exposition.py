"""Render time of ``/metrics`` for the nationwide network, and the event-loop stall it causes.

Nationwide: 34 provinces, 3,321 communes, 3 hosts each (9,963 hosts), every host observed
(ICMP, some TCP and ARP), two targets from the centre and one agent per province. Goal: a
render under 250 ms, run in a worker thread (``asyncio.to_thread``) so that the event loop
keeps serving; the stall is how late a 1 ms periodic timer fires meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import statistics
import time

from bench import Row, main
from inventory.model import Commune, Defaults, Host, Inventory, Milestone, Province, Target
from monitor.cycle.observation import observe_host
from monitor.decide.status import CommuneState, CommuneStatus, HostState, MonitorState, TargetState
from monitor.present.metrics import CycleStats, Exposition
from probes.result import ArpDetail, IcmpDetail, ProbeResult, TargetDetail, UnknownDevice

PROVINCES = 34
COMMUNES = 3_321
HOSTS_PER_COMMUNE = 3
RENDERS = 7
GOAL_SECONDS = 0.250
MILESTONES = (
    Milestone("ip_installed", "Cài đặt IP cho máy tính cập nhật dữ liệu", dt.date(2026, 1, 29),
              ("ip_config", "link")),
    Milestone("system_reached", "Truy cập hệ thống bầu cử", dt.date(2026, 2, 10),
              ("link", "ip_config", "target")),
)
TARGETS = (
    Target("congtaidaibieu", "https://congtaidaibieu.quochoi.vn/"),
    Target("bauCu-dự-phòng", "https://backup.example.invalid/"),
)


def synthetic_inventory(
    communes: int = COMMUNES, provinces: int = PROVINCES, hosts: int = HOSTS_PER_COMMUNE
) -> Inventory:
    """A nationwide-sized inventory: /29 per commune in 198.18.0.0/15 (never probed here)."""
    blocks = ipaddress.ip_network("198.18.0.0/15").subnets(new_prefix=29)
    per_province = -(-communes // provinces)
    built: list[Province] = []
    for p in range(provinces):
        code = f"{p + 1:02d}"
        first = p * per_province
        members = tuple(
            _commune(code, i, next(blocks), hosts)
            for i in range(first, min(first + per_province, communes))
        )
        built.append(Province(code, f"Tỉnh Đắk Lắk Mới {p + 1}", members))
    return Inventory(1, Defaults(), tuple(built), TARGETS, MILESTONES)


def _commune(province: str, index: int, subnet: ipaddress.IPv4Network, hosts: int) -> Commune:
    addresses = list(subnet.hosts())
    members = tuple(
        Host(f"may-{n + 1:02d}", addresses[n + 1], f"02:00:00:00:{index % 256:02x}:{n + 2:02x}")
        for n in range(hosts)
    )
    return Commune(
        province=province,
        code=f"{index + 1:05d}",
        name=f"Xã Hòa Phước Ngữ {index + 1}",
        isp="VNPT" if index % 3 else "Viettel",
        subnet=subnet,
        gateway=addresses[0],
        hosts=members,
        circuit=f"DNI-{index + 1:04d}",
    )


def populated_state(inventory: Inventory, now: float) -> MonitorState:
    """Every commune and host observed in the cycle that started at ``now``, some unwell."""
    state = MonitorState()
    for index, commune in enumerate(inventory.communes()):
        state.communes[commune.key] = _commune_state(commune, index, now)
    vantages = ["central", *(p.code for p in inventory.provinces[:3])]
    for target in inventory.targets:
        for vantage in vantages:
            state.targets[(target.name, vantage)] = _target_state(target, vantage, now)
    return state


def _commune_state(commune: Commune, index: int, now: float) -> CommuneState:
    statuses = (CommuneStatus.OK,) * 17 + (CommuneStatus.DEGRADED, CommuneStatus.DOWN)
    status = statuses[index % len(statuses)]
    hosts = {
        h.name: _host_state(h, up=status != CommuneStatus.DOWN or n > 0, now=now, seed=index + n)
        for n, h in enumerate(commune.hosts)
    }
    return CommuneState(
        province=commune.province,
        commune=commune.code,
        status=status,
        since=now - 3_600,
        hosts=hosts,
        gateway_up=status != CommuneStatus.DOWN,
        on_backup=index % 50 == 0,
        unknown_devices=(UnknownDevice(str(commune.subnet[6]), "02:aa:00:00:00:01"),)
        if index % 40 == 0
        else (),
        last_seen=now,
        vantage="central" if index % 10 else commune.province,
        first_passed={"link": now - 86_400, "ip_config": now - 80_000}
        | ({"target": now - 70_000} if index % 4 else {}),
    )


def _host_state(host: Host, up: bool, now: float, seed: int) -> HostState:
    rtts = tuple(0.004 + 0.001 * ((seed + k) % 7) for k in range(3)) if up else ()
    results = [
        ProbeResult("icmp", str(host.ip), up, now, 1.0, None, IcmpDetail(3, len(rtts), rtts))
    ]
    if seed % 5 == 0:
        macs = (host.mac,) if seed % 25 else (host.mac, "02:bb:00:00:00:01")
        results.append(
            ProbeResult("arp", str(host.ip), up, now, 1.5, None, ArpDetail(macs, host.mac))
        )
    obs = observe_host(host.name, str(host.ip), tuple(results))
    return HostState(host.name, str(host.ip), up, now - 3_600, seed % 97 == 0, 5, 0, obs)


def _target_state(target: Target, vantage: str, now: float) -> TargetState:
    detail = TargetDetail(
        url=target.url,
        resolved=("203.0.113.10",),
        dns_seconds=0.012,
        connect_seconds=0.030,
        tls_seconds=0.045,
        http_seconds=0.120,
        http_status=200,
        tls_not_after=now + 40 * 86_400,
    )
    return TargetState(target.name, vantage, True, ProbeResult(
        "target", target.name, True, now, 0.2, None, detail
    ))


def _render_times(
    inventory: Inventory, state: MonitorState
) -> tuple[float, float, int, int]:
    """(first render, which also escapes every label once; median of the rest; body bytes;
    gzipped body bytes)."""
    exposition = Exposition()
    times = []
    for _ in range(RENDERS + 1):
        t0 = time.perf_counter()
        exposition.update(inventory, state, CycleStats(duration=12.0, probes={("icmp", "ok"): 1}))
        times.append(time.perf_counter() - t0)
    sizes = len(exposition.body()), len(exposition.body_gzip())
    return times[0], statistics.median(times[1:]), *sizes


async def _timer_lateness_p99(inventory: Inventory | None, state: MonitorState) -> float:
    """p99 lateness (s) of a 1 ms periodic timer while renders run via asyncio.to_thread.

    With no inventory, the same timer over as long with the loop otherwise idle: the baseline.
    """
    exposition = Exposition()
    lateness: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            due = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            lateness.append(max(0.0, time.perf_counter() - due))

    ticker = asyncio.create_task(tick())
    for _ in range(RENDERS):
        if inventory is None:
            await asyncio.sleep(0.15)
        else:
            await asyncio.to_thread(exposition.update, inventory, state, CycleStats())
    done.set()
    await ticker
    return statistics.quantiles(lateness, n=100)[98]


def run() -> list[Row]:
    inventory = synthetic_inventory()
    state = populated_state(inventory, time.time())
    hosts = inventory.host_count
    cold, median, size, gzipped = _render_times(inventory, state)
    stall = asyncio.run(_timer_lateness_p99(inventory, state))
    idle = asyncio.run(_timer_lateness_p99(None, state))
    goal = "met" if median < GOAL_SECONDS else "NOT met"
    return [
        Row("metrics render, nationwide", median * 1000, "ms",
            f"median of {RENDERS}, {hosts} hosts, gzip included; goal < 250 ms {goal}"),
        Row("metrics first render, nationwide", cold * 1000, "ms",
            "includes escaping every label once (cached per inventory)"),
        Row("metrics body size, nationwide", size / 1e6, "MB",
            f"{hosts} hosts; gzipped (served to Prometheus) {gzipped / 1e6:.2f} MB"),
        Row("event-loop stall during threaded render", stall * 1000, "ms",
            f"p99 lateness of a 1 ms timer while rendering via asyncio.to_thread "
            f"(idle loop: {idle * 1000:.2f} ms)"),
    ]


if __name__ == "__main__":
    main(run)
