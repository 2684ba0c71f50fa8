"""Reading many routers' ARP tables over SNMP in one cycle: CPU per router, batch wall.

A benchmark namespace (``tslcdS-<pid>``, loopback and one veth pair of its own, nothing
leaves it) holds ``--routers`` net-snmp agents, each on its own loopback address
127.80.x.y, all serving the namespace's ARP table: 12 resolved neighbours and 2 INCOMPLETE
ones in 198.18.1.0/28 (a commune's segment as a router sees it after a sweep). Each
contender reads every agent's table once per cycle, as its own process inside the namespace
(its CPU: its own ``process_time`` around the cycles, or for subprocesses its children's
rusage too):

- ``pysnmp`` 7 through :func:`probes.snmp.poll_routers` (one asyncio loop, v2c and v3
  authPriv SHA/AES), with the loop's worst lag behind a 10 ms ticker: the loop never blocks;
- ``snmpbulkwalk`` (net-snmp's tool) as one subprocess per router, from asyncio;
- ``ezsnmp`` (net-snmp's C library through SWIG) when an interpreter that has it is named by
  ``TSLCD_BENCH_EZSNMP_PYTHON`` (it is no dependency of the project): it blocks, so threads;
- the monitor's own path (issue 18): :class:`monitor.cycle.routers.RouterReader`, as the
  central scheduler runs it after a cycle: the sweep of each commune's /28 (one echo per
  address, paced), the reads (v2c), the flip-flop memory and the ARP probe's judge, with the
  loop's worst lag beside it (the cycle's ICMP timing shares that loop).

The per-router CPU is extrapolated to the nation's 3,321 routers, and for the monitor's
path to its share of a core at the default pacing (every router every ``snmp_every``
cycles of 30 s).

    .venv/bin/python -m bench.bench_snmp [--routers N] [--cycles N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Row

ROOT = Path(__file__).resolve().parents[1]
NATION = 3_321
ROUTERS = 100
CYCLES = 3  # the first (cold: engine discovery, imports warm) is reported apart
CONCURRENCY = 32  # requests in flight: bounds the loop's ready queue (its lag) and the agents' load
NAMESPACE = f"tslcdS-{os.getpid()}"
SEGMENT = "198.18.1"  # inside the namespace only (RFC 2544 space)
RESOLVED, INCOMPLETE = range(2, 14), (14, 15)
COMMUNITY = "bench-ro"
USER, AUTH_KEY, PRIV_KEY = "bench", "bench-auth-key", "bench-priv-key"
SCOPE = (f"{SEGMENT}.0/28",)
#: What every contender reads: ipNetToPhysicalPhysAddress and ipNetToPhysicalState.
COLUMNS = (".1.3.6.1.2.1.4.35.1.4", ".1.3.6.1.2.1.4.35.1.7")


def address(index: int) -> str:
    return f"127.80.{index // 250}.{index % 250 + 1}"


# --- the namespace and its agents ---------------------------------------------------------------


def _ns(*argv: str) -> list[str]:
    return ["ip", "netns", "exec", NAMESPACE, *argv]


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def build_namespace() -> None:
    """The namespace, and its ARP table: a veth pair whose far end answers 12 addresses."""
    _run(["ip", "netns", "add", NAMESPACE])
    _run(_ns("ip", "link", "set", "lo", "up"))
    _run(_ns("ip", "link", "add", "rtr0", "type", "veth", "peer", "name", "seg0"))
    _run(_ns("ip", "addr", "add", f"{SEGMENT}.1/28", "dev", "rtr0"))
    for name in ("rtr0", "seg0"):
        _run(_ns("ip", "link", "set", name, "up"))
    for host in RESOLVED:  # permanent: the monitor's sweep must not age them out
        mac = f"02:00:00:00:01:{host:02x}"
        _run(_ns("ip", "neigh", "replace", f"{SEGMENT}.{host}", "lladdr", mac, "dev", "rtr0",
                 "nud", "permanent"))
    for host in INCOMPLETE:
        _run(_ns("ip", "neigh", "replace", f"{SEGMENT}.{host}", "dev", "rtr0",
                 "nud", "incomplete"))


def start_agents(workdir: Path, count: int) -> list[Any]:
    from tests.support.lab.snmpd import Snmpd, V3User

    user = V3User(USER, AUTH_KEY, PRIV_KEY)
    agents = []
    for index in range(count):
        agent = Snmpd(workdir / f"a{index}", address(index), community=COMMUNITY, user=user,
                      exec_prefix=tuple(_ns()))
        agents.append(agent)
        agent.start()
    return agents


# --- contenders, each its own process inside the namespace -------------------------------------


async def _lag_ticker(stop: asyncio.Event) -> float:
    """The worst delay of a 10 ms sleep while the batch runs: how long the loop was blocked."""
    worst = 0.0
    while not stop.is_set():
        before = time.monotonic()
        await asyncio.sleep(0.01)
        worst = max(worst, time.monotonic() - before - 0.01)
    return worst


async def _pysnmp_cycles(count: int, cycles: int, v3: bool) -> list[dict[str, Any]]:
    from probes import snmp

    credentials: snmp.Credentials = (
        snmp.V3(USER, AUTH_KEY, PRIV_KEY) if v3 else snmp.V2c(COMMUNITY)
    )
    requests = [snmp.RouterRequest(address(i), credentials, SCOPE) for i in range(count)]
    poller = snmp.Poller(timeout=2.0, retries=1, concurrency=CONCURRENCY)  # as the monitor would
    out = []
    for _ in range(cycles):
        stop = asyncio.Event()
        ticker = asyncio.create_task(_lag_ticker(stop))
        cpu, wall = time.process_time(), time.monotonic()
        tables = await poller.poll(requests)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        stop.set()
        lag = await ticker
        out.append({"cpu": cpu, "wall": wall, "lag": lag,
                    "ok": sum(t.ok and len(t.present()) == len(RESOLVED) for t in tables)})
    poller.close()
    return out


def _communes(count: int) -> list[Any]:
    """One commune per agent: the segment's /28 with its 12 computers listed (expected
    MACs), the router at the agent's address (communes of a bench: no inventory file)."""
    import ipaddress

    from inventory.model import Commune, Host, Snmp

    hosts = tuple(Host(f"may-{h:02d}", ipaddress.ip_address(f"{SEGMENT}.{h}"),
                       mac=f"02:00:00:00:01:{h:02x}") for h in RESOLVED)
    return [Commune("75", f"{index:05d}", f"Bench {index}", "VNPT",
                    subnet=ipaddress.ip_network(SCOPE[0]),
                    gateway=ipaddress.ip_address(f"{SEGMENT}.1"), hosts=hosts,
                    snmp=Snmp("2c", community=COMMUNITY,
                              address=ipaddress.ip_address(address(index))))
            for index in range(count)]


