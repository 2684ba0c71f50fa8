"""The shared-socket pinger against the real kernel: loopback, and namespaces with DROP rules.

On Linux every 127.x address answers echo, so hosts that do not answer are made inside a
``tslcdP-`` namespace with a firewall rule, and the pinger runs there as a subprocess.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probes import icmp
from probes.icmp import IcmpPermissionError, Pinger
from probes.pacing import Bucket, Pacer
from probes.result import IcmpDetail, ProbeResult, from_dict
from tests.support.lab.netns import Lab, Node
from tests.support.lab.nft import drop_echo_ruleset

ROOT = Path(__file__).resolve().parents[2]
PREFIX = f"tslcdP-{os.getpid()}"
pytestmark = pytest.mark.timeout(120)

#: Runs ping_many inside a namespace; prints {"raw": bool, "results": {ip: result}} or the
#: permission error. argv[1]: {"hosts", "count", "timeout", "spacing", "mode"}.
RUNNER = """
import asyncio, ipaddress, json, sys
from probes.icmp import IcmpPermissionError, Pinger
from probes.result import to_dict
args = json.loads(sys.argv[1])
async def main():
    async with Pinger(mode=args.get("mode", "auto")) as pinger:
        hosts = [ipaddress.ip_address(h) for h in args["hosts"]]
        results = await pinger.ping_many(hosts, count=args["count"], timeout=args["timeout"],
                                         spacing=args.get("spacing", 0.2))
        return {"raw": pinger.raw, "results": {str(k): to_dict(v) for k, v in results.items()}}
try:
    print(json.dumps(asyncio.run(main())))
except IcmpPermissionError as exc:
    print(json.dumps({"permission_error": str(exc)}))
"""


def detail(result: ProbeResult) -> IcmpDetail:
    assert isinstance(result.detail, IcmpDetail)
    return result.detail


def loopback_hosts(n: int, second_octet: int = 1) -> list[ipaddress.IPv4Address]:
    """127.P.x.y addresses like the national generator's (.2 onwards in each /24)."""
    return [ipaddress.ip_address(f"127.{second_octet}.{i // 250}.{i % 250 + 2}")
            for i in range(n)]


def ping_in(node: Node, hosts: list[str], *, count: int = 2, timeout: float = 0.5,
            mode: str = "auto", spacing: float = 0.2) -> dict[str, Any]:
    args = {"hosts": hosts, "count": count, "timeout": timeout, "mode": mode,
            "spacing": spacing}
    proc = node.run(sys.executable, "-c", RUNNER, json.dumps(args), timeout=90, cwd=ROOT)
    out = json.loads(proc.stdout.splitlines()[-1])  # structlog may print before it
    if "results" in out:
        out["results"] = {ip: from_dict(r) for ip, r in out["results"].items()}
    return out


@pytest.fixture
def node(netns_ready: None) -> Iterator[Node]:
    """A namespace with only loopback up, removed after the test."""
    with Lab(prefix=PREFIX) as lab:
        yield lab.node("ping")


def drop_echo_to(node: Node, addresses: list[str]) -> None:
    """Inside the namespace only: echo requests to these addresses vanish."""
    rules = Path(f"/tmp/{PREFIX}-{secrets.token_hex(4)}.nft")
    rules.write_text(drop_echo_ruleset(addresses))
    try:
        node.run("nft", "-f", str(rules))
    finally:
        rules.unlink()


# --- loopback, in this process --------------------------------------------------------


async def test_ping_loopback_counts_every_echo() -> None:
    async with Pinger() as pinger:
        result = await pinger.ping("127.0.0.1", count=3, timeout=1.0, spacing=0.05)
    assert result.kind == "icmp" and result.subject == "127.0.0.1"
    assert result.ok and result.error is None
    d = detail(result)
    assert (d.sent, d.received, d.loss_ratio) == (3, 3, 0.0)
    assert len(d.rtts) == 3 and all(0 < r <= 1.0 for r in d.rtts)
    assert d.rtt_mean is not None and d.jitter is not None


async def test_module_level_ping_opens_and_closes_its_own_pinger() -> None:
    result = await icmp.ping("127.0.0.2", count=1, timeout=1.0)
    assert result.ok and detail(result).sent == 1


