"""Issue 13, second attack pass from outside (against the real collector fed through a
real mosquitto, loopback only). Each test here is an attack that succeeded when it was
written (a forged maximal seq, a state-topic log flood, ``gzip;q=0`` served gzip, a
retained results batch, slow plain /metrics readers): each now asserts that the attack
fails, so that it stays failed."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiomqtt
import pytest
from structlog.testing import capture_logs

from inventory.loader import load
from inventory.model import Commune
from monitor.common import topics
from monitor.cycle.observation import CommuneObservation, HostObservation, commune_to_dict
from monitor.remote import envelope
from monitor.remote.collector import Collector
from monitor.remote.spool import Spool
from probes.result import IcmpDetail, ProbeResult
from tests.support import ROOT
from tests.support.agentlab import running_collector, wait_until, write_inventory
from tests.support.processes import stop
from tests.support.servers import Mosquitto, free_tcp_port

pytestmark = pytest.mark.timeout(120)


def alive_batch(commune: Commune, agent: str, seq: int) -> bytes:
    """A schema-valid batch of ``agent`` for ``commune``: every host answered just now."""
    now = time.time()
    hosts = tuple(HostObservation(h.name, str(h.ip), True, results=(ProbeResult(
        "icmp", str(h.ip), True, now, 0.01, None, IcmpDetail(1, 1, (0.002,))),))
        for h in commune.hosts)
    obs = CommuneObservation(commune.province, commune.code, now, commune.province,
                             hosts=hosts, gateway_alive=True)
    return envelope.encode(agent, seq, now, 0, 0, json.dumps(commune_to_dict(obs)).encode())


async def publish(port: int, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(topic, payload, qos=1)


def handled(collector: Collector) -> float:
    """Results batches the collector took or refused so far."""
    return collector.accepted + sum(s.value for m in collector.rejected.collect()
                                    for s in m.samples if s.name.endswith("_total"))


async def test_a_forged_maximal_seq_does_not_lock_the_real_agent_out(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """No agents file (anyone on the broker may claim an id): a single batch under
    ``agent-75`` with ``seq`` = 2**63-1 for one commune. The real agent-75, whose seq comes
    from its clock in milliseconds, must still be heard for its other commune."""
    inventory = load(write_inventory(tmp_path / "inv.yaml"))
    first, second = [c for c in inventory.communes() if c.province == "75"][:2]
    clock_seq = int(time.time() * 1000)
    async with running_collector(inventory, mosquitto.url,
                                 state=str(tmp_path / "state.db")) as collector:
        await publish(mosquitto.port, topics.results_topic("75", first.code),
                      alive_batch(first, "agent-75", envelope.MAX_SEQ))
        await wait_until(lambda: handled(collector) == 1, what="the forged batch handled")
        await publish(mosquitto.port, topics.results_topic("75", second.code),
                      alive_batch(second, "agent-75", clock_seq))
        await wait_until(lambda: handled(collector) == 2, what="the genuine batch handled")
        assert collector.rejected.labels("implausible_seq")._value.get() == 1
        assert collector.accepted == 1 and collector.seqs["agent-75"][0] == clock_seq


async def test_a_forged_seq_just_ahead_of_the_clock_locks_the_agent_out_for_moments_only(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A forged seq within the plausible bound (here 2 s ahead of the clock in ms) is stored
    as ``agent-75``'s guard: the real agent's spool, numbered one by one since long ago,
    would stay below it for good; numbered never below its clock, its batches pass the
    guard once the clock does (the real spool numbers them)."""
    inventory = load(write_inventory(tmp_path / "inv.yaml"))
    first, second = [c for c in inventory.communes() if c.province == "75"][:2]
    spool = Spool(tmp_path / "spool.db")
    spool.append([("old", b"")] * 3)  # the real agent, running since before the attack
    async with running_collector(inventory, mosquitto.url,
                                 state=str(tmp_path / "state.db")) as collector:
        forged = int(time.time() * 1000) + 2000
        await publish(mosquitto.port, topics.results_topic("75", first.code),
                      alive_batch(first, "agent-75", forged))
        await wait_until(lambda: collector.accepted == 1, what="the forged batch taken")

        async def genuine() -> None:
            spool.append([("t", b"")])
            seq = spool.head(100)[-1].seq
            await publish(mosquitto.port, topics.results_topic("75", second.code),
                          alive_batch(second, "agent-75", seq))

        await genuine()  # at once: below the forged guard
        await wait_until(lambda: collector.rejected.labels("replay")._value.get() == 1,
                         what="the genuine batch refused as a replay")
        await asyncio.sleep(max(0.0, forged / 1000 - time.time()) + 0.1)
        await genuine()
        await wait_until(lambda: collector.accepted == 2, what="the genuine batch taken")
        assert collector.seqs["agent-75"][0] > forged
    spool.close()


