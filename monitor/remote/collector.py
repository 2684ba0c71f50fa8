"""``tslcd-monitor collector``: the agents' results, into the same pipeline as ``run``.

Every results batch is checked, whole, before it can touch anything (state, history rings,
the agent's last-seen time, series, the stored seq): its size (the broker, told the MQTT 5
Maximum Packet Size, never even sends a bigger one), every field against the schema
(:mod:`monitor.remote.envelope`), that the topic, the batch and the inventory agree on the commune,
its hosts and its targets, that the agent may speak for it, that its times are plausible
(at most 30 s ahead), that its ``seq`` is above the agent's last accepted one (kept in the
state database) but not ahead of the clock (an agent numbers its batches from its clock in
milliseconds, :mod:`monitor.remote.spool`), and that its cycle is newer than the last
applied. Broker ACLs are the
first guard (an agent may publish only under its province, docs/mqtt.md); the collector
checks again on its own, so that a mistaken ACL or a leaked password still cannot move
another province's communes. Each rejection counts in
``tslcd_collector_rejected_total{reason}``; the log gets at most one line per claimed agent
and reason per minute (:class:`AggregatedLog`; never the payload).

Who may speak for what: with an agents file (``agent id: PROV[/COMMUNE]``) an agent may
report only inside its scope and unknown agents are refused; without one, a batch's vantage
must cover the commune of its topic (the broker's ACLs then decide who may use which topic),
at most 2 x the inventory's communes agent ids are tracked, one silent for a day is
forgotten, and a silent one blanks only the communes it validly reported on.

Agents that fall silent for ``silent_after`` intervals, or that say ``offline`` (their own
last word, or their last will) and are not back within ``offline_grace`` seconds, have their
scope marked silent: its communes go to unknown (never to up) and one ``agent_silent`` alert
fires; their next batch resolves it. A broker restart must not raise that alert for every
agent: the broker then publishes every agent's will, live just before it goes or queued in
the collector's session for just after it is back. So ``offline`` waits out the grace, is
forgotten when the collector itself loses the broker, and is not believed in the first
``settle`` seconds after a (re)connection; the silence timer, restarted at each connection,
still finds an agent that does not come back. Every ``refresh`` seconds the collector
re-renders /metrics (in ``run --mqtt`` only when the central cycle is overdue: each cycle
renders them), checks for silence and publishes the retained status of the communes that
changed (:mod:`monitor.present.status_mqtt`).

A burst (agents replaying their spools after an outage) waits in the broker, not here:
each message is acknowledged only once handled, under an MQTT 5 Receive Maximum, and
reading pauses while the inbox is half full (:class:`ByteBoundedInbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import structlog
from paho.mqtt import client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import Counter

from inventory.model import Commune, Inventory, in_scope
from monitor.common import topics
from monitor.common.backoff import Backoff
from monitor.common.mqtt_link import MqttLink
from monitor.common.mqtt_url import MqttUrl
from monitor.cycle.observation import CommuneObservation
from monitor.present.metrics import CycleStats, Family, count_probes, labels
from monitor.present.status_mqtt import StatusPublisher
from monitor.remote import envelope
from monitor.remote.agents_file import AgentsFileError, load_agents  # noqa: F401 (moved there)
from monitor.service.pipeline import Pipeline
from monitor.service.watch import InventoryWatch

log = structlog.get_logger("collector")

MAX_PAYLOAD = 256 * 1024
#: MQTT v5 Maximum Packet Size the collector announces: the payload limit plus room for the
#: fixed header, topic and properties. The broker then never sends it anything bigger.
PACKET_OVERHEAD = 4096
MAX_AGE = 30 * 86_400.0  # seconds: a batch may have waited in an agent's spool this long
MAX_SKEW = 30.0  # seconds an agent's clock may run ahead of the collector's
AGENT_EXPIRY = 86_400.0  # seconds after which a silent agent no agents file lists is forgotten
REJECT_LOG_WINDOW = 60.0  # seconds: one batch_rejected line per agent and reason per window
MAX_REJECT_KEYS = 100  # (agent, reason) windows at once; beyond, claimed agents are pooled (*)
REJECT_REASONS = ("topic", "too_large", "not_json", "schema", "time", "mismatch",
                  "unknown_commune", "unknown_agent", "scope", "error", "replay", "stale",
                  "unknown_host", "unknown_target", "too_many_agents", "overload",
                  "implausible_seq", "state", "retained")
MAX_PER_TRANSACTION = 500  # batches handled in one store transaction at most
#: Seconds a lone batch waits for others to share its store transaction: at the nation's 330
#: batches/s (10 s interval) one commit per ~30 batches instead of one each (a commit per
#: batch was a tenth of ``run --mqtt``'s CPU); nothing waits when batches are queued.
GATHER = 0.1
#: Bytes of payload the client may hold unread. Two guards keep a burst (agents replaying
#: their spools after an outage) in the broker rather than here, so none of it is shed:
#: MQTT 5 flow control (the collector announces a Receive Maximum of half of this in the
#: biggest allowed batches, 48, and acknowledges each message only once handled), and, for
#: a broker that does not keep the window, reading paused at half of this (TCP holds the
#: rest back; see :class:`ByteBoundedInbox`). Past the bound, messages are shed and counted
#: as ``overload``: the last defence of the collector's memory.
INBOX_BYTES = 24 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CollectorOptions:
    broker: MqttUrl
    ca_file: str | None = None
    agents: Mapping[str, str] | None = None  # agent id -> allowed scope; None: by vantage
    silent_after: float = 3.0  # intervals of the inventory without a batch
    max_payload: int = MAX_PAYLOAD
    refresh: float = 5.0  # seconds between renders of /metrics, silence and status checks
    client_id: str = "tslcd-collector"  # stable: the broker keeps its session across restarts
    retry_max: float = 30.0
    offline_grace: float = 5.0  # seconds an "offline" agent has to say "online" again
    settle: float = 10.0  # seconds after a connection in which "offline" is not believed
    max_unknown_agents: int | None = None  # without an agents file; None: 2 x communes
    agent_expiry: float = AGENT_EXPIRY


@dataclass(slots=True)
class AgentSeen:
    scope: str | None  # None until its first batch (no agents file)
    last: float
    silent: bool = False
    offline_at: float | None = None  # when it said "offline", until it is back
    seq: int = 0
    queued: int = 0
    dropped: int = 0
    listed: bool = False  # named in the agents file (its scope is vouched for)
    communes: set[str] = field(default_factory=set)  # PROV/COMMUNE it validly reported on


class Rejected(Exception):
    def __init__(self, reason: str, message: str, agent: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.agent = agent


@dataclass(slots=True)
class _Window:
    start: float
    count: int  # messages since the last line
    details: dict[str, object]  # the latest message's


class ByteBoundedInbox(asyncio.Queue):  # type: ignore[type-arg]
    """aiomqtt's incoming queue, bounded by the payload bytes it holds, not by count; the
    keeper of the acknowledgements the collector owes the broker, and of the connection's
    reading.

    From :meth:`take_acks` on, the MQTT client no longer acknowledges a QoS 1 message when
    it arrives: :meth:`done` does, once the collector has handled it (a message that arrived
    before was acknowledged by paho and is owed nothing). A conforming broker then has at
    most the Receive Maximum out to the collector. Debian 12's mosquitto (2.0.11) does not
    keep that window: each acknowledgement lets it send a whole window more (measured with a
    window of 5: every PUBACK brought 5 messages, and the unacknowledged count grew without
    bound). So the inbox also stops reading the socket once it holds half its bound and
    reads again at a quarter: the kernel's buffers fill, TCP stops the broker, and the burst
    waits in the broker's memory. (The pause is short, the collector's own pace through at
    most 12 MiB, well within the 30 s keepalive.)

    aiomqtt hands every received message to ``put_nowait`` and drops it (its own warning)
    when that raises ``QueueFull``. A message shed here is lost to this collector: counted
    (``dropped``, for ``tslcd_collector_rejected_total{reason="overload"}``) and, like any
    handled message, acknowledged (unacknowledged, it would hold a place of the window for
    ever). ``peak``: the most payload bytes held at once."""

    limit = INBOX_BYTES

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self.held = 0
        self.peak = 0
        self.dropped = 0
        self.pauses = 0
        self._acker: mqtt.Client | None = None
        self._owed: set[aiomqtt.Message] = set()
        self._reading: _Reading | None = None
        self._window = 0  # the Receive Maximum: owed acknowledgements that stop the broker
        self._more = asyncio.Event()  # set when no more can come or reading pauses

    def take_acks(self, client: mqtt.Client, window: int) -> None:
        """Acknowledge by hand, and pause reading when full, from now on (``client`` is this
        connection's paho client, ``window`` the Receive Maximum it announced)."""
        client.manual_ack_set(True)
        self._acker = client
        self._window = window
        self._reading = _Reading.of(client)

    def put_nowait(self, item: aiomqtt.Message) -> None:
        if self._acker is not None and item.qos > 0:
            self._owed.add(item)
        size = _size(item)
        if self.held + size > self.limit:
            self.dropped += 1
            self.done(item)
            raise asyncio.QueueFull
        super().put_nowait(item)
        self.held += size
        self.peak = max(self.peak, self.held)
        if self.held >= self.limit // 2 and self._reading is not None and \
                self._reading.pause():
            self.pauses += 1
        if self._enough():
            self._more.set()

    def get_nowait(self) -> aiomqtt.Message:
        item = super().get_nowait()
        self.held -= _size(item)
        if self._reading is not None and self.held <= self.limit // 4:
            self._reading.resume()
        return item

    async def gather(self, seconds: float) -> None:
        """Wait ``seconds`` for more messages, or less once no more can come: the inbox half
        full (reading pauses there) or the window used up (unacknowledged messages)."""
        if self._enough():
            return
        self._more.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._more.wait(), seconds)

    def _enough(self) -> bool:
        return self.held >= self.limit // 2 or 0 < self._window <= len(self._owed)

    def done(self, item: aiomqtt.Message) -> None:
        """The message is handled (taken, refused or shed): acknowledge it if owed."""
        if item in self._owed:
            self._owed.discard(item)
            assert self._acker is not None
            self._acker.ack(item.mid, item.qos)

    def take_dropped(self) -> int:
        dropped, self.dropped = self.dropped, 0
        return dropped


