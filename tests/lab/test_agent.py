"""What an agent adds to the scheduler's cycle: the gateway by TCP without ICMP, the skipped
checks and the targets once per cycle (no broker involved)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT
from tests.support.agent_cycle import LOOPBACK, ON_SEGMENT, agent, report
from tests.support.lab.netns import Lab


async def test_skipped_checks_and_the_targets_once_per_cycle(tmp_path: Path) -> None:
    a = agent(tmp_path)
    a.skipped = ("icmp", "arp")
    first, second = await a.complete(report("75", (ON_SEGMENT, LOOPBACK)))
    assert first.skipped_checks == second.skipped_checks == ("icmp", "arp")
    assert [t.kind for t in first.targets] == ["target"]
    assert second.targets == ()  # the election system's check is sent once per cycle


async def test_a_re_probe_of_targets_alone_travels_with_the_first_commune(
        tmp_path: Path) -> None:
    """Fast confirmation may re-probe only the election system: still one batch."""
    a = agent(tmp_path)
    targets_only = report("75", ())
    [obs] = await a.complete(targets_only)
    assert (obs.commune, obs.hosts, [t.kind for t in obs.targets]) == \
        (ON_SEGMENT.code, (), ["target"])


GATEWAYS_IN_NAMESPACE = """
import asyncio, json, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.support import agent_cycle as t
a = t.agent(Path(tempfile.mkdtemp()))
obs = asyncio.run(a.complete(t.report("75", t.INVENTORY.provinces[0].communes)))
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
