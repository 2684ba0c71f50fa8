"""Network-namespace lab: real test networks built from namespaces, veths and bridges.

A :class:`Lab` owns every namespace it creates; all of them are named
``<session prefix>-<lab number>-<name>`` so that :meth:`Lab.close` (and, as a last resort,
:func:`sweep`) removes exactly what this test session made and nothing else. Segments are
Linux bridges inside the lab's own ``sw`` namespace, so the root namespace never sees a lab
interface. Safety: every address, route and prefix configured here must lie inside
198.18.0.0/15 (RFC 2544 benchmarking space); anything else raises ``ValueError``.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import secrets
import shutil
import string
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import stop

NETNS_ETC = Path("/etc/netns")  # per-namespace /etc overrides used by `ip netns exec`
ALLOWED = ipaddress.ip_network("198.18.0.0/15")
IFNAMSIZ = 15  # usable characters of a Linux interface name

#: ``tslcd`` + four random characters: unique to this test session (this process).
SESSION_PREFIX = "tslcd" + "".join(
    secrets.choice(string.ascii_letters + string.digits) for _ in range(4)
)
_lab_numbers = itertools.count(1)


class LabError(RuntimeError):
    """A lab command failed; carries the command and its stderr."""


def ip_cmd(*args: str, netns: str | None = None, check: bool = True) -> str:
    """Run ``ip [-n NETNS] ARGS``; returns stdout, raises :class:`LabError` on failure."""
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc.stdout


def netns_available() -> tuple[bool, str]:
    """Whether this process may build namespace labs, and why not."""
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    if shutil.which("ip") is None:
        return False, "iproute2 (`ip`) is not installed"
    probe = f"{SESSION_PREFIX}-probe"
    try:
        ip_cmd("netns", "add", probe)
        ip_cmd("netns", "del", probe)
    except (LabError, subprocess.TimeoutExpired) as exc:
        return False, f"`ip netns add` fails: {exc}"
    return True, ""


def sweep(prefix: str = SESSION_PREFIX) -> list[str]:
    """Delete every namespace whose name starts with ``prefix-``; returns their names."""
    names = [line.split()[0] for line in ip_cmd("netns", "list").splitlines() if line.strip()]
    mine = [n for n in names if n.startswith(prefix + "-")]
    for name in mine:
        ip_cmd("netns", "del", name, check=False)
    if NETNS_ETC.is_dir():
        for etc in NETNS_ETC.glob(f"{prefix}-*"):
            shutil.rmtree(etc, ignore_errors=True)
    return mine


def allowed_network(value: str, *, strict: bool = False) -> ipaddress.IPv4Network:
    """Parse an address or prefix and refuse anything outside 198.18.0.0/15."""
    net = ipaddress.ip_network(value, strict=strict)
    if not isinstance(net, ipaddress.IPv4Network) or not net.subnet_of(ALLOWED):
        raise ValueError(f"{value}: lab addresses must lie inside {ALLOWED}")
    return net


def allowed_address(value: str) -> str:
    allowed_network(value)
    return str(ipaddress.ip_address(value))


@dataclass
class Node:
    """A namespace: a host, a router, a vantage, a device."""

    lab: Lab
    name: str  # short lab-local name
    netns: str  # full namespace name
    interfaces: list[str] = field(default_factory=list)

    def ip(self, *args: str, check: bool = True) -> str:
        return ip_cmd(*args, netns=self.netns, check=check)

    def exec_args(self, *argv: str) -> list[str]:
        """The argv that runs ``argv`` inside this namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(
        self, *argv: str, timeout: float = 30, check: bool = True, cwd: str | Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace to completion (bounded by ``timeout``)."""
        proc = subprocess.run(
            self.exec_args(*argv), capture_output=True, text=True, timeout=timeout,
            check=False, cwd=cwd,
        )
        if check and proc.returncode != 0:
            raise LabError(f"{self.name}: {' '.join(argv)} -> {proc.returncode}: {proc.stderr}")
        return proc

    def popen(self, *argv: str, **kwargs: object) -> subprocess.Popen[bytes]:
        """Start a long-running process inside the namespace; the lab kills it on close."""
        proc = subprocess.Popen(self.exec_args(*argv), **kwargs)  # type: ignore[call-overload]
        self.lab.processes.append(proc)
        return proc

    def sysctl(self, key: str, value: str | int) -> None:
        self.run("sysctl", "-qw", f"{key}={value}")

    def add_address(self, interface: str, cidr: str) -> None:
        allowed_network(cidr)
        self.ip("addr", "add", cidr, "dev", interface)

    def add_route(
        self, destination: str, *, via: str | None = None, dev: str | None = None,
        kind: str | None = None,
    ) -> None:
        """``ip route add [KIND] DEST [via VIA] [dev DEV]``; KIND e.g. ``blackhole``."""
        if destination != "default":
            allowed_network(destination)
        args = ["route", "add", *([kind] if kind else []), destination]
        if via:
            args += ["via", allowed_address(via)]
        if dev:
            args += ["dev", dev]
        self.ip(*args)

    def isolate_dns(self) -> None:
        """Point the namespace's resolver at its own loopback (``ip netns exec`` bind-mounts
        /etc/netns/NS/resolv.conf), so a lookup never reaches the machine's real resolver."""
        etc = NETNS_ETC / self.netns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")

    def mac(self, interface: str) -> str:
        return self.ip("-br", "link", "show", "dev", interface).split()[2].lower()

    def set_mac(self, interface: str, mac: str) -> None:
        self.ip("link", "set", "dev", interface, "address", mac)

    def next_interface_name(self) -> str:
        return f"eth{len(self.interfaces)}"


