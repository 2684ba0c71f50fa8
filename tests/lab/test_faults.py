"""Faults injected into a simulated province, and the monitor's verdicts against the truth.

One lab of eight communes serves the module's fault tests, watched by the shipped processes
(:mod:`tests.support.lab.harness`): ``tslcd-monitor run --mqtt`` in the core namespace and a
``tslcd-monitor agent`` in every commune router. Each test breaks a commune of its own,
checks the right metric and exactly the right alert (for that commune only, within
``down_after`` cycles, give or take the cycle in flight and the delivery), then clears the
fault and waits for the resolution, so the next test starts quiet. Every fault kind at once
on a whole province: ``tests/lab/test_vantages.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from tests.support import require_real
from tests.support.lab import faults, observe
from tests.support.lab.faults import Fault
from tests.support.lab.harness import LabRun, start_run
from tests.support.lab.netns import Lab
from tests.support.lab.province import ELECTION_IP, ProvinceLab, build_province, tools_missing


@pytest.fixture(scope="module", autouse=True)
def lab_tools() -> None:
    missing = tools_missing()
    require_real(not missing, f"the lab needs {', '.join(missing)}")

SLACK = 2  # cycles: the one in flight when the fault began, and the alert's delivery
HOST_RTT = 0.05  # seconds: far above a namespace round trip, far below the delays injected


@pytest.fixture(scope="module")
def run(netns_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabRun]:
    workdir = tmp_path_factory.mktemp("lab-faults")
    with Lab() as lab, contextlib.ExitStack() as files:
        province = build_province(lab, workdir, 8)
        opened: list = []
        files.callback(lambda: [f.close() for f in opened])
        started = start_run(province, workdir, opened)
        started.wait_all_up(timeout=120)
        yield started


def commune(run: LabRun, index: int) -> tuple[ProvinceLab, str]:
    return run.province, run.province.communes[index].code


def check_fault(run: LabRun, inject: Callable[[], Fault],
                expected: set[observe.Fired],
                in_force: Callable[[], None] | None = None) -> None:
    """Inject, then: exactly ``expected`` fires within down_after (+ slack) cycles and stays
    alone for two more cycles; the fault is verified in force; cleared, everything resolves."""
    run.wait_all_up()
    start, first_cycle = len(run.events()), run.cycles()
    with inject():
        observe.wait_until(lambda: expected <= set(observe.fired(run.events()[start:])),
                           f"alerts {expected}",
                           detail=lambda: observe.fired(run.events()[start:]))
        assert run.cycles() - first_cycle <= run.down_after + SLACK, run.cycles() - first_cycle
        run.wait_cycles(2)
        if in_force is not None:
            in_force()
        new = run.events()[start:]
        assert sorted(observe.fired(new)) == sorted(expected), new
        assert observe.fired(new, "resolved") == [], new
    observe.wait_until(
        lambda: sorted(observe.fired(run.events()[start:], "resolved")) == sorted(expected),
        "the resolution")
    ids = {e["id"] for e in run.events()[start:]}
    assert len(ids) == len(expected), "a resolution repeats the id of what it resolves"


def others_equal(values: dict[tuple[str, ...], float], faulty: str, normal: float) -> bool:
    """Every commune but ``faulty`` shows the normal value (key's first item: commune)."""
    return all(v == normal for k, v in values.items() if k[0] != faulty) and any(
        k[0] != faulty for k in values)


def test_line_down_is_one_commune_down(run: LabRun) -> None:
    province, code = commune(run, 0)
    place = province.commune(code)

    def in_force() -> None:
        status = run.metric("tslcd_commune_status", "commune")
        assert status[(code,)] == 2 and others_equal(status, code, 0), status
        assert faults.rtt_ms(province.core, str(place.commune.gateway), count=2) == []

    check_fault(run, lambda: faults.link_down(place), {("commune_down", code, None)}, in_force)


def test_heavy_loss_shows_in_the_loss_ratio_and_takes_the_commune_down(run: LabRun) -> None:
    province, code = commune(run, 1)
    place = province.commune(code)

    def in_force() -> None:
        assert faults.dropped_packets(place) > 0
        loss = run.metric("tslcd_host_packet_loss_ratio", "commune", "host")
        assert all(v > 0.5 for k, v in loss.items() if k[0] == code), loss
        assert others_equal(loss, code, 0.0), loss

    check_fault(run, lambda: faults.loss(place, 0.95), {("commune_down", code, None)},
                in_force)


def test_delay_shows_in_the_rtt_then_past_the_timeout_takes_the_commune_down(
    run: LabRun,
) -> None:
    province, code = commune(run, 2)
    place = province.commune(code)
    host_ip = str(place.commune.hosts[0].ip)
    start = len(run.events())
    with faults.delay(place, 0.15):
        assert min(faults.rtt_ms(province.core, host_ip)) >= 150  # the delay is in force
        run.wait_cycles(3)
        rtt = run.metric("tslcd_host_rtt_seconds", "commune", "host")
        assert all(v >= 0.15 for k, v in rtt.items() if k[0] == code), rtt
        assert all(v < HOST_RTT for k, v in rtt.items() if k[0] != code), rtt
        assert run.events()[start:] == [], "a slow line that answers is not an outage"

    def in_force() -> None:
        assert faults.rtt_ms(province.core, host_ip, count=2, wait_ms=500) == []

    check_fault(run, lambda: faults.delay(place, 1.0), {("commune_down", code, None)},
                in_force)
    # after the fault, the commune's round trips are back to a namespace's
    run.wait_cycles(1)
    assert max(faults.rtt_ms(province.core, host_ip)) < 100


def test_blackhole_makes_the_target_unreachable_from_that_commune_only(
    run: LabRun,
) -> None:
    province, code = commune(run, 3)
    place = province.commune(code)
    vantage = place.key

    def in_force() -> None:
        up = run.metric("tslcd_target_up", "vantage")
        assert up[(vantage,)] == 0, up
        assert all(v == 1 for k, v in up.items() if k[0] != vantage), up
        assert place.router.run("ip", "route", "get", ELECTION_IP, check=False).returncode != 0

    check_fault(run, lambda: faults.blackhole(place), {("target_unreachable", code, None)},
                in_force)


def test_duplicate_ip_is_an_ip_conflict_of_that_host(run: LabRun) -> None:
    province, code = commune(run, 4)
    place = province.commune(code)

    def in_force() -> None:
        macs = run.metric("tslcd_host_mac_addresses", "commune", "host")
        assert macs[(code, "may-01")] == 2, macs
        assert all(v == 1 for k, v in macs.items() if k != (code, "may-01")), macs
        ok = run.metric("tslcd_host_ip_config_ok", "commune", "host")
        assert ok[(code, "may-01")] == 0 and ok[(code, "may-02")] == 1, ok

    check_fault(run, lambda: faults.duplicate_ip(province, place, "may-01"),
                {("ip_conflict", code, "may-01")}, in_force)


def test_wrong_mac_is_reported_for_that_host(run: LabRun) -> None:
    province, code = commune(run, 5)
    place = province.commune(code)

    def in_force() -> None:
        ok = run.metric("tslcd_host_ip_config_ok", "commune", "host")
        assert ok[(code, "may-02")] == 0, ok
        assert all(v == 1 for k, v in ok.items() if k != (code, "may-02")), ok
        assert run.metric("tslcd_host_mac_addresses", "commune", "host")[(code, "may-02")] == 1

    check_fault(run, lambda: faults.wrong_mac(place, "may-02"),
                {("wrong_mac", code, "may-02")}, in_force)


def test_unknown_device_is_reported_for_that_commune(run: LabRun) -> None:
    province, code = commune(run, 6)
    place = province.commune(code)

    def in_force() -> None:
        unknown = run.metric("tslcd_commune_unknown_devices", "commune")
        assert unknown[(code,)] == 1 and others_equal(unknown, code, 0), unknown

    check_fault(run, lambda: faults.unknown_device(province, place)[0],
                {("unknown_device", code, None)}, in_force)


def test_five_percent_loss_on_every_line_raises_no_alert(run: LabRun) -> None:
    run.wait_all_up()
    start = len(run.events())
    places = run.province.communes
    with faults.loss_everywhere(run.province, 0.05):
        run.wait_cycles(12)
        assert sum(faults.dropped_packets(p) for p in places) > 0, "the loss is in force"
        loss = run.metric("tslcd_host_packet_loss_ratio", "commune", "host")
        assert max(loss.values()) <= 0.67, loss
    assert run.events()[start:] == []
    status = run.metric("tslcd_commune_status", "commune")
    assert set(status.values()) == {0}, status
