"""The state engine driven cycle by cycle on simulated time: a commune of Đồng Nai on
198.18.x addresses (never probed), one observation per cycle, the clock a variable.

The engine tests use it throughout; the sink tests drive real alerts out of it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Iterable

from inventory.model import (
    Commune,
    Defaults,
    Host,
    Inventory,
    Maintenance,
    Province,
    Target,
    WorkingHours,
)
from monitor.alerts.event import VN_TZ, AlertEvent
from monitor.cycle.observation import CommuneObservation, HostObservation
from monitor.decide.engine import StateEngine
from monitor.decide.status import CommuneState
from monitor.store.state_db import Store
from probes.result import ArpDetail, ProbeResult, UnknownDevice

T0 = dt.datetime(2026, 2, 6, 7, 0, tzinfo=VN_TZ).timestamp()
EVENING = T0 + 11 * 3600  # Friday 2026-02-06 18:00, Vietnam time
STEP = 30.0
MAC = "02:00:00:00:01:{:02x}"


def make_commune(code: str = "26041", hosts: int = 3, backup: bool = False,
                 name: str = "Phường Trấn Biên") -> Commune:
    net = 1 if code == "26041" else 2
    return Commune(
        province="75",
        code=code,
        name=name,
        isp="VNPT",
        subnet=ipaddress.ip_network(f"198.18.{net}.0/28"),
        gateway=ipaddress.ip_address(f"198.18.{net}.1"),
        backup_gateway=ipaddress.ip_address(f"198.18.{net}.14") if backup else None,
        circuit="DNI-0001",
        hosts=tuple(
            Host(f"may-{i:02d}", ipaddress.ip_address(f"198.18.{net}.{i + 1}"), mac=MAC.format(i))
            for i in range(1, hosts + 1)
        ),
    )


def make_inventory(*communes: Commune, maintenance: Iterable[Maintenance] = (),
                   targets: Iterable[Target] = ()) -> Inventory:
    communes = communes or (make_commune(),)
    return Inventory(
        version=1,
        defaults=Defaults(down_after=3, up_after=2),
        provinces=(Province("75", "Đồng Nai", tuple(communes)),),
        targets=tuple(targets),
        maintenance=tuple(maintenance),
    )


def observe(at: float, hosts: dict[str, bool] | bool = True, gateway: bool | None = True,
            backup: bool | None = None, commune: Commune | None = None,
            arp: dict[str, tuple[str, ...]] | None = None,
            devices: tuple[UnknownDevice, ...] | None = None, vantage: str = "central",
            targets: tuple[ProbeResult, ...] = ()) -> CommuneObservation:
    """One cycle's observation; ``hosts`` True/False for all, or per host name."""
    commune = commune or make_commune()
    alive = {h.name: hosts if isinstance(hosts, bool) else hosts.get(h.name, True)
             for h in commune.hosts}
    return CommuneObservation(
        province=commune.province,
        commune=commune.code,
        at=at,
        vantage=vantage,
        hosts=tuple(
            HostObservation(h.name, str(h.ip), alive[h.name], "icmp" if alive[h.name] else None,
                            arp=None if arp is None else ArpDetail(arp.get(h.name, ()), h.mac))
            for h in commune.hosts
        ),
        gateway_alive=gateway,
        backup_gateway_alive=backup,
        unknown_devices=devices,
        targets=targets,
    )


class Sim:
    """An engine driven cycle by cycle on simulated time."""

    def __init__(self, inventory: Inventory | None = None, store: Store | None = None,
                 start: float = T0, **kwargs: object) -> None:
        self.now = start
        self.inventory = inventory or make_inventory()
        self.engine = StateEngine(self.inventory, store, clock=lambda: self.now, **kwargs)
        self.events: list[AlertEvent] = []

    def cycle(self, **kwargs: object) -> list[AlertEvent]:
        events = self.engine.apply(observe(self.now, **kwargs))  # type: ignore[arg-type]
        self.events += events
        self.now += STEP
        return events

    def cycles(self, n: int, **kwargs: object) -> list[AlertEvent]:
        return [ev for _ in range(n) for ev in self.cycle(**kwargs)]

    @property
    def commune(self) -> CommuneState:
        return self.engine.state.communes["75/26041"]


def office_evening() -> Sim:
    """Friday evening after four cycles at a commune with a backup line of another operator
    (198.19.200.1, Viettel, DNI-B-0001) and office hours Monday to Friday 07:00-17:00:
    may-02 silent (off, not down, at that hour) and the backup line not answering."""
    commune = dataclasses.replace(
        make_commune(backup=True), backup_gateway=ipaddress.ip_address("198.19.200.1"),
        backup_isp="Viettel", backup_circuit="DNI-B-0001")
    inventory = make_inventory(commune)
    inventory = dataclasses.replace(inventory, defaults=dataclasses.replace(
        inventory.defaults, working_hours=WorkingHours((0, 1, 2, 3, 4), dt.time(7),
                                                       dt.time(17))))
    sim = Sim(inventory, start=EVENING)
    sim.cycles(4, hosts={"may-02": False}, backup=False)
    return sim