@dataclass
class Segment:
    """One layer-2 segment (a bridge in the lab's switch namespace) with its IPv4 subnet."""

    lab: Lab
    name: str
    subnet: ipaddress.IPv4Network
    bridge: str

    def attach(self, node: Node, ip: str | None = None, mac: str | None = None) -> str:
        """Plug ``node`` into this segment; returns the node's new interface name."""
        iface = node.next_interface_name()
        port = self.lab.next_port_name()
        ip_cmd(
            "link", "add", iface, "netns", node.netns, "type", "veth",
            "peer", "name", port, "netns", self.lab.switch.netns,
        )
        node.interfaces.append(iface)
        self.lab.switch.ip("link", "set", port, "master", self.bridge, "up")
        if mac:
            node.set_mac(iface, mac)
        if ip:
            address = ipaddress.ip_address(allowed_address(ip))
            if address not in self.subnet:
                raise ValueError(f"{ip} is not in segment {self.name} ({self.subnet})")
            node.add_address(iface, f"{address}/{self.subnet.prefixlen}")
        node.ip("link", "set", iface, "up")
        return iface

    def add_host(
        self, name: str, ip: str | None = None, mac: str | None = None, *,
        gateway: str | None = None,
    ) -> Node:
        """A new namespace plugged into this segment (a PC, a printer, a CPE...)."""
        node = self.lab.node(name)
        self.attach(node, ip, mac)
        if gateway:
            node.add_route("default", via=gateway)
        return node

    def add_device(self, name: str, ips: Sequence[str], mac: str | None = None) -> Node:
        """A machine answering for several addresses on one interface (one MAC, many IPs)."""
        node = self.add_host(name, ips[0] if ips else None, mac)
        for extra in ips[1:]:
            node.add_address(node.interfaces[-1], f"{extra}/{self.subnet.prefixlen}")
        return node


class Lab:
    """Namespaces, segments and processes of one test; ``close()`` removes them all."""

    def __init__(self, prefix: str = SESSION_PREFIX) -> None:
        self.prefix = f"{prefix}-{next(_lab_numbers)}"
        self.nodes: dict[str, Node] = {}
        self.segments: dict[str, Segment] = {}
        self.processes: list[subprocess.Popen[bytes]] = []
        self._ports = itertools.count(1)
        self.switch = self.node("sw")

    def node(self, name: str, *, forwarding: bool = False) -> Node:
        """A new namespace, loopback up, IPv6 off (no DAD or router-solicitation noise)."""
        if name in self.nodes:
            raise ValueError(f"node {name} already exists")
        node = Node(self, name, f"{self.prefix}-{name}")
        ip_cmd("netns", "add", node.netns)
        self.nodes[name] = node
        node.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
        node.sysctl("net.ipv6.conf.default.disable_ipv6", 1)
        node.ip("link", "set", "lo", "up")
        if forwarding:
            node.sysctl("net.ipv4.ip_forward", 1)
        return node

    def router(self, name: str) -> Node:
        return self.node(name, forwarding=True)

    def segment(self, name: str, subnet: str) -> Segment:
        """A new bridge in the switch namespace (no STP, ports forward at once)."""
        bridge = f"br-{name}"[:IFNAMSIZ]
        if any(s.bridge == bridge for s in self.segments.values()):
            raise ValueError(f"segment name {name} clashes after truncation to {bridge}")
        self.switch.ip(
            "link", "add", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"
        )
        self.switch.ip("link", "set", bridge, "up")
        segment = Segment(self, name, allowed_network(subnet, strict=True), bridge)
        self.segments[name] = segment
        return segment

    def next_port_name(self) -> str:
        return f"p{next(self._ports)}"

    def close(self) -> None:
        """Kill the lab's processes (by pid), then delete its namespaces (and their links)."""
        stop(self.processes, timeout=5)
        for node in reversed(list(self.nodes.values())):
            ip_cmd("netns", "del", node.netns, check=False)
        self.nodes.clear()
        sweep(self.prefix)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

