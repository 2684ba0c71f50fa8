"""``tslcd_line_up{line}`` and ``tslcd_host_expected`` in the exposition, from the real
engine's state (simulated time: Friday 2026-02-06 from 18:00, outside the hours)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress

import pytest
from prometheus_client.parser import text_string_to_metric_families

from inventory.model import WorkingHours
from monitor.present.metrics import Exposition
from probes.result import IcmpDetail
from tests.support.engine_sim import T0, Sim, make_commune, make_inventory, observe

EVENING = T0 + 11 * 3600


def samples(exposition: Exposition, name: str) -> dict[tuple[str, ...], float]:
    """``name``'s samples by their label values, in label order."""
    return {tuple(s.labels.values()): s.value
            for family in text_string_to_metric_families(exposition.body().decode())
            for s in family.samples if s.name == name}


def test_both_lines_and_whether_each_computer_is_expected_now() -> None:
    backup = dataclasses.replace(make_commune(backup=True),
                                 backup_gateway=ipaddress.ip_address("198.19.200.1"))
    single = make_commune("26068", hosts=2, name="Xã Long Hưng")
    server = dataclasses.replace(backup.hosts[0], always_on=True)
    backup = dataclasses.replace(backup, hosts=(server, *backup.hosts[1:]))
    inventory = make_inventory(backup, single)
    inventory = dataclasses.replace(inventory, defaults=dataclasses.replace(
        inventory.defaults, working_hours=WorkingHours((0, 1, 2, 3, 4), dt.time(7),
                                                       dt.time(17))))
    sim = Sim(inventory, start=EVENING)
    echoes = (IcmpDetail(3, 3, (0.004, 0.006, 0.005)), IcmpDetail(3, 0, ()))
    for _ in range(4):  # the backup line's router dead, may-02 switched off
        sim.engine.apply_cycle([
            dataclasses.replace(
                observe(sim.now, commune=backup, backup=False, hosts={"may-02": False}),
                line_icmp=echoes),
            observe(sim.now, commune=single)])
        sim.now += 30
    exposition = Exposition(process_metrics=False)
    exposition.update(inventory, sim.engine.state)

    assert samples(exposition, "tslcd_line_up") == {
        ("75", "26041", "primary"): 1.0, ("75", "26041", "backup"): 0.0,
        ("75", "26068", "primary"): 1.0}  # no backup line: no series
    assert samples(exposition, "tslcd_line_rtt_seconds") == {
        ("75", "26041", "primary"): pytest.approx(0.005)}  # no reply, no RTT
    assert samples(exposition, "tslcd_line_packet_loss_ratio") == {
        ("75", "26041", "primary"): 0.0, ("75", "26041", "backup"): 1.0}  # 26068: not pinged
    expected = samples(exposition, "tslcd_host_expected")
    up = samples(exposition, "tslcd_host_up")
    assert expected[("75", "26041", "may-01")] == 1.0  # always_on
    assert expected[("75", "26041", "may-02")] == 0.0  # an office computer at night
    assert up[("75", "26041", "may-02")] == 0.0  # the fact stays
    assert samples(exposition, "tslcd_commune_status")[("75", "26041")] == 0.0

