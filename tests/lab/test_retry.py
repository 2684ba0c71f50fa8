"""Fast confirmation measured in a namespace (contract section 2, ``retry_interval``).

A vantage with two hosts on its segment, one of them silent: the shipped scheduler re-probes
only the silent one, every ``retry_interval``, between cycles, and the state engine (fed
each re-probe like a cycle) confirms it down after ``down_after`` failures, long before
``down_after`` whole intervals would have.
"""

from __future__ import annotations

import itertools
import json
import sys

import pytest

from tests.support import ROOT
from tests.support.lab.netns import Lab

INTERVAL, RETRY, DOWN_AFTER = 20.0, 2.0, 3
SLACK = 1.5  # seconds: a probe's timeout plus scheduling

PROBE = f"""
import asyncio, ipaddress, json, sys, time
sys.path.insert(0, sys.argv[1])
from inventory.model import Commune, Defaults, Host, IcmpSettings, Inventory, Province
from monitor.cycle.scheduler import Scheduler, SchedulerOptions
from monitor.decide.engine import StateEngine
from probes.icmp import Pinger

IP = ipaddress.ip_address
commune = Commune("75", "26041", "Phường Trấn Biên", "VNPT",
                  ipaddress.ip_network("198.18.40.0/24"), None,
                  (Host("may-01", IP("198.18.40.2")), Host("may-02", IP("198.18.40.3"))))
inventory = Inventory(1, Defaults(interval={INTERVAL}, icmp=IcmpSettings(1, 0.5),
                                  down_after={DOWN_AFTER}, up_after=2,
                                  retry_interval={RETRY}),
                      (Province("75", "Đồng Nai", (commune,)),))
engine = StateEngine(inventory)
seen = []

async def main():
    async with Pinger() as pinger:
        scheduler = Scheduler(inventory, pinger, SchedulerOptions(spread=0.0, arp=False))
        t0 = time.monotonic()

        async def on_report(report):
            engine.apply_cycle(report.communes, report.targets, report.vantage)
            state = engine.state.communes["75/26041"].hosts
            for obs in report.communes:
                for host in obs.hosts:
                    seen.append({{"t": time.monotonic() - t0, "recheck": report.recheck,
                                  "host": host.name, "alive": host.alive,
                                  "up": state[host.name].up}})

        task = asyncio.create_task(scheduler.run_forever(on_report))
        await asyncio.sleep({INTERVAL} + 3)
        task.cancel()

asyncio.run(main())
print(json.dumps(seen))
"""


@pytest.mark.timeout(90)
def test_a_silent_host_is_re_probed_at_retry_interval_and_confirmed_down(lab: Lab) -> None:
    segment = lab.segment("lan", "198.18.40.0/24")
    vantage = lab.node("vantage")
    segment.attach(vantage, "198.18.40.1")
    segment.add_host("pc", "198.18.40.2")  # may-01 answers; may-02 (.3) is nobody
    out = vantage.run(sys.executable, "-c", PROBE, str(ROOT), timeout=60, cwd=ROOT)
    seen = json.loads(out.stdout.splitlines()[-1])  # after structlog's console lines
    silent = [s for s in seen if s["host"] == "may-02"]
    healthy = [s for s in seen if s["host"] == "may-01"]

    # only the failing subject is re-probed; the healthy one only in whole cycles
    assert [s["recheck"] for s in healthy] == [False, False]
    assert all(s["alive"] and s["up"] for s in healthy)
    rechecks = [s for s in silent if s["recheck"]]
    assert len(rechecks) == DOWN_AFTER - 1, silent  # then confirmed: no more re-probes
    times = [s["t"] for s in silent]
    gaps = [b - a for a, b in itertools.pairwise(times[:DOWN_AFTER])]
    assert all(RETRY - 0.1 <= gap <= RETRY + SLACK for gap in gaps), gaps
    confirmed = next(s["t"] for s in silent if s["up"] is False)
    print(f"re-probe gaps {[round(g, 2) for g in gaps]} s, confirmed down at {confirmed:.2f} s")
    assert confirmed <= DOWN_AFTER * RETRY + SLACK, silent  # not 3 x 20 s
    assert [s["up"] for s in silent[:DOWN_AFTER]] == [None] * (DOWN_AFTER - 1) + [False]
