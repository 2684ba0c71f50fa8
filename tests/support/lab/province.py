"""A simulated province in network namespaces: the lab of issue #7.

Layout (every address inside 198.18.0.0/15; no namespace has a default route, so nothing
can be routed out of the lab)::

    election system (ns ``es``) 198.18.0.2 --- 198.18.0.1 core router (ns ``core``)
                                                  |  one /30 line per commune, 198.19.0.0/16
    commune i: router (ns ``rI``): wan 198.19.x.(4i+2), lan = gateway .1 of the LAN /27
               LAN segment: bridge ``brI`` in the lab's ``sw`` namespace
               computers (ns ``pcI``): one macvlan per computer, each with its own MAC and
               address (``arp_ignore=1``: each answers ARP only for its own address)

The monitor's vantage is the core (it reaches every LAN through the lines); the commune
routers are the vantages on the segments (ARP) and the communes' own view of the election
system. The election system serves HTTPS (:mod:`tests.support.lab.election_site`) with a
certificate of a test CA made by the ``openssl`` CLI, under the name :data:`ELECTION_NAME`,
which the core's ``/etc/hosts`` (``/etc/netns/CORE/hosts``) maps to :data:`ELECTION_IP`.

Building is batched (one ``ip -batch`` per namespace, run a few at a time) so that the
95 communes of Đồng Nai build in seconds; :meth:`Lab.close` removes everything.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from inventory import official
from inventory.loader import dump
from inventory.model import (
    Commune,
    Defaults,
    Host,
    IcmpSettings,
    Inspection,
    Inventory,
    Province,
    Target,
)
from tests.support import ROOT
from tests.support.lab.netns import Lab, LabError, Node, allowed_address, allowed_network

PROVINCE = "75"  # Đồng Nai: 95 communes, the size of the acceptance lab
ELECTION_IP = "198.18.0.2"
CORE_TO_ELECTION = "198.18.0.1"
ELECTION_NAME = "congtaidaibieu.lab"
LAB_NET = "198.18.0.0/15"
LINKS = ipaddress.ip_network("198.19.0.0/16")  # one /30 per commune line
HOSTS_PER_COMMUNE = 2
MAX_HOSTS = 28  # a /27 holds 30: the gateway, the computers, and one free for a stranger
INSPECTED = dt.date(2026, 1, 5)
PARALLEL = 8  # ip/sysctl processes at once while building


@dataclass(frozen=True)
class CommuneLab:
    """One commune of the lab: its inventory entry and where it lives."""

    index: int
    commune: Commune
    router: Node  # the line's router (CPE); its ``lan`` carries the gateway address
    pcs: Node  # the computers, one macvlan each (``h1``, ``h2``...)
    core_if: str  # the core's end of the line
    bridge: str  # the LAN segment, in the lab's switch namespace

    @property
    def key(self) -> str:
        return self.commune.key

    @property
    def code(self) -> str:
        return self.commune.code

    def host_interface(self, host: str) -> str:
        """The macvlan of an inventory host (``may-01`` -> ``h1``)."""
        names = [h.name for h in self.commune.hosts]
        return f"h{names.index(host) + 1}"

    def host(self, name: str) -> Host:
        return next(h for h in self.commune.hosts if h.name == name)


@dataclass
class ProvinceLab:
    lab: Lab
    core: Node
    election: Node
    communes: list[CommuneLab]
    inventory: Inventory
    ca_file: Path
    build_seconds: float = 0.0

    def commune(self, code: str) -> CommuneLab:
        return next(c for c in self.communes if c.code == code)

    def vantages(self) -> dict[str, str]:
        """Commune key -> namespace of its router (the vantage on its segment)."""
        return {c.key: c.router.netns for c in self.communes}

    def write_inventory(self, path: Path, **defaults: object) -> Path:
        """The lab's inventory as YAML; ``defaults`` overrides fields of ``Defaults``."""
        inventory = replace(self.inventory, defaults=replace(self.inventory.defaults,
                                                             **defaults))
        path.write_text(dump(inventory), encoding="utf-8")
        return path


#: Commands the lab needs besides iproute2 and iptables (``ss`` comes with iproute2).
TOOLS = ("openssl", "fping", "iptables", "unshare", "nsenter")


def tools_missing() -> list[str]:
    """The commands of :data:`TOOLS` this machine lacks."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def lan_of(index: int) -> ipaddress.IPv4Network:
    """Commune ``index``'s LAN: 198.18.(1 + i//8).(32 * (i%8))/27."""
    return allowed_network(f"198.18.{1 + index // 8}.{32 * (index % 8)}/27", strict=True)


def line_of(index: int) -> tuple[str, str]:
    """(core end, router end) of commune ``index``'s line, a /30 of 198.19.0.0/16."""
    base = LINKS.network_address + 4 * index
    return allowed_address(str(base + 1)), allowed_address(str(base + 2))


def host_mac(index: int, number: int) -> str:
    return f"02:18:{index >> 8:02x}:{index & 255:02x}:00:{number:02x}"


