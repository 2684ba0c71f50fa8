"""Property tests of the batch decoder and the collector's validator: whatever an agent (or
an attacker) publishes, nothing but the rejection error comes out, and what is accepted is
within the schema."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory.loader import load
from monitor.common.config import Config
from monitor.common.mqtt_url import parse_mqtt_url
from monitor.cycle.observation import CommuneObservation, HostObservation, commune_to_dict
from monitor.remote import envelope
from monitor.remote.collector import Collector, CollectorOptions
from monitor.service.pipeline import Pipeline
from probes.result import ArpDetail, IcmpDetail, ProbeResult, TargetDetail
from tests.support.agentlab import write_inventory

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner,
                                                               max_size=5),
    max_leaves=30)


def genuine_dict() -> dict[str, Any]:
    now = time.time()
    host = HostObservation("may-01", "127.75.1.2", True, results=(
        ProbeResult("icmp", "127.75.1.2", True, now, 0.01, None, IcmpDetail(2, 2, (0.1, 0.2))),
        ProbeResult("arp", "127.75.1.2", True, now, 0.01, None,
                    ArpDetail(("02:00:00:00:01:02",), None)),
    ))
    target = ProbeResult("target", "bau-cu", True, now, 0.05, None,
                         TargetDetail("http://127.0.0.1:9/", ("127.0.0.1",), None, 0.001))
    obs = CommuneObservation("75", "26041", now, "75", hosts=(host,), gateway_alive=True,
                             targets=(target,))
    return {"schema": 1, "agent": "agent-75", "seq": 7, "sent": now,
            "spool": {"queued": 0, "dropped": 0}, "commune": commune_to_dict(obs)}


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location inside a JSON document (keys and list indexes)."""
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths(v, (*prefix, i))
    return found


def replaced(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: replaced(doc[head], rest, new)}
    copy = list(doc)
    copy[head] = replaced(doc[head], rest, new)
    return copy


GENUINE = genuine_dict()
LOCATIONS = paths(GENUINE)


def assert_within_schema(batch: envelope.Batch) -> None:
    obs = batch.observation
    assert math.isfinite(obs.at) and obs.at >= 0 and math.isfinite(batch.sent)
    for host in obs.hosts:
        for r in host.results:
            assert math.isfinite(r.started) and math.isfinite(r.duration) and r.duration >= 0
            if isinstance(r.detail, IcmpDetail):
                assert all(isinstance(x, float) and math.isfinite(x) and x >= 0
                           for x in r.detail.rtts)
                # what used to break the tick: the exposition's arithmetic
                assert r.detail.jitter is None or math.isfinite(r.detail.jitter)


def decode_or_reject(payload: bytes) -> envelope.Batch | None:
    try:
        batch = envelope.decode(payload)
    except envelope.EnvelopeError as exc:
        assert exc.reason in ("not_json", "schema")
        return None
    assert_within_schema(batch)
    return batch


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_the_rejection(payload: bytes) -> None:
    decode_or_reject(payload)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_only_ever_raises_the_rejection(value: Any) -> None:
    decode_or_reject(json.dumps(value).encode())


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(LOCATIONS), json_values)
def test_mutated_genuine_batches_only_ever_raise_the_rejection(path: tuple[Any, ...],
                                                               value: Any) -> None:
    decode_or_reject(json.dumps(replaced(GENUINE, path, value)).encode())


def test_the_genuine_batch_itself_decodes() -> None:
    batch = decode_or_reject(json.dumps(GENUINE).encode())
    assert batch is not None and batch.observation.hosts[0].alive


def test_deep_nesting_is_a_rejection_not_a_crash() -> None:
    assert decode_or_reject(b"[" * 100_000 + b"]" * 100_000) is None
    assert decode_or_reject(b'{"schema": 1, "seq": ' + b"9" * 5000 + b"}") is None


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Collector:
    """The real validator, on an in-memory state (no broker: ``handle`` is what messages
    go through)."""
    inventory = load(write_inventory(tmp_path_factory.mktemp("inv") / "inv.yaml",
                                     target="http://127.0.0.1:9/"))
    pipeline = Pipeline(inventory, Config(), None)
    return Collector(pipeline, CollectorOptions(parse_mqtt_url("mqtt://127.0.0.1:1")))


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(LOCATIONS), value=json_values)
def test_the_collector_refuses_mutations_without_raising(collector: Collector, path: tuple[
        Any, ...], value: Any) -> None:
    commune = next(c for c in collector.pipeline.inventory.communes() if c.province == "75")
    doc = replaced(GENUINE, path, value)
    if isinstance(doc, dict) and isinstance(doc.get("commune"), dict):
        doc["commune"] = {**doc["commune"], "commune": commune.code}
    collector.handle(f"tslcd/v1/results/75/{commune.code}", json.dumps(doc).encode())
    assert collector.rejected.labels("error")._value.get() == 0
    for cs in collector.pipeline.engine.state.communes.values():
        assert cs.last_seen is None or cs.last_seen <= time.time() + 30


def test_an_error_text_is_neutralised_not_a_reason_to_lose_the_batch() -> None:
    doc = json.loads(json.dumps(GENUINE))
    doc["commune"]["hosts"][0]["results"][0]["error"] = "tls:\nFAKE LOG LINE\x1b[31m" + "e" * 5000
    batch = decode_or_reject(json.dumps(doc).encode())
    assert batch is not None
    error = batch.observation.hosts[0].results[0].error
    assert error is not None and error.startswith("tls: FAKE LOG LINE ")
    assert len(error) == 1024 and not any(ch in error for ch in "\n\r\x1b")
    doc["commune"]["hosts"][0]["results"][0]["subject"] = "127.0.0.1\nFAKE"
    assert decode_or_reject(json.dumps(doc).encode()) is None  # names are refused


@pytest.mark.parametrize("agent", ["a\nb", "agent\u202e57", "tab\tid", "zero\u200bwidth"])
def test_agent_ids_with_control_or_format_characters_are_refused(agent: str) -> None:
    """An id names a topic level and appears in logs: no line breaks, no bidi overrides."""
    with pytest.raises(ValueError, match="control or format"):
        envelope.check_agent_id(agent)


def test_only_utf8_and_the_integer_schema_are_taken() -> None:
    text = '{"schema": 1, "agent": "agent-75", "seq": 1, "sent": 1.0, "commune": {}}'
    with pytest.raises(envelope.EnvelopeError) as utf16:
        envelope.decode(text.encode("utf-16"))
    assert utf16.value.reason == "not_json"
    for schema in ("1.0", "true"):
        with pytest.raises(envelope.EnvelopeError, match="unsupported schema"):
            envelope.decode(text.replace('"schema": 1', f'"schema": {schema}').encode())
