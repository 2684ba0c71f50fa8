"""net-snmp's snmpd for the labs: a real SNMP agent on a lab router's address (test-only).

:class:`Snmpd` writes its own ``snmpd.conf`` (a v2c community and a v3 authPriv SHA/AES
user, both read-only on a view of the ARP tables) into a temporary directory, runs
``snmpd -f`` in the foreground as a child process (inside a lab namespace, or in this
namespace on a loopback address for the benchmark) and stops it by its pid. Its persistent
directory (where snmpd keeps the v3 user's localized keys and engine boots) is that
temporary directory too, never /var/lib/snmp.

``python -m tests.support.lab.snmpd probe '<json>'`` runs :func:`probes.snmp.poll_router` in the
current namespace and prints the result as JSON: :func:`probe_in` runs it inside a lab node
(the test process itself stays in the root namespace).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.processes import stop

ARP_VIEW_OIDS = (".1.3.6.1.2.1.4.35", ".1.3.6.1.2.1.4.22")  # IP-MIB and RFC 1213 ARP tables
ROOT = Path(__file__).resolve().parents[3]


def snmpd_available() -> tuple[bool, str]:
    """Whether net-snmp's snmpd is installed, and why not."""
    if shutil.which("snmpd") is None:
        return False, "net-snmp's snmpd is not installed (Debian package snmpd)"
    return True, ""


@dataclass(frozen=True)
class V3User:
    name: str
    auth_key: str = field(repr=False)
    priv_key: str = field(repr=False)


def render_conf(
    community: str | None, user: V3User | None, view: tuple[str, ...] = ARP_VIEW_OIDS
) -> str:
    """An snmpd.conf granting read-only access to ``view`` only, as the operators would."""
    lines = [f"view arpview included {oid}" for oid in view]
    if community is not None:
        lines.append(f"rocommunity {community} default -V arpview")
    if user is not None:
        lines.append(f'createUser {user.name} SHA "{user.auth_key}" AES "{user.priv_key}"')
        lines.append(f"rouser {user.name} priv -V arpview")
    lines.append("dontLogTCPWrappersConnects yes")
    return "\n".join(lines) + "\n"


class Snmpd:
    """One snmpd child process; ``start()`` waits until it answers, ``stop()`` ends it."""

    def __init__(
        self, workdir: Path, address: str, *, community: str | None = "tslcd-ro",
        user: V3User | None = None, exec_prefix: tuple[str, ...] = (),
        view: tuple[str, ...] = ARP_VIEW_OIDS, port: int = 161,
    ) -> None:
        self.workdir = workdir
        self.address = address
        self.port = port
        self.exec_prefix = exec_prefix  # e.g. ("ip", "netns", "exec", NS)
        self.conf = workdir / "snmpd.conf"
        self.log = workdir / "snmpd.log"
        self.conf_text = render_conf(community, user, view)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def argv(self) -> list[str]:
        return [
            *self.exec_prefix, "snmpd", "-f", "-C", "-c", str(self.conf), "-Lf", str(self.log),
            "-M", "/nonexistent", "-m", "",  # no MIB files: the agent needs none to serve
            f"udp:{self.address}:{self.port}",
        ]

    def start(self, wait: float = 10.0) -> Snmpd:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.conf_text)
        env = {"SNMP_PERSISTENT_DIR": str(self.workdir), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        self.proc = subprocess.Popen(
            self.argv(), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_listening(wait)
        return self

    def _wait_listening(self, wait: float) -> None:
        """snmpd logs its version banner once its socket is bound; until then it drops."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"snmpd exited with {self.proc.returncode}: {self._log_tail()}")
            if self.log.exists() and "NET-SNMP version" in self.log.read_text(errors="replace"):
                return
            time.sleep(0.02)
        raise RuntimeError(f"snmpd did not start within {wait}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-500:] if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM by pid, then SIGKILL if it lingers; idempotent."""
        stop([self.proc], timeout=5)

    def __enter__(self) -> Snmpd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_udp_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


# --- running the probe inside a namespace -------------------------------------------------


def probe_in(node: Any, request: dict[str, Any], timeout: float = 60) -> Any:
    """Run the SNMP probe inside lab ``node``; returns a :class:`probes.snmp.RouterArpTable`.

    ``request``: ``{"router", "scope", "credentials": {"community"} | {"user", "auth_key",
    "priv_key"}, "timeout", "retries"}``. The keys travel on the command line of a child
    process of the test only (lab credentials, never real ones).
    """
    from probes import snmp

    proc = node.run(
        sys.executable, "-m", "tests.support.lab.snmpd", "probe", json.dumps(request),
        timeout=timeout, cwd=ROOT,
    )
    return snmp.table_from_dict(json.loads(proc.stdout))


def credentials_from(raw: dict[str, str]) -> Any:
    from probes import snmp

    if "community" in raw:
        return snmp.V2c(raw["community"])
    return snmp.V3(raw["user"], auth_key=raw["auth_key"], priv_key=raw["priv_key"])


async def _probe(request: dict[str, Any]) -> dict[str, Any]:
    from probes import snmp

    table = await snmp.poll_router(
        request["router"], credentials_from(request["credentials"]), request["scope"],
        timeout=request.get("timeout", 1.0), retries=request.get("retries", 1),
        port=request.get("port", 161),
    )
    return snmp.table_to_dict(table)


if __name__ == "__main__":
    if sys.argv[1] == "probe":
        print(json.dumps(asyncio.run(_probe(json.loads(sys.argv[2])))))
