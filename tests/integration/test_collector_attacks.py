"""Issue 13's attacks on the agents' path, each against the real collector fed through a
real mosquitto (loopback only): a refused batch changes nothing (state, history rings,
agents, /metrics, alerts in the state database) and the collector stays healthy (a genuine
batch afterwards is accepted, a tick still works)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from structlog.testing import capture_logs

from inventory.loader import load
from inventory.model import Commune, Inventory
from monitor.common import topics
from monitor.cycle.observation import CommuneObservation, HostObservation, commune_to_dict
from monitor.decide.status import CommuneStatus
from monitor.remote import collector as collector_module
from monitor.remote import envelope
from monitor.remote.collector import ByteBoundedInbox, Collector
from probes.result import IcmpDetail, ProbeResult, TargetDetail
from tests.support.agentlab import running_collector, wait_until, write_inventory
from tests.support.servers import Mosquitto

pytestmark = pytest.mark.timeout(120)

TARGET = "bau-cu"
_SEQ = itertools.count(int(time.time() * 1000))  # like a fresh spool: from the clock


def genuine(commune: Commune, *, at: float | None = None, vantage: str | None = None,
            alive: bool = True) -> CommuneObservation:
    """What a real province agent sends for ``commune``: every host pinged, the target."""
    now = time.time() if at is None else at
    hosts = tuple(HostObservation(h.name, str(h.ip), alive, results=(ProbeResult(
        "icmp", str(h.ip), alive, now, 0.01, None,
        IcmpDetail(1, int(alive), (0.002,) if alive else ())),)) for h in commune.hosts)
    target = ProbeResult("target", TARGET, True, now, 0.05, None,
                         TargetDetail("http://127.0.0.1:9/", ("127.0.0.1",), None, 0.001))
    return CommuneObservation(commune.province, commune.code, now,
                              vantage or commune.province, hosts=hosts, gateway_alive=alive,
                              targets=(target,))


def wire(obs: CommuneObservation | dict[str, Any], agent: str = "agent-75",
         seq: int | None = None, sent: float | None = None) -> bytes:
    body = obs if isinstance(obs, dict) else commune_to_dict(obs)
    return envelope.encode(agent, next(_SEQ) if seq is None else seq,
                           time.time() if sent is None else sent, 0, 0,
                           json.dumps(body).encode())


def topic_of(commune: Commune) -> str:
    return topics.results_topic(commune.province, commune.code)


async def publish(port: int, messages: Iterable[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


def rejected_total(collector: Collector) -> float:
    return sum(m.value for metric in collector.rejected.collect() for m in metric.samples
               if m.name.endswith("_total"))


def snapshot(collector: Collector, state_db: Path) -> dict[str, Any]:
    """Everything a batch could move: the state, the RTT rings, what the collector knows of
    agents, the open alerts and the outbox in the real state database."""
    engine = collector.pipeline.engine
    communes = {
        key: (cs.status, cs.since, cs.last_seen, cs.vantage, cs.unknown_devices,
              tuple((n, h.up, h.since, h.consecutive_ok, h.consecutive_fail)
                    for n, h in cs.hosts.items()))
        for key, cs in engine.state.communes.items()}
    agents = {a: (s.last, s.silent, s.seq, s.scope, frozenset(s.communes))
              for a, s in collector.agents.items()}
    with sqlite3.connect(state_db) as db:
        alerts = sorted(db.execute("SELECT key, id FROM open_alerts").fetchall())
        outbox = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        seqs = sorted(db.execute("SELECT agent, seq FROM agent_seq").fetchall())
    return {"communes": communes, "targets": sorted(engine.state.targets),
            "rings": len(collector.pipeline.samples), "agents": agents, "alerts": alerts,
            "outbox": outbox, "seqs": seqs, "heard": dict(collector.pipeline.agents_heard),
            "accepted": collector.accepted}


_VOLATILE = re.compile(r"^(tslcd_(collector_|exposition_|render_)|process_|python_)|_created\b|^# ")


async def metrics(collector: Collector) -> dict[str, str]:
    """/metrics after a tick, without the collector's own counters (rejections count)."""
    await collector.tick()
    body = collector.pipeline.exposition.body().decode()
    series = {}
    for line in body.splitlines():
        if line and not _VOLATILE.search(line):
            name, _, value = line.rpartition(" ")
            series[name] = value
    return series


