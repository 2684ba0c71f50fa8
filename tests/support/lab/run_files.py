"""What a `tslcd-monitor run` inside a namespace lab leaves in files, beyond what
:mod:`tests.support.lab.observe` reads: the MQTT subscriber's lines; cutting one address off
inside the lab; the small demo inventory those runs use."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from inventory.loader import demo_path, dump, load
from tests.support.lab.netns import Node
from tests.support.lab.observe import lines


def small_demo(path: Path) -> tuple[str, list[tuple[str, str, str]]]:
    """Three demo communes, 1 s cycles, down after 2, up after 2, no milestones.

    Writes the inventory to ``path``; returns its text and every (commune, name, ip) probed.
    """
    demo = load(demo_path()).scoped("75")
    province = demo.provinces[0]
    province = dataclasses.replace(province, communes=province.communes[:3])
    defaults = dataclasses.replace(demo.defaults, interval=1.0, down_after=2, up_after=2,
                                   icmp=dataclasses.replace(demo.defaults.icmp, timeout=0.3))
    inventory = dataclasses.replace(demo, provinces=(province,), defaults=defaults,
                                    targets=(), milestones=())  # no deadline events
    path.write_text(dump(inventory), encoding="utf-8")
    hosts = [(c.code, h.name, str(h.ip)) for c in province.communes for h in c.hosts]
    gateways = [(c.code, "gateway", str(c.gateway)) for c in province.communes]
    return path.read_text(encoding="utf-8"), hosts + gateways


def mqtt_events(out: Path) -> list[dict]:
    """The events a ``mosquitto_sub -v`` wrote ("topic payload" lines)."""
    return [json.loads(line.split(" ", 1)[1]) for line in lines(out) if " " in line]


def block(node: Node, ip: str) -> None:
    """Drop everything ``node`` sends to ``ip`` (iptables inside the lab's namespace only)."""
    node.run("iptables", "-I", "OUTPUT", "-d", ip, "-j", "DROP")


def unblock(node: Node, ip: str) -> None:
    """Undo :func:`block`."""
    node.run("iptables", "-D", "OUTPUT", "-d", ip, "-j", "DROP")
