"""The collector's memory while agents send hostile batches (issue 13): goal < 200 MB.

Real parts on loopback: a mosquitto set up *without* size limits (the worst case: only the
collector's own MQTT 5 Maximum Packet Size protects it), the ``tslcd-monitor collector``
command (its own process, SQLite state file) over the nationwide inventory (3,321 communes,
9,963 hosts), and MQTT clients in this process sending, for a bounded count each:

* made-up names: batches for real communes whose 200 hosts the inventory does not have;
* big-but-allowed payloads: ~240 KiB batches (under the 256 KiB limit) of made-up hosts;
* many agent ids: valid batches, each from a new made-up agent id (no agents file);
* oversized: 4 MiB publishes (never delivered to the collector).

The collector's peak RSS is the kernel's high-water mark (``VmHWM``), read at the end, with
the resident size before the attack for comparison.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable

import aiomqtt
import psutil

from bench import Row, main
from bench.mqtt_rig import (
    MonitorProcess,
    MosquittoProcess,
    batches_accepted,
    metrics,
    national_workdir,
    peak_rss_mib,
    rejections,
    wait_for_batches,
)
from inventory.model import Commune
from monitor.common import topics
from monitor.cycle.observation import CommuneObservation, commune_to_dict, observe_host
from monitor.remote import envelope
from probes.result import IcmpDetail, ProbeResult

GOAL_MB = 200.0
MADE_UP_BATCHES = 2000  # x 200 made-up host names
BIG_BATCHES = 300  # x ~240 KiB
AGENT_IDS = 10_000
OVERSIZED = 10  # x 4 MiB
CHUNK = 100  # publishes in flight at once
DRAIN_TIMEOUT = 180.0


def run() -> list[Row]:
    return asyncio.run(_run())


async def _run() -> list[Row]:
    with national_workdir("tslcd-bench-attack-") as (workdir, inventory_path, inventory):
        communes = list(inventory.communes())
        with MosquittoProcess(workdir) as port, \
                MonitorProcess("collector", workdir, inventory_path, port) as (pid, web):
            await wait_for_batches(web, 0, 60)
            before = psutil.Process(pid).memory_info().rss / 2**20
            started = time.monotonic()
            sent, handled = 0, 0.0
            phases: list[str] = []
            async with aiomqtt.Client("127.0.0.1", port) as c:
                for name, messages in (("made-up names", _made_up_names(communes)),
                                       ("big payloads", _big_batches(communes)),
                                       ("agent ids", _many_agents(communes))):
                    sent += await _send(c, messages)
                    handled = await _wait_handled(web, sent)
                    phases.append(f"{name} {peak_rss_mib(pid):.0f}")
                await _send(c, _oversized(communes))
            handled = await _wait_handled(web, sent)
            phases.append(f"oversized {peak_rss_mib(pid):.0f}")
            elapsed = time.monotonic() - started
            peak = peak_rss_mib(pid)
            rejected = rejections(await asyncio.to_thread(metrics, web))
        note = (f"goal < {GOAL_MB:.0f} MB; {sent} hostile batches + {OVERSIZED} x 4 MiB in "
                f"{elapsed:.0f} s, {handled:.0f} handled; refused: "
                + ", ".join(f"{k} {v:.0f}" for k, v in sorted(rejected.items()) if v)
                + "; peak MB after each phase: " + ", ".join(phases))
        return [Row("collector RSS before the attack (nationwide inventory)", before, "MB"),
                Row("collector peak RSS under hostile agents", peak, "MB", note)]


def _observation(commune: Commune, hosts: Iterable[tuple[str, str]], at: float,
                 vantage: str | None = None) -> CommuneObservation:
    observed = tuple(observe_host(name, ip, (ProbeResult(
        "icmp", ip, True, at, 0.01, None, IcmpDetail(3, 3, (0.01, 0.012, 0.011))),))
        for name, ip in hosts)
    return CommuneObservation(commune.province, commune.code, at, vantage or commune.province,
                              observed, gateway_alive=True)


def _message(commune: Commune, obs: CommuneObservation, agent: str, seq: int,
             pad: int = 0) -> tuple[str, bytes]:
    body = commune_to_dict(obs)
    if pad:
        body["skipped_checks"] = ["x" * 60] * 16  # allowed texts, to fill the payload
    return (topics.results_topic(commune.province, commune.code),
            envelope.encode(agent, seq, time.time(), 0, 0, json.dumps(body).encode()))


def _made_up_names(communes: list[Commune]) -> Iterable[tuple[str, bytes]]:
    for i in range(MADE_UP_BATCHES):
        commune = communes[i % len(communes)]
        hosts = [(f"fake-{i}-{j}", str(commune.hosts[0].ip)) for j in range(200)]
        yield _message(commune, _observation(commune, hosts, time.time()), "agent-evil", i + 1)


def _big_batches(communes: list[Commune]) -> Iterable[tuple[str, bytes]]:
    """Well-formed, within every bound of the schema, just under the size limit: the
    collector parses each whole before refusing it (its hosts are not the inventory's)."""
    for i in range(BIG_BATCHES):
        commune = communes[-1 - i % len(communes)]
        hosts = [(f"big-{i}-{j}-".ljust(250, "n"), str(commune.hosts[0].ip))
                 for j in range(256)]
        topic, payload = _message(commune, _observation(commune, hosts, time.time()),
                                  "agent-big", i + 1, pad=1)
        assert len(payload) < 256 * 1024, len(payload)
        yield topic, payload


def _many_agents(communes: list[Commune]) -> Iterable[tuple[str, bytes]]:
    """Valid batches, each from a new agent id: accepted up to the cap, then refused."""
    for i in range(AGENT_IDS):
        commune = communes[i % len(communes)]
        hosts = [(h.name, str(h.ip)) for h in commune.hosts]
        at = time.time() - 60 + i * 1e-3  # every batch newer than the last of its commune
        yield _message(commune, _observation(commune, hosts, at), f"ghost-{i}", 1)


def _oversized(communes: list[Commune]) -> Iterable[tuple[str, bytes]]:
    commune = communes[0]
    for _ in range(OVERSIZED):
        yield topics.results_topic(commune.province, commune.code), b"{" + b" " * (4 << 20)


async def _send(client: aiomqtt.Client, messages: Iterable[tuple[str, bytes]]) -> int:
    count = 0
    pending: list[tuple[str, bytes]] = []
    for message in messages:
        pending.append(message)
        if len(pending) == CHUNK:
            count += await _publish(client, pending)
            pending = []
    return count + await _publish(client, pending)


async def _publish(client: aiomqtt.Client, messages: list[tuple[str, bytes]]) -> int:
    await asyncio.gather(*(client.publish(t, p, qos=1) for t, p in messages))
    return len(messages)


async def _wait_handled(web: int, sent: int) -> float:
    """Until accepted + refused batches reach ``sent`` (or the timeout): what was handled."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    handled = 0.0
    while time.monotonic() < deadline:
        body = await asyncio.to_thread(metrics, web)
        handled = sum(rejections(body).values()) + batches_accepted(body)
        if handled >= sent:
            break
        await asyncio.sleep(1.0)
    return handled


if __name__ == "__main__":
    main(run)
