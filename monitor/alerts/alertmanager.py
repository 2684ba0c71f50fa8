"""Alert events to Prometheus Alertmanager (contract section 8), posted as Prometheus posts.

Alertmanager keeps an alert firing until its ``endsAt``. So the sink re-sends every firing
alert each ``resend`` seconds with ``endsAt`` ``EXPIRE_AFTER`` resends ahead: a lost POST or
a restarted Alertmanager heals at the next resend, and the alerts of a dead monitor expire
on their own, its ``Watchdog`` with them (which is what a dead man's switch notices). A
resolution is sent at once with ``endsAt`` = now.

The labels carry only what both monitors of an HA pair agree on (the event and the place,
with the operator and circuit from the inventory), never the alert id or a time: the pair's
alerts share one fingerprint and Alertmanager de-duplicates them. Two firings with the same
labels (two unknown devices in one commune) are one Alertmanager alert, resolved when the
last of them is.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import structlog

from inventory.model import Commune, Contact, Inventory
from monitor.alerts.event import VN_TZ, AlertEvent
from monitor.common.backoff import Backoff
from monitor.common.config import Config
from monitor.common.log import safe_url

log = structlog.get_logger("alertmanager")

#: Seconds between two sends of the firing alerts (Prometheus' resend delay is one minute).
RESEND = 60.0
#: A firing alert ends this many resends after its last send, unless sent again.
EXPIRE_AFTER = 4
WATCHDOG = "Watchdog"
DEFAULT_BACKOFF = Backoff()
#: Alerts per resend POST: thousands of communes behind one cut trunk stay small requests.
BATCH = 500
WATCHDOG_SUMMARY = ("Giám sát TSLCD đang hoạt động: cảnh báo này luôn bật "
                    "(dead man's switch); khi nó tắt, máy giám sát đã ngừng")

Labels = dict[str, str]
LabelKey = frozenset[tuple[str, str]]
AmAlert = dict[str, Any]


class RejectedError(Exception):
    """Alertmanager refused the alerts (HTTP 4xx but 408/429): retrying cannot help."""


def contacts_text(contacts: Sequence[Contact]) -> str:
    """``Nguyễn Văn A (cán bộ CNTT xã) 0912 345 678``, several joined by ``; ``."""
    parts = []
    for contact in contacts:
        text = contact.name + (f" ({contact.role})" if contact.role else "")
        text += "".join(f" {value}" for value in (contact.phone, contact.email) if value)
        parts.append(text)
    return "; ".join(parts)


def alert_labels(event: AlertEvent, commune: Commune | None) -> Labels:
    """The identity of an alert in Alertmanager: the same in every monitor of a pair."""
    labels = {"alertname": event.event, "severity": event.severity}
    place = {"province": event.province, "commune": event.commune, "host": event.host}
    labels.update({key: value for key, value in place.items() if value})
    if commune is not None:
        if commune.isp:
            labels["isp"] = commune.isp
        if commune.circuit:
            labels["circuit"] = commune.circuit
    return labels


def page_link(page: str, event: AlertEvent) -> str:
    """The commune's page on the status site (``/#/PROV/COMMUNE``, as app.js routes)."""
    base = page.rstrip("/") + "/"
    if event.province and event.commune:
        return f"{base}#/{event.province}/{event.commune}"
    return base


def to_alert(event: AlertEvent, inventory: Inventory, page: str) -> AmAlert:
    """One alert event as an Alertmanager alert (``endsAt`` is set when sent)."""
    commune = (inventory.commune(event.province, event.commune)
               if event.province and event.commune else None)
    annotations = {"summary": event.message}
    if commune is not None:
        province = inventory.province(commune.province)
        annotations["commune_name"] = commune.name
        if province is not None:
            annotations["province_name"] = province.name
        if commune.contacts:
            annotations["contacts"] = contacts_text(commune.contacts)
    return {"labels": alert_labels(event, commune), "annotations": annotations,
            "startsAt": event.since, "generatorURL": page_link(page, event)}


def rfc3339(timestamp: float) -> str:
    """Vietnam time, like the events' ``since``: the emails show what they were sent."""
    return dt.datetime.fromtimestamp(timestamp, VN_TZ).isoformat(timespec="milliseconds")


def watchdog_alert(since: float, page: str) -> AmAlert:
    """Always firing while the monitor runs; labels shared by both monitors of a pair."""
    return {"labels": {"alertname": WATCHDOG, "severity": "none"},
            "annotations": {"summary": WATCHDOG_SUMMARY},
            "startsAt": rfc3339(since), "generatorURL": page.rstrip("/") + "/"}


def page_url(listen: tuple[str, int], tls: bool) -> str:
    """The status page's address from the monitor's listen address."""
    host, port = listen
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{host}:{port}/"


