"""The one MQTT link against a real mosquitto: it holds the connection, notices a broker
that went away, comes back when the broker does, and publishes only while connected."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from monitor.common.backoff import Backoff
from monitor.common.mqtt_link import BackgroundLink, MqttLink
from monitor.common.mqtt_url import parse_mqtt_url
from tests.support.servers import Mosquitto, receive

FAST = Backoff(base=0.05, cap=0.2)
pytestmark = pytest.mark.timeout(60)


async def until(condition: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(link: MqttLink) -> AsyncIterator[list[str]]:
    """The link in a task; yields the ``on_down`` calls seen."""
    stop, downs = asyncio.Event(), []
    task = asyncio.create_task(link.run(stop, on_down=lambda: downs.append("down")))
    try:
        yield downs
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_the_link_reconnects_after_a_broker_restart(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "a") as first:
        port = first.port
        link = MqttLink(parse_mqtt_url(first.url), name="test", backoff=FAST)
        async with running(link) as downs:
            await until(lambda: link.client is not None)
            first.stop()
            await until(lambda: downs)  # noticed without publishing anything
            assert link.client is None and not link.connected.is_set()
            with pytest.raises(aiomqtt.MqttError):  # at once, not after a timeout
                await asyncio.wait_for(link.publish("t/x", b"lost"), 0.5)
            with Mosquitto(tmp_path / "b", port=port) as second:
                await until(lambda: link.client is not None)
                async with aiomqtt.Client("127.0.0.1", second.port) as subscriber:
                    await subscriber.subscribe("t/#", qos=1)
                    await link.publish("t/x", b"back", qos=1)
                    [message] = await receive(subscriber, 1)
        assert message.payload == b"back"
        assert link.connections == 2


async def test_the_link_ends_cleanly_on_stop_while_the_broker_is_away() -> None:
    link = MqttLink(parse_mqtt_url("mqtt://127.0.0.1:1"), name="test", backoff=FAST)
    async with running(link) as downs:
        await until(lambda: len(downs) >= 2)  # tried again, backing off
    assert link.connections == 0


async def test_a_background_link_connects_at_first_publish_and_closes(mosquitto: Mosquitto
                                                                      ) -> None:
    link = BackgroundLink(MqttLink(parse_mqtt_url(mosquitto.url), name="test", backoff=FAST))
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as subscriber:
        await subscriber.subscribe("t/#", qos=1)
        await link.publish("t/retained", b"1", retain=True)
        [message] = await receive(subscriber, 1)
    await link.close()
    assert message.payload == b"1" and link.link.client is None


def test_the_ca_file_is_honoured_by_the_one_builder(tmp_path: Path) -> None:
    """Every client (agent, collector, alert sink) gets its TLS context here: a CA file that
    is not a certificate fails when the client is built, so it was really read."""
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n", encoding="utf-8")
    secure = parse_mqtt_url("mqtts://u:pw@127.0.0.1")
    assert isinstance(secure.client_kwargs()["tls_context"], ssl.SSLContext)
    with pytest.raises(ssl.SSLError):
        secure.client_kwargs(str(bad))
    assert "tls_context" not in parse_mqtt_url("mqtt://127.0.0.1").client_kwargs(str(bad))
