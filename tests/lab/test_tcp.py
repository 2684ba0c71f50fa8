"""TCP liveness: accepted or refused means the machine is there; silence means it is not."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from probes import tcp
from probes.result import ProbeResult, TcpDetail, from_dict
from tests.support.lab.netns import Lab, Node

ROOT = Path(__file__).resolve().parents[2]
PREFIX = f"tslcdP-{os.getpid()}"
pytestmark = pytest.mark.timeout(60)

RUNNER = """
import asyncio, json, sys
from probes.tcp import probe_any
from probes.result import to_dict
args = json.loads(sys.argv[1])
print(json.dumps(to_dict(asyncio.run(probe_any(args["ip"], args["ports"], args["timeout"])))))
"""


def detail(result: ProbeResult) -> TcpDetail:
    assert isinstance(result.detail, TcpDetail)
    return result.detail


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture
def node(netns_ready: None) -> Iterator[Node]:
    with Lab(prefix=PREFIX) as lab:
        yield lab.node("tcp")


def probe_in(node: Node, ip: str, ports: list[int], timeout: float) -> ProbeResult:
    args = {"ip": ip, "ports": ports, "timeout": timeout}
    proc = node.run(sys.executable, "-c", RUNNER, json.dumps(args), timeout=30, cwd=ROOT)
    return from_dict(json.loads(proc.stdout.splitlines()[-1]))


async def test_listening_port_is_alive(listener: int) -> None:
    result = await tcp.probe("127.0.0.1", listener, 2.0)
    assert result.kind == "tcp" and result.subject == "127.0.0.1"
    assert result.ok and result.error is None
    assert detail(result).port == listener and not detail(result).refused
    assert detail(result).connect_seconds is not None


async def test_refused_connection_means_the_host_is_there(free_port: int) -> None:
    result = await tcp.probe("127.0.0.1", free_port, 2.0)
    assert result.ok and detail(result).refused


async def test_probe_any_takes_the_port_that_answers(listener: int, free_port: int) -> None:
    result = await tcp.probe_any("127.0.0.1", [free_port, listener], 2.0)
    assert result.ok and detail(result).port in (free_port, listener)


async def test_probe_any_needs_ports() -> None:
    with pytest.raises(ValueError):
        await tcp.probe_any("127.0.0.1", [], 1.0)


def test_silently_dropped_ports_time_out(node: Node) -> None:
    node.run("iptables", "-A", "INPUT", "-p", "tcp", "-m", "multiport", "--dports",
             "445,3389", "-j", "DROP")
    result = probe_in(node, "127.0.0.1", [445, 3389], 0.5)
    assert not result.ok
    assert result.error and result.error.count("no answer") == 2
    assert detail(result).connect_seconds is None


def test_dropped_port_does_not_hide_a_refusing_one(node: Node) -> None:
    node.run("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "445", "-j", "DROP")
    result = probe_in(node, "127.0.0.1", [445, 3389], 1.0)
    assert result.ok and detail(result).port == 3389 and detail(result).refused


def test_unreachable_network_is_not_alive(node: Node) -> None:
    """The namespace has no route to 198.18.0.0/15: nothing ever leaves it."""
    result = probe_in(node, "198.18.200.9", [445], 0.5)
    assert not result.ok and result.error


EXHAUSTED = """
import asyncio, json, os, resource
from probes.tcp import probe_any
from probes.result import to_dict

async def main():
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    held = []
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    try:
        return to_dict(await probe_any("127.0.0.1", [445, 3389], 0.5))
    finally:
        for fd in held:
            os.close(fd)

print(json.dumps(asyncio.run(main())))
"""


def test_no_file_descriptor_left_is_a_failed_probe_not_a_crash() -> None:
    proc = subprocess.run([sys.executable, "-c", EXHAUSTED], capture_output=True, text=True,
                          timeout=30, cwd=ROOT, check=True)
    result = from_dict(json.loads(proc.stdout.splitlines()[-1]))
    assert not result.ok
    assert result.error and result.error.count("Too many open files") == 2


RAISED = """
import resource
from monitor.cli.main import raise_open_file_limit
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
raise_open_file_limit()
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)
"""


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    proc = subprocess.run([sys.executable, "-c", RAISED], capture_output=True, text=True,
                          timeout=30, cwd=ROOT, check=True)
    soft, hard = (int(v) for v in proc.stdout.split())
    assert soft == (1 << 20 if hard == resource.RLIM_INFINITY else hard) > 256
