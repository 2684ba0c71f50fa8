"""Faults injected on purpose into a province lab (:mod:`tests.support.lab.province`).

Each function puts one fault in force and returns a :class:`Fault` whose ``clear()`` (or the
end of a ``with`` block) takes it away again. Every fault lives inside the lab's own
namespaces: the root namespace's iptables and routes are never touched.

* line faults, in the commune router: random loss (iptables ``statistic`` match on the
  ``wan`` interface, both directions), delay (this kernel has no ``netem``: a userspace
  delay line on a TUN device, :mod:`tests.support.lab.delayline`, with policy routing), the line
  down (``ip link set wan down``), a blackhole route to the election system;
* host faults: a computer switched off (its interface down);
* segment faults, on the commune's bridge: a second machine answering for a host's IP
  (duplicate IP), a host whose MAC is not the inventory's (wrong MAC), a machine the
  inventory does not list (unknown device).

:func:`dropped_packets` and :func:`rtt_ms` let a test check that a fault really is in force.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.lab.netns import LabError, Node, allowed_address, ip_cmd
from tests.support.lab.province import ELECTION_IP, LAB_NET, CommuneLab, ProvinceLab, line_of
from tests.support.processes import stop

ROOT = Path(__file__).resolve().parents[3]
DELAY_TABLE = "100"
DELAY_DEV = "dly"


@dataclass
class Fault:
    what: str
    undo: list[Callable[[], None]] = field(default_factory=list)

    def clear(self) -> None:
        """Take the fault away (last step first); safe to call twice."""
        while self.undo:
            self.undo.pop()()

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()


# -------------------------------------------------------------------- line faults

LOSS_RULES = (("raw", "PREROUTING", "-i"), ("mangle", "POSTROUTING", "-o"))


def loss(place: CommuneLab, probability: float) -> Fault:
    """Drop each packet crossing the commune's line (either way) with ``probability``."""
    if not 0.0 < probability <= 1.0:
        raise ValueError("probability must be in (0, 1]")
    fault = Fault(f"{probability:.0%} loss on the line of {place.key}")
    for table, chain, direction in LOSS_RULES:
        rule = [chain, direction, "wan", "-m", "statistic", "--mode", "random",
                "--probability", f"{probability:.4f}", "-j", "DROP"]
        place.router.run("iptables", "-w", "-t", table, "-I", *rule)
        fault.undo.append(lambda t=table, r=rule: place.router.run(
            "iptables", "-w", "-t", t, "-D", *r, check=False))
    return fault


def loss_everywhere(province: ProvinceLab, probability: float) -> Fault:
    """The same random loss on every commune's line."""
    faults = [loss(p, probability) for p in province.communes]
    return Fault(f"{probability:.0%} loss on every line", [f.clear for f in faults])


def dropped_packets(place: CommuneLab) -> int:
    """Packets the loss rules of this commune's line dropped so far."""
    total = 0
    for table, chain, _ in LOSS_RULES:
        out = place.router.run("iptables", "-w", "-t", table, "-L", chain, "-v", "-n", "-x",
                               check=False).stdout
        total += sum(int(line.split()[0]) for line in out.splitlines()
                     if "statistic" in line and "DROP" in line)
    return total


def delay(place: CommuneLab, seconds: float) -> Fault:
    """Delay every packet leaving the commune towards the core by ``seconds``: replies of the
    computers (forwarded from ``lan``) and of the router itself (``iif lo``) go through the
    delay line's TUN device, and come back out of it into the normal routing."""
    router = place.router
    proc = router.popen(sys.executable, "-m", "tests.support.lab.delayline", "--dev", DELAY_DEV,
                        "--delay", str(seconds), cwd=str(ROOT))
    fault = Fault(f"{seconds * 1000:.0f} ms delay on the line of {place.key}",
                  [lambda: _stop(proc)])
    _wait_for_link(router, DELAY_DEV, proc)
    router.sysctl(f"net.ipv4.conf.{DELAY_DEV}.accept_local", 1)  # its own replies come back
    router.sysctl(f"net.ipv4.conf.{DELAY_DEV}.rp_filter", 0)
    router.sysctl("net.ipv4.conf.all.rp_filter", 0)
    router.ip("link", "set", DELAY_DEV, "up")
    router.ip("route", "add", LAB_NET, "dev", DELAY_DEV, "table", DELAY_TABLE)
    router.ip("route", "add", "throw", str(place.commune.subnet), "table", DELAY_TABLE)
    for pref, iif in (("100", "lan"), ("101", "lo")):
        router.ip("rule", "add", "pref", pref, "iif", iif, "lookup", DELAY_TABLE)
        fault.undo.append(lambda p=pref: router.ip("rule", "del", "pref", p, check=False))
    fault.undo.append(lambda: router.ip("route", "flush", "table", DELAY_TABLE, check=False))
    return fault


def link_down(place: CommuneLab) -> Fault:
    """The line is cut: the router's ``wan`` goes down (and the core's end loses carrier)."""
    place.router.ip("link", "set", "wan", "down")
    core_end, _ = line_of(place.index)

    def restore() -> None:
        place.router.ip("link", "set", "wan", "up")
        place.router.ip("route", "replace", LAB_NET, "via", core_end, "dev", "wan")

    return Fault(f"line of {place.key} down", [restore])


