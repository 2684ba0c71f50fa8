"""Agents and the collector against a real mosquitto: outage, restart, rejections, ACLs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from structlog.testing import capture_logs

from inventory.loader import load
from monitor.common.mqtt_url import parse_mqtt_url
from monitor.cycle.observation import CommuneObservation, HostObservation
from monitor.decide.status import CommuneStatus
from monitor.remote import envelope
from monitor.remote.agent import Agent, AgentOptions
from tests.support.agentlab import (
    ACL,
    USERS,
    assert_in_order,
    running_collector,
    seqs_of,
    wait_all_received,
    wait_until,
    write_inventory,
)
from tests.support.servers import Mosquitto

pytestmark = pytest.mark.timeout(120)


def persistent(workdir: Path) -> tuple[str, ...]:
    """Broker persistence, so the collector's session (its queued QoS 1 messages) survives a
    restart of the broker, as in production."""
    return ("persistence true", f"persistence_location {workdir}/", "autosave_interval 1")


@contextlib.asynccontextmanager
async def running_agent(inventory_path: Path, scope: str, url: str, spool: Path,
                        **options: object) -> AsyncIterator[Agent]:
    inventory = load(inventory_path).scoped(scope)
    agent = Agent(inventory, parse_mqtt_url(url), AgentOptions(
        agent_id=f"agent-{scope}", scope=scope, spool_path=spool, retry_max=0.5,
        **options))  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        yield agent
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_broker_outage_loses_nothing_and_keeps_the_order(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv.yaml", provinces=("75",))
    data = tmp_path / "broker"
    data.mkdir()
    broker = Mosquitto(data, extra=persistent(data))
    with broker:
        async with running_collector(load(inv), broker.url) as collector, \
                contextlib.AsyncExitStack() as running:
            agent = await running.enter_async_context(
                running_agent(inv, "75", broker.url, tmp_path / "spool.db"))
            await wait_until(lambda: len(collector.received) >= 2, what="first batches")
            broker.stop()
            # three cycles (two communes each) pile up in the spool while the broker is away
            await wait_until(lambda: len(agent.spool) >= 6, what="batches spooled")
            with capture_logs() as logs:
                restarted = Mosquitto(data, extra=persistent(data), port=broker.port)
                with restarted:
                    await wait_until(lambda: len(agent.spool) == 0, what="spool drained")
                    sent = max(seqs_of(collector.received, "agent-75"))
                    await wait_until(
                        lambda: len([s for s in seqs_of(collector.received, "agent-75")
                                     if s > sent]) >= 2,
                        what="batches after the outage")
                    await running.aclose()  # the agent stops; the broker hands on the rest
                    await wait_all_received(lambda: seqs_of(collector.received, "agent-75"),
                                            agent.metrics.published._value.get)
    assert_in_order(seqs_of(collector.received, "agent-75"))
    assert any(e["event"] == "broker_connected" for e in logs)


async def test_collector_restart_mid_stream_misses_nothing(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv.yaml", provinces=("75",))
    state = str(tmp_path / "state.db")
    with Mosquitto(tmp_path / "broker") as broker:
        async with running_collector(load(inv), broker.url, state=state):
            pass  # the collector's session (its subscriptions) exists before any batch
        async with running_agent(inv, "75", broker.url, tmp_path / "spool.db") as agent:
            async with running_collector(load(inv), broker.url, state=state) as first:
                await wait_until(lambda: len(first.received) >= 2, what="first batches")
            published = agent.metrics.published._value.get()
            await wait_until(lambda: agent.metrics.published._value.get() >= published + 4,
                             what="batches published while the collector is away")
            async with running_collector(load(inv), broker.url, state=state) as second:
                await wait_until(lambda: len(second.received) >= 6, what="batches after restart")
                statuses = {cs.status for cs in second.pipeline.engine.state.communes.values()}
        async with running_collector(load(inv), broker.url, state=state) as third:
            received = [first, second, third]
            await wait_all_received(
                lambda: seqs_of([b for c in received for b in c.received], "agent-75"),
                agent.metrics.published._value.get)
    seqs = seqs_of(first.received + second.received + third.received, "agent-75")
    assert_in_order(seqs)
    assert statuses == {CommuneStatus.OK}


async def test_malformed_oversized_and_foreign_payloads_are_counted_and_ignored(
        tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv.yaml")
    inventory = load(inv)
    k01 = next(c for c in inventory.communes() if c.province == "01")
    with Mosquitto(tmp_path / "broker") as broker:
        async with running_collector(inventory, broker.url,
                                     agents={"agent-75": "75"}) as collector:
            foreign = CommuneObservation(k01.province, k01.code, time.time(), "01", hosts=tuple(
                HostObservation(h.name, str(h.ip), True) for h in k01.hosts))
            good = CommuneObservation(k01.province, k01.code, time.time(), "01")
            with capture_logs() as logs:
                async with aiomqtt.Client("127.0.0.1", broker.port) as client:
                    topic = f"tslcd/v1/results/{k01.key}"
                    for payload in (
                        b"\xff\xfe not json",
                        b"[1, 2, 3]",
                        b"{" + b" " * 300_000 + b"}",
                        envelope.encode("agent-75", 1, time.time(), 0, 0,
                                        envelope.encode_body(foreign)),
                    ):
                        await client.publish(topic, payload, qos=1)
                    await client.publish(topic, envelope.encode(
                        "agent-01", 1, time.time(), 0, 0, envelope.encode_body(good)), qos=1)
                await wait_until(lambda: sum(
                    collector.rejected.labels(r)._value.get() for r in
                    ("not_json", "schema", "too_large", "scope", "unknown_agent")) >= 4,
                    what="rejections")
            await collector.tick()
            body = collector.pipeline.exposition.body().decode()
    # the 300 kB one never reaches the collector: its MQTT v5 Maximum Packet Size makes the
    # broker drop it (the collector's own too_large check is the second line)
    for reason, count in (("not_json", 1), ("schema", 1), ("too_large", 0), ("scope", 1),
                          ("unknown_agent", 1)):
        assert f'tslcd_collector_rejected_total{{reason="{reason}"}} {count}.0' in body
    reasons = sorted(e["reason"] for e in logs if e["event"] == "batch_rejected")
    assert reasons == ["not_json", "schema", "scope", "unknown_agent"]
    assert collector.accepted == 0
    assert collector.pipeline.engine.state.communes[k01.key].status == CommuneStatus.UNKNOWN


async def test_the_broker_refuses_a_publish_outside_the_agents_province(tmp_path: Path) -> None:
    """ACLs (docs/mqtt.md): agent-75 may write only under tslcd/v1/results/75/#."""
    with Mosquitto(tmp_path / "broker", users=USERS, acl=ACL) as broker:
        received: list[str] = []
        async with aiomqtt.Client("127.0.0.1", broker.port, username="collector",
                                  password=USERS["collector"]) as collector:
            await collector.subscribe("tslcd/v1/results/#", qos=1)
            async with aiomqtt.Client("127.0.0.1", broker.port, username="agent-75",
                                      password=USERS["agent-75"]) as agent:
                await agent.publish("tslcd/v1/results/01/00004", b"foreign", qos=1)
                await agent.publish("tslcd/v1/agents/agent-01/state", b"offline", qos=1)
                await agent.publish("tslcd/v1/results/75/25195", b"own", qos=1)

            async def first_message() -> None:
                async for message in collector.messages:
                    received.append(f"{message.topic}={message.payload!r}")
                    return

            await asyncio.wait_for(first_message(), 10)
    # messages of one client arrive in order: had the foreign one passed, it would be first
    assert received == ["tslcd/v1/results/75/25195=b'own'"]


