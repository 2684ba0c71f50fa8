"""Our traceroute on loopback and through two routers in a namespace topology of its own."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from probes import path
from probes.result import PathDetail, ProbeResult, from_dict
from tests.support.lab.netns import Lab, Node

ROOT = Path(__file__).resolve().parents[2]
PREFIX = f"tslcdP-{os.getpid()}"
pytestmark = pytest.mark.timeout(120)

RUNNER = """
import asyncio, json, sys
from probes.path import trace
from probes.result import to_dict
args = json.loads(sys.argv[1])
print(json.dumps(to_dict(asyncio.run(trace(args["ip"], max_hops=args["max_hops"],
    timeout=args["timeout"], expected_first_hop=args.get("expected_first_hop"))))))
"""


def hops(result: ProbeResult) -> tuple[str | None, ...]:
    assert isinstance(result.detail, PathDetail)
    return result.detail.hops


def trace_in(node: Node, ip: str, *, max_hops: int = 8, timeout: float = 1.0,
             expected_first_hop: str | None = None) -> ProbeResult:
    args = {"ip": ip, "max_hops": max_hops, "timeout": timeout,
            "expected_first_hop": expected_first_hop}
    proc = node.run(sys.executable, "-c", RUNNER, json.dumps(args), timeout=60, cwd=ROOT)
    return from_dict(json.loads(proc.stdout.splitlines()[-1]))


@pytest.fixture(scope="module")
def topology(netns_ready: None) -> Iterator[dict[str, Node]]:
    """src 198.18.200.2 -> r1 (.200.1|.201.1) -> r2 (.201.2|.202.1) -> dst 198.18.202.2."""
    with Lab(prefix=PREFIX) as lab:
        a = lab.segment("a", "198.18.200.0/24")
        b = lab.segment("b", "198.18.201.0/24")
        c = lab.segment("c", "198.18.202.0/24")
        src = a.add_host("src", "198.18.200.2", gateway="198.18.200.1")
        r1, r2 = lab.router("r1"), lab.router("r2")
        a.attach(r1, "198.18.200.1")
        b.attach(r1, "198.18.201.1")
        b.attach(r2, "198.18.201.2")
        c.attach(r2, "198.18.202.1")
        r1.add_route("198.18.202.0/24", via="198.18.201.2")
        r2.add_route("198.18.200.0/24", via="198.18.201.1")
        c.add_host("dst", "198.18.202.2", gateway="198.18.202.1")
        yield {"src": src}


async def test_loopback_is_one_hop() -> None:
    result = await path.trace("127.0.0.1", expected_first_hop="127.0.0.1")
    assert result.kind == "path" and result.ok and result.error is None
    assert hops(result) == ("127.0.0.1",)
    assert isinstance(result.detail, PathDetail) and result.detail.first_hop_ok is True


async def test_max_hops_is_validated() -> None:
    with pytest.raises(ValueError):
        await path.trace("127.0.0.1", max_hops=0)


def test_two_routers_then_the_host(topology: dict[str, Node]) -> None:
    result = trace_in(topology["src"], "198.18.202.2", expected_first_hop="198.18.200.1")
    assert result.ok, result.error
    assert hops(result) == ("198.18.200.1", "198.18.201.2", "198.18.202.2")
    assert isinstance(result.detail, PathDetail) and result.detail.first_hop_ok is True


def test_wrong_first_hop_is_reported(topology: dict[str, Node]) -> None:
    result = trace_in(topology["src"], "198.18.202.2", expected_first_hop="198.18.200.254")
    assert result.ok
    assert isinstance(result.detail, PathDetail) and result.detail.first_hop_ok is False


def test_silent_address_beyond_the_routers_is_not_reached(topology: dict[str, Node]) -> None:
    result = trace_in(topology["src"], "198.18.202.9", max_hops=4, timeout=0.8)
    assert not result.ok and result.error
    assert hops(result)[:2] == ("198.18.200.1", "198.18.201.2")
    assert "198.18.202.9" not in hops(result)
