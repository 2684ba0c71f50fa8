"""What the MQTT benchmarks share: the national inventory in a scratch folder, a mosquitto,
a ``tslcd-monitor`` process (``collector`` or ``run --mqtt``) with its web on a free port,
simulated agents publishing results batches, and reading the process's CPU and counters.

Everything on loopback; every process started here is stopped by its own pid.
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

from inventory import generate
from inventory.loader import dump, load
from inventory.model import Host, Inventory, Target
from monitor.common import topics
from monitor.cycle.observation import CommuneObservation, HostObservation, observe_host
from monitor.remote import envelope
from probes.result import IcmpDetail, ProbeResult, TargetDetail
from tests.support.processes import stop

TARGET = "congtaidaibieu"  # the election system in the agents' batches
ROOT = Path(__file__).resolve().parents[1]


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
        self.seq: dict[str, int] = {}  # agent id -> its last seq (each agent counts its own)
        self.published = 0

    async def __aenter__(self) -> Agents:
        for province in self.inventory.provinces:
            agent = f"agent-{province.code}"
            client = aiomqtt.Client("127.0.0.1", self.port, identifier=f"bench-{agent}",
                                    max_inflight_messages=100, logger=envelope.MQTT_LOG)
            await client.__aenter__()
            self.clients[province.code] = client
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
            hosts = tuple(answering(h, at) for h in commune.hosts)
            vantage = commune.key if self.per_commune else province
            targets = (ProbeResult("target", TARGET, True, at, 0.2, None, TargetDetail(
                "https://congtaidaibieu.quochoi.vn/", ("203.0.113.10",), None, 0.01, 0.02,
                0.05, 0.1, 200, at + 86_400 * 90)),) if self.per_commune else ()
            obs = CommuneObservation(province, commune.code, at, vantage, hosts,
                                     gateway_alive=True, targets=targets)
            agent = "agent-" + vantage.replace("/", "-")
            seq = self.seq[agent] = self.seq.get(agent, 0) + 1
            out.append((topics.results_topic(province, commune.code), envelope.encode(
                agent, seq, time.time(), 0, 0, envelope.encode_body(obs))))
        return out

    async def publish(self, province: str, at: float) -> None:
        await self.send(province, self.batches(province, at))

    async def send(self, province: str, batch: list[tuple[str, bytes]]) -> None:
        client = self.clients[province]
        await asyncio.gather(*(client.publish(t, p, qos=1) for t, p in batch))
        self.published += len(batch)


def answering(host: Host, at: float) -> HostObservation:
    """A host that answered its three echoes in 5-30 ms."""
    return observe_host(host.name, str(host.ip), (ProbeResult(
        "icmp", str(host.ip), True, at, 0.05, None,
        IcmpDetail(3, 3, tuple(random.uniform(0.005, 0.03) for _ in range(3)))),))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process so far."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def peak_rss_mib(pid: int) -> float:
    """The process's resident high-water mark (kernel ``VmHWM``), in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return psutil.Process(pid).memory_info().rss / 2**20


def metrics(web: int) -> str:
    """The process's /metrics (rendered every 5 s)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{web}/metrics", timeout=10) as response:
        return str(response.read().decode())


def batches_accepted(body: str) -> float:
    """``tslcd_collector_batches_total`` in a /metrics body (0 before the first)."""
    match = re.search(r"^tslcd_collector_batches_total ([0-9.e+]+)$", body, re.M)
    return float(match.group(1)) if match else 0.0


def rejections(body: str) -> dict[str, float]:
    """``tslcd_collector_rejected_total`` by reason in a /metrics body."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^tslcd_collector_rejected_total\{reason="([a-z_]+)"\} ([0-9.e+]+)$', body, re.M)}


async def wait_for_batches(web: int, count: float, timeout: float) -> None:
    """Until the process's /metrics counts ``count`` accepted batches."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = await asyncio.to_thread(metrics, web)
        except OSError:
            body = ""
        if body and batches_accepted(body) >= count:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the collector did not count {count} batches in {timeout} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


class MosquittoProcess:
    """A mosquitto on a free loopback port, anonymous, without size limits, queueing up to
    100,000 messages for a persistent session."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> int:
        port = free_port()
        conf = self.workdir / "mosquitto.conf"
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false",
                 "max_queued_messages 100000", "max_inflight_messages 100"]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_port(port)
        return port

    def __exit__(self, *exc: object) -> None:
        stop([self.process], timeout=30)


class MonitorProcess:
    """``tslcd-monitor COMMAND --mqtt`` (``collector``, or ``run``: as root its ICMP is raw
    sockets) as its own process over ``inventory``, its state in the work folder and its
    output in ``COMMAND.log`` there; entering gives its pid and web port."""

    def __init__(self, command: str, workdir: Path, inventory: Path, broker: int) -> None:
        self.argv = [sys.executable, "-m", "monitor.cli.main", "--log-level", "warning",
                     command, "--inventory", str(inventory),
                     "--mqtt", f"mqtt://127.0.0.1:{broker}",
                     "--state", str(workdir / "state.db")]
        self.log = workdir / f"{command}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> tuple[int, int]:
        web = free_port()
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([*self.argv, "--listen", f"127.0.0.1:{web}"],
                                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        wait_port(web, 120)
        return self.process.pid, web

    def __exit__(self, *exc: object) -> None:
        stop([self.process], timeout=30)