async def test_retained_status_per_operator(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv.yaml", provinces=("75",))
    with Mosquitto(tmp_path / "broker") as broker:
        async with running_collector(load(inv), broker.url) as collector, \
                running_agent(inv, "75", broker.url, tmp_path / "spool.db"):
            await wait_until(lambda: len(collector.received) >= 4, what="batches")
            await collector.tick()
            statuses: dict[str, dict[str, object]] = {}
            async with aiomqtt.Client("127.0.0.1", broker.port) as staff:
                await staff.subscribe("tslcd/v1/status/VNPT/#", qos=1)
                vnpt = [c for c in load(inv).communes() if c.isp == "VNPT"]

                async def collect() -> None:
                    async for message in staff.messages:
                        assert message.retain
                        statuses[str(message.topic)] = json.loads(message.payload)  # type: ignore[arg-type]
                        if len(statuses) == len(vnpt):
                            return

                await asyncio.wait_for(collect(), 10)
    assert set(statuses) == {f"tslcd/v1/status/VNPT/75/{c.code}" for c in vnpt}
    assert {s["status"] for s in statuses.values()} == {"ok"}
    assert all(s["vantage"] == "75" and s["hosts_total"] == 2 for s in statuses.values())


async def test_past_the_spool_bound_the_oldest_go_with_a_log_line_and_a_metric(
        tmp_path: Path) -> None:
    from tests.support.servers import free_tcp_port

    inv = write_inventory(tmp_path / "inv.yaml", provinces=("75",), communes=1)
    port = free_tcp_port()
    url = f"mqtt://127.0.0.1:{port}"  # nothing listens yet
    with capture_logs() as logs:
        async with running_agent(inv, "75", url, tmp_path / "spool.db", spool_limit=2) as agent:
            await wait_until(lambda: len(agent.spool) >= 1, what="a first batch queued")
            first = agent.spool.head(1)[0].seq
            await wait_until(lambda: agent.metrics.dropped._value.get() >= 2, what="drops")
            with Mosquitto(tmp_path / "broker", port=port) as broker:
                async with running_collector(load(inv), broker.url) as collector:
                    await wait_until(lambda: len(collector.received) >= 3, what="batches")
    overflow = [e for e in logs if e["event"] == "spool_overflow"]
    assert overflow and all(e["dropped"] >= 1 for e in overflow)
    assert overflow[-1]["dropped_total"] == sum(e["dropped"] for e in overflow)
    assert any(e["event"] == "broker_unreachable" for e in logs)
    seqs = seqs_of(collector.received, "agent-75")
    assert first not in seqs and seqs[0] > first  # the oldest went
    assert_in_order(seqs)


def make_certificates(workdir: Path) -> tuple[Path, Path, Path]:
    """A private CA and a broker certificate for 127.0.0.1 signed by it (openssl)."""
    from tests.support import require_real

    require_real(shutil.which("openssl") is not None, "openssl is not installed")
    ca_key, ca, key, csr, cert = (workdir / n for n in
                                  ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    san = workdir / "san.cnf"
    san.write_text("subjectAltName=IP:127.0.0.1\n")
    for argv in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=tslcd test CA"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out",
         cert, "-days", "2", "-extfile", san],
    ):
        subprocess.run(["openssl", *map(str, argv)], check=True, capture_output=True, timeout=30)
    return ca, cert, key