class Attack:
    """A collector on a real broker with a state database; ``before``/``unchanged``
    bracket an attack."""

    def __init__(self, collector: Collector, broker: Mosquitto, state_db: Path,
                 inventory: Inventory) -> None:
        self.collector, self.broker, self.state_db = collector, broker, state_db
        self.inventory = inventory
        self.c75 = [c for c in inventory.communes() if c.province == "75"]

    async def baseline(self) -> None:
        """Genuine batches for every commune of 75, so that there is state to protect."""
        await publish(self.broker.port, [(topic_of(c), wire(genuine(c))) for c in self.c75])
        await wait_until(lambda: self.collector.accepted >= len(self.c75), what="baseline")
        self.before = snapshot(self.collector, self.state_db)
        self.metrics_before = await metrics(self.collector)

    async def attack(self, messages: list[tuple[str, bytes]], rejections: int) -> None:
        start = rejected_total(self.collector)
        await publish(self.broker.port, messages)
        await wait_until(lambda: rejected_total(self.collector) >= start + rejections,
                         what=f"{rejections} rejections")

    async def assert_unchanged_and_healthy(self) -> None:
        assert snapshot(self.collector, self.state_db) == self.before
        assert await metrics(self.collector) == self.metrics_before
        accepted = self.collector.accepted
        commune = self.c75[0]
        await publish(self.broker.port, [(topic_of(commune), wire(genuine(commune)))])
        await wait_until(lambda: self.collector.accepted == accepted + 1, what="genuine batch")
        await self.collector.tick()  # a tick still works
        key = commune.key
        assert self.collector.pipeline.engine.state.communes[key].status == CommuneStatus.OK


@pytest.fixture
async def attack(tmp_path: Path, mosquitto: Mosquitto) -> Any:
    inventory = load(write_inventory(tmp_path / "inv.yaml", target="http://127.0.0.1:9/"))
    state_db = tmp_path / "state.db"
    async with running_collector(inventory, mosquitto.url, state=str(state_db),
                                 refresh=0.3) as collector:
        built = Attack(collector, mosquitto, state_db, inventory)
        await built.baseline()
        yield built


def body(obs: CommuneObservation) -> dict[str, Any]:
    return commune_to_dict(obs)


async def test_non_numeric_rtts_are_refused_and_ticks_go_on(attack: Attack) -> None:
    """Attack 1: ``"rtts": ["a", "b"]`` used to be applied, then break every tick."""
    commune = attack.c75[0]
    bad = body(genuine(commune))
    bad["hosts"][0]["results"][0]["detail"]["rtts"] = ["a", "b"]
    negative = body(genuine(commune))
    negative["hosts"][0]["results"][0]["detail"]["rtts"] = [-1.0]
    overflow = body(genuine(commune))
    overflow["hosts"][0]["results"][0]["duration"] = 1e999  # json: Infinity
    await attack.attack([(topic_of(commune), wire(b)) for b in (bad, negative)]
                        + [(topic_of(commune), wire(overflow).replace(b"Infinity", b"1e999"))],
                        3)
    assert attack.collector.rejected.labels("schema")._value.get() == 3
    await attack.assert_unchanged_and_healthy()


async def test_a_replayed_batch_refreshes_nothing(attack: Attack) -> None:
    """Attack 2: a captured genuine batch, sent again, must not keep a dead agent alive."""
    commune = attack.c75[0]
    captured = wire(genuine(commune))
    await publish(attack.broker.port, [(topic_of(commune), captured)])
    await wait_until(lambda: attack.collector.accepted == len(attack.c75) + 1, what="captured")
    attack.before = snapshot(attack.collector, attack.state_db)
    attack.metrics_before = await metrics(attack.collector)
    # the same bytes, and a newer cycle under an old seq: both replays
    older_seq = wire(genuine(commune), seq=1)
    await attack.attack([(topic_of(commune), captured), (topic_of(commune), older_seq)], 2)
    assert attack.collector.rejected.labels("replay")._value.get() == 2
    await attack.assert_unchanged_and_healthy()


async def test_a_stale_cycle_under_a_new_seq_is_refused(attack: Attack) -> None:
    commune = attack.c75[1]
    old = genuine(commune, at=time.time() - 600)
    await attack.attack([(topic_of(commune), wire(old))], 1)
    assert attack.collector.rejected.labels("stale")._value.get() == 1
    await attack.assert_unchanged_and_healthy()


