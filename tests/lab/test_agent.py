"""What an agent adds to the scheduler's cycle: the local check, the gateway by TCP without
ICMP, the skipped checks and the targets once per cycle (no broker involved)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from pathlib import Path

from inventory.model import Commune, Defaults, Host, Inventory, Province
from monitor.common.mqtt_url import parse_mqtt_url
from monitor.cycle.observation import CommuneObservation, CycleReport, HostObservation
from monitor.remote.agent import Agent, AgentOptions
from probes import local
from probes.result import ProbeResult
from tests.support.lab.netns import Lab

ROOT = Path(__file__).resolve().parents[2]

IP = ipaddress.ip_address


def commune(code: str, net: str, gateway: str, hosts: dict[str, str]) -> Commune:
    return Commune("75", code, f"Xã {code}", "VNPT", ipaddress.ip_network(net), IP(gateway),
                   tuple(Host(name, IP(ip)) for name, ip in hosts.items()))


# Loopback only: the gateways below are really probed by TCP (no ICMP in these tests). The
# PC's configuration is given, not read, so "on the segment" needs no interface of its own.
ON_SEGMENT = commune("26041", "127.75.8.0/29", "127.75.8.1",
                     {"may-01": "127.75.8.2", "may-02": "127.75.8.3"})
LOOPBACK = commune("26044", "127.75.9.0/29", "127.75.9.1", {"may-01": "127.75.9.2"})
INVENTORY = Inventory(1, Defaults(interval=1.0), (Province("75", "Đồng Nai",
                                                           (ON_SEGMENT, LOOPBACK)),))
PC = local.LocalConfig({"eth0": (ipaddress.IPv4Interface("127.75.8.2/29"),)},
                       ("127.75.8.1",), ("127.0.0.53",))


def agent(tmp_path: Path, scope: str = "75", host: str | None = None) -> Agent:
    return Agent(INVENTORY.scoped(scope), parse_mqtt_url("mqtt://127.0.0.1:1"), AgentOptions(
        agent_id="agent-75", scope=scope, spool_path=tmp_path / "spool.db", host=host,
        gateway_timeout=0.5))


def report(vantage: str, communes: tuple[Commune, ...]) -> CycleReport:
    now = time.time()
    target = ProbeResult("target", "bau-cu", False, now, 0.1, "connect refused")
    return CycleReport(now, vantage=vantage, targets=[target], communes=[
        CommuneObservation("75", c.code, now, vantage,
                           tuple(HostObservation(h.name, str(h.ip), False) for h in c.hosts),
                           gateway_alive=False)
        for c in communes])


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
from tests.lab import test_agent as t
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