async def test_mqtts_with_the_networks_own_ca_and_a_password_per_agent(tmp_path: Path) -> None:
    from tests.support.servers import free_tcp_port

    inv = write_inventory(tmp_path / "inv.yaml", provinces=("75",), communes=1)
    ca, cert, key = make_certificates(tmp_path)
    tls_port = free_tcp_port()
    tls = (f"listener {tls_port} 127.0.0.1", f"cafile {ca}", f"certfile {cert}",
           f"keyfile {key}")
    with Mosquitto(tmp_path / "broker", users=USERS, acl=ACL, extra=tls):
        agent_url = f"mqtts://agent-75:{USERS['agent-75']}@127.0.0.1:{tls_port}"
        collector_url = f"mqtts://collector:{USERS['collector']}@127.0.0.1:{tls_port}"
        with capture_logs() as logs:
            # without the network's CA the broker's certificate is not trusted: nothing sent
            async with running_agent(inv, "75", agent_url, tmp_path / "untrusting.db") as agent:
                await wait_until(lambda: any(e["event"] == "broker_unreachable" for e in logs),
                                 what="refused certificate")
                assert agent.metrics.published._value.get() == 0
        async with running_collector(load(inv), collector_url, ca_file=str(ca)) as collector, \
                running_agent(inv, "75", agent_url, tmp_path / "spool.db", ca_file=str(ca)):
            await wait_until(lambda: len(collector.received) >= 2, what="batches over TLS")
    assert "certificate verify failed" in next(
        e["error"] for e in logs if e["event"] == "broker_unreachable")


async def test_a_restarted_or_reinstalled_agent_is_not_refused_as_a_replay(
        tmp_path: Path) -> None:
    """The collector keeps each agent's last seq in its state database (replay guard). A
    genuine agent restarting goes on from its spool; one whose spool was wiped starts from
    its clock, above its old numbers: neither is locked out, across a collector restart."""
    inv = write_inventory(tmp_path / "inv.yaml", provinces=("75",))
    state = str(tmp_path / "state.db")
    spool = tmp_path / "spool.db"
    with Mosquitto(tmp_path / "broker") as broker:
        async with running_collector(load(inv), broker.url, state=state) as collector:
            async with running_agent(inv, "75", broker.url, spool):
                await wait_until(lambda: len(collector.received) >= 2, what="first run")
            async with running_agent(inv, "75", broker.url, spool):  # same spool
                await wait_until(lambda: len(collector.received) >= 4, what="after a restart")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{spool}{suffix}").unlink(missing_ok=True)
        async with running_collector(load(inv), broker.url, state=state) as again, \
                running_agent(inv, "75", broker.url, spool):  # wiped spool
            await wait_until(lambda: len(again.received) >= 2, what="after the reinstall")
            assert again.rejected.labels("replay")._value.get() == 0
    before = seqs_of(collector.received, "agent-75")
    after = seqs_of(again.received, "agent-75")
    assert min(after) > max(before)
    assert collector.rejected.labels("replay")._value.get() == 0
