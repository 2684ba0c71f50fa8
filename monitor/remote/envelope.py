"""What agents and the collector say to each other over MQTT (contract section 4, docs/mqtt.md).

A results batch is one commune's observation (:func:`monitor.cycle.observation.commune_to_dict`)
wrapped in an envelope that says who sent it and when::

    {"schema": 1, "agent": "agent-75", "seq": 1234, "sent": 1770345330.5,
     "spool": {"queued": 0, "dropped": 0}, "commune": {...}}

``seq`` increases for the life of the agent's spool (never below its clock in ms, so gaps
are no loss: ``spool.dropped`` counts the batches dropped past its bound); ``spool`` is the
agent's queue at sending time, so the collector can show a backlog.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.common.mqtt_url import MQTT_LOG  # noqa: F401 (bench/ reads it here)
from monitor.common.topics import (
    topic_segment,
)
from monitor.cycle.observation import CommuneObservation, commune_from_dict, commune_to_dict
from probes.result import check_text

SCHEMA = 1
ONLINE, OFFLINE = b"online", b"offline"
MAX_AGENT_ID = 128


class EnvelopeError(ValueError):
    """A payload that is not a valid results batch; ``reason`` labels the rejection counter."""

    def __init__(self, reason: str, message: str, agent: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.agent = agent  # the agent the payload claims, when that much could be read


@dataclass(frozen=True, slots=True)
class Batch:
    agent: str
    seq: int
    sent: float
    queued: int
    dropped: int
    observation: CommuneObservation




def check_agent_id(agent: str) -> str:
    """An agent id must be usable as one topic level (it names its state topic)."""
    if not agent or len(agent) > MAX_AGENT_ID or topic_segment(agent, "") != agent or \
            any(unicodedata.category(c)[0] == "C" for c in agent):
        raise ValueError(f"agent id {agent[:40]!r}: 1-{MAX_AGENT_ID} characters, none of / + #"
                         " and no control or format character")
    return agent


def encode(agent: str, seq: int, sent: float, queued: int, dropped: int, body: bytes) -> bytes:
    """The envelope around an already serialised commune observation (no re-encoding)."""
    header = json.dumps(
        {"schema": SCHEMA, "agent": agent, "seq": seq, "sent": sent,
         "spool": {"queued": queued, "dropped": dropped}},
        ensure_ascii=False, separators=(",", ":"),
    )
    return header[:-1].encode() + b',"commune":' + body + b"}"


def encode_body(obs: CommuneObservation) -> bytes:
    return json.dumps(commune_to_dict(obs), ensure_ascii=False, separators=(",", ":")).encode()


MAX_SEQ = 2**63 - 1  # SQLite's INTEGER: the collector stores the last seq per agent
_ENVELOPE_FIELDS = frozenset({"schema", "agent", "seq", "sent", "spool", "commune"})


def decode(payload: bytes, precheck: Callable[[dict[str, Any]], None] | None = None) -> Batch:
    """Parse a results batch and check every field against the schema (docs/mqtt.md); raises
    :class:`EnvelopeError` and nothing else, whatever the payload.

    ``precheck`` sees the parsed commune object before the field-by-field checks and may
    raise :class:`EnvelopeError` itself: the collector refuses a batch with more hosts than
    the inventory's commune has at the cost of a ``len``, not of checking 256 hosts."""
    try:  # UTF-8 only (json.loads would also take UTF-16 and UTF-32 bytes)
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise EnvelopeError("not_json", f"not JSON: {_short(exc)}") from None
    try:
        if precheck is not None and isinstance(data, dict) and \
                isinstance(data.get("commune"), dict):
            precheck(data["commune"])
        return _batch(data)
    except EnvelopeError as exc:
        exc.agent = exc.agent or _claimed_agent(data)
        raise
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise EnvelopeError("schema", f"malformed batch: {_short(exc)}",
                            _claimed_agent(data)) from None


def _claimed_agent(data: Any) -> str | None:
    """The envelope's agent id for the rejection log, when it is a well-formed one."""
    return claimed_agent(data.get("agent") if isinstance(data, dict) else None)


def claimed_agent(agent: Any) -> str | None:
    """``agent`` when it is a well-formed agent id (fit for a log line), else None."""
    try:
        return check_text(check_agent_id(agent), "agent", MAX_AGENT_ID)
    except (ValueError, TypeError):
        return None


def _batch(data: Any) -> Batch:
    if not isinstance(data, dict):
        raise ValueError("the envelope must be an object")
    if type(data.get("schema")) is not int or data["schema"] != SCHEMA:  # not 1.0, not true
        raise ValueError(f"unsupported schema {str(data.get('schema'))[:20]!r}")
    extra = set(data) - _ENVELOPE_FIELDS
    if extra:
        raise ValueError(f"unknown field {sorted(extra)[0][:40]!r}")
    agent = data.get("agent")
    if not isinstance(agent, str):
        raise ValueError("agent must be a string")
    check_agent_id(agent)
    check_text(agent, "agent", MAX_AGENT_ID)
    seq = _count(data.get("seq"), "seq", MAX_SEQ)
    sent = data.get("sent")
    if isinstance(sent, bool) or not isinstance(sent, int | float) or \
            not math.isfinite(sent) or sent < 0:
        raise ValueError("sent must be a finite Unix time")
    spool = data.get("spool", {})
    if not isinstance(spool, dict) or set(spool) - {"queued", "dropped"}:
        raise ValueError("spool must be {queued, dropped}")
    queued = _count(spool.get("queued", 0), "spool.queued", MAX_SEQ)
    dropped = _count(spool.get("dropped", 0), "spool.dropped", MAX_SEQ)
    observation = commune_from_dict(data.get("commune"))
    return Batch(agent, seq, float(sent), queued, dropped, observation)


def _count(value: Any, where: str, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ValueError(f"{where} must be an integer in 0..{high}")
    return value


def _short(exc: BaseException) -> str:
    """An error for the logs, cut short: never a whole (possibly hostile) payload."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:200] + "…"


def loads_state(payload: bytes) -> str | None:
    """``online`` / ``offline`` from an agent's state topic; None for anything else."""
    text = payload.strip()
    return text.decode() if text in (ONLINE, OFFLINE) else None