async def test_forged_state_messages_do_not_flood_the_log(tmp_path: Path,
                                                          mosquitto: Mosquitto) -> None:
    """Anyone allowed on ``tslcd/v1/agents/agent-75/state`` (no ACL, or agent-75's own
    credentials) sends 300 garbage state messages: the collector must log them aggregated
    (as it does refused batches: one line per agent and reason per minute), not 300 lines."""
    inventory = load(write_inventory(tmp_path / "inv.yaml"))
    commune = next(c for c in inventory.communes() if c.province == "75")
    async with running_collector(inventory, mosquitto.url) as collector:
        await publish(mosquitto.port, topics.results_topic("75", commune.code),
                      alive_batch(commune, "agent-75", int(time.time() * 1000)))
        await wait_until(lambda: collector.accepted == 1, what="agent-75 known")
        with capture_logs() as logs:
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
                for i in range(300):
                    await client.publish(f"{topics.AGENTS_TOPIC}/agent-75/state",
                                         b"\xff garbage %d" % i, qos=1)
                await client.publish(topics.results_topic("75", commune.code),
                                     alive_batch(commune, "agent-75",
                                                 int(time.time() * 1000) + 1), qos=1)
            await wait_until(lambda: collector.accepted == 2, what="the flood handled")
        lines = [e for e in logs if e["event"] == "agent_state"]
        assert len(lines) <= 2, f"{len(lines)} agent_state lines for 300 messages"
        refused = [(e["agent"], e["reason"]) for e in logs if e["event"] == "batch_rejected"]
        assert refused == [("agent-75", "state")]
        assert collector.rejected.labels("state")._value.get() == 300


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def test_metrics_honours_gzip_q0(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The real ``tslcd-monitor collector``: a client that refuses gzip (``gzip;q=0``) gets
    /metrics as plain text."""
    inventory_path = write_inventory(tmp_path / "inv.yaml")
    port = free_tcp_port()
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/tslcd-monitor"), "collector", "--inventory", str(inventory_path),
         "--mqtt", mosquitto.url, "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if _get(port, "/metrics", {})[0] == 200:
                    break
            except OSError:
                pass
            await asyncio.sleep(0.1)
        status, headers, body = _get(port, "/metrics", {"Accept-Encoding": "gzip;q=0, identity"})
        assert status == 200
        assert headers.get("Content-Encoding") is None and body.startswith(b"# HELP")
    finally:
        stop([process])


def aged_batch(commune: Commune, agent: str, seq: int, age: float) -> bytes:
    """:func:`alive_batch` as if measured and sent ``age`` seconds ago."""
    then = time.time() - age
    hosts = tuple(HostObservation(h.name, str(h.ip), True, results=(ProbeResult(
        "icmp", str(h.ip), True, then, 0.01, None, IcmpDetail(1, 1, (0.002,))),))
        for h in commune.hosts)
    obs = CommuneObservation(commune.province, commune.code, then, commune.province,
                             hosts=hosts, gateway_alive=True)
    return envelope.encode(agent, seq, then, 0, 0, json.dumps(commune_to_dict(obs)).encode())


async def test_a_retained_results_batch_is_refused(tmp_path: Path,
                                                   mosquitto: Mosquitto) -> None:
    """Someone leaves a two-day-old "all up" batch retained on a commune's results topic.
    A collector started afterwards (state in memory, the default) must not show the commune
    up from it: nothing has been heard from the commune since it started."""
    inventory = load(write_inventory(tmp_path / "inv.yaml"))
    commune = next(c for c in inventory.communes() if c.province == "75")
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.publish(topics.results_topic("75", commune.code),
                             aged_batch(commune, "agent-75", 1, 2 * 86_400), qos=1, retain=True)
    async with running_collector(inventory, mosquitto.url) as collector:
        await wait_until(lambda: handled(collector) >= 1, what="the retained batch handled")
        assert collector.accepted == 0
        assert collector.rejected.labels("retained")._value.get() == 1
        assert collector.pipeline.engine.state.communes[commune.key].status != 0


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


SLOW_READERS = 60


async def test_slow_plain_metrics_readers_do_not_pin_a_body_each(tmp_path: Path,
                                                                 mosquitto: Mosquitto) -> None:
    """The real collector on the nationwide inventory; 60 clients ask /metrics without
    ``Accept-Encoding: gzip`` and do not read. The collector's memory must not grow by a
    whole body per client (with gzip asked for it does not grow at all)."""
    inventory_path = tmp_path / "nation.yaml"
    tool = str(ROOT / ".venv/bin/tslcd-monitor")
    subprocess.run([tool, "inventory", "generate", "-o", str(inventory_path)], check=True,
                   stdout=subprocess.DEVNULL)
    port = free_tcp_port()
    process = subprocess.Popen([tool, "collector", "--inventory", str(inventory_path),
                                "--mqtt", mosquitto.url, "--listen", f"127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    readers: list[socket.socket] = []
    try:
        body = b""
        for _ in range(300):
            try:
                status, _, body = _get(port, "/metrics", {})
                if status == 200:
                    break
            except OSError:
                pass
            await asyncio.sleep(0.2)
        before = _rss_bytes(process.pid)
        for _ in range(SLOW_READERS):
            reader = socket.create_connection(("127.0.0.1", port), 5)
            reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            reader.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            readers.append(reader)
        await asyncio.sleep(3)  # the requests are served (into the transports) meanwhile
        grown = _rss_bytes(process.pid) - before
        assert grown < SLOW_READERS * len(body) // 4, \
            f"grew {grown >> 20} MiB for {SLOW_READERS} readers of {len(body) >> 10} KiB"
    finally:
        for reader in readers:
            reader.close()
        stop([process])
