"""Alert delivery: log, webhook and MQTT, each behind its own queue.

The probe loop only ever calls :meth:`Dispatcher.publish`, which never waits: every sink has
its own asyncio queue and worker, so a slow or dead receiver delays nothing but itself.
Each event carries its stable id (also sent as the ``Idempotency-Key`` header), so a receiver
drops the duplicates that retries and restarts can cause (at-least-once delivery).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import aiohttp
import structlog

from inventory.model import Inventory
from monitor.alerts.alertmanager import AlertmanagerSink, alertmanager_sinks
from monitor.alerts.event import AlertEvent
from monitor.common.backoff import Backoff
from monitor.common.config import Config
from monitor.common.log import safe_url
from monitor.common.mqtt_link import BackgroundLink, MqttLink
from monitor.common.mqtt_url import parse_mqtt_url

log = structlog.get_logger("sinks")

ALERT_TOPIC = "tslcd/v1/alerts"
DELIVERY = Backoff()  # six attempts over about half a minute


class PermanentError(Exception):
    """A failure that retrying cannot fix (the receiver rejected the event)."""


class Sink(Protocol):
    name: str

    async def deliver(self, event: AlertEvent) -> None:
        """Deliver one event, retrying as the sink sees fit; raise when giving up."""

    async def close(self) -> None: ...


class Outbox(Protocol):
    """Where events wait until every sink has had them (the state database's outbox), so
    that a restart sends again what a crash cut short."""

    def outbox_pending(self) -> Iterable[AlertEvent]: ...

    def outbox_done(self, event: AlertEvent) -> None: ...


async def with_retries(sink: str, event: AlertEvent, backoff: Backoff,
                       attempt: Callable[[], Awaitable[None]]) -> None:
    """Run ``attempt`` until it succeeds, fails permanently, or attempts run out (raises)."""
    for failures in range(1, backoff.attempts + 1):
        try:
            await attempt()
            return
        except PermanentError:
            raise
        except Exception as exc:
            if failures == backoff.attempts:
                raise
            delay = backoff.delay(failures)
            log.warning("alert_delivery_retry", sink=sink, id=event.id, attempt=failures,
                        retry_in=round(delay, 3), error=_describe(exc))
            await asyncio.sleep(delay)


class LogSink:
    """Every alert as one structlog event (``alert``), for journald/Loki."""

    name = "log"

    async def deliver(self, event: AlertEvent) -> None:
        fields = event.to_dict()
        fields["alert"] = fields.pop("event")  # "event" is structlog's own key
        if event.state == "firing" and event.severity == "critical":
            log.error("alert", **fields)
        else:
            log.warning("alert", **fields)

    async def close(self) -> None:
        return None


class WebhookSink:
    """JSON POST of each event; 408, 429, 5xx and network errors are retried."""

    def __init__(self, url: str, *, backoff: Backoff = DELIVERY, timeout: float = 10.0) -> None:
        self.url = url
        self.name = f"webhook {safe_url(url)}"  # never the credentials or query (tokens)
        self.backoff = backoff
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def deliver(self, event: AlertEvent) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        await with_retries(self.name, event, self.backoff, lambda: self._post(event))

    async def _post(self, event: AlertEvent) -> None:
        assert self._session is not None
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": event.id,
            "User-Agent": "tslcd-monitor",
        }
        async with self._session.post(self.url, data=event.to_json().encode("utf-8"),
                                      headers=headers) as response:
            if 200 <= response.status < 300:
                return
            if response.status in (408, 429) or response.status >= 500:
                raise RuntimeError(f"HTTP {response.status}")
            raise PermanentError(f"HTTP {response.status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class MqttSink:
    """QoS 1, not retained, on ``tslcd/v1/alerts/PROV`` (``central`` for events without a
    province, e.g. the election system unreachable from the central monitor); another
    ``topic`` prefix for the escalation sink (``tslcd/v1/escalations/PROV``)."""

    def __init__(self, url: str, *, backoff: Backoff = DELIVERY, timeout: float = 10.0,
                 identifier: str | None = None, topic: str = ALERT_TOPIC,
                 ca_file: str | None = None) -> None:
        broker = parse_mqtt_url(url)
        self.topic = topic
        self.name = f"mqtt {broker.redacted()}"
        self.backoff = backoff
        self.timeout = timeout
        # the one link: it reconnects on its own, paced by the same backoff
        self._link = BackgroundLink(MqttLink(
            broker, name=self.name, ca_file=ca_file, backoff=backoff, identifier=identifier,
            timeout=timeout))

    async def deliver(self, event: AlertEvent) -> None:
        await with_retries(self.name, event, self.backoff, lambda: self._publish(event))

    async def _publish(self, event: AlertEvent) -> None:
        topic = f"{self.topic}/{event.province or 'central'}"
        await self._link.publish(topic, event.to_json().encode("utf-8"), qos=1, retain=False,
                                 timeout=self.timeout)

    async def close(self) -> None:
        await self._link.close()


def sinks_from_config(config: Config,
                      inventory: Callable[[], Inventory] | None = None) -> list[Sink]:
    """The log, plus every webhook and the MQTT broker of ``alerts:`` (contract section 6)."""
    sinks: list[Sink] = [LogSink()]
    sinks += [WebhookSink(hook.url) for hook in config.webhooks]
    if config.alerts_mqtt_url:
        sinks.append(MqttSink(config.alerts_mqtt_url, ca_file=config.alerts_mqtt_ca_file))
    if inventory is not None:  # Alertmanager labels carry the inventory's operator, circuit
        sinks += alertmanager_sinks(config, inventory)
    return sinks


def escalation_sinks_from_config(config: Config) -> list[Sink]:
    """``alerts.escalation``: the supervisors' webhooks and MQTT topic (empty: none)."""
    sinks: list[Sink] = [WebhookSink(hook.url) for hook in config.escalation_webhooks]
    if config.escalation_mqtt_url:
        sinks.append(MqttSink(config.escalation_mqtt_url, topic=config.escalation_mqtt_topic))
    return sinks


class Dispatcher:
    """Fan-out of alert events to every sink, one queue and worker per sink.

    With a store, events still in its outbox (the process stopped before they were handed to
    every sink) are sent again at start, and marked done once every sink delivered them or
    gave up.
    """

    def __init__(self, sinks: Iterable[Sink], *, queue_size: int = 10_000,
                 store: Outbox | None = None, stop_timeout: float = 10.0) -> None:
        self.sinks = list(sinks)
        self.store = store
        self.stop_timeout = stop_timeout
        self._queues = [asyncio.Queue[AlertEvent](maxsize=queue_size) for _ in self.sinks]
        self._workers: list[asyncio.Task[None]] = []
        self._remaining: dict[tuple[str, str], int] = {}

    async def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(sink, queue), name=f"alerts {sink.name}")
            for sink, queue in zip(self.sinks, self._queues, strict=True)
        ]
        for sink in self.sinks:  # the Alertmanager sinks re-send on their own timer
            if isinstance(sink, AlertmanagerSink):
                await sink.start()
        if self.store is not None:
            for event in self.store.outbox_pending():
                self.publish(event)

    def publish(self, event: AlertEvent) -> None:
        """Queue the event for every sink; never waits (drops the oldest when a queue is full)."""
        if not self.sinks:
            self._done(event)
            return
        self._remaining[(event.id, event.state)] = len(self.sinks)
        for sink, queue in zip(self.sinks, self._queues, strict=True):
            if queue.full():
                dropped = queue.get_nowait()
                queue.task_done()
                log.error("alert_queue_full", sink=sink.name, dropped=dropped.id)
                self._handled(dropped)
            queue.put_nowait(event)

    def publish_all(self, events: Iterable[AlertEvent]) -> None:
        for event in events:
            self.publish(event)

    async def stop(self) -> None:
        """Flush what is queued (bounded by ``stop_timeout``), then stop the workers."""
        try:
            await asyncio.wait_for(
                asyncio.gather(*(q.join() for q in self._queues)), self.stop_timeout)
        except TimeoutError:
            log.warning("alert_flush_timeout", pending=sum(q.qsize() for q in self._queues))
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        for sink in self.sinks:
            await sink.close()

    async def _work(self, sink: Sink, queue: asyncio.Queue[AlertEvent]) -> None:
        while True:
            event = await queue.get()
            try:
                await sink.deliver(event)
            except asyncio.CancelledError:  # stopped mid-delivery: stays in the outbox
                queue.task_done()
                raise
            except Exception as exc:
                log.error("alert_delivery_failed", sink=sink.name, id=event.id,
                          error=_describe(exc))
            queue.task_done()
            self._handled(event)

    def _handled(self, event: AlertEvent) -> None:
        key = (event.id, event.state)
        left = self._remaining.get(key, 1) - 1
        if left > 0:
            self._remaining[key] = left
            return
        self._remaining.pop(key, None)
        self._done(event)

    def _done(self, event: AlertEvent) -> None:
        if self.store is not None:
            self.store.outbox_done(event)


def _describe(exc: BaseException) -> str:
    """An error for the logs; aiohttp errors can embed the full URL, so only the type."""
    if isinstance(exc, aiohttp.ClientError):
        return type(exc).__name__
    return str(exc) or type(exc).__name__
