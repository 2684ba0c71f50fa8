"""The segment from the center alone, through the routers' ARP tables (issue 18, contract §7).

A province lab (:mod:`tests.support.lab.province`) whose commune routers run net-snmp's
snmpd on their gateway address (:mod:`tests.support.lab.snmpd`): v2c everywhere, SNMPv3
authPriv (SHA/AES, keys from files) on a few, one router without any snmpd and one whose
community is not the inventory's. Only ``tslcd-monitor run`` runs, in the core namespace:
no agent, no broker (:func:`tests.support.lab.harness.start_run` with ``mqtt=False``). It
sweeps each subnet and reads the routers' tables every cycle here (``snmp_every: 1``).

Every fault kind but ``target_blocked`` (which needs a vantage inside the commune) is put
on a commune of its own; each must show in the contract's metrics with its alert, the two
routers that cannot be read raise exactly one ``snmp_unreachable`` each and nothing about
their segment, and no healthy commune shows anything. An IP conflict is two machines on one
address both announcing it (:func:`tests.support.lab.conflict.fight`), as defended addresses
are: the router's entry flips between them.

``TSLCD_LAB_COMMUNES`` (default 24) sets the lab's size; 95 is the issue's acceptance size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from inventory.model import Commune, Snmp
from tests.support import require_real
from tests.support.lab import conflict, faults, observe
from tests.support.lab.cases import (
    MAY_ALERT,
    Case,
    alerts_of,
    check_cases,
    hosts_of,
    unhealthy,
    value,
)
from tests.support.lab.harness import METRICS_POLL, LabRun, province_lab, start_run
from tests.support.lab.province import CommuneLab, ProvinceLab, tools_missing
from tests.support.lab.snmpd import Snmpd, V3User, snmpd_available

COMMUNES = int(os.environ.get("TSLCD_LAB_COMMUNES", "24"))
TIMING = {"interval": 5.0, "down_after": 3, "up_after": 2, "retry_interval": 1.0,
          "snmp_every": 1}
COMMUNITY = "lab-community-x9"
USER = V3User("tslcd-mon", auth_key="lab-auth-key-7q", priv_key="lab-priv-key-3z")
LOSS, DELAY = 0.3, 0.3
CARD_SWAP = 1.8  # seconds a computer is off the segment while its card is swapped
SETTLE_CYCLES = 3


@dataclass(frozen=True)
class Routers:
    """Which communes' routers answer how: by commune code."""

    v3: frozenset[str]
    dead: str  # no snmpd at all
    wrong_community: str

    @property
    def broken(self) -> frozenset[str]:
        return frozenset({self.dead, self.wrong_community})


def _host(s: observe.Samples, p: CommuneLab, metric: str, host: str) -> float | None:
    return value(s, metric, commune=p.code, host=host)


CASES = [
    Case("link_down", lambda _, p: faults.link_down(p), ("commune_down", None),
         lambda s, p: value(s, "tslcd_commune_status", commune=p.code) == 2),
    Case("loss30", lambda _, p: faults.loss(p, LOSS), MAY_ALERT,
         lambda s, p: any((_host(s, p, "tslcd_host_packet_loss_ratio", h) or 0) > 0
                          for h in hosts_of(p))),
    Case("delay300", lambda _, p: faults.delay(p, DELAY), None,
         lambda s, p: all((_host(s, p, "tslcd_host_rtt_seconds", h) or 0) >= DELAY
                          for h in hosts_of(p))
         and value(s, "tslcd_commune_status", commune=p.code) == 0),
    Case("host_missing", lambda _, p: faults.host_missing(p, "may-02"), ("host_down", "may-02"),
         lambda s, p: _host(s, p, "tslcd_host_up", "may-02") == 0
         and _host(s, p, "tslcd_host_up", "may-01") == 1
         and _host(s, p, "tslcd_host_ip_config_ok", "may-02") == 0  # absent from the table
         and _host(s, p, "tslcd_host_mac_addresses", "may-02") == 0),
    Case("ip_conflict", lambda pr, p: conflict.fight(pr, p, "may-01"), ("ip_conflict", "may-01"),
         lambda s, p: _host(s, p, "tslcd_host_mac_addresses", "may-01") == 2
         and _host(s, p, "tslcd_host_ip_config_ok", "may-01") == 0,
         passing=(("wrong_mac", "may-01"),)),
    Case("wrong_mac", lambda _, p: faults.wrong_mac(p, "may-02", unplugged=CARD_SWAP),
         ("wrong_mac", "may-02"),
         lambda s, p: _host(s, p, "tslcd_host_ip_config_ok", "may-02") == 0
         and _host(s, p, "tslcd_host_mac_addresses", "may-02") == 1),
    Case("unknown_device", lambda pr, p: faults.unknown_device(pr, p)[0],
         ("unknown_device", None),
         lambda s, p: value(s, "tslcd_commune_unknown_devices", commune=p.code) == 1),
]


