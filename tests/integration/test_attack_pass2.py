"""Issue 13, second attack pass from outside (against the real collector fed through a
real mosquitto, loopback only). Each test here is an attack that still succeeds: it is
marked ``xfail(strict=True)`` with what goes wrong, so that the fix turns it into a pass."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiomqtt
import pytest

from inventory.loader import load
from inventory.model import Commune
from monitor.common import topics
from monitor.cycle.observation import CommuneObservation, HostObservation, commune_to_dict
from monitor.remote import envelope
from probes.result import IcmpDetail, ProbeResult
from tests.support.agentlab import running_collector, wait_until, write_inventory
from tests.support.servers import Mosquitto

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


@pytest.mark.xfail(strict=True, reason="seq accepted up to 2**63-1 and persisted: one batch "
                   "claiming an agent's id with the largest seq locks the real agent out "
                   "(every later batch refused as replay, across restarts)")
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
        await wait_until(lambda: collector.accepted == 1, what="the forged batch taken")
        await publish(mosquitto.port, topics.results_topic("75", second.code),
                      alive_batch(second, "agent-75", clock_seq))
        await wait_until(lambda: collector.accepted == 2 or
                         collector.rejected.labels("replay")._value.get() == 1,
                         what="the genuine batch handled")
        assert collector.accepted == 2
