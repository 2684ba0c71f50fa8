"""What an agent adds to the scheduler's cycle: the local check, the gateway by TCP without
ICMP, the skipped checks and the targets once per cycle (no broker involved)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

from probes import local
from tests.support import ROOT
from tests.support.agent_cycle import LOOPBACK, ON_SEGMENT, PC, agent, report
from tests.support.lab.netns import Lab


async def test_the_local_check_goes_with_the_host_this_pc_is(tmp_path: Path) -> None:
    a = agent(tmp_path, "75/26041", host="may-01")
    a.skipped = ("icmp", "arp")
    [obs] = await a.complete(report("75/26041", (ON_SEGMENT,)), PC)
    may01, may02 = obs.hosts
    [result] = [r for r in may01.results if r.kind == "local"]
    assert result.ok and result.detail.interface == "eth0"  # type: ignore[union-attr]
    assert not any(r.kind == "local" for r in may02.results)
    assert obs.skipped_checks == ("icmp", "arp")
    assert [t.kind for t in obs.targets] == ["target"]


async def test_a_pc_with_an_unassigned_address_is_reported_with_the_targets(
        tmp_path: Path) -> None:
    a = agent(tmp_path)
    wrong = local.LocalConfig({"eth0": (ipaddress.IPv4Interface("127.75.8.5/29"),)},
                              ("127.75.8.1",), ("127.0.0.53",))
    first, second = await a.complete(report("75", (ON_SEGMENT, LOOPBACK)), wrong)
    kinds = [t.kind for t in first.targets]
    assert kinds == ["target", "local"]
    assert first.targets[1].detail.problems == ("ip_not_assigned:127.75.8.5",)  # type: ignore[union-attr]
    assert second.targets == ()  # the election system's check is sent once per cycle


GATEWAYS_IN_NAMESPACE = """
import asyncio, json, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.support import agent_cycle as t
from probes import local
a = t.agent(Path(tempfile.mkdtemp()))
obs = asyncio.run(a.complete(t.report("75", t.INVENTORY.provinces[0].communes),
                             local.LocalConfig()))
print(json.dumps({o.commune: o.gateway_alive for o in obs}))
"""


def test_without_icmp_the_gateway_is_judged_by_tcp_and_silence_is_unknown(lab: Lab) -> None:
    """In a namespace of its own, where one gateway drops every SYN (iptables there only)."""
    node = lab.node("agent")
    node.run("iptables", "-A", "OUTPUT", "-d", str(LOOPBACK.gateway), "-p", "tcp", "-j",
             "DROP")
    out = node.run(sys.executable, "-c", GATEWAYS_IN_NAMESPACE, str(ROOT), cwd=ROOT).stdout
    alive = json.loads(out)
    assert alive[ON_SEGMENT.code] is True  # 127.75.8.1 refuses: it is there
    assert alive[LOOPBACK.code] is None  # silence proves nothing: unjudged, not down


def test_the_agent_imports_where_the_socket_module_lacks_unix_only_calls() -> None:
    """Windows' socket module has no CMSG_SPACE: importing the agent must not need it."""
    script = ("import socket\n"
              "del socket.CMSG_SPACE\n"
              "import monitor.remote.agent, monitor.cli.agents\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