async def test_ping_many_returns_one_result_per_host_keyed_by_the_given_address() -> None:
    hosts = [*loopback_hosts(20, second_octet=3), ipaddress.ip_address("127.0.0.1")]
    async with Pinger() as pinger:
        results = await pinger.ping_many(hosts + hosts[:3], count=2, timeout=1.0, spacing=0.05)
    assert set(results) == set(hosts)
    for ip, result in results.items():
        assert result.subject == str(ip)
        assert (detail(result).sent, detail(result).received) == (2, 2)


async def test_two_thousand_hosts_all_matched() -> None:
    hosts = loopback_hosts(2000, second_octet=4)
    async with Pinger() as pinger:
        results = await pinger.ping_many(hosts, count=2, timeout=1.0, spacing=0.05)
        assert not any(ch.pending for ch in pinger._channels.values())  # nothing left behind
    assert all(detail(r).received == 2 for r in results.values())


async def test_count_is_respected() -> None:
    async with Pinger() as pinger:
        one = await pinger.ping("127.0.0.1", count=1, timeout=0.5)
        five = await pinger.ping("127.0.0.1", count=5, timeout=0.5, spacing=0.01)
    assert (detail(one).sent, detail(five).sent) == (1, 5)
    assert (detail(one).received, detail(five).received) == (1, 5)


async def test_concurrent_pingers_never_take_each_others_replies() -> None:
    """Raw sockets see every echo reply of the machine: each must count only its own."""
    hosts = loopback_hosts(200, second_octet=5)
    async with Pinger() as a, Pinger() as b:
        ra, rb = await asyncio.gather(
            a.ping_many(hosts, count=3, timeout=1.0, spacing=0.02),
            b.ping_many(hosts, count=3, timeout=1.0, spacing=0.02),
        )
    for results in (ra, rb):
        assert [detail(r).received for r in results.values()] == [3] * len(hosts)


async def test_every_send_passes_the_pacer_with_its_group() -> None:
    booked: list[object] = []

    class RecordingPacer(Pacer):
        def book(self, bucket: Bucket | None, not_before: float | None = None) -> float:
            booked.append(next(g for g, b in self._groups.items() if b is bucket))
            return super().book(bucket, not_before)

    hosts = loopback_hosts(30, second_octet=6)
    group = {ip: f"75/{int(ip) % 3}" for ip in hosts}
    async with Pinger() as pinger:
        results = await pinger.ping_many(
            hosts, count=2, timeout=1.0, spacing=0.05,
            pacer=RecordingPacer(5000.0, group_rate=1000.0), group_of=group.__getitem__,
        )
    assert sorted(booked) == sorted(list(group.values()) * 2)
    assert all(r.ok for r in results.values())


async def test_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    async with Pinger(ipv6=True) as pinger:
        results = await pinger.ping_many(
            [ipaddress.ip_address("::1"), ipaddress.ip_address("127.0.0.1")],
            count=2, timeout=1.0, spacing=0.05,
        )
    assert all(detail(r).received == 2 for r in results.values())


async def test_rtt_is_the_kernels_not_the_busy_event_loops() -> None:
    """The loop is blocked for 0.5 s while the reply waits in the socket; the kernel's
    receive timestamp keeps the RTT at loopback size (microseconds; margin is huge)."""
    async with Pinger() as pinger:
        job = asyncio.create_task(pinger.ping("127.0.0.1", count=1, timeout=3.0))
        asyncio.get_running_loop().call_soon(time.sleep, 0.5)  # runs after the send
        result = await job
    assert result.ok and detail(result).rtts[0] < 0.25


async def test_reply_stamped_in_time_counts_even_when_read_after_the_timeout() -> None:
    async with Pinger() as pinger:
        job = asyncio.create_task(pinger.ping("127.0.0.1", count=1, timeout=0.2))
        asyncio.get_running_loop().call_soon(time.sleep, 0.5)  # longer than the timeout
        result = await job
    assert result.ok and detail(result).received == 1