class AlertmanagerSink:
    """POST /api/v2/alerts of one Alertmanager; firing alerts and the Watchdog re-sent."""

    def __init__(self, url: str, inventory: Callable[[], Inventory], *, page: str,
                 resend: float = RESEND, backoff: Backoff = DEFAULT_BACKOFF,
                 timeout: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        self.endpoint = url.rstrip("/") + "/api/v2/alerts"
        self.name = f"alertmanager {safe_url(url)}"  # never the credentials or query
        self.inventory = inventory
        self.page = page
        self.resend = resend
        self.backoff = backoff
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.clock = clock
        self._watchdog = watchdog_alert(clock(), page)
        self._firing: dict[LabelKey, dict[str, AmAlert]] = {}  # labels -> event id -> alert
        self._key_of: dict[str, LabelKey] = {}  # event id -> its labels, while firing
        self._session: aiohttp.ClientSession | None = None
        self._resender: asyncio.Task[None] | None = None
        # One POST at a time, so a resend never overtakes a resolution: Alertmanager keeps
        # whichever arrived last.
        self._sending = asyncio.Lock()

    async def start(self) -> None:
        """Begin the periodic resend (the Watchdog goes out at once)."""
        if self._resender is None:
            self._resender = asyncio.create_task(self._resend_forever(), name=self.name)

    async def deliver(self, event: AlertEvent) -> None:
        alert = to_alert(event, self.inventory(), self.page)
        if event.state == "firing":
            key: LabelKey = frozenset(alert["labels"].items())
            self._firing.setdefault(key, {})[event.id] = alert
            self._key_of[event.id] = key
            await self._post_retrying([self._ahead(self._merged(key))])
            return
        # What fired is what resolves, even if the inventory renamed the operator since.
        key = self._key_of.pop(event.id, frozenset(alert["labels"].items()))
        same = self._firing.get(key, {})
        opened = same.pop(event.id, None)
        if same:  # another firing with these labels goes on
            return
        self._firing.pop(key, None)
        if opened is not None:
            alert["labels"], alert["startsAt"] = opened["labels"], opened["startsAt"]
        alert["endsAt"] = rfc3339(max(self.clock(), _parse(alert["startsAt"])))
        await self._post_retrying([alert])

    def firing(self) -> list[AmAlert]:
        """What a resend posts: the Watchdog and each firing label set, ending a few resends
        ahead."""
        alerts = [self._watchdog] + [self._merged(key) for key in self._firing]
        return [self._ahead(alert) for alert in alerts]

    def _ahead(self, alert: AmAlert) -> AmAlert:
        """The alert ending ``EXPIRE_AFTER`` resends from now, unless sent again."""
        return {**alert, "endsAt": rfc3339(self.clock() + self.resend * EXPIRE_AFTER)}

    def _merged(self, key: LabelKey) -> AmAlert:
        """The latest firing of a label set, starting when the earliest one did."""
        alerts = list(self._firing[key].values())
        starts = min(alerts, key=lambda a: _parse(a["startsAt"]))["startsAt"]
        return {**alerts[-1], "startsAt": starts}

    async def _resend_forever(self) -> None:
        while True:
            try:
                async with self._sending:
                    alerts = self.firing()
                    for start in range(0, len(alerts), BATCH):
                        await self._post(alerts[start:start + BATCH])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next resend heals it
                log.warning("alertmanager_resend_failed", sink=self.name,
                            error=_describe(exc))
            await asyncio.sleep(self.resend)

    async def _post_retrying(self, alerts: list[AmAlert]) -> None:
        for failures in range(1, self.backoff.attempts + 1):
            try:
                async with self._sending:
                    await self._post(alerts)
                return
            except RejectedError:
                raise
            except Exception as exc:
                if failures == self.backoff.attempts:
                    raise
                delay = self.backoff.delay(failures)
                log.warning("alert_delivery_retry", sink=self.name, attempt=failures,
                            retry_in=round(delay, 3), error=_describe(exc))
                await asyncio.sleep(delay)

    async def _post(self, alerts: list[AmAlert]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        body = json.dumps(alerts, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "tslcd-monitor"}
        async with self._session.post(self.endpoint, data=body, headers=headers) as response:
            if 200 <= response.status < 300:
                return
            detail = (await response.text())[:200]
            if response.status in (408, 429) or response.status >= 500:
                raise RuntimeError(f"HTTP {response.status}")
            raise RejectedError(f"HTTP {response.status}: {detail}")

    async def close(self) -> None:
        """Stop resending (the alerts then expire: a stopped monitor is a dead one)."""
        resender, self._resender = self._resender, None
        if resender is not None:
            resender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await resender
        if self._session is not None:
            await self._session.close()
            self._session = None


def _parse(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def _describe(exc: BaseException) -> str:
    """aiohttp errors can embed the full URL (and its credentials): only their type."""
    if isinstance(exc, aiohttp.ClientError):
        return type(exc).__name__
    return str(exc) or type(exc).__name__


def alertmanager_sinks(config: Config,
                       inventory: Callable[[], Inventory]) -> list[AlertmanagerSink]:
    """A sink per Alertmanager of ``alerts.alertmanagers`` (each of a cluster is posted)."""
    page = page_url(config.listen_host_port, tls=config.tls_cert is not None)
    return [AlertmanagerSink(am.url, inventory, page=page) for am in config.alertmanagers]