@dataclass(slots=True)
class _Reading:
    """The event loop's watch on one MQTT client's socket, which aiomqtt registered with its
    own read callback: :meth:`pause` takes it off the loop (keeping the callback),
    :meth:`resume` puts it back while that socket is still the client's. Asyncio has no
    public way to read a registration back, hence its selector; on a loop without one (not
    the default) reading is never paused and the inbox's bound (shedding) is what remains."""

    client: mqtt.Client
    loop: asyncio.AbstractEventLoop
    fd: int
    paused: tuple[Callable[..., object], tuple[object, ...]] | None = None  # callback, args

    @classmethod
    def of(cls, client: mqtt.Client) -> _Reading | None:
        sock = client.socket()
        loop = asyncio.get_running_loop()
        if sock is None or not hasattr(loop, "_selector"):
            return None
        return cls(client, loop, sock.fileno())

    def pause(self) -> bool:
        """True when this stopped the reading (it was going)."""
        if self.paused is not None:
            return False
        try:
            handle = self.loop._selector.get_key(self.fd).data[0]  # type: ignore[attr-defined]
        except (KeyError, ValueError):  # the socket is gone: nothing to pause
            return False
        if handle is None:
            return False
        self.paused = (handle._callback, handle._args)
        self.loop.remove_reader(self.fd)
        return True

    def resume(self) -> None:
        if self.paused is None:
            return
        (callback, args), self.paused = self.paused, None
        sock = self.client.socket()
        if sock is not None and sock.fileno() == self.fd:  # not closed (or reused) meanwhile
            self.loop.add_reader(self.fd, callback, *args)