async def _monitor_cycles(count: int, cycles: int) -> list[dict[str, Any]]:
    from monitor.cycle.routers import RouterReader
    from monitor.cycle.scheduler import SchedulerOptions
    from probes.icmp import Pinger

    options = SchedulerOptions()
    communes = _communes(count)
    out = []
    async with Pinger() as pinger:
        reader = RouterReader(pinger, timeout=options.snmp_timeout,
                              retries=options.snmp_retries,
                              concurrency=options.snmp_concurrency, max_pps=options.max_pps,
                              commune_pps=options.commune_pps)
        for _ in range(cycles):
            stop = asyncio.Event()
            ticker = asyncio.create_task(_lag_ticker(stop))
            cpu, wall = time.process_time(), time.monotonic()
            observations = await reader.read(communes, icmp_timeout=0.5)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            stop.set()
            lag = await ticker
            out.append({"cpu": cpu, "wall": wall, "lag": lag, "ok": sum(
                o.snmp_error is None and all(h.alive for h in o.hosts) for o in observations)})
        reader.close()
    return out


async def _subprocess_cycles(count: int, cycles: int) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def walk(index: int) -> bool:
        async with gate:
            lines = 0
            for column in COLUMNS:
                proc = await asyncio.create_subprocess_exec(
                    "snmpbulkwalk", "-v2c", "-c", COMMUNITY, "-On", "-Oq", "-Cr24", "-t2",
                    "-r1", address(index), column, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                stdout, _ = await proc.communicate()
                lines += stdout.count(b"\n")
            return lines >= 2 * len(RESOLVED)

    out = []
    for _ in range(cycles):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu, wall = time.process_time(), time.monotonic()
        ok = await asyncio.gather(*(walk(i) for i in range(count)))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        children = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        out.append({"cpu": time.process_time() - cpu + children,
                    "wall": time.monotonic() - wall, "lag": None, "ok": sum(ok)})
    return out


def _ezsnmp_cycles(count: int, cycles: int) -> list[dict[str, Any]]:
    from concurrent.futures import ThreadPoolExecutor

    import ezsnmp  # type: ignore[import-not-found]

    def walk(index: int) -> bool:
        session = ezsnmp.Session(hostname=address(index), version=2, community=COMMUNITY,
                                 timeout=2, retries=1, set_max_repeaters_to_num=24)
        rows = [row for column in COLUMNS for row in session.bulk_walk([column])]
        return len(rows) >= 2 * len(RESOLVED)

    out = []
    with ThreadPoolExecutor(16) as pool:
        for _ in range(cycles):
            cpu, wall = time.process_time(), time.monotonic()
            ok = list(pool.map(walk, range(count)))
            out.append({"cpu": time.process_time() - cpu, "wall": time.monotonic() - wall,
                        "lag": None, "ok": sum(ok)})
    return out


def child(kind: str, count: int, cycles: int) -> None:
    if kind == "ezsnmp":
        result = _ezsnmp_cycles(count, cycles)
    elif kind == "snmpbulkwalk":
        result = asyncio.run(_subprocess_cycles(count, cycles))
    elif kind == "monitor":
        result = asyncio.run(_monitor_cycles(count, cycles))
    else:
        result = asyncio.run(_pysnmp_cycles(count, cycles, v3=kind == "pysnmp-v3"))
    print(json.dumps(result))


def contender(kind: str, count: int, cycles: int, python: str = sys.executable) -> Any:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        _ns(python, "-m", "bench.bench_snmp", "--child", kind, "--routers", str(count),
            "--cycles", str(cycles)),
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # after any log lines


# --- the table -----------------------------------------------------------------------------------


def rows_of(name: str, cycles: list[dict[str, Any]], count: int) -> list[Row]:
    warm = cycles[1:] or cycles
    cpu = min(c["cpu"] for c in warm) / count
    wall = min(c["wall"] for c in warm)
    ok = min(c["ok"] for c in cycles)
    rows = [
        Row(f"SNMP {name}: CPU per router", cpu * 1000, "ms",
            f"14-row ARP table, 2 columns, {count} routers a cycle, best of {len(warm)} warm"),
        Row(f"SNMP {name}: batch wall, {count} routers", wall, "s",
            f"{ok}/{count} tables complete; first cycle {cycles[0]['wall']:.2f} s "
            f"({cycles[0]['cpu'] / count * 1000:.1f} ms CPU/router)"),
        Row(f"SNMP {name}: CPU for {NATION:,} routers", cpu * NATION, "s",
            "extrapolated per-router CPU; one core"),
    ]
    lags = [c["lag"] for c in cycles if c["lag"] is not None]
    if lags:
        rows.append(Row(f"SNMP {name}: worst event-loop lag", max(lags) * 1000, "ms",
                        "10 ms ticker beside the batch in the same loop"))
    return rows


def nation_share(cycles: list[dict[str, Any]], count: int) -> Row:
    """The monitor's path at the default pacing: a tenth of the nation after each cycle."""
    from inventory.model import SNMP_EVERY, Defaults

    warm = cycles[1:] or cycles
    per_router = min(c["cpu"] for c in warm) / count
    interval = Defaults().interval
    share = per_router * NATION / SNMP_EVERY / interval
    return Row(f"SNMP monitor path: share of a core, {NATION:,} routers", share * 100, "%",
               f"each router every {SNMP_EVERY} cycles of {interval:.0f} s "
               f"({NATION / SNMP_EVERY:.0f} routers a cycle, {per_router * 1000:.1f} ms each)")


def run(count: int = ROUTERS, cycles: int = CYCLES) -> list[Row]:
    from tests.support.lab.snmpd import snmpd_available

    available, why = snmpd_available()
    if not available or os.geteuid() != 0:
        return [Row("SNMP: skipped", float("nan"), "", why or "namespaces need root")]
    workdir = Path(tempfile.mkdtemp(prefix="tslcd-bench-snmp-"))
    agents: list[Any] = []
    try:
        build_namespace()
        started = time.monotonic()
        agents = start_agents(workdir, count)
        rows = [Row(f"SNMP: start {count} snmpd", time.monotonic() - started, "s",
                    "net-snmp 5.9, loopback addresses in a benchmark namespace")]
        monitor = contender("monitor", count, cycles)
        rows += rows_of("monitor path (sweep, read, judge) v2c", monitor, count)
        rows.append(nation_share(monitor, count))
        rows += rows_of("pysnmp v2c", contender("pysnmp-v2c", count, cycles), count)
        rows += rows_of("pysnmp v3 authPriv", contender("pysnmp-v3", count, cycles), count)
        if shutil.which("snmpbulkwalk"):
            rows += rows_of("snmpbulkwalk subprocess v2c",
                            contender("snmpbulkwalk", count, cycles), count)
        ez_python = os.environ.get("TSLCD_BENCH_EZSNMP_PYTHON")
        if ez_python:
            rows += rows_of("ezsnmp v2c (16 threads)",
                            contender("ezsnmp", count, cycles, ez_python), count)
        return rows
    finally:
        for agent in agents:
            agent.stop()
        subprocess.run(["ip", "netns", "del", NAMESPACE], capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routers", type=int, default=ROUTERS)
    parser.add_argument("--cycles", type=int, default=CYCLES)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.routers, args.cycles)
        return
    from bench import table

    print(table(run(args.routers, args.cycles)))


if __name__ == "__main__":
    main()
