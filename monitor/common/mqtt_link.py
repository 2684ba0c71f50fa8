"""The one MQTT link: connect, hold the session, and on any broker failure back off and
connect again (aiomqtt's documented reconnect pattern: ``async with Client(...)`` in a loop,
catching ``MqttError``), with the one :class:`~monitor.common.backoff.Backoff`.

Agents, the collector, the alert sink and the retained status all speak to the broker
through it, so they reconnect alike and every client honours the same URL and CA file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import structlog

from monitor.common.backoff import Backoff
from monitor.common.mqtt_url import MqttUrl

log = structlog.get_logger("mqtt")

#: What runs while connected, given the client and ``stop``; it returns once ``stop`` is set,
#: and raising ``MqttError`` (as aiomqtt does on a lost connection) reconnects.
Session = Callable[[aiomqtt.Client, asyncio.Event], Awaitable[None]]

RECONNECT = Backoff(base=0.5, cap=30.0)


class MqttLink:
    """A connection kept up until ``stop``; :attr:`client` while connected, else None."""

    def __init__(self, broker: MqttUrl, *, name: str, ca_file: str | None = None,
                 backoff: Backoff = RECONNECT, **client_options: Any) -> None:
        self.broker = broker
        self.name = name
        self.backoff = backoff
        self.kwargs = broker.client_kwargs(ca_file) | client_options
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.connections = 0

    async def run(self, stop: asyncio.Event, session: Session | None = None,
                  on_down: Callable[[], None] | None = None) -> None:
        """Stay connected until ``stop``; each connection runs ``session`` (default: hold
        the connection for publishers); ``on_down`` is told each time a connection ends
        or fails."""
        failures = 0
        while not stop.is_set():
            try:
                async with aiomqtt.Client(**self.kwargs) as client:
                    self.client, failures = client, 0
                    self.connections += 1
                    self.connected.set()
                    log.info("broker_connected", link=self.name, broker=self.broker.redacted())
                    await (session or _hold)(client, stop)
            except aiomqtt.MqttError as exc:
                failures += 1
                if failures == 1:  # one line per outage, not one per attempt
                    log.warning("broker_unreachable", link=self.name,
                                broker=self.broker.redacted(), error=str(exc))
            finally:
                self.client = None
                self.connected.clear()
                if on_down is not None:
                    on_down()
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.backoff.delay(failures))

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                      timeout: float = 10.0) -> None:
        """Publish on the current connection; raises ``MqttError`` at once when there is
        none (the caller's loop must not wait on a broker that is away), or when the broker
        does not acknowledge within ``timeout``."""
        client = self.client
        if client is None:
            raise aiomqtt.MqttError(f"not connected to {self.broker.redacted()}")
        await client.publish(topic, payload, qos=qos, retain=retain, timeout=timeout)


async def _hold(client: aiomqtt.Client, stop: asyncio.Event) -> None:
    """Hold a publisher's connection until ``stop``: aiomqtt tells of a lost connection
    only through its message iterator (``MqttError``), so wait on that too."""
    messages = aiter(client.messages)
    stopping = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            receiving = asyncio.create_task(anext(messages))
            await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiving
                return
            receiving.result()  # a message nobody subscribed to is dropped; MqttError raises
    finally:
        stopping.cancel()


class BackgroundLink:
    """A :class:`MqttLink` in its own task, for a publisher that has no loop of its own
    (the alert sink, the retained status): started at first use, stopped by :meth:`close`."""

    def __init__(self, link: MqttLink) -> None:
        self.link = link
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                      timeout: float = 10.0) -> None:
        """Publish, connecting first if need be (waiting up to ``timeout`` for it)."""
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self.link.run(self._stop), name=self.link.name)
        try:
            await asyncio.wait_for(self.link.connected.wait(), timeout)
        except TimeoutError:
            raise aiomqtt.MqttError(f"not connected to {self.link.broker.redacted()}") from None
        await self.link.publish(topic, payload, qos=qos, retain=retain, timeout=timeout)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, 5.0)  # cancelled when the broker does not let go
