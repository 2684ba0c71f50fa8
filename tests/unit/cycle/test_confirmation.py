"""The scheduler's bookkeeping of fast confirmation, on real reports (no network): what
becomes due for a re-probe, and a cycle's observation that a re-probe overtook."""

from __future__ import annotations

import ipaddress
import time

from inventory.model import Commune, Defaults, Host, Inventory, Province
from monitor.cycle.observation import CommuneObservation, CycleReport, HostObservation
from monitor.cycle.scheduler import Scheduler, SchedulerOptions

IP = ipaddress.ip_address
COMMUNE = Commune("75", "26041", "Phường Trấn Biên", "VNPT", ipaddress.ip_network(
    "198.18.1.0/29"), IP("198.18.1.1"), (Host("may-01", IP("198.18.1.2")),
                                          Host("may-02", IP("198.18.1.3"))))
INVENTORY = Inventory(1, Defaults(interval=10.0, down_after=3, up_after=2, retry_interval=2.0),
                      (Province("75", "Đồng Nai", (COMMUNE,)),))


def observation(at: float, **alive: bool) -> CommuneObservation:
    ips = {h.name: str(h.ip) for h in COMMUNE.hosts}
    hosts = [(name.replace("_", "-"), ok) for name, ok in alive.items()]
    return CommuneObservation("75", "26041", at, hosts=tuple(
        HostObservation(name, ips[name], ok) for name, ok in hosts), gateway_alive=True)


async def delivered(scheduler: Scheduler, report: CycleReport) -> list[CycleReport]:
    out: list[CycleReport] = []

    async def keep(r: CycleReport) -> None:
        out.append(r)

    await scheduler._deliver(report, keep)
    return out


async def test_only_failing_subjects_become_due_at_retry_interval() -> None:
    scheduler = Scheduler(INVENTORY, None, SchedulerOptions())  # type: ignore[arg-type]
    now = time.time()
    before = time.monotonic()
    await delivered(scheduler, CycleReport(now, communes=[observation(now, may_01=True,
                                                                      may_02=False)]))
    assert scheduler.pending() == {("host", "75/26041", "may-02")}
    [due] = scheduler._due.values()
    assert before + 2.0 <= due <= time.monotonic() + 2.0


async def test_a_cycle_observation_older_than_a_re_probe_is_left_out() -> None:
    scheduler = Scheduler(INVENTORY, None, SchedulerOptions())  # type: ignore[arg-type]
    cycle_start = time.time()
    recheck = CycleReport(cycle_start + 1, recheck=True,
                          communes=[observation(cycle_start + 1, may_02=False)])
    await delivered(scheduler, recheck)
    cycle = CycleReport(cycle_start, communes=[observation(cycle_start, may_01=True,
                                                           may_02=False)])
    [report] = await delivered(scheduler, cycle)
    assert report.communes == []  # the state would refuse it as stale
    later = CycleReport(cycle_start + 10, communes=[observation(cycle_start + 10, may_01=True,
                                                                may_02=False)])
    [report] = await delivered(scheduler, later)
    assert len(report.communes) == 1
