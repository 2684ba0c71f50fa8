"""Two machines fighting over one address, as the line's router sees them (test-only).

Two machines on one address both talk to their gateway: each asks the router for it by ARP
now and then (when its own entry for the gateway has expired), and the router takes the
asker's MAC for the address. The router holds one MAC per IP, so its entry flips from one
to the other (arpwatch's "flip flop"): how an IP conflict shows in its ARP table, which the
central monitor reads over SNMP. :func:`fight` puts a second machine on the host's address
(:func:`tests.support.lab.faults.duplicate_ip`) and has both ask in turn.

net-snmp's agent takes a MAC from the kernel's netlink events for new rows only: a row
whose MAC changes in place keeps the old one in its table (seen in this lab). So each turn
the router's entry is removed first, as its ageing would remove it, and the asker's request
makes it anew. A CPE's own agent may follow changes in place; ours is the stricter case.

``python -m tests.support.lab.conflict --dev D --ip A --gateway G`` sends one such request from
the current namespace (the frame of :func:`probes.arp.arp_request`).
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from pathlib import Path

from probes import arp
from tests.support.lab.faults import Fault, duplicate_ip
from tests.support.lab.netns import Node, allowed_address
from tests.support.lab.province import LAB_NET, CommuneLab, ProvinceLab

ROOT = Path(__file__).resolve().parents[3]
#: seconds between two turns (the router's entry changes hands each turn): longer than a
#: read of the lab (5 s) so that each turn is read, short enough that the reads a router
#: keeps (monitor.cycle.routers.KEPT_READS, eight) always hold a flip-flop
TURN = 7.0
MAX_TURNS = 900  # 30 minutes at most, far past any test


def ask(dev: str, ip: str, gateway: str) -> None:
    """One ARP request from ``ip`` on ``dev`` for ``gateway`` (broadcast)."""
    mac = Path(f"/sys/class/net/{dev}/address").read_text(encoding="ascii").strip()
    frame = arp.arp_request(bytes.fromhex(mac.replace(":", "")),
                            socket.inet_aton(allowed_address(ip)),
                            socket.inet_aton(allowed_address(gateway)))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((dev, 0))
        sock.send(frame)


def fight(province: ProvinceLab, place: CommuneLab, host: str,
          mac: str = "02:66:00:00:00:01") -> Fault:
    """An IP conflict at ``host``: a second machine on its address (answering across the
    line as the first does), the two asking the router for their gateway in turn, every
    :data:`TURN` seconds."""
    fault = duplicate_ip(province, place, host, mac)
    ip, gateway = str(place.host(host).ip), str(place.commune.gateway)
    intruder = province.lab.nodes[f"dup{place.index}"]
    intruder.add_route(LAB_NET, via=gateway)  # set up like the computer it copies
    machines: list[tuple[Node, str]] = [(intruder, "eth0"),
                                        (place.pcs, place.host_interface(host))]
    done = threading.Event()

    def turns() -> None:
        for turn in range(MAX_TURNS):
            if done.wait(TURN):
                return
            node, dev = machines[turn % 2]
            place.router.ip("neigh", "del", ip, "dev", "lan", check=False)
            node.run(sys.executable, "-m", "tests.support.lab.conflict", "--dev", dev, "--ip", ip,
                     "--gateway", gateway, cwd=ROOT, check=False)

    worker = threading.Thread(target=turns, name=f"conflict {ip}", daemon=True)
    worker.start()

    def end() -> None:
        done.set()
        worker.join(30)

    fault.undo.append(end)
    fault.what = f"IP conflict at {ip} on {place.key}, both machines talking"
    return fault


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dev", required=True)
    parser.add_argument("--ip", required=True)
    parser.add_argument("--gateway", required=True)
    args = parser.parse_args()
    ask(args.dev, args.ip, args.gateway)


if __name__ == "__main__":
    main()