@pytest.mark.parametrize("field", ["at", "sent", "target"])
async def test_times_in_the_future_are_refused(attack: Attack, field: str) -> None:
    """Attack 3: ``at`` 300 s ahead used to put a future ``since`` on the commune."""
    commune = attack.c75[0]
    ahead = time.time() + 300
    obs = genuine(commune, at=ahead if field == "at" else None)
    data = body(obs)
    if field == "target":
        data["targets"][0]["started"] = ahead
    await attack.attack([(topic_of(commune), wire(data, sent=ahead if field == "sent"
                                                  else None))], 1)
    assert attack.collector.rejected.labels("time")._value.get() == 1
    await attack.assert_unchanged_and_healthy()


async def test_made_up_hosts_and_targets_create_nothing(attack: Attack) -> None:
    """Attacks 4 and 5: names the inventory does not have never create state, history
    rings, series or alerts (made-up hosts, a wrong IP, made-up targets, more hosts than a
    batch may hold; 1,300 names no longer fit in a batch at all)."""
    commune = attack.c75[0]
    many = body(genuine(commune))
    template = many["hosts"][0]
    many["hosts"] = [dict(template, name=f"fake-{i}") for i in range(200)]
    wrong_ip = body(genuine(commune))
    wrong_ip["hosts"][0]["ip"] = "127.9.9.9"
    targets = body(genuine(commune))
    targets["targets"] = [dict(targets["targets"][0], subject=f"evil-{i}") for i in range(16)]
    too_many = body(genuine(commune))
    too_many["hosts"] = [dict(template, name=f"fake-{i}") for i in range(300)]
    await attack.attack([(topic_of(commune), wire(b))
                         for b in (many, wrong_ip, targets, too_many)], 4)
    c = attack.collector
    # more hosts (or targets) than the inventory's commune has: refused before the schema
    assert c.rejected.labels("unknown_host")._value.get() == 3
    assert c.rejected.labels("unknown_target")._value.get() == 1
    await attack.assert_unchanged_and_healthy()


@pytest.mark.parametrize("device", [
    {"ip": "<b>0</b>\nFAKE LOG LINE", "mac": "02:00:00:00:00:99"},
    {"ip": "127.75.1.200", "mac": "<b>0</b>\nFAKE"},
    {"ip": "198.19.255.1", "mac": "02:00:00:00:00:99"},  # outside the commune's subnet
])
async def test_forged_devices_open_no_alert(attack: Attack, device: dict[str, str]) -> None:
    """Attack 5: device fields must be an IP of the commune's segment and a MAC."""
    commune = attack.c75[0]
    data = body(genuine(commune))
    data["unknown_devices"] = [device] * 300
    await attack.attack([(topic_of(commune), wire(data))], 1)
    assert attack.collector.rejected.labels("schema")._value.get() == 1
    await attack.assert_unchanged_and_healthy()


async def test_rejections_are_one_log_line_per_agent_and_reason(attack: Attack) -> None:
    """3,000 bad messages used to be 3,000 log lines."""
    commune = attack.c75[0]
    bad = body(genuine(commune))
    bad["hosts"][0]["results"][0]["detail"]["rtts"] = ["a"]
    with capture_logs() as logs:
        await attack.attack([(topic_of(commune), wire(bad)) for _ in range(300)], 300)
    lines = [e for e in logs if e["event"] == "batch_rejected"]
    assert len(lines) == 1 and lines[0]["count"] == 1 and lines[0]["topic"] == topic_of(commune)
    with capture_logs() as logs:
        attack.collector.rejections.flush(time.time() + 61)
    lines = [e for e in logs if e["event"] == "batch_rejected"]
    assert [(e["count"], e["reason"]) for e in lines] == [(299, "schema")]
    await attack.assert_unchanged_and_healthy()


async def test_made_up_agent_ids_are_bounded_and_blank_only_what_they_reported(
        attack: Attack) -> None:
    """Attack 6: without an agents file, made-up agent ids are capped (2 x communes) and a
    silent one blanks only the communes it validly reported on, never its whole province."""
    c = attack.collector
    cap = c.unknown_agent_cap
    target = attack.c75[0]
    messages = [(topic_of(target), wire(genuine(target, at=time.time() + i * 0.001),
                                        agent=f"ghost-{i}")) for i in range(3 * cap)]
    start = c.accepted
    await publish(attack.broker.port, messages)
    await wait_until(lambda: c.accepted - start + c.rejected.labels(
        "too_many_agents")._value.get() >= len(messages), what="all ghosts handled")
    assert len(c.agents) == cap
    assert c.rejected.labels("too_many_agents")._value.get() == len(messages) - (c.accepted
                                                                                - start)
    families = (await metrics(c))
    assert sum(1 for name in families if name.startswith("tslcd_agent_silent{")) == cap
    # the ghosts fall silent (3 intervals of 1 s) while agent-75 goes on for the others:
    # only the commune the ghosts reported on goes unknown, not their claimed province
    others = attack.c75[1:]
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        await publish(attack.broker.port, [(topic_of(o), wire(genuine(o))) for o in others])
        await asyncio.sleep(0.5)
    assert all(c.agents[f"ghost-{i}"].silent for i in range(cap - 1))
    states = {cm.key: c.pipeline.engine.state.communes[cm.key].status for cm in attack.c75}
    assert states[target.key] == CommuneStatus.UNKNOWN
    assert all(states[o.key] == CommuneStatus.OK for o in others)
    # and forgotten after the expiry: the series go, room for new agents again
    c.check_silence(time.time() + c.options.agent_expiry + 3600)
    assert c.agents == {}
    assert not any(n.startswith("tslcd_agent_silent{") for n in await metrics(c))


