"""The MQTT topics of the contract (section 4), and how a name becomes one topic level.

Agents, the collector, the alert sink and the status publisher all name topics from here.
"""

from __future__ import annotations

import unicodedata

PREFIX = "tslcd/v1"
RESULTS_TOPIC = f"{PREFIX}/results"  # /PROV/COMMUNE
STATUS_TOPIC = f"{PREFIX}/status"  # /ISP/PROV/COMMUNE
AGENTS_TOPIC = f"{PREFIX}/agents"  # /AGENT/state
ALERTS_TOPIC = f"{PREFIX}/alerts"  # /PROV
_TOPIC_UNSAFE = str.maketrans({c: "-" for c in "/+#\0"})

def results_topic(province: str, commune: str) -> str:
    return f"{RESULTS_TOPIC}/{province}/{commune}"


def agent_state_topic(agent: str) -> str:
    return f"{AGENTS_TOPIC}/{agent}/state"


def topic_segment(text: str, empty: str = "unassigned") -> str:
    """A name as one topic level: NFC, without the characters MQTT reserves (``/ + #``)."""
    cleaned = unicodedata.normalize("NFC", text).translate(_TOPIC_UNSAFE).strip()
    return cleaned or empty
