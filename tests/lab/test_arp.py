"""ARP segment scan: frame handling and judging in-process, the real scan in namespaces."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterator

import pytest

from probes import arp
from probes.result import UnknownDevice
from tests.support.lab import netns
from tests.support.lab.probe_runner import commune_from_spec, scan_in

SUBNET = "198.18.1.0/28"
GOOD_MAC = "02:00:00:00:01:02"
WRONG_MAC = "02:00:00:00:01:05"  # what the machine at .5 really has
LISTED_MAC_AT_5 = "02:00:00:00:01:55"  # what the inventory expects there
SHARED_MAC = "02:00:00:00:01:03"  # machine .3 also answers for unlisted .10
UNKNOWN_MAC = "02:00:00:00:01:09"
SPEC = {
    "subnet": SUBNET,
    "gateway": "198.18.1.1",
    "backup_gateway": "198.18.1.13",
    "hosts": [
        {"name": "may-02", "ip": "198.18.1.2", "mac": GOOD_MAC.upper()},
        {"name": "may-03", "ip": "198.18.1.3"},
        {"name": "may-04", "ip": "198.18.1.4"},
        {"name": "may-05", "ip": "198.18.1.5", "mac": LISTED_MAC_AT_5},
        {"name": "may-06", "ip": "198.18.1.6"},
    ],
}


# --- without privileges -------------------------------------------------------------------


def test_request_frame_parses_back_only_as_a_reply() -> None:
    mac = bytes.fromhex("020000000102")
    request = arp.arp_request(mac, socket.inet_aton("198.18.1.14"), socket.inet_aton("198.18.1.2"))
    assert len(request) == 42 and request[:6] == b"\xff" * 6
    assert arp.parse_reply(request) is None  # a request is not an answer
    reply = request[:21] + b"\x02" + request[22:]
    assert arp.parse_reply(reply) == ("198.18.1.14", GOOD_MAC)
    assert arp.parse_reply(reply[:30]) is None


def judged(replies: set[tuple[str, str]]) -> arp.SegmentScan:
    return arp.judge(commune_from_spec(SPEC), replies, interface="eth0", started=0.0,
                     duration=0.1)


def test_judge_classifies_every_listed_address() -> None:
    scan = judged({
        ("198.18.1.2", GOOD_MAC),
        ("198.18.1.4", "02:00:00:00:00:aa"), ("198.18.1.4", "02:00:00:00:00:bb"),
        ("198.18.1.5", WRONG_MAC),
        ("198.18.1.1", "02:00:00:00:00:01"),
        ("198.18.1.10", SHARED_MAC),
        ("198.18.9.9", "02:00:00:00:00:99"),  # outside the subnet: not this commune's business
    })
    hosts = scan.hosts
    assert hosts["198.18.1.2"].ok and hosts["198.18.1.2"].error is None
    assert hosts["198.18.1.2"].detail.expected_mac == GOOD_MAC  # inventory MAC case-folded
    assert hosts["198.18.1.4"].detail.macs == ("02:00:00:00:00:aa", "02:00:00:00:00:bb")
    assert not hosts["198.18.1.4"].ok and "conflict" in hosts["198.18.1.4"].error
    assert not hosts["198.18.1.5"].ok and "wrong MAC" in hosts["198.18.1.5"].error
    assert hosts["198.18.1.3"].detail.macs == () and not hosts["198.18.1.3"].ok
    assert {r.kind for r in hosts.values()} == {"arp"}
    assert scan.gateway.ok and scan.gateway.detail.macs == ("02:00:00:00:00:01",)
    assert not scan.backup_gateway.ok
    assert scan.unknown == (UnknownDevice("198.18.1.10", SHARED_MAC),)


def test_large_subnet_is_scanned_at_its_listed_addresses_only() -> None:
    commune = commune_from_spec({**SPEC, "subnet": "198.18.0.0/20"})
    targets = arp._scan_targets(commune, commune.subnet)
    assert targets == [
        "198.18.1.1", "198.18.1.2", "198.18.1.3", "198.18.1.4", "198.18.1.5", "198.18.1.6",
        "198.18.1.13",
    ]
    small = commune_from_spec(SPEC)
    assert len(arp._scan_targets(small, small.subnet)) == 14


async def test_nothing_to_scan_without_a_subnet() -> None:
    assert await arp.scan_segment(commune_from_spec({**SPEC, "subnet": None})) is None


async def test_no_interface_on_the_segment_is_an_error() -> None:
    commune = commune_from_spec({**SPEC, "subnet": "198.18.250.0/28", "hosts": []})
    assert arp.segment_interface(commune.subnet) is None
    with pytest.raises(arp.ArpScanError, match="no interface"):
        await arp.scan_segment(commune)


def test_segment_interface_finds_loopback() -> None:
    assert arp.segment_interface(ipaddress.ip_network("127.0.0.0/8")) == "lo"
    assert arp.segment_interface(None) is None


# --- in namespaces ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def commune_lab(netns_ready: None) -> Iterator[tuple[netns.Lab, netns.Segment, dict[str, str]]]:
    """The commune segment: gateway, good host, silent host .3 that also answers for .10,
    a duplicate pair at .4, a machine with the wrong MAC at .5, an unlisted device at .9,
    nothing at .6 and .13, and the vantage at .14."""
    with netns.Lab() as built:
        seg = built.segment("c1", SUBNET)
        macs = {}
        macs["gw"] = seg.add_host("gw", "198.18.1.1").mac("eth0")
        seg.add_host("may02", "198.18.1.2", GOOD_MAC)
        seg.add_device("may03", ["198.18.1.3", "198.18.1.10"], SHARED_MAC)
        macs["dup_a"] = seg.add_host("dupa", "198.18.1.4").mac("eth0")
        macs["dup_b"] = seg.add_host("dupb", "198.18.1.4").mac("eth0")
        seg.add_host("may05", "198.18.1.5", WRONG_MAC)
        seg.add_host("stray", "198.18.1.9", UNKNOWN_MAC)
        seg.add_host("vantage", "198.18.1.14")
        yield built, seg, macs


@pytest.fixture(scope="module")
def scan(commune_lab: tuple[netns.Lab, netns.Segment, dict[str, str]]) -> arp.SegmentScan:
    built, _, _ = commune_lab
    result = scan_in(built.nodes["vantage"], SPEC, window=1.0)
    assert result is not None
    return result


def test_normal_host_answers_with_its_expected_mac(scan: arp.SegmentScan) -> None:
    host = scan.hosts["198.18.1.2"]
    assert host.ok and host.kind == "arp" and host.subject == "198.18.1.2"
    assert host.detail.macs == (GOOD_MAC,) and host.detail.expected_mac == GOOD_MAC
    assert scan.interface == "eth0"


def test_host_without_expected_mac_is_ok_with_one_answer(scan: arp.SegmentScan) -> None:
    assert scan.hosts["198.18.1.3"].ok
    assert scan.hosts["198.18.1.3"].detail.macs == (SHARED_MAC,)


def test_duplicate_ip_shows_both_macs(scan: arp.SegmentScan, commune_lab) -> None:
    macs = commune_lab[2]
    host = scan.hosts["198.18.1.4"]
    assert host.detail.macs == tuple(sorted((macs["dup_a"], macs["dup_b"])))
    assert host.detail.conflict and not host.ok


def test_wrong_mac_is_not_ok(scan: arp.SegmentScan) -> None:
    host = scan.hosts["198.18.1.5"]
    assert host.detail.macs == (WRONG_MAC,) and host.detail.expected_mac == LISTED_MAC_AT_5
    assert not host.ok and not host.detail.conflict


def test_absent_host_has_no_mac(scan: arp.SegmentScan) -> None:
    assert scan.hosts["198.18.1.6"].detail.macs == ()
    assert not scan.hosts["198.18.1.6"].ok
    assert scan.backup_gateway is not None and scan.backup_gateway.detail.macs == ()


def test_gateway_mac_is_reported(scan: arp.SegmentScan, commune_lab) -> None:
    assert scan.gateway.ok and scan.gateway.detail.macs == (commune_lab[2]["gw"],)


def test_unlisted_devices_are_reported_with_ip_and_mac(scan: arp.SegmentScan) -> None:
    # the stray machine, and the listed machine .3 answering for an unlisted address too;
    # the vantage itself (.14, unlisted) is not a finding
    assert scan.unknown == (
        UnknownDevice("198.18.1.9", UNKNOWN_MAC),
        UnknownDevice("198.18.1.10", SHARED_MAC),
    )


def test_vantage_without_an_address_on_the_segment_asks_as_arp_probe(commune_lab) -> None:
    built, seg, _ = commune_lab
    silent = built.node("vantage0")
    iface = seg.attach(silent)  # no IPv4 address: requests go out with sender 0.0.0.0
    result = scan_in(silent, SPEC, interface=iface, window=1.0)
    assert result.hosts["198.18.1.2"].ok
    assert len(result.hosts["198.18.1.4"].detail.macs) == 2
    # the first vantage (.14) answers this one: an unlisted machine like any other
    assert [d.ip for d in result.unknown] == ["198.18.1.9", "198.18.1.10", "198.18.1.14"]


def test_listed_vantage_counts_its_own_address(commune_lab) -> None:
    built, _, _ = commune_lab
    spec = {**SPEC, "hosts": [*SPEC["hosts"], {"name": "may-14", "ip": "198.18.1.14"}]}
    result = scan_in(built.nodes["vantage"], spec, window=1.0)
    vantage_mac = built.nodes["vantage"].mac("eth0")
    assert result.hosts["198.18.1.14"].detail.macs == (vantage_mac,)
    assert result.hosts["198.18.1.14"].ok


# --- the lab itself -----------------------------------------------------------------------


def test_lab_refuses_addresses_outside_the_benchmark_range() -> None:
    assert str(netns.allowed_network("198.19.255.0/24")) == "198.19.255.0/24"
    for outside in ("10.0.0.1", "192.168.1.0/24", "127.0.0.1", "198.20.0.1", "198.18.0.0/14"):
        with pytest.raises(ValueError, match=re.escape("198.18.0.0/15")):
            netns.allowed_network(outside)


def test_lab_is_removed_even_when_the_test_fails(netns_ready: None) -> None:
    with pytest.raises(RuntimeError, match="boom"), netns.Lab() as built:
        built.segment("x", "198.18.7.0/29").add_host("h", "198.18.7.2").isolate_dns()
        raise RuntimeError("boom")
    assert netns.sweep(built.prefix) == []  # nothing of it was left to sweep
    assert f"{built.prefix}-" not in netns.ip_cmd("netns", "list")
    assert not list(netns.NETNS_ETC.glob(f"{built.prefix}-*"))


def test_a_short_budget_shortens_the_listening_not_the_scan(commune_lab) -> None:
    """A 1.5 s cycle cannot wait out a 5 s window: the scan fits the budget and still hears
    every machine (replies on a segment come within milliseconds)."""
    built, _, _ = commune_lab
    result = scan_in(built.nodes["vantage"], SPEC, window=5.0, budget=0.5)
    assert result is not None
    assert result.hosts["198.18.1.2"].ok
    assert len(result.hosts["198.18.1.4"].detail.macs) == 2
    assert result.hosts["198.18.1.2"].duration < 5.0  # the 5 s window was not waited out