async def test_the_replay_guard_survives_a_collector_restart(tmp_path: Path,
                                                             mosquitto: Mosquitto) -> None:
    inventory = load(write_inventory(tmp_path / "inv.yaml", target="http://127.0.0.1:9/"))
    commune = next(c for c in inventory.communes() if c.province == "75")
    state = str(tmp_path / "state.db")
    captured = wire(genuine(commune))
    async with running_collector(inventory, mosquitto.url, state=state) as collector:
        await publish(mosquitto.port, [(topic_of(commune), captured)])
        await wait_until(lambda: collector.accepted == 1, what="accepted")
    async with running_collector(inventory, mosquitto.url, state=state) as collector:
        await publish(mosquitto.port, [(topic_of(commune), captured)])
        await wait_until(lambda: collector.rejected.labels("replay")._value.get() == 1,
                         what="replay refused after the restart")
        assert collector.accepted == 0
        await publish(mosquitto.port, [(topic_of(commune), wire(genuine(commune)))])
        await wait_until(lambda: collector.accepted == 1, what="the next genuine batch")


# the broker set-up of docs/mqtt.md ("Limits")
DOCUMENTED_LIMITS = ("message_size_limit 262144", "max_packet_size 266240")


@pytest.mark.parametrize("limits", [DOCUMENTED_LIMITS, ()], ids=["broker-limit", "v5-only"])
async def test_a_huge_publish_never_reaches_the_collector(tmp_path: Path,
                                                          limits: tuple[str, ...]) -> None:
    """Attack 7: 1.5 MiB refused by the broker as documented, and (even on a broker without
    limits) never sent to the collector, whose MQTT v5 Maximum Packet Size forbids it."""
    inventory = load(write_inventory(tmp_path / "inv.yaml", target="http://127.0.0.1:9/"))
    commune = next(c for c in inventory.communes() if c.province == "75")
    huge = wire(genuine(commune))[:-1] + b',"pad":"' + b"x" * (3 << 19) + b'"}'
    with Mosquitto(tmp_path / "broker", extra=limits) as broker:
        async with running_collector(inventory, broker.url,
                                     state=str(tmp_path / "state.db")) as collector:
            with contextlib.suppress(aiomqtt.MqttError):  # max_packet_size: disconnected
                await publish(broker.port, [(topic_of(commune), huge)])
            await publish(broker.port, [(topic_of(commune), wire(genuine(commune)))])
            await wait_until(lambda: collector.accepted == 1, what="the genuine batch")
            assert rejected_total(collector) == 0  # the huge one never arrived at all
            assert collector.pipeline.engine.state.communes[commune.key].status == \
                CommuneStatus.OK


def big_valid_batches(commune: Commune, count: int) -> list[tuple[str, bytes]]:
    """Schema-valid batches near the size limit (16 results a host, each with a long,
    allowed error text): about 224 kB each, a new seq each."""
    batches = []
    for _ in range(count):
        data = body(genuine(commune))
        for host in data["hosts"]:
            host["results"] = [dict(host["results"][0], error="E" * 7000)] * 16
        batches.append((topic_of(commune), wire(data)))
    return batches


async def publish_elsewhere(port: int, messages: list[tuple[str, bytes]], qos: int) -> None:
    """From another thread, as another agent would: the collector's loop is not the
    sender's."""
    async def send() -> None:
        async with aiomqtt.Client("127.0.0.1", port) as client:
            for topic, payload in messages:
                await client.publish(topic, payload, qos=qos)

    await asyncio.to_thread(asyncio.run, send())


SMALL_INBOX = 400_000  # room for one batch of big_valid_batches, not two