@pytest.fixture(scope="module", autouse=True)
def lab_tools() -> None:
    missing = tools_missing()
    require_real(not missing, f"the lab needs {', '.join(missing)}")
    require_real(*snmpd_available())


def choose(province: ProvinceLab) -> tuple[Routers, list[tuple[Case, CommuneLab]]]:
    """Each fault on a commune of its own, two broken routers, v3 on two healthy ones and
    on the wrong-MAC one (a fault seen through v3 too)."""
    places = province.communes
    step = len(places) // (len(CASES) + 2)
    assert step >= 1, f"the lab needs at least {len(CASES) + 2} communes"
    spots = [places[i * step + step // 2] for i in range(len(CASES) + 2)]
    plan = list(zip(CASES, spots, strict=False))
    taken = {p.code for p in spots}
    healthy = [p.code for p in places if p.code not in taken]
    wrong_mac = next(p.code for c, p in plan if c.name == "wrong_mac")
    routers = Routers(v3=frozenset({*healthy[:2], wrong_mac}), dead=spots[-2].code,
                      wrong_community=spots[-1].code)
    return routers, plan


def on_29s(province: ProvinceLab) -> ProvinceLab:
    """Each commune's subnet a /29 in the inventory (the first of its lab /27, gateway and
    computers inside; the size CONTRACT §2's example gives a commune; the lab's LANs stay
    /27). The sweep's echoes to free addresses leave FAILED entries in the kernel's
    neighbour table, which every namespace shares: its gc thresholds (512, 1024) count the
    whole lab, and 95 routers with 29 free addresses each overflow it (entries evicted,
    new ones refused), where a real CPE has its own table."""
    def narrow(commune: Commune) -> Commune:
        assert commune.gateway is not None
        return dataclasses.replace(
            commune, subnet=ipaddress.ip_network(f"{commune.gateway - 1}/29"))

    inv = province.inventory
    inventory = dataclasses.replace(inv, provinces=tuple(
        dataclasses.replace(p, communes=tuple(map(narrow, p.communes)))
        for p in inv.provinces))
    places = [dataclasses.replace(p, commune=narrow(p.commune)) for p in province.communes]
    return dataclasses.replace(province, inventory=inventory, communes=places)


def with_snmp(province: ProvinceLab, routers: Routers, keys: Path) -> ProvinceLab:
    """The lab's inventory with ``snmp``: v2c in the defaults, v3 (key files) on some."""
    (keys / "auth.key").write_text(USER.auth_key + "\n", encoding="utf-8")
    (keys / "priv.key").write_text(USER.priv_key + "\n", encoding="utf-8")
    v2c = Snmp("2c", community=COMMUNITY)
    v3 = Snmp("3", user=USER.name, auth="SHA", auth_key_file=str(keys / "auth.key"),
              priv="AES", priv_key_file=str(keys / "priv.key"))
    inv = province.inventory
    provinces = tuple(dataclasses.replace(p, communes=tuple(
        dataclasses.replace(c, snmp=dataclasses.replace(
            v3 if c.code in routers.v3 else v2c, address=c.gateway))
        for c in p.communes)) for p in inv.provinces)
    inventory = dataclasses.replace(inv, provinces=provinces,
                                    defaults=dataclasses.replace(inv.defaults, snmp=v2c))
    return dataclasses.replace(province, inventory=inventory)


def start_agents(province: ProvinceLab, routers: Routers, workdir: Path) -> list[Snmpd]:
    """snmpd on each router's gateway address (none on the dead one)."""
    started = []
    for place in province.communes:
        if place.code == routers.dead:
            continue
        community = "not-the-inventorys" if place.code == routers.wrong_community else COMMUNITY
        agent = Snmpd(workdir / f"snmpd-{place.code}", str(place.commune.gateway),
                      community=community, user=USER,
                      exec_prefix=tuple(place.router.exec_args()))
        started.append(agent.start())
    return started


@dataclass
class CentralLab:
    run: LabRun
    routers: Routers
    plan: list[tuple[Case, CommuneLab]]


@pytest.fixture(scope="module")
def central(netns_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralLab]:
    workdir = tmp_path_factory.mktemp("lab-snmp-central")
    with province_lab(workdir, COMMUNES) as (province, opened), contextlib.ExitStack() as stack:
        province = on_29s(province)
        routers, plan = choose(province)
        province = with_snmp(province, routers, workdir)
        for agent in start_agents(province, routers, workdir):
            stack.callback(agent.stop)
        run = start_run(province, workdir, opened, mqtt=False, **TIMING)
        run.wait_all_up(timeout=180)
        yield CentralLab(run, routers, plan)


def segment_seen(s: observe.Samples, p: CommuneLab) -> list[str]:
    """What a healthy commune seen through its router shows that it should not, one MAC
    per host and the router's own view of each included."""
    wrong = unhealthy(s, p)
    for h in hosts_of(p):
        if _host(s, p, "tslcd_host_mac_addresses", h) != 1:
            wrong.append(f"{h} MACs")
        if value(s, "tslcd_vantage_host_up", commune=p.code, host=h, vantage="router") != 1:
            wrong.append(f"{h} router view")
    return wrong


def wait_for_baseline(central: CentralLab) -> None:
    """Every readable router's table judged for its commune, and one warning for each
    router that cannot be read."""
    run, routers = central.run, central.routers

    def missing() -> list[str]:
        samples, events = run.metrics(), run.events()
        out = [f"{p.code}: {segment_seen(samples, p)}" for p in run.province.communes
               if p.code not in routers.broken and segment_seen(samples, p)]
        out += [f"{code}: no snmp_unreachable" for code in sorted(routers.broken)
                if ("snmp_unreachable", None) not in alerts_of(events, code)]
        return out

    observe.wait_until(lambda: not missing(), "every segment seen through its router",
                       timeout=120, detail=missing, poll=METRICS_POLL)


def test_a_router_that_cannot_be_read_is_one_warning_and_no_segment_alarm(
        central: CentralLab) -> None:
    run, routers = central.run, central.routers
    wait_for_baseline(central)
    run.wait_cycles(SETTLE_CYCLES)
    samples, events = run.metrics(), run.events()
    for code in sorted(routers.broken):
        assert alerts_of(events, code) == [("snmp_unreachable", None)], (code, events)
        place = run.province.commune(code)
        assert value(samples, "tslcd_commune_status", commune=code) == 0
        for h in hosts_of(place):  # no view on the segment: nothing said, nothing absent
            assert _host(samples, place, "tslcd_host_ip_config_ok", h) is None, (code, h)
    assert {e["commune"] for e in events} == routers.broken, events
    warning = next(e for e in events if e["commune"] == routers.wrong_community)
    assert warning["severity"] == "warning" and "SNMP" in warning["message"]
    assert COMMUNITY not in run.log.read_text(encoding="utf-8")  # never logged
    assert USER.auth_key not in run.log.read_text(encoding="utf-8")


def test_every_segment_fault_kind_shows_from_the_center_alone(central: CentralLab) -> None:
    run, routers, plan = central.run, central.routers, central.plan
    wait_for_baseline(central)
    samples, events = check_cases(run, plan, timeout=150, settle=SETTLE_CYCLES)
    faulty = {p.code for _, p in plan}
    for place in run.province.communes:
        if place.code not in faulty | routers.broken:
            assert segment_seen(samples, place) == [], (place.code, segment_seen(samples, place))
    assert {e["commune"] for e in events} <= faulty, events
