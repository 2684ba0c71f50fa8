"""Alert sinks against real servers: a mosquitto broker and an aiohttp webhook receiver."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
import pytest
from structlog.testing import capture_logs

from monitor.alerts.event import AlertEvent
from monitor.alerts.sinks import (
    Dispatcher,
    LogSink,
    MqttSink,
    WebhookSink,
    sinks_from_config,
)
from monitor.common.backoff import Backoff
from monitor.common.config import Config, WebhookConfig
from monitor.common.mqtt_url import parse_mqtt_url
from monitor.store.state_db import Batch, Store
from tests.support.engine_sim import Sim
from tests.support.servers import Mosquitto, WebhookReceiver
from tests.support.servers import receive as _receive

FAST = Backoff(attempts=4, base=0.01, cap=0.05)


def event(n: int = 1, state: str = "firing", province: str | None = "75") -> AlertEvent:
    return AlertEvent(
        id=f"{n:024x}", event="commune_down", state=state, severity="critical",  # type: ignore[arg-type]
        province=province, commune="26041", host=None, since="2026-02-06T08:15:30+07:00",
        message="Phường Trấn Biên (VNPT, DNI-0001): mất kết nối: đường truyền không phản hồi",
    )


async def test_webhook_retries_failed_posts_and_delivers_once() -> None:
    async with WebhookReceiver(fail_first=2) as hook:
        dispatcher = Dispatcher([WebhookSink(hook.url, backoff=FAST)])
        await dispatcher.start()
        dispatcher.publish(event())
        await hook.wait_for(1)
        await dispatcher.stop()
    assert len(hook.attempts) == 3
    assert hook.received == [event().to_dict()]
    assert {h["Idempotency-Key"] for h in hook.headers} == {event().id}
    assert hook.received[0]["message"].startswith("Phường Trấn Biên")


async def test_webhook_gives_up_after_bounded_attempts_without_logging_secrets() -> None:
    async with WebhookReceiver(fail_first=100) as hook:
        url = hook.url.replace("127.0.0.1", "hook:p4ssw0rd@127.0.0.1") + "?token=T0KEN"
        dispatcher = Dispatcher([WebhookSink(url, backoff=FAST)])
        with capture_logs() as logs:
            await dispatcher.start()
            dispatcher.publish(event())
            await dispatcher.stop()
    assert len(hook.attempts) == FAST.attempts
    assert hook.received == []
    assert [entry["event"] for entry in logs].count("alert_delivery_failed") == 1
    text = json.dumps(logs, default=str)
    assert "T0KEN" not in text and "p4ssw0rd" not in text


async def test_a_hanging_receiver_blocks_neither_publish_nor_other_sinks() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with WebhookReceiver() as hook:
            stuck = WebhookSink(f"http://127.0.0.1:{port}/hook", backoff=FAST, timeout=30)
            dispatcher = Dispatcher([stuck, WebhookSink(hook.url), LogSink()], stop_timeout=0.5)
            await dispatcher.start()
            for n in range(5):
                dispatcher.publish(event(n))  # returns at once: a plain call, no await
            await hook.wait_for(5)
            with capture_logs() as logs:
                await dispatcher.stop()  # bounded: the stuck delivery is abandoned
        assert [e["id"] for e in hook.received] == [event(n).id for n in range(5)]
        assert any(entry["event"] == "alert_flush_timeout" for entry in logs)
    finally:
        server.close()


async def test_log_sink_logs_each_event_as_structured_fields() -> None:
    with capture_logs() as logs:
        await LogSink().deliver(event())
    assert logs[0]["event"] == "alert"
    assert logs[0]["alert"] == "commune_down"
    assert logs[0]["id"] == event().id


async def test_outbox_events_left_undelivered_are_sent_at_start(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    assert store.write(Batch(outbox=[event(1), event(1, "resolved")]))
    async with WebhookReceiver() as hook:
        dispatcher = Dispatcher([WebhookSink(hook.url, backoff=FAST)], store=store)
        await dispatcher.start()
        await hook.wait_for(2)
        await dispatcher.stop()
    assert [(e["id"], e["state"]) for e in hook.received] == [
        (event(1).id, "firing"), (event(1).id, "resolved")]
    assert store.outbox_pending() == []


async def test_mqtt_sink_publishes_one_event_on_the_province_topic(tmp_path: Path) -> None:
    with Mosquitto(tmp_path) as broker:
        target = parse_mqtt_url(broker.url)
        async with aiomqtt.Client(target.host, target.port) as subscriber:
            await subscriber.subscribe("tslcd/v1/alerts/#", qos=1)
            dispatcher = Dispatcher([MqttSink(broker.url, backoff=FAST)])
            await dispatcher.start()
            dispatcher.publish(event(7))
            dispatcher.publish(event(8, province=None))
            messages = await _receive(subscriber, 2)
            await dispatcher.stop()
    assert [str(m.topic) for m in messages] == ["tslcd/v1/alerts/75", "tslcd/v1/alerts/central"]
    assert json.loads(messages[0].payload) == event(7).to_dict()  # type: ignore[arg-type]
    assert not messages[0].retain and messages[0].qos == 1


async def test_mqtt_sink_with_password_and_acl_never_logs_the_password(tmp_path: Path) -> None:
    acl = "user monitor\ntopic write tslcd/v1/alerts/#\nuser reader\ntopic read tslcd/#"
    users = {"monitor": "m0n-s3cret", "reader": "r3ader"}
    with Mosquitto(tmp_path, users=users, acl=acl) as broker:
        async with aiomqtt.Client("127.0.0.1", broker.port, username="reader",
                                  password="r3ader") as subscriber:
            await subscriber.subscribe("tslcd/v1/alerts/#", qos=1)
            sink = MqttSink(broker.url_for("monitor", "m0n-s3cret"), backoff=FAST)
            with capture_logs() as logs:
                await sink.deliver(event(9))
                messages = await _receive(subscriber, 1)
                await sink.close()
    assert [json.loads(m.payload)["id"] for m in messages] == [event(9).id]  # type: ignore[arg-type]
    assert "m0n-s3cret" not in json.dumps(logs, default=str) + sink.name


async def test_mqtt_sink_reconnects_after_the_broker_restarts(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "a") as first:
        port = first.port
        sink = MqttSink(first.url, backoff=Backoff(attempts=8, base=0.05, cap=0.5))
        await sink.deliver(event(1))
    with Mosquitto(tmp_path / "b", port=port) as second:
        async with aiomqtt.Client("127.0.0.1", second.port) as subscriber:
            await subscriber.subscribe("tslcd/v1/alerts/#", qos=1)
            await sink.deliver(event(2))  # the old connection is dead: reconnects
            messages = await _receive(subscriber, 1)
    await sink.close()
    assert [json.loads(m.payload)["id"] for m in messages] == [event(2).id]  # type: ignore[arg-type]


async def test_mqtt_sink_gives_up_when_no_broker_answers() -> None:
    sink = MqttSink("mqtt://127.0.0.1:1", backoff=FAST, timeout=0.25)  # 4 tries: 1 s
    with pytest.raises(aiomqtt.MqttError):
        await sink.deliver(event())
    await sink.close()


def test_sinks_from_config() -> None:
    config = Config(webhooks=(WebhookConfig("http://127.0.0.1:9000/hook?token=x"),),
                    alerts_mqtt_url="mqtt://u:pw@127.0.0.1:1883")
    names = [sink.name for sink in sinks_from_config(config)]
    assert names == ["log", "webhook http://127.0.0.1:9000/hook", "mqtt mqtt://127.0.0.1:1883"]


def test_missing_mosquitto_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.support.servers as servers

    monkeypatch.setattr(servers.shutil, "which", lambda _name: None)
    monkeypatch.setattr(servers.os.path, "exists", lambda _path: False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        servers.mosquitto_binary()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        servers.mosquitto_binary()


async def test_gateway_outage_reaches_the_webhook_as_one_alert_and_one_resolution(
        tmp_path: Path) -> None:
    sim = Sim(store=Store(tmp_path / "state.db"))
    async with WebhookReceiver() as hook:
        dispatcher = Dispatcher([WebhookSink(hook.url, backoff=FAST)], store=sim.engine.store)
        await dispatcher.start()
        for _ in range(6):
            dispatcher.publish_all(sim.cycle(hosts=False, gateway=False))
        for _ in range(3):
            dispatcher.publish_all(sim.cycle())
        await hook.wait_for(2)
        await dispatcher.stop()
    assert [(e["event"], e["state"]) for e in hook.received] == [
        ("commune_down", "firing"), ("commune_down", "resolved")]
    assert hook.received[0]["id"] == hook.received[1]["id"]
    assert sim.engine.store.outbox_pending() == []


async def test_the_shared_broker_fixture_delivers(mosquitto: Mosquitto) -> None:
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as subscriber:
        await subscriber.subscribe("tslcd/v1/alerts/75", qos=1)
        sink = MqttSink(mosquitto.url, backoff=FAST)
        await sink.deliver(event(3))
        messages = await _receive(subscriber, 1, quiet=0.2)
        await sink.close()
    assert len(messages) == 1
