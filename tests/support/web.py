"""Inventories, states and tokens built in code for the web, report and browser tests;
the web app served on loopback for a test client.

Communes come from the official list (real codes and Vietnamese names) on loopback
addresses; operators alternate VNPT / Viettel; statuses cycle so every one appears.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from inventory import official
from inventory.model import Commune, Defaults, Host, Inventory, Milestone, Province, Target
from monitor.cycle.observation import CommuneObservation, HostObservation
from monitor.decide.status import CommuneState, CommuneStatus, HostState, MonitorState
from monitor.present.rtt_history import RttHistory
from monitor.present.web.auth import Scope, TokenEntry, TokenStore
from monitor.present.web.server import WebContext, build_app, serve
from probes.result import ArpDetail, IcmpDetail, ProbeResult
from tests.support import require_real
from tests.support.servers import free_tcp_port

ISPS = ("VNPT", "Viettel")
PASSED_AT = dt.datetime(2026, 1, 20, 9, 30, tzinfo=dt.UTC).timestamp()  # before every due day
STATUS_CYCLE = (CommuneStatus.OK, CommuneStatus.DOWN, CommuneStatus.DEGRADED, CommuneStatus.OK,
                CommuneStatus.UNKNOWN)
MILESTONES = (
    Milestone("ip_installed", "Cài đặt IP cho máy tính cập nhật dữ liệu", dt.date(2026, 1, 29),
              ("ip_config", "link")),
    Milestone("connected", "Kết nối hệ thống phần mềm quản lý thông tin bầu cử",
              dt.date(2026, 2, 6), ("link", "target")),
)
#: the election system, as every deployment lists it (its milestone is observable)
TARGETS = (Target("congtaidaibieu", "https://congtaidaibieu.quochoi.vn/"),)


def inventory(provinces: Iterable[str] = ("75",), per_province: int | None = None,
              hosts: int = 2) -> Inventory:
    built = tuple(_province(code, per_province, hosts) for code in provinces)
    return Inventory(1, Defaults(), built, targets=TARGETS, milestones=MILESTONES)


def nationwide(hosts: int = 3) -> Inventory:
    return inventory(sorted(official.provinces()), None, hosts)


def _province(code: str, limit: int | None, hosts: int) -> Province:
    unit = official.provinces()[code]
    codes = sorted(unit.communes)[:limit]
    communes = tuple(_commune(code, i, c, unit.communes[c].name, hosts)
                     for i, c in enumerate(codes))
    return Province(code, unit.name, communes)


def _commune(province: str, index: int, code: str, name: str, hosts: int) -> Commune:
    subnet = ipaddress.ip_network(f"127.{int(province)}.{index // 32}.{(index % 32) * 8}/29")
    base = subnet.network_address
    return Commune(
        province=province, code=code, name=name, isp=ISPS[index % 2], subnet=subnet,
        gateway=base + 1, circuit=f"{province}-{index + 1:04d}",
        hosts=tuple(Host(f"may-{n:02d}", base + 1 + n) for n in range(1, hosts + 1)),
    )


def state_for(inv: Inventory, at: float = 1_790_000_000.0) -> MonitorState:
    """Every commune with a status from STATUS_CYCLE (UNKNOWN ones left out of the state)."""
    state = MonitorState()
    for i, commune in enumerate(inv.communes()):
        status = STATUS_CYCLE[i % len(STATUS_CYCLE)]
        if status is CommuneStatus.UNKNOWN:
            continue
        up = status is not CommuneStatus.DOWN
        state.communes[commune.key] = CommuneState(
            commune.province, commune.code, status, since=at - 600, last_seen=at,
            gateway_up=up, vantage="central",
            hosts={h.name: HostState(h.name, str(h.ip), up=up, since=at - 600,
                                     last=_host_obs(h, up, at)) for h in commune.hosts},
            first_passed={"link": PASSED_AT, "ip_config": PASSED_AT} if up else {},
        )
    return state


def _host_obs(host: Host, up: bool, at: float) -> HostObservation:
    icmp = IcmpDetail(3, 3, (0.0021, 0.0023, 0.0022)) if up else IcmpDetail(3, 0)
    arp = ArpDetail(("02:00:00:00:00:01",) if up else ())
    result = ProbeResult("icmp", str(host.ip), up, at, 0.01, detail=icmp)
    return HostObservation(host.name, str(host.ip), up, "icmp" if up else None, icmp, arp,
                           (result,))


def samples_for(inv: Inventory, state: MonitorState, at: float, cycles: int = 20,
                every: float = 120.0) -> RttHistory:
    """An RttHistory fed with the state's last observations over the last ``cycles`` cycles."""
    history = RttHistory()
    for n in range(cycles):
        t = at - (cycles - n) * every
        for key, cs in state.communes.items():
            prov, _, code = key.partition("/")
            hosts = tuple(h.last for h in cs.hosts.values() if h.last is not None)
            history.record(CommuneObservation(prov, code, t, hosts=hosts))
    return history


def token_store(tokens: dict[str, str], expired: Iterable[str] = ()) -> TokenStore:
    """{token: scope} -> a store; tokens listed in ``expired`` expired a day ago."""
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    return TokenStore([
        TokenEntry(f"t{i}", hashlib.sha256(tok.encode()).digest(), Scope.parse(scope),
                   yesterday if tok in expired else None)
        for i, (tok, scope) in enumerate(tokens.items())
    ])


@contextlib.asynccontextmanager
async def app_clients() -> AsyncIterator[Callable[[WebContext], Awaitable[TestClient]]]:
    """Yields ``start(ctx)``: the web app over ``ctx`` served on a real loopback port, and a
    client for it; every one started is closed on the way out."""
    clients: list[TestClient] = []

    async def start(ctx: WebContext) -> TestClient:
        client = TestClient(TestServer(build_app(ctx), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    try:
        yield start
    finally:
        for client in clients:
            await client.close()


# --- headless Chromium (Debian's package, driven by Playwright; never `playwright install`) ---

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


async def launch_chromium(playwright: Any) -> Any:
    return await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=CHROMIUM_ARGS)


@contextlib.asynccontextmanager
async def browser_on(ctx: WebContext) -> AsyncIterator[tuple[Any, str]]:
    """The web app over ``ctx`` served on a free loopback port, and a page of a headless
    Chromium; yields the page and the site's URL; both stopped after. Skipped without
    Chromium (failed under CI=true)."""
    require_real(os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is not installed")
    from playwright.async_api import async_playwright

    port = free_tcp_port()
    runner = await serve(build_app(ctx), "127.0.0.1", port)
    try:
        async with async_playwright() as pw:
            chromium = await launch_chromium(pw)
            try:
                yield await chromium.new_page(), f"http://127.0.0.1:{port}"
            finally:
                await chromium.close()
    finally:
        await runner.cleanup()