def _size(message: aiomqtt.Message) -> int:
    payload = message.payload
    return len(payload) if isinstance(payload, bytes | bytearray | str) else 0


class AggregatedLog:
    """Lines of one event, at most one per claimed agent and kind per window.

    A flood (3,000 bad batches, 300 forged state words) must not become 3,000 log lines:
    the first message of an (agent, kind) is logged at once, later ones are counted and
    logged as one line (``count``, the latest details) when the window ends. The agent is
    the one the message *claims* (or ``?`` when it could not be read); past
    ``MAX_REJECT_KEYS`` distinct claims, new ones are pooled under ``*`` so the log's own
    memory is bounded. ``kind`` is logged under the field ``kind_field`` (``reason`` for
    ``batch_rejected``, ``state`` for ``agent_state``)."""

    def __init__(self, event: str, kind_field: str, level: str = "warning",
                 window: float = REJECT_LOG_WINDOW) -> None:
        self.event, self.kind_field, self.window = event, kind_field, window
        self._log: Callable[..., Any] = getattr(log, level)
        self._windows: dict[tuple[str, str], _Window] = {}

    def note(self, agent: str | None, kind: str, now: float, *, logged: bool = False,
             **details: object) -> bool:
        """Count one message; True when it opened a window (its line is written now,
        unless ``logged``: the caller wrote it, with a traceback)."""
        key = (agent or "?", kind)
        if key not in self._windows and len(self._windows) >= MAX_REJECT_KEYS:
            key = ("*", kind)
        current = self._windows.get(key)
        if current is None:
            self._windows[key] = _Window(now, 0, details)
            if not logged:
                self._line(key, 1, details)
            return True
        current.count += 1
        current.details = details
        return False

    def flush(self, now: float) -> None:
        """Log the windows that ended with messages in them; forget the quiet ones."""
        for key, current in list(self._windows.items()):
            if now - current.start < self.window:
                continue
            if current.count:
                self._line(key, current.count, current.details)
                current.start, current.count = now, 0
            else:
                del self._windows[key]

    def _line(self, key: tuple[str, str], count: int, details: dict[str, object]) -> None:
        self._log(self.event, agent=key[0], count=count, **{self.kind_field: key[1]}, **details)