def blackhole(place: CommuneLab, destination: str = f"{ELECTION_IP}/32") -> Fault:
    """A blackhole route in the commune's router: ``destination`` unreachable from there."""
    place.router.add_route(destination, kind="blackhole")
    return Fault(f"blackhole to {destination} in {place.key}", [lambda: place.router.ip(
        "route", "del", "blackhole", destination, check=False)])


def rtt_ms(node: Node, ip: str, count: int = 5, wait_ms: int = 3000) -> list[float]:
    """Round trips (ms) of ``count`` echoes from ``node`` to ``ip`` (fping), each waited for
    ``wait_ms``; lost ones left out."""
    out = node.run("fping", "-C", str(count), "-q", "-p", "100", "-t", str(wait_ms),
                   allowed_address(ip), check=False, timeout=30).stderr
    times = out.rpartition(":")[2].split()
    return [float(t) for t in times if re.fullmatch(r"[0-9.]+", t)]


# ----------------------------------------------------------------- segment faults


def device(province: ProvinceLab, place: CommuneLab, name: str, ip: str, mac: str) -> Fault:
    """A machine plugged into the commune's bridge, answering ARP for ``ip`` with ``mac``."""
    subnet = place.commune.subnet
    assert subnet is not None
    if ipaddress.ip_address(ip) not in subnet:
        raise ValueError(f"{ip} is not in {subnet}")
    lab = province.lab
    node = lab.node(name)
    port = lab.next_port_name()
    ip_cmd("link", "add", "eth0", "netns", node.netns, "type", "veth", "peer", "name", port,
           "netns", lab.switch.netns)
    lab.switch.ip("link", "set", port, "master", place.bridge, "up")
    node.set_mac("eth0", mac)
    node.add_address("eth0", f"{allowed_address(ip)}/{subnet.prefixlen}")
    node.ip("link", "set", "eth0", "up")

    def unplug() -> None:
        ip_cmd("netns", "del", node.netns, check=False)
        lab.nodes.pop(name, None)
        _forget_neighbour(place, ip)

    return Fault(f"device {mac} at {ip} on {place.key}", [unplug])


def duplicate_ip(province: ProvinceLab, place: CommuneLab, host: str,
                 mac: str = "02:66:00:00:00:01") -> Fault:
    """A second machine answering for ``host``'s address (an IP conflict)."""
    ip = str(place.host(host).ip)
    return device(province, place, f"dup{place.index}", ip, mac)


def unknown_device(province: ProvinceLab, place: CommuneLab,
                   mac: str = "02:77:00:00:00:01") -> tuple[Fault, str]:
    """A machine the inventory does not list, on the last address of the commune's subnet;
    returns the fault and that address."""
    subnet = place.commune.subnet
    assert subnet is not None
    ip = str(subnet.broadcast_address - 1)
    return device(province, place, f"unk{place.index}", ip, mac), ip


def host_missing(place: CommuneLab, host: str) -> Fault:
    """``host`` is switched off: its interface on the segment goes down (no ICMP, no ARP).
    The computers' way out leaves by the first interface; while that one is off it leaves by
    another, so the other computers keep answering across the line."""
    iface = place.host_interface(host)
    others = [f"h{n}" for n in range(1, len(place.commune.hosts) + 1) if f"h{n}" != iface]

    def route_via(dev: str) -> None:
        place.pcs.ip("route", "replace", LAB_NET, "via", str(place.commune.gateway), "dev", dev)

    place.pcs.ip("link", "set", iface, "down")
    if iface == "h1" and others:
        route_via(others[0])

    def switch_on() -> None:
        place.pcs.ip("link", "set", iface, "up")
        if iface == "h1":
            route_via(iface)

    return Fault(f"{host} of {place.key} switched off", [switch_on])


def wrong_mac(place: CommuneLab, host: str, mac: str = "02:99:00:00:00:01",
              unplugged: float = 0.0) -> Fault:
    """``host`` answers with another MAC than the inventory's (a swapped network card).
    ``unplugged``: seconds the computer is off the segment while the card is swapped, as
    when a card is really changed; longer than an ARP scan's window, no scan hears both
    cards. 0: the MAC changes in place, and a scan under way may hear both."""
    iface = place.host_interface(host)
    expected = place.host(host).mac
    assert expected is not None
    ip = str(place.host(host).ip)

    def set_mac(value: str) -> None:
        if unplugged:
            place.pcs.ip("link", "set", iface, "down")
        place.pcs.set_mac(iface, value)
        if unplugged:
            time.sleep(unplugged)
            place.pcs.ip("link", "set", iface, "up")
        _forget_neighbour(place, ip)  # as the PC's gratuitous ARP would

    set_mac(mac)
    return Fault(f"{host} of {place.key} answers with {mac}", [lambda: set_mac(expected)])


# ------------------------------------------------------------------------ helpers


def _forget_neighbour(place: CommuneLab, ip: str) -> None:
    place.router.ip("neigh", "del", ip, "dev", "lan", check=False)


def _wait_for_link(node: Node, name: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"the delay line exited ({proc.returncode})")
        if node.ip("link", "show", "dev", name, check=False):
            return
        time.sleep(0.05)
    raise LabError(f"{name} did not appear in {node.netns}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    stop([proc], timeout=5)