@pytest.fixture
def small_inbox(monkeypatch: pytest.MonkeyPatch) -> int:
    """The inbox forced down to :data:`SMALL_INBOX` (request it before ``attack``)."""
    monkeypatch.setattr(ByteBoundedInbox, "limit", SMALL_INBOX)
    return SMALL_INBOX


@pytest.fixture(params=["default", "small"])
def inbox_limit(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """The shipped inbox bound, or :data:`SMALL_INBOX` (request it before ``attack``)."""
    if request.param == "small":
        monkeypatch.setattr(ByteBoundedInbox, "limit", SMALL_INBOX)
    return ByteBoundedInbox.limit


async def test_a_burst_of_big_valid_batches_waits_in_the_broker_and_is_all_handled(
        inbox_limit: int, attack: Attack) -> None:
    """Agents replaying their spools after an outage: 300 valid near-limit batches at once.
    MQTT 5 flow control (the collector's Receive Maximum, each message acknowledged once
    handled) keeps the burst in the broker: every batch is handled (taken, or refused as an
    older cycle of the commune), none is shed, and the inbox never held more than its bound,
    even forced down to one batch. The flow never stalled, so every message, refused ones
    included, was acknowledged."""
    collector = attack.collector
    commune = attack.c75[1]
    start, accepted = rejected_total(collector), collector.accepted
    await publish_elsewhere(attack.broker.port, big_valid_batches(commune, 300), qos=1)
    await wait_until(lambda: rejected_total(collector) - start +
                     collector.accepted - accepted >= 300, what="every batch handled")
    await collector.tick()  # overload is counted at a tick
    assert collector.rejected.labels("overload")._value.get() == 0
    assert rejected_total(collector) - start == collector.rejected.labels("stale")._value.get()
    assert collector.accepted > accepted
    assert collector._inbox is not None
    assert 0 < collector._inbox.peak <= inbox_limit
    accepted = collector.accepted
    await publish(attack.broker.port, [(topic_of(commune), wire(genuine(commune)))])
    await wait_until(lambda: collector.accepted == accepted + 1, what="genuine batch")


async def test_a_qos0_flood_pauses_reading_instead_of_growing(small_inbox: int,
                                                              attack: Attack) -> None:
    """QoS 0 publishes are outside flow control: a flood of them fills the inbox to half its
    bound, then the collector stops reading (TCP holds the rest back, the broker drops what
    it cannot queue). Nothing is shed, the inbox never holds more than its bound, and the
    flow goes on (a genuine batch afterwards is taken)."""
    collector = attack.collector
    commune = attack.c75[1]
    await publish_elsewhere(attack.broker.port, big_valid_batches(commune, 300), qos=0)
    assert collector._inbox is not None
    await wait_until(lambda: collector._inbox is not None and collector._inbox.pauses > 0,
                     what="reading paused")
    accepted = collector.accepted
    await publish(attack.broker.port, [(topic_of(commune), wire(genuine(commune)))])
    await wait_until(lambda: collector.accepted > accepted, what="genuine batch")
    await collector.tick()
    assert collector.rejected.labels("overload")._value.get() == 0
    assert collector._inbox.peak <= small_inbox


async def test_where_reading_cannot_pause_a_flood_is_shed_and_counted(
        small_inbox: int, monkeypatch: pytest.MonkeyPatch, attack: Attack) -> None:
    """The last defence, on an event loop whose reading cannot be paused (``_Reading.of``
    finds no selector there): the excess of a QoS 0 flood is shed and counted as
    ``overload``, the inbox never holds more than its bound, and the flow goes on. The
    collector reconnects first, so that the new connection is the one without a pause."""
    monkeypatch.setattr(collector_module._Reading, "of", classmethod(lambda cls, client: None))
    collector = attack.collector
    client = collector._client
    assert client is not None
    client._client.disconnect()  # the link connects again, now without a pause
    await wait_until(lambda: collector._client not in (None, client), what="reconnected")
    commune = attack.c75[1]
    await publish_elsewhere(attack.broker.port, big_valid_batches(commune, 300), qos=0)
    await wait_until(lambda: collector.rejected.labels("overload")._value.get() > 0,
                     what="some shed and counted")
    assert collector._inbox is not None and collector._inbox.peak <= small_inbox
    assert collector._inbox.pauses == 0
    accepted = collector.accepted
    await publish(attack.broker.port, [(topic_of(commune), wire(genuine(commune)))])
    await wait_until(lambda: collector.accepted > accepted, what="genuine batch")
