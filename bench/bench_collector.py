"""One collector for the nation: CPU at the real load, and the most it takes (issue #5).

Real parts on loopback: a mosquitto, the ``tslcd-monitor collector`` command (its own
process, SQLite state file, /metrics rendered every 5 s) over the nationwide inventory
(34 provinces, 3,321 communes, 3 hosts each: 9,963 hosts), and 34 simulated agents (MQTT
clients in this process) publishing results batches as real agents do: every 30 s, each
its whole province at once, at its own moment of the cycle.

* steady: ``CYCLES`` real 30 s cycles; the collector's CPU (user + system, from /proc) over
  wall time. Goal: under half a core.
* burst: the same batches published as fast as 34 clients can; batches (and host results)
  per second until the collector counted them all: the headroom above the real load.

``TSLCD_BENCH_CYCLES`` (default 3) shortens or lengthens the steady phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import psutil

from bench import Row, main
from inventory import generate
from inventory.loader import dump, load
from inventory.model import Inventory, Target
from monitor.common import topics
from monitor.cycle.observation import CommuneObservation, observe_host
from monitor.remote import envelope
from probes.result import IcmpDetail, ProbeResult, TargetDetail
from tests.support.processes import stop

TARGET = "congtaidaibieu"  # the election system in the agents' batches

INTERVAL = 30.0
CYCLES = int(os.environ.get("TSLCD_BENCH_CYCLES", "3"))
BURST_CYCLES = 10
GOAL_CORES = 0.5
ROOT = Path(__file__).resolve().parents[1]


def run() -> list[Row]:
    return asyncio.run(_run())


async def _run() -> list[Row]:
    with national_workdir("tslcd-bench-collector-") as (workdir, inventory_path, inventory):
        rows: list[Row] = []
        for per_commune in (False, True):
            with MosquittoProcess(workdir) as port, \
                    CollectorProcess(workdir, inventory_path, port) as (pid, web):
                await _wait_for_batches(web, 0, 60)
                async with Agents(inventory, port, per_commune) as agents:
                    rows += await _steady(agents, pid, web)
                    if not per_commune:
                        rows += await _burst(agents, pid, web)
        return rows


@contextlib.contextmanager
def national_workdir(prefix: str) -> Iterator[tuple[Path, Path, Inventory]]:
    """A scratch folder holding the national inventory (three hosts a commune) with the
    election system the commune agents report on (a loopback URL: the collector benches never
    probe it): the folder, the inventory's file, the inventory. Removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        inventory_path = workdir / "national.yaml"
        inventory_path.write_text(generate.national(3), encoding="utf-8")
        inventory = dataclasses.replace(load(inventory_path),
                                        targets=(Target(TARGET, "https://127.0.0.1:9/"),))
        inventory_path.write_text(dump(inventory), encoding="utf-8")
        yield workdir, inventory_path, load(inventory_path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Agents:
    """34 MQTT clients, one per province. ``per_commune``: each client speaks for the agents
    of its province's communes instead (3,321 agent ids and vantages ``PROV/COMMUNE``, each
    batch with the election system's check from that commune), to measure what many agents
    cost the collector beyond their batches."""

    def __init__(self, inventory: Inventory, port: int, per_commune: bool = False) -> None:
        self.inventory = inventory
        self.port = port
        self.per_commune = per_commune
        self.clients: dict[str, aiomqtt.Client] = {}
        self.seq: dict[str, int] = {}
        self.published = 0

    async def __aenter__(self) -> Agents:
        for province in self.inventory.provinces:
            agent = f"agent-{province.code}"
            client = aiomqtt.Client("127.0.0.1", self.port, identifier=f"bench-{agent}",
                                    max_inflight_messages=100, logger=envelope.MQTT_LOG)
            await client.__aenter__()
            self.clients[province.code] = client
            self.seq[province.code] = 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self.clients.values():
            await client.__aexit__(None, None, None)

    def batches(self, province: str, at: float) -> list[tuple[str, bytes]]:
        """One cycle of a province agent: a batch per commune, every host answering ICMP."""
        p = self.inventory.province(province)
        assert p is not None
        out = []
        for commune in p.communes:
            hosts = tuple(observe_host(h.name, str(h.ip), (ProbeResult(
                "icmp", str(h.ip), True, at, 0.05, None,
                IcmpDetail(3, 3, tuple(random.uniform(0.005, 0.03) for _ in range(3)))),))
                for h in commune.hosts)
            vantage = commune.key if self.per_commune else province
            targets = (ProbeResult("target", TARGET, True, at, 0.2, None, TargetDetail(
                "https://congtaidaibieu.quochoi.vn/", ("203.0.113.10",), None, 0.01, 0.02,
                0.05, 0.1, 200, at + 86_400 * 90)),) if self.per_commune else ()
            obs = CommuneObservation(province, commune.code, at, vantage, hosts,
                                     gateway_alive=True, targets=targets)
            self.seq[province] += 1
            agent = "agent-" + vantage.replace("/", "-")
            out.append((topics.results_topic(province, commune.code), envelope.encode(
                agent, self.seq[province], time.time(), 0, 0, envelope.encode_body(obs))))
        return out

    async def publish(self, province: str, at: float) -> None:
        await self.send(province, self.batches(province, at))

    async def send(self, province: str, batch: list[tuple[str, bytes]]) -> None:
        client = self.clients[province]
        await asyncio.gather(*(client.publish(t, p, qos=1) for t, p in batch))
        self.published += len(batch)


async def _steady(agents: Agents, pid: int, web: int) -> list[Row]:
    provinces = list(agents.clients)
    offsets = {p: i * INTERVAL / len(provinces) for i, p in enumerate(provinces)}
    start = time.monotonic()
    cpu0 = _cpu(pid)
    for cycle in range(CYCLES):
        cycle_start = start + cycle * INTERVAL
        for province in provinces:  # in offset order
            await asyncio.sleep(max(0.0, cycle_start + offsets[province] - time.monotonic()))
            await agents.publish(province, time.time())
    await asyncio.sleep(max(0.0, start + CYCLES * INTERVAL - time.monotonic()))
    await _wait_for_batches(web, agents.published, 60)
    wall, cpu = time.monotonic() - start, _cpu(pid) - cpu0
    cores = cpu / wall
    hosts = agents.inventory.host_count
    rss = psutil.Process(pid).memory_info().rss / 2**20
    verdict = "meets" if cores < GOAL_CORES else "MISSES"
    who = (f"{sum(1 for _ in agents.inventory.communes())} commune agents"
           if agents.per_commune else f"{len(provinces)} province agents")
    return [
        Row(f"collector CPU, nation every 30 s, {who}", cores, "cores",
            f"{hosts} hosts, {CYCLES} cycles; {verdict} goal < {GOAL_CORES}"),
        Row(f"collector RSS, {who}", rss, "MiB", "after the steady phase"),
    ]


async def _burst(agents: Agents, pid: int, web: int) -> list[Row]:
    """Batches built beforehand, so that only publishing competes with the collector."""
    base = agents.published
    cycles = []
    for n in range(BURST_CYCLES):
        at = time.time() + n
        cycles.append({p: agents.batches(p, at) for p in agents.clients})
    start = time.monotonic()
    cpu0 = _cpu(pid)
    for cycle in cycles:
        await asyncio.gather(*(agents.send(p, batch) for p, batch in cycle.items()))
    await _wait_for_batches(web, agents.published, 300)
    wall, cpu = time.monotonic() - start, _cpu(pid) - cpu0
    batches = agents.published - base
    hosts_per_batch = agents.inventory.host_count / sum(1 for _ in agents.inventory.communes())
    return [
        Row("collector burst throughput", batches / wall, "batches/s",
            f"{batches} batches; {batches * hosts_per_batch / wall:,.0f} host results/s; "
            f"real load is {sum(1 for _ in agents.inventory.communes()) / INTERVAL:.0f}/s; "
            "lower bound (/metrics counts every 5 s)"),
        Row("collector CPU during the burst", cpu / wall, "cores", "one Python process"),
        Row("collector CPU per batch", cpu / batches * 1000, "ms", "3 hosts, ICMP results"),
    ]


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def _wait_for_batches(web: int, count: int, timeout: float) -> None:
    """Until the collector's /metrics counts ``count`` accepted batches (rendered every 5 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = await asyncio.to_thread(_get, f"http://127.0.0.1:{web}/metrics")
        except OSError:
            body = ""
        match = re.search(r"^tslcd_collector_batches_total ([0-9.e+]+)$", body, re.M)
        if match and float(match.group(1)) >= count:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the collector did not count {count} batches in {timeout} s")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MosquittoProcess:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> int:
        port = _free_port()
        conf = self.workdir / "mosquitto.conf"
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false",
                 "max_queued_messages 100000", "max_inflight_messages 100"]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        _wait_port(port)
        return port

    def __exit__(self, *exc: object) -> None:
        _stop(self.process)


class CollectorProcess:
    def __init__(self, workdir: Path, inventory: Path, broker: int) -> None:
        self.argv = [sys.executable, "-m", "monitor.cli.main", "--log-level", "warning",
                     "collector",
                     "--inventory", str(inventory), "--mqtt", f"mqtt://127.0.0.1:{broker}",
                     "--state", str(workdir / "state.db")]
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> tuple[int, int]:
        web = _free_port()
        log = open(self.workdir / "collector.log", "wb")
        self.process = subprocess.Popen([*self.argv, "--listen", f"127.0.0.1:{web}"], cwd=ROOT,
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_port(web, 60)
        return self.process.pid, web

    def __exit__(self, *exc: object) -> None:
        _stop(self.process)


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    stop([process], timeout=30)


if __name__ == "__main__":
    main(run)
