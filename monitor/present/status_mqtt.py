"""Retained commune status on ``tslcd/v1/status/ISP/PROV/COMMUNE`` (contract section 4).

For the operators' staff: subscribing to ``tslcd/v1/status/VNPT/#`` gives every VNPT line at
once, the current status arriving at subscription (retained), then each change. One
mechanism for ``run`` and ``collector`` alike: the pipeline hands the state to
:meth:`StatusPublisher.publish` on the collector's timer; only communes whose status, backup
state, hosts up or judging vantage changed are (re)published, and all of them at start.

A retained message is republished only when what it says changes: the payload holds the
fused verdict and the vantage that verdict's line comes from (``CommuneState.line_vantages``),
never whichever vantage spoke last, which alternates between the centre and the commune's
agent every cycle in ``run --mqtt``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, NamedTuple, Protocol

import aiomqtt
import structlog

from inventory.model import Commune, Inventory
from monitor.common import clock
from monitor.common.topics import STATUS_TOPIC, topic_segment
from monitor.decide.status import CommuneState, CommuneStatus, MonitorState, carrying_line

log = structlog.get_logger("status_mqtt")
CHUNK = 500  # publishes in flight at once: a nation's 3,321 communes at start in 7 rounds


class Publisher(Protocol):
    """A broker connection (:class:`monitor.common.mqtt_link.MqttLink` and friends)."""

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                      timeout: float = 10.0) -> None: ...


def status_topic(commune: Commune) -> str:
    return f"{STATUS_TOPIC}/{topic_segment(commune.isp)}/{commune.province}/{commune.code}"


class Facts(NamedTuple):
    """What the payload says of the commune's state: the payload is made from these alone,
    so equal facts mean an equal payload (no JSON made to find nothing changed)."""

    status: CommuneStatus
    since: float | None
    hosts_up: int
    hosts_total: int
    on_backup: bool
    line: str | None
    vantage: str | None


def facts(cs: CommuneState) -> Facts:
    return Facts(cs.status, cs.since, sum(1 for h in list(cs.hosts.values()) if h.up is True),
                 len(cs.hosts), cs.on_backup, carrying_line(cs), judging_vantage(cs))


def status_payload(commune: Commune, cs: CommuneState) -> dict[str, Any]:
    return _payload(commune, facts(cs))


def _payload(commune: Commune, f: Facts) -> dict[str, Any]:
    return {
        "province": commune.province,
        "commune": commune.code,
        "commune_name": commune.name,
        "isp": commune.isp,
        "circuit": commune.circuit,
        "status": f.status.name.lower(),
        "code": int(f.status),
        "since": _iso(f.since),
        "hosts_up": f.hosts_up,
        "hosts_total": f.hosts_total,
        "on_backup": f.on_backup,
        "line": f.line,  # primary, backup, none (null: unknown)
        "vantage": f.vantage,
    }


def judging_vantage(cs: CommuneState) -> str | None:
    """The vantage the commune's status is judged from: the first of the views its line's
    verdict came from (central over the commune's own agent, contract §7); None while no
    view speaks for the commune."""
    return cs.line_vantages[0] if cs.line_vantages else None


class StatusBoard:
    """What was last published per commune, to publish only the changes."""

    def __init__(self) -> None:
        self._published: dict[str, tuple[str, bytes]] = {}  # PROV/COMMUNE -> (topic, payload)
        #: PROV/COMMUNE -> the latest payload made, and what it was made from
        self._made: dict[str, tuple[Commune, Facts, bytes]] = {}

    def changes(self, inventory: Inventory, state: MonitorState) -> list[tuple[str, bytes]]:
        """(topic, payload) of every commune whose status differs from what was published;
        a commune that moved to another operator's topic is cleared from the old one."""
        out: list[tuple[str, bytes]] = []
        for commune in inventory.communes():
            cs = state.communes.get(commune.key)
            if cs is None:
                continue
            topic = status_topic(commune)
            payload = self._payload(commune, facts(cs))
            previous = self._published.get(commune.key)
            if previous == (topic, payload):
                continue
            if previous is not None and previous[0] != topic:
                out.append((previous[0], b""))  # an empty retained message deletes it
            out.append((topic, payload))
        return out

    def _payload(self, commune: Commune, now: Facts) -> bytes:
        """The commune's payload, made again only when the commune or its facts changed."""
        made = self._made.get(commune.key)
        if made is not None and made[0] is commune and made[1] == now:
            return made[2]
        payload = json.dumps(_payload(commune, now), ensure_ascii=False,
                             separators=(",", ":")).encode()
        self._made[commune.key] = (commune, now, payload)
        return payload

    def published(self, topic_payloads: list[tuple[str, bytes]],
                  inventory: Inventory) -> None:
        """Record what the broker acknowledged."""
        by_topic = {status_topic(c): c.key for c in inventory.communes()}
        for topic, payload in topic_payloads:
            key = by_topic.get(topic)
            if key is not None and payload:
                self._published[key] = (topic, payload)


class StatusPublisher:
    """The retained status as a sink of the state: what changed since the broker last
    acknowledged, QoS 1, retained; a failure leaves it unacknowledged for the next call."""

    def __init__(self, broker: Publisher, timeout: float = 5.0) -> None:
        self.broker = broker
        self.timeout = timeout
        self.board = StatusBoard()

    async def publish(self, inventory: Inventory, state: MonitorState) -> int:
        """Publish the changes; returns how many messages the broker acknowledged."""
        changes = self.board.changes(inventory, state)
        sent = 0
        for start in range(0, len(changes), CHUNK):
            chunk = changes[start:start + CHUNK]
            try:
                await asyncio.gather(*(
                    self.broker.publish(topic, payload, qos=1, retain=True,
                                        timeout=self.timeout)
                    for topic, payload in chunk))
            except aiomqtt.MqttError as exc:
                log.warning("status_publish_failed", error=str(exc))
                break
            self.board.published(chunk, inventory)
            sent += len(chunk)
        return sent


def _iso(when: float | None) -> str | None:
    return None if when is None else clock.iso(when)
