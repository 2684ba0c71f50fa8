"""The schema checks every agent's batch goes through (probes/result.py): the fast paths
decide exactly as the slow ones."""

from __future__ import annotations

import unicodedata

import pytest

from probes import result
from probes.result import ResultError, check_ip, check_text


@pytest.mark.parametrize("text", [
    "Xã Phước Thái", "PC-01 (máy 2)", "a\u00a0b", "tab\there", "bell\x07", "esc\x1b[31m",
    "line\nbreak", "zero\u200bwidth", "bidi\u202eflip", "nul\x00", "", "thin\u2009space",
    "line\u2028sep",
])
def test_control_characters_are_refused_and_nothing_else(text: str) -> None:
    control = any(unicodedata.category(ch)[0] == "C" for ch in text)
    if control:
        with pytest.raises(ResultError, match="control characters"):
            check_text(text, "host.name")
    else:
        assert check_text(text, "host.name") == text


def test_addresses_read_again_are_the_same_canonical_text() -> None:
    assert check_ip("2001:DB8::0:1", "ip") == "2001:db8::1"
    assert check_ip("2001:DB8::0:1", "ip") == "2001:db8::1"  # from the addresses kept
    assert check_ip("198.18.0.7", "ip") == "198.18.0.7"


@pytest.mark.parametrize("bad", ["198.18.0.256", "nope", "198.18.0.1\n", 7, None])
def test_a_refused_address_is_refused_every_time(bad: object) -> None:
    for _ in range(2):
        with pytest.raises(ResultError):
            check_ip(bad, "ip")


def test_made_up_addresses_never_grow_the_kept_ones_past_their_bound(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(result, "_CANONICAL_IPS_KEPT", 100)
    monkeypatch.setattr(result, "_canonical_ips", {})
    for i in range(1000):
        assert check_ip(f"198.18.{i // 256}.{i % 256}", "ip") == f"198.18.{i // 256}.{i % 256}"
        assert len(result._canonical_ips) <= 100


@pytest.mark.parametrize("rtt", [float("inf"), float("nan"), -0.001, 86_400.5, True, "0.01"])
def test_a_round_trip_that_is_no_duration_is_refused(rtt: object) -> None:
    with pytest.raises(ResultError, match="rtts"):
        result.from_dict({"kind": "icmp", "subject": "198.18.0.7", "ok": True, "started": 1.0,
                          "duration": 0.1, "detail": {"sent": 1, "received": 1,
                                                      "rtts": [rtt]}})
