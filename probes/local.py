"""The commune PC's own IP configuration, read without any privilege (issue #5, item 6).

An agent running on one of the commune's computers checks that the interface carrying its
assigned IP has the commune's mask, that the default gateway is the commune's line router
(CPE), and which DNS servers it uses. Nothing here sends a packet: it reads the operating
system's configuration, the same on Linux and Windows, as an ordinary user.

Where each piece comes from (kept simple on purpose, see docs/agent-install.md):

* addresses and masks: ``psutil.net_if_addrs()`` (every platform);
* default gateway: Linux ``/proc/net/route``; Windows the registry
  (``HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters\\Interfaces\\{GUID}``:
  ``DefaultGateway`` or ``DhcpDefaultGateway``), which does not depend on the language of
  Windows as ``route print`` output does; elsewhere unknown;
* DNS servers: Linux ``/etc/resolv.conf``; Windows the same registry keys (``NameServer`` or
  ``DhcpNameServer``).
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from inventory.model import Commune, Host
from probes.result import LocalDetail, ProbeResult

PROC_ROUTE = Path("/proc/net/route")
RESOLV_CONF = Path("/etc/resolv.conf")
_WIN_INTERFACES = r"SYSTEM\CurrentControlSet\Services\Tcpip\Parameters\Interfaces"


@dataclass(frozen=True, slots=True)
class LocalConfig:
    """What this machine is configured with (IPv4)."""

    interfaces: dict[str, tuple[ipaddress.IPv4Interface, ...]] = field(default_factory=dict)
    gateways: tuple[str, ...] = ()  # default gateways, in order of preference
    dns: tuple[str, ...] = ()

    def interface_of(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        return next((name for name, addrs in self.interfaces.items()
                     if any(a.ip == ip for a in addrs)), None)

    def interface_in(self, subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str | None:
        return next((name for name, addrs in self.interfaces.items()
                     if any(a.ip in subnet for a in addrs)), None)


def read_config() -> LocalConfig:
    """This machine's interfaces, default gateway(s) and DNS servers, read unprivileged."""
    interfaces = {
        name: tuple(
            ipaddress.IPv4Interface(f"{a.address}/{a.netmask}")
            for a in addrs if a.family == socket.AF_INET and a.netmask
        )
        for name, addrs in psutil.net_if_addrs().items()
    }
    if sys.platform == "win32":
        gateways, dns = _windows_registry()
    else:
        gateways, dns = _linux_gateways(), _linux_dns()
    return LocalConfig({k: v for k, v in interfaces.items() if v}, gateways, dns)


def check(commune: Commune, host: Host | None, config: LocalConfig) -> ProbeResult:
    """Whether this PC is configured as the commune's ``host`` (or, when None, as any machine
    of the commune): its IP on an interface, the commune's mask, gateway and some DNS."""
    started = time.time()
    problems: list[str] = []
    expected_ips = [host.ip] if host is not None else [h.ip for h in commune.hosts]
    name = next((n for ip in expected_ips if (n := config.interface_of(ip))), None)
    if name is None and commune.subnet is not None:
        name = config.interface_in(commune.subnet)
    if name is None:
        problems.append("ip_missing:" + ",".join(str(ip) for ip in expected_ips))
    addresses = config.interfaces.get(name, ()) if name else ()
    mine = [a for a in addresses if commune.subnet is not None and a.ip in commune.subnet]
    if name is not None and not any(a.ip in expected_ips for a in addresses):
        problems.append("ip_not_assigned:" + ",".join(str(a.ip) for a in mine))
    if commune.subnet is not None:
        problems += [f"mask:/{a.network.prefixlen}!=/{commune.subnet.prefixlen}"
                     for a in mine if a.network.prefixlen != commune.subnet.prefixlen]
    gateway = config.gateways[0] if config.gateways else None
    if gateway is None:
        problems.append("gateway:none")
    elif commune.gateway is not None and gateway != str(commune.gateway):
        problems.append(f"gateway:{gateway}!={commune.gateway}")
    if not config.dns:
        problems.append("dns:none")
    detail = LocalDetail(
        interface=name,
        addresses=tuple(str(a) for a in addresses),
        gateway=gateway,
        dns=config.dns,
        problems=tuple(problems),
    )
    subject = str(host.ip) if host is not None else commune.key
    return ProbeResult(kind="local", subject=subject, ok=not problems, started=started,
                       duration=time.time() - started,
                       error="; ".join(problems) or None, detail=detail)


# ---------------------------------------------------------------------------- Linux


def parse_proc_route(text: str) -> tuple[str, ...]:
    """Default gateways from ``/proc/net/route`` (hex, little-endian), lowest metric first."""
    routes = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        destination, gateway, flags, metric, mask = cols[1], cols[2], cols[3], cols[6], cols[7]
        if destination != "00000000" or mask != "00000000" or not int(flags, 16) & 0x2:
            continue  # not a default route, or not via a gateway (RTF_GATEWAY)
        address = ipaddress.IPv4Address(int(gateway, 16).to_bytes(4, "little"))
        routes.append((int(metric), str(address)))
    return tuple(dict.fromkeys(gw for _, gw in sorted(routes)))


def parse_resolv_conf(text: str) -> tuple[str, ...]:
    servers = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 2 and cols[0] == "nameserver":
            servers.append(cols[1])
    return tuple(dict.fromkeys(servers))


def _linux_gateways() -> tuple[str, ...]:
    return parse_proc_route(_read(PROC_ROUTE))


def _linux_dns() -> tuple[str, ...]:
    return parse_resolv_conf(_read(RESOLV_CONF))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


# -------------------------------------------------------------------------- Windows


def split_registry_list(value: object) -> tuple[str, ...]:
    """Registry address lists: REG_MULTI_SZ (a list) or REG_SZ separated by commas/spaces;
    "0.0.0.0" and empty entries mean unset."""
    items: Iterable[str] = value if isinstance(value, list) else str(value or "").replace(
        ",", " ").split()
    return tuple(i.strip() for i in items if i and i.strip() and i.strip() != "0.0.0.0")


def _windows_registry() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Default gateways and DNS servers of every TCP/IP interface (static before DHCP)."""
    import winreg  # type: ignore[import-not-found,unused-ignore]

    gateways: list[str] = []
    dns: list[str] = []
    with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, _WIN_INTERFACES) as root:
        for index in range(winreg.QueryInfoKey(root)[0]):
            with winreg.OpenKey(root, winreg.EnumKey(root, index)) as key:
                values = _registry_values(winreg, key)
            gateways += split_registry_list(values.get("DefaultGateway")) or split_registry_list(
                values.get("DhcpDefaultGateway"))
            dns += split_registry_list(values.get("NameServer")) or split_registry_list(
                values.get("DhcpNameServer"))
    return tuple(dict.fromkeys(gateways)), tuple(dict.fromkeys(dns))


def _registry_values(winreg: object, key: object) -> dict[str, object]:
    values = {}
    index = 0
    while True:
        try:
            name, value, _ = winreg.EnumValue(key, index)  # type: ignore[attr-defined]
        except OSError:
            return values
        values[name] = value
        index += 1