class Collector:
    def __init__(self, pipeline: Pipeline, options: CollectorOptions,
                 watch: InventoryWatch | None = None) -> None:
        self.pipeline = pipeline
        self.options = options
        self.watch = watch
        self.agents: dict[str, AgentSeen] = {}
        self.accepted = 0
        self.link = MqttLink(options.broker, name="collector", ca_file=options.ca_file,
                             backoff=Backoff(cap=options.retry_max), **self._client_options())
        if pipeline.status is None:  # the retained status goes out on the same connection
            pipeline.status = StatusPublisher(self.link)
        self._probes: Tally[tuple[str, str]] = Tally()
        self._client: aiomqtt.Client | None = None
        self._inbox: ByteBoundedInbox | None = None
        self._subscribed: set[str] = set()  # provinces whose results topics are subscribed
        self._connected_at: float | None = None
        registry = pipeline.exposition.registry
        self.rejected = Counter("tslcd_collector_rejected",
                                "Agents' messages (results batches, state words) refused, by "
                                "reason.", ["reason"], registry=registry)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self.batches = Counter("tslcd_collector_batches", "Results batches accepted.",
                               registry=registry)
        pipeline.exposition.add_source(_AgentFamilies(self.agents))
        self.rejections = AggregatedLog("batch_rejected", "reason")
        self.states = AggregatedLog("agent_state", "state", "info")
        self._cap_for: object = None
        self._cap = 0
        self.seqs = self._load_seqs()  # agent -> (last accepted seq, when): replay guard
        now = time.time()
        for agent, scope in (options.agents or {}).items():
            # expected: silent if never heard
            self.agents[agent] = AgentSeen(scope, now, listed=True,
                                           seq=self.seqs.get(agent, (0, 0.0))[0])

    def _load_seqs(self) -> dict[str, tuple[int, float]]:
        try:
            return self.pipeline.store.agent_seqs()
        except Exception as exc:  # an unreadable state must not stop the collector
            log.error("state_store_error", path=self.pipeline.store.path, error=str(exc))
            return {}

    @property
    def unknown_agent_cap(self) -> int:
        """How many agents no agents file lists may be tracked at once: one per commune and
        one per province, the largest deployment there is (an agent in every commune and a
        province agent beside them)."""
        if self.options.max_unknown_agents is not None:
            return self.options.max_unknown_agents
        inventory = self.pipeline.inventory
        if self._cap_for is not inventory:  # counted once per inventory (reloads change it)
            self._cap_for = inventory
            self._cap = sum(1 for _ in inventory.communes()) + len(inventory.provinces)
        return self._cap

    # ------------------------------------------------------------------ messages

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> bool:
        """One MQTT message: a results batch or an agent's state. True when accepted."""
        parts = topic.split("/")
        try:
            if len(parts) == 5 and topic.startswith(topics.AGENTS_TOPIC + "/") and \
                    parts[4] == "state":
                self._agent_state(parts[3], payload, retained)
                return True
            obs, batch = self._validate(topic, parts, payload, retained)
        except Rejected as exc:
            self.rejected.labels(exc.reason).inc()
            self.note_rejection(exc, topic)
            return False
        self._accept(obs, batch)
        return True

    def note_rejection(self, exc: Rejected, topic: str, *, logged: bool = False) -> bool:
        """Into the aggregated ``batch_rejected`` log (see :class:`AggregatedLog`)."""
        return self.rejections.note(exc.agent, exc.reason, time.time(), logged=logged,
                                    topic=topic[:200], error=str(exc)[:300])

    def _validate(self, topic: str, parts: list[str], payload: bytes,
                  retained: bool) -> tuple[CommuneObservation, envelope.Batch]:
        if len(parts) != 5 or not topic.startswith(topics.RESULTS_TOPIC + "/"):
            raise Rejected("topic", "not a results topic")
        if retained:  # results are never retained: this one would be applied by every
            # collector that subscribes from now on, however old it is
            raise Rejected("retained", "a retained results batch")
        province, commune = parts[3], parts[4]
        if len(payload) > self.options.max_payload:
            raise Rejected("too_large", f"{len(payload)} bytes > {self.options.max_payload}")
        place = self.pipeline.inventory.commune(province, commune)
        if place is None:  # before parsing anything: a made-up commune costs a lookup
            raise Rejected("unknown_commune", f"{province[:16]}/{commune[:16]} is not in the "
                           "inventory")
        try:
            batch = envelope.decode(payload, self._counts(place))
        except envelope.EnvelopeError as exc:
            raise Rejected(exc.reason, str(exc), exc.agent) from None
        obs, agent = batch.observation, batch.agent
        _check_times(batch, time.time())
        if (obs.province, obs.commune) != (province, commune):
            raise Rejected("mismatch", f"batch is for {obs.province}/{obs.commune}", agent)
        self._check_scope(agent, obs)
        _check_inventory(place, self.pipeline.inventory, obs, agent)
        self._check_sequence(batch, time.time())
        return obs, batch

    def _counts(self, place: Commune) -> Callable[[dict[str, Any]], None]:
        """Before the schema's field-by-field checks: no more hosts or targets than the
        inventory has (a hostile batch of 256 made-up hosts costs a ``len``)."""
        hosts, targets = len(place.hosts), len(self.pipeline.inventory.targets)

        def precheck(commune: dict[str, Any]) -> None:
            for field_name, limit, reason in (("hosts", hosts, "unknown_host"),
                                              ("targets", targets, "unknown_target")):
                value = commune.get(field_name)
                if isinstance(value, list) and len(value) > limit:
                    raise envelope.EnvelopeError(
                        reason, f"{len(value)} {field_name}, the inventory has {limit}")
        return precheck

    def _check_sequence(self, batch: envelope.Batch, now: float) -> None:
        """Checks that keep a replayed or made-up agent from refreshing anything: room for a
        new agent id, ``seq`` above the agent's last accepted one but not ahead of the clock
        (:func:`_check_seq_plausible`), and a cycle newer than the last applied for the
        commune and vantage."""
        agent = batch.agent
        _check_seq_plausible(batch, now)
        if agent not in self.agents and self.options.agents is None and \
                len(self.agents) >= self.unknown_agent_cap:
            raise Rejected("too_many_agents",
                           f"already {len(self.agents)} agents without an agents file", agent)
        last = self.seqs.get(agent, (0, 0.0))[0]
        if batch.seq <= last:
            raise Rejected("replay", f"seq {batch.seq} not above {last}", agent)
        if self.pipeline.engine.is_stale(batch.observation):
            raise Rejected("stale", "not newer than the last cycle of this commune and vantage",
                           agent)

    def _check_scope(self, agent: str, obs: CommuneObservation) -> None:
        """The agent may speak for the commune: its vantage is the commune's province or the
        commune itself (nothing else: each vantage keeps state), and (with an agents file)
        the vantage lies inside the agent's allowed scope."""
        if obs.vantage not in (obs.province, f"{obs.province}/{obs.commune}"):
            raise Rejected("scope", f"vantage {obs.vantage[:40]!r} does not cover the commune",
                           agent)
        if self.options.agents is None:
            return
        allowed = self.options.agents.get(agent)
        if allowed is None:
            raise Rejected("unknown_agent", "agent not in the agents file", agent)
        prov, _, comm = obs.vantage.partition("/")
        if not in_scope(allowed, prov, comm or None):
            raise Rejected("scope", f"agent may speak for {allowed} only", agent)

    def _accept(self, obs: CommuneObservation, batch: envelope.Batch) -> None:
        """A validated batch: the state first (in one store transaction with the agent's
        seq); the agent's bookkeeping only once that succeeded."""
        now = time.time()
        with self.pipeline.engine.batch():
            self.pipeline.ingest_commune(obs, obs.vantage)
            self.pipeline.engine.note_agent_seq(batch.agent, batch.seq, now)
        self.seqs[batch.agent] = (batch.seq, now)
        seen = self.agents.get(batch.agent)
        if seen is None:
            seen = self.agents[batch.agent] = AgentSeen(obs.vantage, now)
            log.info("agent_discovered", agent=batch.agent, vantage=obs.vantage)
        if seen.silent:
            log.info("agent_back", agent=batch.agent, scope=seen.scope)
        if seen.seq and batch.dropped > seen.dropped:  # its spool's count, for the file's life
            log.warning("batches_missing", agent=batch.agent, after=seen.seq, next=batch.seq,
                        missing=batch.dropped - seen.dropped, dropped_by_agent=batch.dropped)
        seen.scope = seen.scope or obs.vantage
        seen.communes.add(f"{obs.province}/{obs.commune}")
        seen.last, seen.silent, seen.offline_at = now, False, None
        seen.seq = max(seen.seq, batch.seq)
        seen.queued, seen.dropped = batch.queued, batch.dropped
        self._probes.update(count_probes(_results_of(obs)))
        self.accepted += 1
        self.batches.inc()

    def _agent_state(self, agent: str, payload: bytes, retained: bool) -> None:
        """``online`` cancels a pending ``offline``; a live ``offline`` starts the grace. A
        retained one (an old word) or one just after a connection (wills of a broker
        restart) is left to the silence timer. Anything else is refused (``state``); the
        words of known agents are logged aggregated, so a forged flood is a line a minute."""
        state = envelope.loads_state(payload)
        if state is None:
            raise Rejected("state", "neither online nor offline", envelope.claimed_agent(agent))
        seen = self.agents.get(agent)
        now = time.time()
        settling = self._connected_at is not None and \
            now - self._connected_at < self.options.settle
        believed = state == "offline" and not retained and not settling
        if seen is None:  # not an agent we know: no line per message, nothing to change
            return
        self.states.note(agent, state, now, retained=retained,
                         believed=believed if state == "offline" else None)
        if seen.silent:
            return
        if state == "online":
            seen.offline_at = None
        elif believed and seen.offline_at is None:
            seen.offline_at = now

    # ------------------------------------------------------------------- silence

    def check_silence(self, now: float | None = None) -> list[str]:
        """Mark the scope of every agent quiet for too long; returns the agents marked."""
        now = time.time() if now is None else now
        limit = self.options.silent_after * self.pipeline.inventory.defaults.interval
        self._expire_unlisted(now)
        marked = []
        for agent, seen in self.agents.items():
            if seen.silent or not seen.scope:
                continue
            if seen.offline_at is not None and now - seen.offline_at > self.options.offline_grace:
                self._mark_silent(agent, seen, "offline")
            elif now - seen.last > limit:
                self._mark_silent(agent, seen, "silent")
            else:
                continue
            marked.append(agent)
        return marked

    def _expire_unlisted(self, now: float) -> None:
        """Agents no agents file lists are forgotten (series and all) once silent for
        ``agent_expiry``; their last seq is kept, within a bound, against replays."""
        expired = [a for a, seen in self.agents.items()
                   if not seen.listed and now - seen.last > self.options.agent_expiry]
        for agent in expired:
            del self.agents[agent]
            log.info("agent_forgotten", agent=agent)
        keep = 4 * self.unknown_agent_cap + len(self.options.agents or {})
        if len(self.seqs) > keep:
            oldest = sorted((a for a in self.seqs if a not in self.agents),
                            key=lambda a: self.seqs[a][1])[:len(self.seqs) - keep]
            for agent in oldest:
                del self.seqs[agent]
            with self.pipeline.engine.batch():
                self.pipeline.engine.forget_agent_seqs(oldest)

    def _mark_silent(self, agent: str, seen: AgentSeen, why: str) -> None:
        """An agents file vouches for its agent's whole scope; any other agent only ever
        blanks the communes it validly reported on."""
        seen.silent, seen.offline_at = True, None
        if not seen.scope:
            return
        province, _, commune = seen.scope.partition("/")
        log.warning("agent_silent", agent=agent, scope=seen.scope, reason=why,
                    last_seen=round(seen.last, 3))
        only = None if seen.listed else set(seen.communes)
        self.pipeline.dispatcher.publish_all(
            self.pipeline.engine.mark_silent(province, commune or None, only))

    # -------------------------------------------------------------------- running

    async def run(self, stop: asyncio.Event) -> None:
        """Receive until ``stop``; the timer renders /metrics, checks silence, publishes status."""
        ticker = asyncio.create_task(self._tick_forever())
        try:
            await self._receive(stop)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await self.tick()

    async def _receive(self, stop: asyncio.Event) -> None:
        """Through the one link: subscribe at each connection, then consume until ``stop``."""
        async def session(client: aiomqtt.Client, stop: asyncio.Event) -> None:
            # before the first await: from here on this connection's messages wait for
            # the collector's acknowledgement (see ByteBoundedInbox)
            inbox = client._queue  # the instance of queue_type aiomqtt built for it
            assert isinstance(inbox, ByteBoundedInbox)
            inbox.take_acks(client._client, self.receive_maximum)
            self._inbox = inbox
            await client.subscribe([(f"{topics.AGENTS_TOPIC}/+/state", 1)])
            self._subscribed = set()
            await self._subscribe_provinces(client)
            self._client = client
            self._restart_silence_timers()
            await self._consume(client, stop)

        def down() -> None:
            self._client = None
            self._forget_offline()

        await self.link.run(stop, session, on_down=down)

    def _restart_silence_timers(self) -> None:
        """Agents could not be heard while the collector had no broker: from now, each has
        its full silence window again (their spooled batches arrive within it)."""
        now = self._connected_at = time.time()
        for seen in self.agents.values():
            if not seen.silent:
                seen.last = max(seen.last, now)

    def _forget_offline(self) -> None:
        """The broker is gone: "offline" heard just before is most likely its shutdown's
        wills, not the agents' doing."""
        self._connected_at = None
        for seen in self.agents.values():
            seen.offline_at = None

    async def _subscribe_provinces(self, client: aiomqtt.Client) -> None:
        """Results of the inventory's provinces only: collectors sharded by province (each
        with its part of the inventory) never receive each other's batches."""
        wanted = {p.code for p in self.pipeline.inventory.provinces} - self._subscribed
        if wanted:
            await client.subscribe(
                [(f"{topics.RESULTS_TOPIC}/{code}/+", 1) for code in sorted(wanted)])
            self._subscribed |= wanted

    async def _consume(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        inbox = self._inbox
        assert inbox is not None  # the session set it
        messages = aiter(client.messages)
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                receiving = asyncio.create_task(anext(messages))
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    receiving.cancel()
                    break
                if inbox.empty():  # let the batches of the next moments share its commit
                    await inbox.gather(GATHER)
                self._process(receiving.result(), inbox)
            self._process(None, inbox)  # stopping: what is already here is not lost
        finally:
            stopping.cancel()

    def _process(self, first: aiomqtt.Message | None, inbox: ByteBoundedInbox) -> None:
        """The message in hand and those already queued behind it (at most 500), in one
        store transaction: a burst costs one commit, not one per batch. Each is taken from
        the inbox only when its turn comes, so a burst is held once, bounded there; taken
        directly (no task, no wait per message: the CPU of a busy collector). Each is
        acknowledged once the transaction is over, whatever became of it."""
        taken = [] if first is None else [first]
        try:
            with self.pipeline.engine.batch():
                if first is not None:
                    self._on_message(first)
                while len(taken) < MAX_PER_TRANSACTION and not inbox.empty():
                    taken.append(inbox.get_nowait())
                    self._on_message(taken[-1])
        finally:
            for message in taken:
                inbox.done(message)

    def _on_message(self, message: aiomqtt.Message) -> None:
        payload = message.payload
        if isinstance(payload, str):
            payload = payload.encode()
        elif not isinstance(payload, bytes | bytearray):
            payload = b""
        try:
            self.handle(str(message.topic), bytes(payload), bool(message.retain))
        except Exception as exc:  # whatever a payload does, the collector goes on
            self.rejected.labels("error").inc()
            topic = str(message.topic)[:200]
            failure = Rejected("error", f"{type(exc).__name__}: {str(exc)[:200]}")
            if self.note_rejection(failure, topic, logged=True):
                log.exception("batch_failed", topic=topic)  # the traceback, once a minute

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.options.refresh)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed tick must not end the collector
                log.exception("collector_tick_failed")

    async def tick(self) -> None:
        """Reload a changed inventory, mark silent agents, run the calendar's operations,
        publish status, render /metrics (unless rendered just now)."""
        if self.watch is not None and (inventory := self.watch.poll()) is not None:
            self.pipeline.reload(inventory)
            if self._client is not None:
                await self._subscribe_provinces(self._client)
        self.check_silence()
        self.count_overload()
        self.rejections.flush(time.time())
        self.states.flush(time.time())
        self.pipeline.run_operations()
        await self.pipeline.publish_status()
        if not self._metrics_overdue():
            return
        probes, self._probes = self._probes, Tally()
        await self.pipeline.refresh_metrics(
            CycleStats(None, dict(probes), dict(self.pipeline.agents_heard)))

    def _metrics_overdue(self) -> bool:
        """Whether a tick renders /metrics: always in ``collector``; in ``run --mqtt`` only
        when the central cycle is overdue, for each cycle renders them (the agents' batches
        taken meanwhile with it): a nationwide render costs about 0.2 s of CPU, and the
        renders were a fifth of the process when ticks rendered too. /metrics is never
        older than a cycle and a tick."""
        since = time.monotonic() - self.pipeline.cycle_rendered
        return since >= self.pipeline.inventory.defaults.interval + self.options.refresh

    def count_overload(self) -> None:
        """Batches the inbox shed since the last tick: counted, and one line a minute."""
        dropped = self._inbox.take_dropped() if self._inbox is not None else 0
        if dropped:
            self.rejected.labels("overload").inc(dropped)
            self.note_rejection(Rejected("overload", f"{dropped} batches shed: more than "
                                         f"{ByteBoundedInbox.limit} bytes waiting"), "*")

    @property
    def receive_maximum(self) -> int:
        """Unacknowledged QoS 1 messages the broker may have out to the collector at once:
        as many of the biggest allowed batches as half the inbox holds (where reading would
        pause), so that a conforming broker's window never even pauses it."""
        return max(1, min(0xFFFF, ByteBoundedInbox.limit // (2 * self.options.max_payload)))

    def _client_options(self) -> dict[str, Any]:
        """MQTT v5, so that the broker learns in CONNECT the collector's Maximum Packet Size
        (it drops a bigger publish instead of sending it: paho itself reads a packet whole
        before anyone can look at its length) and its Receive Maximum (flow control: a
        burst waits in the broker's queue for the session, see :class:`ByteBoundedInbox`).
        The session persists like v3's ``clean_session`` false: never a clean start, no
        expiry."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0xFFFFFFFF  # never: the session outlives restarts
        properties.MaximumPacketSize = self.options.max_payload + PACKET_OVERHEAD
        properties.ReceiveMaximum = self.receive_maximum
        return {"identifier": self.options.client_id, "protocol": aiomqtt.ProtocolVersion.V5,
                "queue_type": ByteBoundedInbox,
                "clean_start": False, "properties": properties, "keepalive": 30,
                "max_inflight_messages": 100}


def _check_times(batch: envelope.Batch, now: float) -> None:
    """Every time a batch carries (sent, the cycle's, each result's; they become states'
    and alerts' times) must be plausible: at most ``MAX_SKEW`` ahead, ``MAX_AGE`` old."""
    obs = batch.observation
    times = [batch.sent, obs.at, *(r.started for r in obs.targets)]
    times += [r.started for h in obs.hosts for r in h.results]
    for when in times:
        if not math.isfinite(when) or not now - MAX_AGE <= when <= now + MAX_SKEW:
            raise Rejected("time", f"implausible time {when!r}", batch.agent)


def _check_seq_plausible(batch: envelope.Batch, now: float) -> None:
    """An agent's spool numbers its batches one by one, never below the agent's clock in
    milliseconds (:mod:`monitor.remote.spool`): a genuine ``seq`` is never ahead of that
    clock (unless the agent averaged over 1,000 batches a second), and the
    clock is at most ``MAX_SKEW`` ahead of ours (:func:`_check_times`). Anything beyond is
    made up, and accepting it would store it as the agent's replay guard: one forged batch
    with a huge ``seq`` would lock the real agent out for good."""
    highest = int((now + MAX_SKEW) * 1000)
    if batch.seq > highest:
        raise Rejected("implausible_seq", f"seq {batch.seq} is ahead of the clock "
                       f"(at most {highest})", batch.agent)


def _check_inventory(place: Commune, inventory: Inventory, obs: CommuneObservation,
                     agent: str) -> None:
    """Only the inventory's hosts (by name, at their IP), targets and subnet: a batch can
    never create state, history rings or series the inventory does not have."""
    ips = {h.name: str(h.ip) for h in place.hosts}
    names: set[str] = set()
    for host in obs.hosts:
        if ips.get(host.name) != host.ip or host.name in names:
            raise Rejected("unknown_host", f"host {host.name[:40]!r} at {host.ip} is not the "
                           "inventory's for this commune (or repeated)", agent)
        names.add(host.name)
        if any(r.kind == "target" for r in host.results):
            raise Rejected("schema", f"host {host.name[:40]!r}: a target result", agent)
    # the inventory's targets, each once
    wanted = {t.name for t in inventory.targets}
    seen: set[str] = set()
    for result in obs.targets:
        if result.kind != "target" or result.subject not in wanted or result.subject in seen:
            raise Rejected("unknown_target", f"{result.kind} {result.subject[:40]!r} is not "
                           "the inventory's (or repeated)", agent)
        seen.add(result.subject)
    subnet = place.subnet
    for device in obs.unknown_devices or ():
        if subnet is not None and ipaddress.ip_address(device.ip) not in subnet:
            raise Rejected("schema", f"device {device.ip} outside the subnet {subnet}", agent)


def _results_of(obs: CommuneObservation) -> Iterable[object]:
    yield from obs.targets
    for host in obs.hosts:
        yield from host.results


class _AgentFamilies:
    """Per agent id: its spool as it last reported it, and whether it is marked silent (a
    :class:`~monitor.present.metrics.FamilySource`; runs in the render's worker thread)."""

    def __init__(self, agents: Mapping[str, AgentSeen]) -> None:
        self.agents = agents

    def families(self) -> list[Family]:
        queued = Family("tslcd_agent_spool_queued_batches", "gauge",
                        "Batches waiting in the agent's spool when it last sent.")
        dropped = Family("tslcd_agent_spool_dropped_batches_total", "counter",
                         "Batches the agent dropped past its spool's bound.")
        silent = Family("tslcd_agent_silent", "gauge", "1 while the agent is silent or offline.")
        for agent, seen in sorted(list(self.agents.items())):  # one atomic copy
            label_text = labels(agent_id=agent, scope=seen.scope or "")
            queued.add(label_text, seen.queued)
            dropped.add(label_text, seen.dropped)
            silent.add(label_text, seen.silent)
        return [queued, dropped, silent]
