"""The unprivileged local check: parsers, and the real thing inside a namespace."""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path

from probes import local
from tests.support.lab.netns import Lab

ROOT = Path(__file__).resolve().parents[2]

PROC_ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010512C6\t0003\t0\t0\t200\t00000000\t0\t0\t0
eth1\t00000000\t090512C6\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t000512C6\t00000000\t0001\t0\t0\t0\tF8FFFFFF\t0\t0\t0
"""


def test_proc_route_gives_default_gateways_lowest_metric_first() -> None:
    assert local.parse_proc_route(PROC_ROUTE) == ("198.18.5.9", "198.18.5.1")
    assert local.parse_proc_route("Iface\tDestination\n") == ()


def test_resolv_conf_and_registry_lists() -> None:
    text = "# comment\nsearch example\nnameserver 198.18.0.53\nnameserver 198.18.0.54\n"
    assert local.parse_resolv_conf(text) == ("198.18.0.53", "198.18.0.54")
    assert local.split_registry_list(["198.18.5.1", ""]) == ("198.18.5.1",)
    assert local.split_registry_list("198.18.0.53,198.18.0.54") == ("198.18.0.53", "198.18.0.54")
    assert local.split_registry_list("0.0.0.0") == ()
    assert local.split_registry_list(None) == ()


def test_check_flags_mask_gateway_and_missing_dns() -> None:
    from inventory.model import Commune, Host

    net = ipaddress.ip_network("198.18.5.0/29")
    host = Host("may-01", ipaddress.ip_address("198.18.5.2"))
    commune = Commune("75", "26041", "X", "VNPT", net, ipaddress.ip_address("198.18.5.1"),
                      (host,))
    good = local.LocalConfig({"eth0": (ipaddress.IPv4Interface("198.18.5.2/29"),)},
                             ("198.18.5.1",), ("198.18.0.53",))
    assert local.check(commune, host, good).ok
    bad = local.LocalConfig({"eth0": (ipaddress.IPv4Interface("198.18.5.2/24"),)},
                            ("198.18.5.6",), ())
    result = local.check(commune, host, bad)
    assert not result.ok
    assert result.detail.problems == ("mask:/24!=/29", "gateway:198.18.5.6!=198.18.5.1",  # type: ignore[union-attr]
                                      "dns:none")


CHECK_IN_NAMESPACE = """
import ipaddress, json
from inventory.model import Commune, Host
from probes import local
from probes.result import to_dict
hosts = (Host("may-01", ipaddress.ip_address("198.18.5.2")),
         Host("may-02", ipaddress.ip_address("198.18.5.3")))
def commune(gateway):
    return Commune("75", "26041", "X", "VNPT", ipaddress.ip_network("198.18.5.0/29"),
                   ipaddress.ip_address(gateway), hosts)
config = local.read_config()
print(json.dumps([to_dict(local.check(commune("198.18.5.1"), hosts[0], config)),
                  to_dict(local.check(commune("198.18.5.1"), hosts[1], config)),
                  to_dict(local.check(commune("198.18.5.6"), hosts[0], config))]))
"""


def test_read_and_check_a_real_interface(lab: Lab) -> None:
    """A PC on the commune's segment, as configured by the operator: the check reads its
    interface, route and resolver the way an unprivileged agent does."""
    segment = lab.segment("lan", "198.18.5.0/29")
    pc = segment.add_host("pc", "198.18.5.2", gateway="198.18.5.1")
    pc.isolate_dns()  # nameserver 127.0.0.1
    out = pc.run(sys.executable, "-c", CHECK_IN_NAMESPACE, cwd=ROOT).stdout
    right, other_host, wrong_gateway = json.loads(out)
    assert right["ok"], right
    assert right["detail"]["addresses"] == ["198.18.5.2/29"]
    assert right["detail"]["gateway"] == "198.18.5.1"
    assert right["detail"]["dns"] == ["127.0.0.1"]
    assert other_host["detail"]["problems"] == ["ip_not_assigned:198.18.5.2"]
    assert wrong_gateway["detail"]["problems"] == ["gateway:198.18.5.1!=198.18.5.6"]
