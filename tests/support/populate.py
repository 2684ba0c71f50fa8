"""A nationwide-sized monitor state built in code: the benchmarks render it, the metrics,
Prometheus and dashboard tests check it (bench/ imports it from here; tests never import bench).

Nationwide: 34 provinces, 3,321 communes, 3 hosts each, every host observed (ICMP, some ARP),
two targets seen from the centre and three provinces; some communes degraded or down.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from inventory.model import Commune, Defaults, Host, Inventory, Milestone, Province, Target
from monitor.cycle.observation import observe_host
from monitor.decide.status import CommuneState, CommuneStatus, HostState, MonitorState, TargetState
from probes.result import ArpDetail, IcmpDetail, ProbeResult, TargetDetail, UnknownDevice

PROVINCES = 34
COMMUNES = 3_321
HOSTS_PER_COMMUNE = 3
NOW = 1_770_000_000.0  # the metrics tests' fixed "now"
ODD_COMMUNE = 'Xã "Bình" Chánh \\ mới'
ODD_PROVINCE = "Thành phố Hồ Chí Minh"
ODD_HOST = 'máy "01" \\ kế toán'
MILESTONES = (
    Milestone("ip_installed", "Cài đặt IP cho máy tính cập nhật dữ liệu", dt.date(2026, 1, 29),
              ("ip_config", "link")),
    Milestone("system_reached", "Truy cập hệ thống bầu cử", dt.date(2026, 2, 10),
              ("link", "ip_config", "target")),
)
TARGETS = (
    Target("congtaidaibieu", "https://congtaidaibieu.quochoi.vn/"),
    Target("bauCu-dự-phòng", "https://backup.example.invalid/"),
)


def synthetic_inventory(
    communes: int = COMMUNES, provinces: int = PROVINCES, hosts: int = HOSTS_PER_COMMUNE
) -> Inventory:
    """A nationwide-sized inventory: /29 per commune in 198.18.0.0/15 (never probed here)."""
    blocks = ipaddress.ip_network("198.18.0.0/15").subnets(new_prefix=29)
    per_province = -(-communes // provinces)
    built: list[Province] = []
    for p in range(provinces):
        code = f"{p + 1:02d}"
        first = p * per_province
        members = tuple(
            _commune(code, i, next(blocks), hosts)
            for i in range(first, min(first + per_province, communes))
        )
        built.append(Province(code, f"Tỉnh Đắk Lắk Mới {p + 1}", members))
    return Inventory(1, Defaults(), tuple(built), TARGETS, MILESTONES)


def _commune(province: str, index: int, subnet: ipaddress.IPv4Network, hosts: int) -> Commune:
    addresses = list(subnet.hosts())
    members = tuple(
        Host(f"may-{n + 1:02d}", addresses[n + 1], f"02:00:00:00:{index % 256:02x}:{n + 2:02x}")
        for n in range(hosts)
    )
    return Commune(
        province=province,
        code=f"{index + 1:05d}",
        name=f"Xã Hòa Phước Ngữ {index + 1}",
        isp="VNPT" if index % 3 else "Viettel",
        subnet=subnet,
        gateway=addresses[0],
        hosts=members,
        circuit=f"DNI-{index + 1:04d}",
    )


def populated_state(inventory: Inventory, now: float) -> MonitorState:
    """Every commune and host observed in the cycle that started at ``now``, some unwell."""
    state = MonitorState()
    for index, commune in enumerate(inventory.communes()):
        state.communes[commune.key] = _commune_state(commune, index, now)
    vantages = ["central", *(p.code for p in inventory.provinces[:3])]
    for target in inventory.targets:
        for vantage in vantages:
            state.targets[(target.name, vantage)] = _target_state(target, vantage, now)
    return state


def _commune_state(commune: Commune, index: int, now: float) -> CommuneState:
    statuses = (CommuneStatus.OK,) * 17 + (CommuneStatus.DEGRADED, CommuneStatus.DOWN)
    status = statuses[index % len(statuses)]
    hosts = {
        h.name: _host_state(h, up=status != CommuneStatus.DOWN or n > 0, now=now, seed=index + n)
        for n, h in enumerate(commune.hosts)
    }
    return CommuneState(
        province=commune.province,
        commune=commune.code,
        status=status,
        since=now - 3_600,
        hosts=hosts,
        gateway_up=status != CommuneStatus.DOWN,
        on_backup=index % 50 == 0,
        unknown_devices=(UnknownDevice(str(commune.subnet[6]), "02:aa:00:00:00:01"),)
        if index % 40 == 0
        else (),
        last_seen=now,
        vantage="central" if index % 10 else commune.province,
        first_passed={"link": now - 86_400, "ip_config": now - 80_000}
        | ({"target": now - 70_000} if index % 4 else {}),
    )


def _host_state(host: Host, up: bool, now: float, seed: int) -> HostState:
    rtts = tuple(0.004 + 0.001 * ((seed + k) % 7) for k in range(3)) if up else ()
    results = [
        ProbeResult("icmp", str(host.ip), up, now, 1.0, None, IcmpDetail(3, len(rtts), rtts))
    ]
    if seed % 5 == 0:
        macs = (host.mac,) if seed % 25 else (host.mac, "02:bb:00:00:00:01")
        results.append(
            ProbeResult("arp", str(host.ip), up, now, 1.5, None, ArpDetail(macs, host.mac))
        )
    obs = observe_host(host.name, str(host.ip), tuple(results))
    return HostState(host.name, str(host.ip), up, now - 3_600, seed % 97 == 0, 5, 0, obs)


def _target_state(target: Target, vantage: str, now: float) -> TargetState:
    detail = TargetDetail(
        url=target.url,
        resolved=("203.0.113.10",),
        dns_seconds=0.012,
        connect_seconds=0.030,
        tls_seconds=0.045,
        http_seconds=0.120,
        http_status=200,
        tls_not_after=now + 40 * 86_400,
    )
    return TargetState(target.name, vantage, True, ProbeResult(
        "target", target.name, True, now, 0.2, None, detail
    ))


def odd_inventory() -> Inventory:
    """Two communes whose names need every escape of the text format, plus plain ones."""
    net = ipaddress.ip_network("198.18.7.0/29")
    hosts = (
        Host(ODD_HOST, net[2], "02:00:00:00:07:02"),
        Host("may-02", net[3]),
        Host("may-03", net[4]),
    )
    odd = Commune("79", "26734", ODD_COMMUNE, "Viettel", net, net[1], hosts, circuit=None)
    net2 = ipaddress.ip_network("198.18.7.8/29")
    newline = Commune(
        "79", "26737", "Phường Sài Gòn\nmới", "VNPT", net2, net2[1], (Host("may-01", net2[2]),),
        circuit='HCM-"7"',
    )
    province = Province("79", ODD_PROVINCE, (odd, newline))
    plain = synthetic_inventory(communes=4, provinces=2)
    return Inventory(1, Defaults(), (province, *plain.provinces), TARGETS, MILESTONES)