def lab_inventory(communes: int, hosts: int = HOSTS_PER_COMMUNE, *, interval: float = 3.0,
                  down_after: int = 2, up_after: int = 1, icmp_timeout: float = 0.5,
                  ca_file: Path | None = None) -> Inventory:
    """The first ``communes`` communes of Đồng Nai (official codes and names) on lab
    addresses, expected MACs and inspection stamps listed, the election system as the one
    target. Cycles of 3 s: three echoes a host, 1 s apart as ``ping``, plus their timeout."""
    unit = official.provinces()[PROVINCE]
    codes = sorted(unit.communes)
    if not 1 <= communes <= len(codes):
        raise ValueError(f"a lab has 1..{len(codes)} communes")
    if not 0 <= hosts <= MAX_HOSTS:
        raise ValueError(f"a commune has 0..{MAX_HOSTS} computers")
    entries = []
    for i, code in enumerate(codes[:communes]):
        lan = lan_of(i)
        base = lan.network_address
        entries.append(Commune(
            province=PROVINCE, code=code, name=unit.communes[code].name,
            isp=("VNPT", "Viettel")[i % 2], subnet=lan, gateway=base + 1,
            hosts=tuple(Host(f"may-{n:02d}", base + 1 + n, mac=host_mac(i, n),
                             inspection=Inspection(f"LAB-{i + 1}-{n}", INSPECTED))
                        for n in range(1, hosts + 1)),
            circuit=f"LAB-{i + 1:04d}",
        ))
    target = Target("congtaidaibieu", f"https://{ELECTION_NAME}/",
                    addresses=(ipaddress.ip_address(ELECTION_IP),),
                    ca_file=str(ca_file) if ca_file else None)
    defaults = Defaults(interval=interval, icmp=IcmpSettings(3, icmp_timeout),
                        down_after=down_after, up_after=up_after, tcp_ports=())
    return Inventory(1, defaults, (Province(PROVINCE, unit.name, tuple(entries)),),
                     targets=(target,))


# ----------------------------------------------------------------------- building


def build_province(lab: Lab, workdir: Path, communes: int, *,
                   hosts: int = HOSTS_PER_COMMUNE, **inventory_options: object) -> ProvinceLab:
    """Build the province lab inside ``lab`` (removed with it) and start its election system."""
    t0 = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    ca_file, cert, key = make_certificates(workdir)
    inventory = lab_inventory(communes, hosts, ca_file=ca_file,
                              **inventory_options)  # type: ignore[arg-type]
    entries = list(inventory.communes())
    core, election = _namespace(lab, "core"), _namespace(lab, "es")
    places = [CommuneLab(i, c, _namespace(lab, f"r{i}"), _namespace(lab, f"pc{i}"), f"c{i}",
                         f"br{i}") for i, c in enumerate(entries)]
    nodes = [core, election, *(n for p in places for n in (p.router, p.pcs))]
    _batch(None, [f"netns add {n.netns}" for n in nodes])
    _sysctls(core, election, places)
    _batch(None, _cables(core, election, lab.switch, places))
    jobs = [(core.netns, _core_commands(places)), (election.netns, _election_commands()),
            (lab.switch.netns, _switch_commands(places))]
    for place in places:
        jobs.append((place.router.netns, _router_commands(place)))
        jobs.append((place.pcs.netns, _pcs_commands(place)))
    _parallel([(["ip", "-n", ns, "-batch", "-"], "\n".join(lines) + "\n") for ns, lines in jobs])
    for node in (core, *(p.router for p in places)):  # where the election system is asked
        _name_service(node)
    _serve_https(election, cert, key)
    return ProvinceLab(lab, core, election, places, inventory, ca_file,
                       build_seconds=time.monotonic() - t0)


def _namespace(lab: Lab, name: str) -> Node:
    """A node of ``lab`` whose namespace the caller creates (in a batch)."""
    if name in lab.nodes:
        raise ValueError(f"node {name} already exists")
    node = Node(lab, name, f"{lab.prefix}-{name}")
    lab.nodes[name] = node
    return node


def _name_service(node: Node) -> None:
    """``ip netns exec`` gives the node this /etc/hosts (the election system's name) and a
    resolver on its own loopback: a lookup never leaves the lab."""
    node.isolate_dns()
    hosts = Path("/etc/netns") / node.netns / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{ELECTION_IP} {ELECTION_NAME}\n")


def _sysctls(core: Node, election: Node, places: Sequence[CommuneLab]) -> None:
    common = ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
    router = [*common, "net.ipv4.ip_forward=1"]
    pcs = [*common, "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"]
    jobs = [(core, router), (election, common)]
    jobs += [(p.router, router) for p in places] + [(p.pcs, pcs) for p in places]
    _parallel([(n.exec_args("sysctl", "-qw", *keys), None) for n, keys in jobs])


