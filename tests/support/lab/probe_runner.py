"""Run one probe inside a lab namespace and print its result as JSON (test-only).

``ip netns exec NS python -m tests.support.lab.probe_runner arp '<commune spec JSON>'`` or
``... target '<target spec JSON>'``. The functions :func:`scan_in` and :func:`probe_in`
do that from a test and turn the JSON back into the probes' own types.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

from inventory.model import Commune, Host, Target
from probes import arp, target
from probes.result import ProbeResult, UnknownDevice, from_dict, to_dict
from tests.support.lab.netns import Node

ROOT = Path(__file__).resolve().parents[3]


def commune_from_spec(spec: dict[str, Any]) -> Commune:
    """``{"subnet", "gateway", "backup_gateway", "hosts": [{"name", "ip", "mac"}]}``."""

    def ip(value: str | None) -> Any:
        return None if value is None else ipaddress.ip_address(value)

    return Commune(
        province=spec.get("province", "75"),
        code=spec.get("code", "26041"),
        name=spec.get("name", "Phường Trấn Biên"),
        isp=spec.get("isp", "VNPT"),
        subnet=None if spec.get("subnet") is None else ipaddress.ip_network(spec["subnet"]),
        gateway=ip(spec.get("gateway")),
        backup_gateway=ip(spec.get("backup_gateway")),
        hosts=tuple(Host(name=h["name"], ip=ip(h["ip"]), mac=h.get("mac")) for h in spec["hosts"]),
    )


def target_from_spec(spec: dict[str, Any]) -> Target:
    return Target(
        name=spec.get("name", "congtaidaibieu"),
        url=spec["url"],
        addresses=tuple(ipaddress.ip_address(a) for a in spec.get("addresses", ())),
        ca_file=spec.get("ca_file"),
        verify_tls=spec.get("verify_tls", True),
    )


def scan_to_json(scan: arp.SegmentScan | None) -> dict[str, Any] | None:
    if scan is None:
        return None
    return {
        "interface": scan.interface,
        "hosts": {ip: to_dict(r) for ip, r in scan.hosts.items()},
        "gateway": scan.gateway and to_dict(scan.gateway),
        "backup_gateway": scan.backup_gateway and to_dict(scan.backup_gateway),
        "unknown": [[d.ip, d.mac] for d in scan.unknown],
    }


def scan_from_json(data: dict[str, Any] | None) -> arp.SegmentScan | None:
    if data is None:
        return None

    def opt(raw: dict[str, Any] | None) -> ProbeResult | None:
        return None if raw is None else from_dict(raw)

    return arp.SegmentScan(
        interface=data["interface"],
        hosts={ip: from_dict(r) for ip, r in data["hosts"].items()},
        gateway=opt(data["gateway"]),
        backup_gateway=opt(data["backup_gateway"]),
        unknown=tuple(UnknownDevice(ip, mac) for ip, mac in data["unknown"]),
    )


def _run_in(node: Node, kind: str, payload: dict[str, Any], timeout: float) -> Any:
    proc = node.run(
        sys.executable, "-m", "tests.support.lab.probe_runner", kind, json.dumps(payload),
        timeout=timeout, cwd=ROOT,
    )
    return json.loads(proc.stdout)


def scan_in(node: Node, spec: dict[str, Any], **options: Any) -> arp.SegmentScan | None:
    """Scan the commune described by ``spec`` from inside ``node``."""
    return scan_from_json(_run_in(node, "arp", {"commune": spec, "options": options}, 60))


def probe_in(node: Node, spec: dict[str, Any], timeout: float = 5.0) -> ProbeResult:
    """Probe the target described by ``spec`` from inside ``node``."""
    return from_dict(_run_in(node, "target", {"target": spec, "timeout": timeout}, 60))


async def _main(kind: str, payload: dict[str, Any]) -> Any:
    if kind == "arp":
        commune = commune_from_spec(payload["commune"])
        return scan_to_json(await arp.scan_segment(commune, **payload.get("options", {})))
    tgt = target_from_spec(payload["target"])
    return to_dict(await target.probe(tgt, timeout=payload.get("timeout", 5.0)))


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_main(sys.argv[1], json.loads(sys.argv[2])))))
