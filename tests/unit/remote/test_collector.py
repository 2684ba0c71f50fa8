"""The collector's checks and silence handling, fed real envelopes (no broker needed)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from inventory.loader import load
from inventory.model import Inventory
from monitor.common import topics
from monitor.common.config import Config
from monitor.common.mqtt_url import parse_mqtt_url
from monitor.cycle.observation import CommuneObservation, HostObservation
from monitor.decide.status import CommuneStatus
from monitor.present.status_mqtt import StatusBoard, status_topic
from monitor.remote import envelope
from monitor.remote.agents_file import load_agents
from monitor.remote.collector import Collector, CollectorOptions
from monitor.service.pipeline import Pipeline
from tests.support.agentlab import write_inventory

BROKER = parse_mqtt_url("mqtt://127.0.0.1:1")  # never connected in these tests


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    return load(write_inventory(tmp_path / "inv.yaml"))


@pytest.fixture
async def pipeline(inventory: Inventory) -> AsyncIterator[Pipeline]:
    pipeline = Pipeline(inventory, Config(), None)
    await pipeline.start()
    yield pipeline
    await pipeline.stop()


def batch(inventory: Inventory, key: str, *, vantage: str | None = None, agent: str = "agent-75",
          seq: int | None = None, alive: bool = True, at: float | None = None,
          dropped: int = 0) -> bytes:
    province, _, code = key.partition("/")
    commune = inventory.commune(province, code)
    assert commune is not None
    obs = CommuneObservation(
        province, code, at or time.time(), vantage or province,
        hosts=tuple(HostObservation(h.name, str(h.ip), alive) for h in commune.hosts),
        gateway_alive=alive)
    seq = next(_SEQS) if seq is None else seq
    return envelope.encode(agent, seq, time.time(), 0, dropped, envelope.encode_body(obs))


_SEQS = itertools.count(1)  # every batch of these tests is a new one: seq always increases


def first_key(inventory: Inventory, province: str) -> str:
    return next(c.key for c in inventory.communes() if c.province == province)


def rejected(collector: Collector, reason: str) -> float:
    return collector.rejected.labels(reason)._value.get()


async def test_a_valid_batch_moves_the_state(pipeline: Pipeline, inventory: Inventory) -> None:
    collector = Collector(pipeline, CollectorOptions(BROKER))
    key = first_key(inventory, "75")
    assert collector.handle(f"tslcd/v1/results/{key}", batch(inventory, key))
    assert pipeline.engine.state.communes[key].status == CommuneStatus.OK
    assert pipeline.agents_heard.keys() == {"75"}


@pytest.mark.parametrize(
    ("reason", "topic", "payload"),
    [
        ("not_json", "tslcd/v1/results/75/{c75}", b"{not json"),
        ("schema", "tslcd/v1/results/75/{c75}", b'{"schema": 1, "agent": "a", "seq": 1}'),
        ("schema", "tslcd/v1/results/75/{c75}", b'{"schema": 99}'),
        ("too_large", "tslcd/v1/results/75/{c75}", b"x" * 300_000),
        ("topic", "tslcd/v1/results/75", b"{}"),
        ("unknown_commune", "tslcd/v1/results/75/99999", None),
    ],
)
async def test_bad_payloads_are_rejected_with_a_reason_and_a_log_line(
        pipeline: Pipeline, inventory: Inventory, reason: str, topic: str,
        payload: bytes | None) -> None:
    collector = Collector(pipeline, CollectorOptions(BROKER))
    c75 = first_key(inventory, "75").partition("/")[2]
    topic = topic.format(c75=c75)
    if payload is None:  # a well-formed batch for a commune the inventory does not have
        body = json.loads(batch(inventory, f"75/{c75}"))
        body["commune"]["commune"] = "99999"
        payload = json.dumps(body).encode()
    with capture_logs() as logs:
        assert not collector.handle(topic, payload)
    assert rejected(collector, reason) == 1
    line = next(e for e in logs if e["event"] == "batch_rejected")
    assert line["reason"] == reason and line["topic"] == topic
    assert "x" * 300 not in json.dumps(line)  # never the payload
    assert all(cs.status == CommuneStatus.UNKNOWN for cs in pipeline.engine.state.communes.values())


async def test_an_agent_cannot_report_on_another_province(
        pipeline: Pipeline, inventory: Inventory) -> None:
    collector = Collector(pipeline, CollectorOptions(BROKER))
    k01, k75 = first_key(inventory, "01"), first_key(inventory, "75")
    # vantage 75 claiming a commune of 01, on 01's topic
    assert not collector.handle(f"tslcd/v1/results/{k01}", batch(inventory, k01, vantage="75"))
    # a batch for 01 under 75's topic
    assert not collector.handle(f"tslcd/v1/results/{k75}", batch(inventory, k01))
    assert rejected(collector, "scope") == 1 and rejected(collector, "mismatch") == 1
    assert pipeline.engine.state.communes[k01].status == CommuneStatus.UNKNOWN


async def test_with_an_agents_file_an_agent_speaks_only_for_its_scope(
        pipeline: Pipeline, inventory: Inventory, tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text('agents:\n  agent-75: "75"\n', encoding="utf-8")
    collector = Collector(pipeline, CollectorOptions(BROKER, agents=load_agents(path)))
    k01, k75 = first_key(inventory, "01"), first_key(inventory, "75")
    with capture_logs() as logs:
        # agent-75 pretending to be province 01's vantage: consistent, but not its scope
        assert not collector.handle(f"tslcd/v1/results/{k01}",
                                    batch(inventory, k01, agent="agent-75"))
        assert not collector.handle(f"tslcd/v1/results/{k01}",
                                    batch(inventory, k01, agent="agent-99"))
        assert collector.handle(f"tslcd/v1/results/{k75}", batch(inventory, k75))
    assert rejected(collector, "scope") == 1 and rejected(collector, "unknown_agent") == 1
    agents = [e.get("agent") for e in logs if e["event"] == "batch_rejected"]
    assert agents == ["agent-75", "agent-99"]


async def test_a_silent_agent_makes_its_communes_unknown_and_raises_one_alert(
        pipeline: Pipeline, inventory: Inventory) -> None:
    collector = Collector(pipeline, CollectorOptions(BROKER, silent_after=3))
    keys = [c.key for c in inventory.communes() if c.province == "75"]
    for key in keys:
        assert collector.handle(f"tslcd/v1/results/{key}", batch(inventory, key))
    assert {pipeline.engine.state.communes[k].status for k in keys} == {CommuneStatus.OK}
    assert collector.check_silence(time.time() + 1.0) == []  # not yet: 3 intervals of 1 s
    published: list[str] = []
    pipeline.dispatcher.publish = lambda ev: published.append(f"{ev.event}:{ev.state}")  # type: ignore[method-assign]
    assert collector.check_silence(time.time() + 10.0) == ["agent-75"]
    assert {pipeline.engine.state.communes[k].status for k in keys} == {CommuneStatus.UNKNOWN}
    assert published == ["agent_silent:firing"]
    assert collector.check_silence(time.time() + 20.0) == []  # reported once
    collector.handle(f"tslcd/v1/results/{keys[0]}", batch(inventory, keys[0]))
    assert "agent_silent:resolved" in published


async def test_offline_marks_the_agent_silent_after_the_grace(
        pipeline: Pipeline, inventory: Inventory) -> None:
    collector = Collector(pipeline, CollectorOptions(BROKER, offline_grace=1.0))
    key = first_key(inventory, "75")
    collector.handle(f"tslcd/v1/results/{key}", batch(inventory, key))
    collector.handle("tslcd/v1/agents/agent-75/state", b"offline")
    assert collector.check_silence() == []  # within the grace: it may come back
    assert collector.check_silence(time.time() + 1.5) == ["agent-75"]  # before 3 intervals
    assert pipeline.engine.state.communes[key].status == CommuneStatus.UNKNOWN
    assert collector.agents["agent-75"].silent


@pytest.mark.parametrize("back", [b"online", "batch"])
async def test_an_agent_back_within_the_grace_is_not_silent(
        pipeline: Pipeline, inventory: Inventory, back: bytes | str) -> None:
    collector = Collector(pipeline, CollectorOptions(BROKER, offline_grace=1.0))
    key = first_key(inventory, "75")
    collector.handle(f"tslcd/v1/results/{key}", batch(inventory, key))
    collector.handle("tslcd/v1/agents/agent-75/state", b"offline")
    if isinstance(back, bytes):
        collector.handle("tslcd/v1/agents/agent-75/state", back)
    else:
        collector.handle(f"tslcd/v1/results/{key}", batch(inventory, key))
    assert collector.check_silence(time.time() + 1.5) == []
    assert pipeline.engine.state.communes[key].status != CommuneStatus.UNKNOWN


async def test_offline_that_is_old_or_from_a_broker_restart_is_left_to_the_silence_timer(
        pipeline: Pipeline, inventory: Inventory) -> None:
    collector = Collector(pipeline, CollectorOptions(BROKER, offline_grace=1.0))
    key = first_key(inventory, "75")
    collector.handle(f"tslcd/v1/results/{key}", batch(inventory, key))
    collector.handle("tslcd/v1/agents/agent-75/state", b"offline", retained=True)
    assert collector.agents["agent-75"].offline_at is None
    collector.handle("tslcd/v1/agents/agent-75/state", b"offline")
    collector._forget_offline()  # the collector lost the broker: its shutdown's wills
    collector._restart_silence_timers()  # ... and is back: wills queued for it follow
    collector.handle("tslcd/v1/agents/agent-75/state", b"offline")
    assert collector.check_silence(time.time() + 1.5) == []
    interval = inventory.defaults.interval
    assert collector.check_silence(time.time() + 3 * interval + 1) == ["agent-75"]


async def test_agents_file_agents_never_heard_become_silent(
        pipeline: Pipeline, inventory: Inventory) -> None:
    collector = Collector(pipeline, CollectorOptions(BROKER, agents={"agent-01": "01"}))
    assert collector.check_silence(time.time() + 60) == ["agent-01"]


def test_status_board_publishes_changes_only_and_moves_topics(inventory: Inventory) -> None:
    from monitor.decide.engine import StateEngine

    engine = StateEngine(inventory)
    board = StatusBoard()
    first = board.changes(inventory, engine.state)
    assert len(first) == sum(1 for _ in inventory.communes())
    payload = json.loads(first[0][1])
    assert payload["status"] == "unknown" and payload["code"] == 3
    board.published(first, inventory)
    assert board.changes(inventory, engine.state) == []
    commune = next(inventory.communes())
    engine.apply(CommuneObservation(commune.province, commune.code, time.time(), "75",
                                    hosts=tuple(HostObservation(h.name, str(h.ip), True)
                                                for h in commune.hosts), gateway_alive=True))
    changed = board.changes(inventory, engine.state)
    assert [t for t, _ in changed] == [status_topic(commune)]
    assert json.loads(changed[0][1])["hosts_up"] == len(commune.hosts)


def test_topic_segments_are_safe() -> None:
    assert topics.topic_segment("VNPT") == "VNPT"
    assert topics.topic_segment("A/B+#") == "A-B--"
    assert topics.topic_segment("  ") == "unassigned"
    with pytest.raises(ValueError):
        envelope.check_agent_id("agent/75")


@pytest.mark.parametrize(("at", "ahead", "reason"), [
    (float("nan"), False, "schema"), (float("inf"), False, "schema"), (-1.0, False, "schema"),
    (1e300, False, "time"), (0.0, False, "time"), (86_400.0, True, "time"),
    (60.0, True, "time")])
async def test_implausible_times_are_rejected(pipeline: Pipeline, inventory: Inventory,
                                              at: float, ahead: bool, reason: str) -> None:
    """Not a finite Unix time: the schema; more than 30 s ahead or a month old: time.
    ``ahead`` times are seconds from now, taken when the test runs (not when collected)."""
    collector = Collector(pipeline, CollectorOptions(BROKER))
    key = first_key(inventory, "75")
    body = json.loads(batch(inventory, key))
    body["commune"]["at"] = time.time() + at if ahead else at
    assert not collector.handle(f"tslcd/v1/results/{key}", json.dumps(body).encode())
    assert rejected(collector, reason) == 1
    assert pipeline.engine.state.communes[key].status == CommuneStatus.UNKNOWN


@pytest.mark.parametrize("command", ["collector", "trial"])
def test_a_bad_tokens_file_is_bad_input_before_anything_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    from monitor.cli.main import main

    config = tmp_path / "config.yaml"
    config.write_text(f"web:\n  tokens_file: {tmp_path / 'missing.yaml'}\n", encoding="utf-8")
    assert main([command, "--config", str(config), "--mqtt", "mqtt://127.0.0.1:1"]) == 2
    assert "missing.yaml" in capsys.readouterr().err


async def test_only_the_inventorys_targets_travel_among_the_targets(tmp_path: Path) -> None:
    """``targets`` holds the election system's checks, each once: a result of another kind
    (an old agent's local check) is not the inventory's."""
    from probes.result import ProbeResult, TargetDetail, to_dict

    inventory = load(write_inventory(tmp_path / "inv.yaml", target="http://127.0.0.1:9/"))
    pipeline = Pipeline(inventory, Config(), None)
    collector = Collector(pipeline, CollectorOptions(BROKER))
    key = first_key(inventory, "75")
    topic = f"tslcd/v1/results/{key}"
    name = inventory.targets[0].name

    def with_targets(*results: ProbeResult) -> bytes:
        body = json.loads(batch(inventory, key, vantage=key, at=time.time() + len(results)))
        body["commune"]["targets"] = [to_dict(r) for r in results]
        return json.dumps(body).encode()

    def target(subject: str) -> ProbeResult:
        return ProbeResult("target", subject, True, time.time(), 0.01, None,
                           TargetDetail("http://127.0.0.1:9/"))

    assert collector.handle(topic, with_targets(target(name)))
    assert not collector.handle(topic, with_targets(target("not-ours")))
    assert not collector.handle(topic, with_targets(target(name), target(name)))
    assert not collector.handle(topic, with_targets(ProbeResult(
        "local", key, True, time.time(), 0.01, None, None)))
    assert rejected(collector, "unknown_target") == 3


async def test_failures_past_validation_are_logged_once_a_minute_with_the_traceback(
        pipeline: Pipeline, inventory: Inventory) -> None:
    import aiomqtt

    class Exploding(Collector):
        def _accept(self, obs: CommuneObservation, batch: envelope.Batch) -> None:
            raise RuntimeError("boom")

    collector = Exploding(pipeline, CollectorOptions(BROKER))
    key = first_key(inventory, "75")
    with capture_logs() as logs:
        for _ in range(5):
            collector._on_message(aiomqtt.Message(
                f"tslcd/v1/results/{key}", batch(inventory, key), 1, False, 1, None))
    assert rejected(collector, "error") == 5
    failed = [e for e in logs if e["event"] == "batch_failed"]
    assert len(failed) == 1 and failed[0].get("exc_info")
    with capture_logs() as logs:
        collector.rejections.flush(time.time() + 61)
    assert [(e["reason"], e["count"]) for e in logs] == [("error", 4)]


async def test_an_observation_that_cannot_be_rendered_changes_no_state(
        pipeline: Pipeline, inventory: Inventory) -> None:
    """Past validation, the pipeline does the renders' arithmetic before touching the state:
    an observation built wrong (strings as RTTs) raises and leaves everything as it was."""
    from probes.result import IcmpDetail, ProbeResult

    key = first_key(inventory, "75")
    province, _, code = key.partition("/")
    commune = inventory.commune(province, code)
    assert commune is not None
    bad = ProbeResult("icmp", "x", True, time.time(), 0.1, None,
                      IcmpDetail(2, 2, ("a", "b")))  # type: ignore[arg-type]
    obs = CommuneObservation(province, code, time.time(), province, hosts=tuple(
        HostObservation(h.name, str(h.ip), True, "icmp", bad.detail, None, (bad,))  # type: ignore[arg-type]
        for h in commune.hosts), gateway_alive=True)
    with pytest.raises(TypeError):
        pipeline.ingest_commune(obs, province)
    assert pipeline.engine.state.communes[key].status == CommuneStatus.UNKNOWN
    assert len(pipeline.samples) == 0 and pipeline.agents_heard == {}
    assert not pipeline.engine.is_stale(obs)
    await pipeline.refresh_metrics()  # /metrics still renders


async def test_many_claimed_agents_are_pooled_in_the_rejection_log(
        pipeline: Pipeline, inventory: Inventory) -> None:
    """Varying the claimed agent id must not buy one log line per message: past
    MAX_REJECT_KEYS windows, the claims share one ``*`` line per reason."""
    from monitor.remote.collector import MAX_REJECT_KEYS

    collector = Collector(pipeline, CollectorOptions(BROKER))
    key = first_key(inventory, "75")
    with capture_logs() as logs:
        for i in range(MAX_REJECT_KEYS + 400):
            body = json.loads(batch(inventory, key, agent=f"ghost-{i}"))
            body["commune"]["gateway_alive"] = "yes"
            assert not collector.handle(f"tslcd/v1/results/{key}", json.dumps(body).encode())
    lines = [e for e in logs if e["event"] == "batch_rejected"]
    assert len(lines) == MAX_REJECT_KEYS + 1 and lines[-1]["agent"] == "*"
    assert rejected(collector, "schema") == MAX_REJECT_KEYS + 400


def test_the_inbox_is_bounded_by_bytes_and_counts_what_it_sheds() -> None:
    """What the collector has not read yet is held up to a byte bound; past it a message
    is refused (QueueFull, aiomqtt then drops it) and counted; taking one frees its bytes."""
    import asyncio

    import aiomqtt

    from monitor.remote.collector import ByteBoundedInbox

    class Small(ByteBoundedInbox):
        limit = 250

    inbox = Small()
    message = aiomqtt.Message("tslcd/v1/results/75/25195", b"x" * 100, 1, False, 1, None)
    inbox.put_nowait(message)
    inbox.put_nowait(message)
    with pytest.raises(asyncio.QueueFull):
        inbox.put_nowait(message)
    assert inbox.held == 200 and inbox.take_dropped() == 1 and inbox.take_dropped() == 0
    assert inbox.get_nowait() is message and inbox.held == 100
    inbox.put_nowait(message)
    assert inbox.qsize() == 2


async def test_a_tick_leaves_metrics_to_the_central_cycle_unless_it_is_overdue(
        pipeline: Pipeline, inventory: Inventory) -> None:
    """In ``run --mqtt`` each central cycle renders /metrics: a tick within the cycle's
    interval does not render again (a batch taken meanwhile shows at the next cycle's
    render); a tick once the cycle is overdue (past an interval and a tick) does."""
    collector = Collector(pipeline, CollectorOptions(BROKER))
    key = first_key(inventory, "75")
    series = f'tslcd_commune_status{{province="75",commune="{key[3:]}"}} 0\n'.encode()  # ok
    pipeline.cycle_rendered = time.monotonic()
    assert collector.handle(f"tslcd/v1/results/{key}", batch(inventory, key))
    await collector.tick()
    assert series not in pipeline.exposition.body()
    pipeline.cycle_rendered -= inventory.defaults.interval  # the next cycle is due now
    await collector.tick()
    assert series not in pipeline.exposition.body()
    pipeline.cycle_rendered -= collector.options.refresh  # ... and a tick late
    await collector.tick()
    assert series in pipeline.exposition.body()


@pytest.mark.parametrize(("ahead", "accepted"), [
    (None, False), (3_600_000, False), (60_000, False), (20_000, True), (0, True)])
async def test_a_seq_ahead_of_the_clock_is_refused_and_not_stored(
        pipeline: Pipeline, inventory: Inventory, ahead: int | None, accepted: bool) -> None:
    """An agent's seq starts at its clock in milliseconds (its spool): one more than
    ``MAX_SKEW`` ahead of the collector's clock (``None``: the largest the schema allows) is
    made up and refused, so it cannot become the agent's replay guard; within the skew (a
    freshly seeded spool on a clock a little ahead) it is accepted."""
    collector = Collector(pipeline, CollectorOptions(BROKER))
    first, second = [c.key for c in inventory.communes() if c.province == "75"][:2]
    seq = envelope.MAX_SEQ if ahead is None else int(time.time() * 1000) + ahead
    with capture_logs() as logs:
        assert collector.handle(f"tslcd/v1/results/{first}",
                                batch(inventory, first, seq=seq)) is accepted
    if not accepted:
        assert rejected(collector, "implausible_seq") == 1
        assert "agent-75" not in collector.seqs and "agent-75" not in collector.agents
        line = next(e for e in logs if e["event"] == "batch_rejected")
        assert (line["agent"], line["reason"]) == ("agent-75", "implausible_seq")
        # the real agent, numbering from its clock, is still heard
        assert collector.handle(f"tslcd/v1/results/{second}",
                                batch(inventory, second, seq=int(time.time() * 1000)))


async def test_state_words_are_logged_aggregated_and_garbage_is_refused(
        pipeline: Pipeline, inventory: Inventory) -> None:
    """A flood on an agent's state topic is a line a minute, not a line a message: garbage
    is refused (``state``, in the ``batch_rejected`` log), the words of a known agent go to
    ``agent_state`` one line per state and minute, the rest counted in the next line."""
    collector = Collector(pipeline, CollectorOptions(BROKER))
    key = first_key(inventory, "75")
    assert collector.handle(f"tslcd/v1/results/{key}", batch(inventory, key))
    with capture_logs() as logs:
        for i in range(50):
            assert not collector.handle("tslcd/v1/agents/agent-75/state", b"\xff %d" % i)
            assert collector.handle("tslcd/v1/agents/agent-75/state", b"online")
        assert not collector.handle("tslcd/v1/agents/\u202e/state", b"junk")
    assert rejected(collector, "state") == 51
    assert [(e["event"], e["agent"], e.get("reason", e.get("state"))) for e in logs] == [
        ("batch_rejected", "agent-75", "state"), ("agent_state", "agent-75", "online"),
        ("batch_rejected", "?", "state")]
    with capture_logs() as logs:
        collector.rejections.flush(time.time() + 61)
        collector.states.flush(time.time() + 61)
    assert sorted((e["event"], e["count"]) for e in logs) == [
        ("agent_state", 49), ("batch_rejected", 49)]


async def test_a_retained_results_batch_is_refused(pipeline: Pipeline,
                                                   inventory: Inventory) -> None:
    """Results are never retained (docs/mqtt.md): a retained one is handed to every collector
    that subscribes, however old, so it is refused (``retained``) and changes nothing; the
    same batch live is taken."""
    collector = Collector(pipeline, CollectorOptions(BROKER))
    key = first_key(inventory, "75")
    payload = batch(inventory, key)
    with capture_logs() as logs:
        assert not collector.handle(f"tslcd/v1/results/{key}", payload, retained=True)
    assert rejected(collector, "retained") == 1
    assert [(e["event"], e["reason"]) for e in logs] == [("batch_rejected", "retained")]
    assert pipeline.engine.state.communes[key].status == CommuneStatus.UNKNOWN
    assert collector.agents == {} and collector.seqs == {}
    assert collector.handle(f"tslcd/v1/results/{key}", payload)


async def test_batches_missing_is_logged_from_the_agents_dropped_count_not_from_seq_gaps(
        pipeline: Pipeline, inventory: Inventory) -> None:
    """A spool's numbers leap with its clock (never below it in ms), so a gap in ``seq`` is
    no loss; batches dropped past the spool's bound are what its ``dropped`` count says."""
    collector = Collector(pipeline, CollectorOptions(BROKER))
    key = first_key(inventory, "75")
    now_ms = int(time.time() * 1000)
    with capture_logs() as logs:
        for seq, dropped in ((now_ms - 5000, 0), (now_ms - 3000, 0), (now_ms - 1000, 3),
                             (now_ms, 3)):
            assert collector.handle(f"tslcd/v1/results/{key}",
                                    batch(inventory, key, seq=seq, dropped=dropped))
    missing = [e for e in logs if e["event"] == "batches_missing"]
    assert [(e["missing"], e["next"]) for e in missing] == [(3, now_ms - 1000)]
