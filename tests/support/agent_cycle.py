"""An agent over two loopback communes of Đồng Nai (127.75.8.x, 127.75.9.x), no broker: what
it adds to a scheduler's cycle. The gateways are really probed by TCP. A subprocess in a
namespace imports this module too.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

from inventory.model import Commune, Defaults, Host, Inventory, Province
from monitor.common.mqtt_url import parse_mqtt_url
from monitor.cycle.observation import CommuneObservation, CycleReport, HostObservation
from monitor.remote.agent import Agent, AgentOptions
from probes.result import ProbeResult

IP = ipaddress.ip_address


def commune(code: str, net: str, gateway: str, hosts: dict[str, str]) -> Commune:
    return Commune("75", code, f"Xã {code}", "VNPT", ipaddress.ip_network(net), IP(gateway),
                   tuple(Host(name, IP(ip)) for name, ip in hosts.items()))


# Loopback only: the gateways below are really probed by TCP (no ICMP in these tests).
ON_SEGMENT = commune("26041", "127.75.8.0/29", "127.75.8.1",
                     {"may-01": "127.75.8.2", "may-02": "127.75.8.3"})
LOOPBACK = commune("26044", "127.75.9.0/29", "127.75.9.1", {"may-01": "127.75.9.2"})
INVENTORY = Inventory(1, Defaults(interval=1.0), (Province("75", "Đồng Nai",
                                                           (ON_SEGMENT, LOOPBACK)),))


def agent(tmp_path: Path, scope: str = "75") -> Agent:
    return Agent(INVENTORY.scoped(scope), parse_mqtt_url("mqtt://127.0.0.1:1"), AgentOptions(
        agent_id="agent-75", scope=scope, spool_path=tmp_path / "spool.db",
        gateway_timeout=0.5))


def report(vantage: str, communes: tuple[Commune, ...]) -> CycleReport:
    now = time.time()
    target = ProbeResult("target", "bau-cu", False, now, 0.1, "connect refused")
    return CycleReport(now, vantage=vantage, targets=[target], communes=[
        CommuneObservation("75", c.code, now, vantage,
                           tuple(HostObservation(h.name, str(h.ip), False) for h in c.hosts),
                           gateway_alive=False)
        for c in communes])