def _cables(core: Node, election: Node, switch: Node,
            places: Iterable[CommuneLab]) -> list[str]:
    """Every veth pair, created straight into its two namespaces (never the root one)."""
    lines = [f"link add es netns {core.netns} type veth peer name eth0 netns {election.netns}"]
    for p in places:
        i = p.index
        lines += [
            f"link add {p.core_if} netns {core.netns} type veth peer name wan "
            f"netns {p.router.netns}",
            f"link add lan netns {p.router.netns} type veth peer name l{i} netns {switch.netns}",
            f"link add eth0 netns {p.pcs.netns} type veth peer name m{i} netns {switch.netns}",
        ]
    return lines


def _core_commands(places: Iterable[CommuneLab]) -> list[str]:
    lines = ["link set lo up", f"addr add {CORE_TO_ELECTION}/30 dev es", "link set es up"]
    for p in places:
        core_end, router_end = line_of(p.index)
        lines += [f"addr add {core_end}/30 dev {p.core_if}", f"link set {p.core_if} up",
                  f"route add {p.commune.subnet} via {router_end} dev {p.core_if}"]
    return lines


def _election_commands() -> list[str]:
    return ["link set lo up", f"addr add {ELECTION_IP}/30 dev eth0", "link set eth0 up",
            f"route add {LAB_NET} via {CORE_TO_ELECTION}"]


def _switch_commands(places: Iterable[CommuneLab]) -> list[str]:
    lines = ["link set lo up"]
    for p in places:
        lines += [f"link add {p.bridge} type bridge stp_state 0 forward_delay 0",
                  f"link set {p.bridge} up",
                  f"link set l{p.index} master {p.bridge} up",
                  f"link set m{p.index} master {p.bridge} up"]
    return lines


def _router_commands(p: CommuneLab) -> list[str]:
    core_end, router_end = line_of(p.index)
    subnet = p.commune.subnet
    assert subnet is not None
    return ["link set lo up", f"addr add {router_end}/30 dev wan", "link set wan up",
            f"addr add {p.commune.gateway}/{subnet.prefixlen} dev lan", "link set lan up",
            f"route add {LAB_NET} via {core_end} dev wan"]


def _pcs_commands(p: CommuneLab) -> list[str]:
    subnet = p.commune.subnet
    assert subnet is not None
    lines = ["link set lo up", "link set eth0 up"]
    for n, host in enumerate(p.commune.hosts, start=1):
        lines += [f"link add h{n} link eth0 type macvlan mode bridge",
                  f"link set h{n} address {host.mac}",
                  f"addr add {allowed_address(str(host.ip))}/{subnet.prefixlen} dev h{n}",
                  f"link set h{n} up"]
    if p.commune.hosts:
        lines.append(f"route add {LAB_NET} via {p.commune.gateway} dev h1")
    return lines


def _batch(netns: str | None, lines: list[str]) -> None:
    _parallel([(["ip", *(["-n", netns] if netns else []), "-batch", "-"],
                "\n".join(lines) + "\n")])


def _parallel(jobs: Sequence[tuple[list[str], str | None]], limit: int = PARALLEL) -> None:
    """Run commands (argv, stdin text) at most ``limit`` at a time; raise on any failure."""
    running: list[tuple[list[str], str | None, subprocess.Popen[str]]] = []
    failures: list[str] = []

    def reap(argv: list[str], stdin: str | None, proc: subprocess.Popen[str]) -> None:
        _, err = proc.communicate(stdin, timeout=60)
        if proc.returncode != 0:
            failures.append(f"{' '.join(argv[:6])}: {err.strip()}")

    for argv, stdin in jobs:
        if len(running) >= limit:
            reap(*running.pop(0))
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        running.append((argv, stdin, proc))
    for item in running:
        reap(*item)
    if failures:
        raise LabError("; ".join(failures[:5]))


# ------------------------------------------------------------------ election system


def make_certificates(workdir: Path) -> tuple[Path, Path, Path]:
    """A test CA and the election system's certificate (name and IP), by the openssl CLI."""
    if shutil.which("openssl") is None:
        raise LabError("the openssl command is not installed")
    ca_key, ca, key, csr, cert = (workdir / n for n in
                                  ("ca.key", "ca.pem", "es.key", "es.csr", "es.pem"))
    ext = workdir / "es.ext"
    ext.write_text(f"subjectAltName=DNS:{ELECTION_NAME},IP:{ELECTION_IP}\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for argv in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=tslcd lab CA"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={ELECTION_NAME}"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext],
    ):
        subprocess.run(["openssl", *map(str, argv)], check=True, capture_output=True,
                       timeout=30)
    return ca, cert, key


def _serve_https(election: Node, cert: Path, key: Path) -> None:
    """The election system's stand-in (:mod:`tests.support.lab.election_site`, concurrent)
    on 198.18.0.2:443, answering GET with 200 and a page."""
    proc = election.popen(sys.executable, "-m", "tests.support.lab.election_site", "--address",
                          ELECTION_IP, "--cert", str(cert), "--key", str(key), cwd=str(ROOT),
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError("the election system's stand-in exited at start")
        listening = election.run("ss", "-Hltn", "sport = :443", check=False).stdout
        if ELECTION_IP in listening:
            return
        time.sleep(0.05)
    raise LabError("the election system did not start listening")
