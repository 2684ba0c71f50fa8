"""The commune's page data: each vantage's own view side by side (contract §7)."""

from __future__ import annotations

import dataclasses

import pytest

from monitor.present.rtt_history import RttHistory
from monitor.present.web.api import commune_detail
from probes.result import IcmpDetail, ProbeResult
from tests.support.engine_sim import MAC, Sim, make_commune, observe


def test_each_vantage_is_shown_with_its_own_view() -> None:
    sim = Sim()
    commune = make_commune()
    line = observe(sim.now)
    line = dataclasses.replace(line, hosts=tuple(
        dataclasses.replace(h, icmp=IcmpDetail(10, 7, (0.3,) * 7)) for h in line.hosts))
    target = ProbeResult("target", "congtaidaibieu", False, sim.now, 0.1)
    lan = observe(sim.now + 1, vantage="75/26041", hosts={"may-02": False}, targets=(target,),
                  arp={"may-01": (MAC.format(1),), "may-03": (MAC.format(3), MAC.format(9))})
    sim.engine.apply(line)
    sim.engine.apply(lan)
    detail = commune_detail(commune, "Đồng Nai", (), sim.engine.state, RttHistory(), [],
                            sim.now)
    central, agent = detail["vantages"]
    assert (central["vantage"], central["place"], central["line"]) == ("central", "upstream",
                                                                       True)
    assert (agent["vantage"], agent["place"], agent["line"]) == ("75/26041", "segment", False)
    assert central["hosts"][0]["loss"] == pytest.approx(0.3)
    assert central["hosts"][0]["rtt"] == pytest.approx(0.3)
    assert central["hosts"][0]["ip_config_ok"] is None  # no ARP across the line
    assert [h["up"] for h in agent["hosts"]] == [True, None, True]  # may-02: not yet judged
    assert [h["ip_config_ok"] for h in agent["hosts"]] == [True, False, False]
    assert [t["up"] for t in agent["targets"]] == [False]
    assert central["targets"] == []
    # the fused host: the line's loss, the segment's ARP
    fused = detail["hosts"][2]
    assert fused["loss"] == pytest.approx(0.3)
    assert fused["ip_config_ok"] is False and fused["arp"]["conflict"] is True