async def test_ipv6_host_without_ipv6_fails_cleanly() -> None:
    async with Pinger(ipv6=False) as pinger:
        results = await pinger.ping_many(
            [ipaddress.ip_address("::1"), ipaddress.ip_address("127.0.0.1")], count=1,
        )
    v6 = results[ipaddress.ip_address("::1")]
    assert not v6.ok and "IPv6" in (v6.error or "") and detail(v6).sent == 0
    assert results[ipaddress.ip_address("127.0.0.1")].ok


async def test_empty_job_returns_at_once() -> None:
    async with Pinger() as pinger:
        assert await pinger.ping_many([], count=3, timeout=5.0) == {}


# --- validation of what arrives: fed to a real channel's reader -----------------------


def _forged_reply(channel: Any, seq: int, *, source: bytes = bytes([127, 0, 0, 1]),
                  kind: int = 0, ident: int | None = None, cookie: bytes | None = None,
                  corrupt_checksum: bool = False, extra: bytes = b"") -> bytes:
    """An IPv4 header plus an echo reply, as a raw socket delivers it."""
    ident = channel.ident if ident is None else ident
    body = bytearray(icmp._HEADER.pack(kind, 0, 0, ident, seq) + (cookie or channel.cookie))
    body += extra
    total = sum(int.from_bytes(body[i:i + 2], "big") for i in range(0, len(body) - 1, 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    checksum = ~total & 0xFFFF
    if corrupt_checksum:
        checksum ^= 0x0101
    body[2:4] = checksum.to_bytes(2, "big")
    header = bytes([0x45, 0, 0, 20 + len(body), 0, 0, 0, 0, 64, 1, 0, 0]) + source
    return header + bytes([127, 0, 0, 1]) + bytes(body)


def _pending_echo(channel: Any) -> tuple[icmp._Job, int, int]:
    """One echo to 127.0.0.1 registered on a real channel as if sent: (job, key, sequence)."""
    job = icmp._Job(1, 1, 5.0, asyncio.get_running_loop().create_future())
    job.expect.append(channel.expected_source("127.0.0.1"))
    key, _packet = channel.request(job, 0)
    job.keys[0], job.sent_real[0], job.sent_mono[0], job.outstanding = key, 1, 1, 1
    return job, key, key & 0xFFFF


async def test_malformed_and_foreign_replies_are_ignored() -> None:
    pinger = await Pinger.open(mode="raw")
    try:
        channel = pinger._channels[4]
        job, key, seq = _pending_echo(channel)
        bad = [
            _forged_reply(channel, seq, corrupt_checksum=True),
            _forged_reply(channel, seq, source=bytes([127, 0, 0, 9])),  # not who we asked
            _forged_reply(channel, seq, kind=8),  # an echo request, not a reply
            _forged_reply(channel, seq, ident=channel.ident ^ 1),
            _forged_reply(channel, seq, cookie=b"someone!"),
            _forged_reply(channel, seq, extra=b"xx"),  # wrong length
            _forged_reply(channel, seq ^ 1),  # nothing pending under that sequence
            b"\x45\x00",  # truncated
        ]
        for packet in bad:
            channel._accept(packet, [], ("127.0.0.1", 0), 2)
        assert job.rtts == [None] and key in channel.pending
        channel._accept(_forged_reply(channel, seq), [], ("127.0.0.1", 0), 2)
        assert job.rtts[0] is not None and key not in channel.pending
    finally:
        pinger.close()


async def test_a_reply_whose_checksum_is_the_other_zero_is_accepted() -> None:
    """One's complement has two zeros: a checksum computed as 0x0000 may come as 0xFFFF."""
    pinger = await Pinger.open(mode="raw")
    try:
        channel = pinger._channels[4]
        # the next sequence number makes the reply's checksum 0x0000
        zero = next(s for s in range(0x10000) if icmp._checksum(channel._reply_sum + s) == 0)
        channel._seq = (zero - 1) & 0xFFFF
        job, _key, seq = _pending_echo(channel)
        assert seq == zero
        reply = bytearray(_forged_reply(channel, seq))
        assert reply[22:24] == b"\x00\x00"
        reply[22:24] = b"\xff\xff"
        channel._accept(bytes(reply), [], ("127.0.0.1", 0), 2)
        assert job.rtts[0] is not None
    finally:
        pinger.close()


async def test_ping_each_answers_in_the_order_asked_whatever_the_send_order() -> None:
    hosts = loopback_hosts(12, second_octet=7)
    groups = [i % 4 for i in range(len(hosts))]  # interleaving reorders the sends
    async with Pinger() as pinger:
        results = await pinger.ping_each(hosts, count=1, timeout=1.0, groups=groups,
                                         pacer=Pacer(5000.0, group_rate=1000.0))
    assert [r.subject for r in results] == [str(ip) for ip in hosts]
    assert all(r.ok for r in results)


def test_kernel_timestamp_is_used_only_when_consistent_with_the_monotonic_clock() -> None:
    loop = asyncio.new_event_loop()
    try:
        job = icmp._Job(1, 3, 1.0, loop.create_future())
        job.sent_real = [1_000_000_000, 1_000_000_000, 1_000_000_000]
        job.sent_mono = [500, 500, 500]
        job.outstanding = 3
        job.record(0, 1_000_000_000 + 200_000, 500 + 900_000)  # kernel: 0.2 ms, mono 0.9 ms
        job.record(1, 1_000_000_000 - 5, 500 + 900_000)  # wall clock stepped back
        job.record(2, None, 500 + 2_000_000_000)  # later than the timeout: lost
        assert job.rtts == [pytest.approx(0.0002), pytest.approx(0.0009), None]
    finally:
        loop.close()


# --- namespaces: hosts that do not answer, unprivileged ping sockets ------------------


def test_dropped_host_loses_every_echo_and_others_none(node: Node) -> None:
    node.run("iptables", "-A", "INPUT", "-d", "127.0.0.7", "-p", "icmp",
             "--icmp-type", "echo-request", "-j", "DROP")
    hosts = ["127.0.0.1", "127.0.0.7", "127.0.0.8"]
    results = ping_in(node, hosts, count=3, timeout=0.5, spacing=0.1)["results"]
    down = detail(results["127.0.0.7"])
    assert (down.sent, down.received, down.loss_ratio) == (3, 0, 1.0)
    assert not results["127.0.0.7"].ok and "no reply" in (results["127.0.0.7"].error or "")
    for ip in ("127.0.0.1", "127.0.0.8"):
        assert results[ip].ok and detail(results[ip]).loss_ratio == 0.0
        assert all(r <= 0.5 for r in detail(results[ip]).rtts)


def test_many_hosts_with_a_dropped_tenth_none_cross_assigned(node: Node) -> None:
    """A reply given to the wrong host would show as a reply from a dropped one."""
    hosts = [str(ip) for ip in loopback_hosts(2000, second_octet=9)]
    down = set(hosts[::10])
    drop_echo_to(node, sorted(down))
    results = ping_in(node, hosts, count=2, timeout=0.5, spacing=0.1)["results"]
    assert set(results) == set(hosts)
    for ip, result in results.items():
        expected = 0 if ip in down else 2
        assert (detail(result).sent, detail(result).received) == (2, expected), ip


def test_unprivileged_ping_socket_mode(node: Node) -> None:
    """Ping sockets (the kernel rewrites the identifier to the socket's port) work too."""
    node.sysctl("net.ipv4.ping_group_range", "0 2147483647")
    node.run("iptables", "-A", "INPUT", "-d", "127.0.0.7", "-p", "icmp", "-j", "DROP")
    hosts = [str(ip) for ip in loopback_hosts(300, second_octet=10)] + ["127.0.0.7"]
    out = ping_in(node, hosts, count=2, timeout=0.5, mode="dgram")
    assert out["raw"] is False
    results = out["results"]
    assert detail(results["127.0.0.7"]).received == 0
    assert all(detail(results[h]).received == 2 for h in hosts[:-1])


def test_permission_error_says_what_to_do(node: Node) -> None:
    node.sysctl("net.ipv4.ping_group_range", "1 0")  # no group may open ping sockets
    out = ping_in(node, ["127.0.0.1"], mode="dgram")
    message = out["permission_error"]
    assert "setcap cap_net_raw+ep" in message
    assert 'ping_group_range="0 2147483647"' in message
    assert "root" in message
    assert issubclass(IcmpPermissionError, PermissionError)
