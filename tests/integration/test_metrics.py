"""The /metrics text: contract names and labels, escaping, the missing-value rule, counters."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import os
import shutil
import subprocess
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from inventory.model import Inventory, Maintenance
from monitor.cycle.observation import CommuneObservation, CycleReport, observe_host
from monitor.decide.status import CommuneState, CommuneStatus, HostState, MonitorState
from monitor.present.metrics import CONTENT_TYPE, CycleStats, Exposition, escape_label
from probes.result import IcmpDetail, ProbeResult, TcpDetail
from tests.support.populate import (
    NOW,
    ODD_COMMUNE,
    ODD_HOST,
    ODD_PROVINCE,
    odd_inventory,
    populated_state,
)


def families(body: bytes) -> dict[str, list]:
    """Samples by family name, parsed by prometheus-client's own parser."""
    return {f.name: f.samples for f in text_string_to_metric_families(body.decode())}


def sample(samples: list, **want: str) -> float | None:
    matches = [s.value for s in samples if all(s.labels.get(k) == v for k, v in want.items())]
    assert len(matches) <= 1, want
    return matches[0] if matches else None


def render(inventory: Inventory, state: MonitorState, stats: CycleStats | None = None) -> bytes:
    exposition = Exposition()
    exposition.update(inventory, state, stats)
    return exposition.body()


def icmp_result(ip: str, rtts: tuple[float, ...], sent: int = 3, at: float = NOW) -> ProbeResult:
    return ProbeResult("icmp", ip, bool(rtts), at, 1.0, None, IcmpDetail(sent, len(rtts), rtts))


def one_host_state(results: tuple[ProbeResult, ...], up: bool | None = True) -> MonitorState:
    """State of the odd commune with only its first host observed (from ``results``)."""
    obs = observe_host(ODD_HOST, "198.18.7.2", results)
    host = HostState(ODD_HOST, "198.18.7.2", up=up, last=obs)
    commune = CommuneState("79", "26734", CommuneStatus.OK, hosts={ODD_HOST: host}, last_seen=NOW)
    return MonitorState(communes={"79/26734": commune})


def test_escape_label_escapes_backslash_quote_newline_only() -> None:
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert escape_label("Đồng Nai") == "Đồng Nai"
    assert escape_label("Hoa\u0300") == "Hoà"  # NFC


def test_content_type_is_text_format_0_0_4() -> None:
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_label_values_survive_a_parse_round_trip() -> None:
    inventory = odd_inventory()
    got = families(render(inventory, populated_state(inventory, NOW)))
    info = got["tslcd_commune_info"]
    assert sample(info, commune="26734") == 1
    odd = next(s for s in info if s.labels["commune"] == "26734")
    assert odd.labels["commune_name"] == ODD_COMMUNE
    assert odd.labels["province_name"] == ODD_PROVINCE
    assert odd.labels["isp"] == "Viettel" and odd.labels["circuit"] == ""
    newline = next(s for s in info if s.labels["commune"] == "26737")
    assert newline.labels["commune_name"] == "Phường Sài Gòn\nmới"
    assert newline.labels["circuit"] == 'HCM-"7"'
    assert sample(got["tslcd_host_up"], host=ODD_HOST) == 1


def test_every_family_has_help_and_type_once() -> None:
    inventory = odd_inventory()
    text = render(inventory, populated_state(inventory, NOW)).decode()
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")]
    assert len(types) == len(set(types)) and sorted(types) == sorted(helps)
    contract = {
        "tslcd_host_up": "gauge",
        "tslcd_host_rtt_seconds": "gauge",
        "tslcd_host_packet_loss_ratio": "gauge",
        "tslcd_host_ip_config_ok": "gauge",
        "tslcd_host_mac_addresses": "gauge",
        "tslcd_commune_info": "gauge",
        "tslcd_commune_status": "gauge",
        "tslcd_commune_unknown_devices": "gauge",
        "tslcd_target_up": "gauge",
        "tslcd_target_tls_expiry_timestamp_seconds": "gauge",
        "tslcd_milestone_met": "gauge",
        "tslcd_probe_cycle_duration_seconds": "histogram",
        "tslcd_probes_total": "counter",
    }
    declared = dict(
        line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE ")
    )
    assert {k: declared.get(k) for k in contract} == contract


def test_promtool_accepts_the_exposition() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is required under CI")
        pytest.skip("promtool not installed")
    inventory = odd_inventory()
    state = populated_state(inventory, NOW)
    stats = CycleStats(duration=12.5, probes={("icmp", "ok"): 20, ("tcp", "fail"): 2})
    body = render(inventory, state, stats)
    done = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    broken = body.replace('Xã \\"Bình\\"'.encode(), 'Xã "Bình"'.encode())
    assert broken != body
    done = subprocess.run(
        [promtool, "check", "metrics"], input=broken, capture_output=True, timeout=60, check=False
    )
    assert done.returncode != 0  # the check would catch an escaping mistake


def test_no_reply_means_loss_one_and_no_rtt_sample() -> None:
    got = families(render(odd_inventory(), one_host_state((icmp_result("198.18.7.2", ()),), False)))
    assert sample(got["tslcd_host_packet_loss_ratio"], host=ODD_HOST) == 1.0
    assert sample(got["tslcd_host_rtt_seconds"], host=ODD_HOST) is None
    assert sample(got["tslcd_host_rtt_jitter_seconds"], host=ODD_HOST) is None
    assert sample(got["tslcd_host_up"], host=ODD_HOST) == 0


def test_rtt_loss_and_jitter_of_the_last_cycle() -> None:
    state = one_host_state((icmp_result("198.18.7.2", (0.010, 0.014), sent=4),))
    got = families(render(odd_inventory(), state))
    assert sample(got["tslcd_host_rtt_seconds"], host=ODD_HOST) == pytest.approx(0.012)
    assert sample(got["tslcd_host_packet_loss_ratio"], host=ODD_HOST) == pytest.approx(0.5)
    assert sample(got["tslcd_host_rtt_jitter_seconds"], host=ODD_HOST) == pytest.approx(0.004)


def test_unobserved_hosts_and_communes_have_no_invented_samples() -> None:
    inventory = odd_inventory()
    got = families(render(inventory, one_host_state((icmp_result("198.18.7.2", (0.01,)),), None)))
    assert sample(got["tslcd_host_up"], host=ODD_HOST) is None  # never judged
    assert sample(got["tslcd_host_up"], host="may-02", commune="26734") is None
    assert sample(got["tslcd_host_ip_config_ok"], host=ODD_HOST) is None  # no ARP vantage
    assert sample(got["tslcd_host_mac_addresses"], host=ODD_HOST) is None
    assert sample(got["tslcd_commune_unknown_devices"], commune="26734") is None  # not scanned
    assert sample(got["tslcd_commune_status"], commune="26737") == 3  # never probed
    assert sample(got["tslcd_commune_last_seen_timestamp_seconds"], commune="26737") is None
    infos = {s.labels["commune"] for s in got["tslcd_commune_info"]}
    assert infos == {c.code for c in inventory.communes()}


def test_arp_answers_give_ip_config_and_mac_count() -> None:
    inventory = odd_inventory()
    state = populated_state(inventory, NOW)
    got = families(render(inventory, state))
    for key, commune in state.communes.items():
        for host in commune.hosts.values():
            assert host.last is not None
            arp = host.last.arp
            labels = {"province": key.split("/")[0], "commune": commune.commune, "host": host.name}
            ok = sample(got["tslcd_host_ip_config_ok"], **labels)
            count = sample(got["tslcd_host_mac_addresses"], **labels)
            if arp is None:
                assert ok is None and count is None
            else:
                assert ok == (1 if arp.mac_ok else 0) and count == len(arp.macs)
    assert any(s.value == 2 for s in got["tslcd_host_mac_addresses"])  # a conflict was seen


def test_alive_method_lists_each_method_tried() -> None:
    tcp = ProbeResult("tcp", "198.18.7.2", True, NOW, 0.01, None, TcpDetail(445, 0.01))
    state = one_host_state((icmp_result("198.18.7.2", ()), tcp))
    alive = families(render(odd_inventory(), state))["tslcd_host_alive"]
    assert sample(alive, host=ODD_HOST, method="icmp") == 0
    assert sample(alive, host=ODD_HOST, method="tcp") == 1
    assert sample(alive, host=ODD_HOST, method="arp") is None


def test_commune_status_backup_unknown_devices_and_milestones() -> None:
    inventory = odd_inventory()
    state = populated_state(inventory, NOW)
    odd = state.communes["79/26734"]
    odd.status, odd.on_backup, odd.first_passed = CommuneStatus.DEGRADED, True, {"link": NOW}
    state.communes["79/26737"].first_passed = {"link": NOW, "ip_config": NOW}
    got = families(render(inventory, state))
    assert sample(got["tslcd_commune_status"], commune="26734") == 1
    assert sample(got["tslcd_commune_on_backup"], commune="26734") == 1
    assert sample(got["tslcd_commune_last_seen_timestamp_seconds"], commune="26734") == NOW
    met = got["tslcd_milestone_met"]
    assert sample(met, commune="26734", milestone="ip_installed") == 0  # ip_config missing
    assert sample(met, commune="26737", milestone="ip_installed") == 1
    assert sample(met, commune="26737", milestone="system_reached") == 0  # target missing
    due = got["tslcd_milestone_due_timestamp_seconds"]
    end_of_due_day = dt.datetime(2026, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    assert sample(due, milestone="ip_installed") == end_of_due_day.timestamp()
    expected = {
        c.key: len(state.communes[c.key].unknown_devices or ()) for c in inventory.communes()
    }
    unknown = {
        f"{s.labels['province']}/{s.labels['commune']}": s.value
        for s in got["tslcd_commune_unknown_devices"]
    }
    assert unknown == expected


def test_target_metrics_by_vantage() -> None:
    inventory = odd_inventory()
    state = populated_state(inventory, NOW)
    down = state.targets[("congtaidaibieu", "79")]
    state.targets[("congtaidaibieu", "79")] = dataclasses.replace(
        down, up=False, last=ProbeResult("target", "congtaidaibieu", False, NOW, 5.0, "timeout")
    )
    got = families(render(inventory, state))
    assert sample(got["tslcd_target_up"], target="congtaidaibieu", vantage="central") == 1
    assert sample(got["tslcd_target_up"], target="congtaidaibieu", vantage="79") == 0
    assert sample(
        got["tslcd_target_tls_expiry_timestamp_seconds"], target="bauCu-dự-phòng", vantage="central"
    ) == NOW + 40 * 86_400
    assert sample(
        got["tslcd_target_tls_expiry_timestamp_seconds"], target="congtaidaibieu", vantage="79"
    ) is None
    phases = got["tslcd_target_phase_seconds"]
    assert sample(phases, target="congtaidaibieu", vantage="central", phase="tls") == 0.045
    status = got["tslcd_target_http_status"]
    assert sample(status, target="congtaidaibieu", vantage="central") == 200


def test_icmp_counters_accumulate_once_per_probe() -> None:
    inventory = odd_inventory()
    exposition = Exposition(process_metrics=False)
    first = one_host_state((icmp_result("198.18.7.2", (0.003, 0.004), at=NOW),))
    exposition.update(inventory, first)
    exposition.update(inventory, first)  # no new cycle: nothing more counted
    second = one_host_state((icmp_result("198.18.7.2", (0.2,), at=NOW + 30),))
    exposition.update(inventory, second)
    got = families(exposition.body())
    assert sample(got["tslcd_host_icmp_sent"], host=ODD_HOST) == 6
    assert sample(got["tslcd_host_icmp_received"], host=ODD_HOST) == 3
    assert sample(got["tslcd_host_icmp_sent"], host="may-02") is None
    rtt = got["tslcd_icmp_rtt_seconds"]
    assert sample(rtt, province="79", le="0.005") == 2  # the two fast replies
    assert sample(rtt, province="79", le="0.25") == 3
    assert sample(rtt, province="79", le="+Inf") == 3
    count = [s for s in rtt if s.name == "tslcd_icmp_rtt_seconds_count"]
    assert count[0].value == 3 and count[0].labels == {"province": "79"}


def test_cycle_stats_from_report_feed_counter_and_histogram() -> None:
    obs = observe_host("may-02", "198.18.7.3", (icmp_result("198.18.7.3", ()),
                        ProbeResult("tcp", "198.18.7.3", True, NOW, 0.01)))
    report = CycleReport(
        started=NOW, duration=7.5,
        communes=[CommuneObservation("79", "26734", NOW, hosts=(obs,))],
        targets=[ProbeResult("target", "congtaidaibieu", True, NOW, 0.3)],
    )
    stats = CycleStats.from_report(report)
    assert dict(stats.probes) == {("icmp", "fail"): 1, ("tcp", "ok"): 1, ("target", "ok"): 1}
    exposition = Exposition(process_metrics=False)
    inventory = odd_inventory()
    exposition.update(inventory, MonitorState(), stats)
    exposition.update(inventory, MonitorState(), stats)
    got = families(exposition.body())
    assert sample(got["tslcd_probes"], probe="tcp", result="ok") == 2
    cycle = got["tslcd_probe_cycle_duration_seconds"]
    assert sample(cycle, le="5") == 0 and sample(cycle, le="10") == 2
    total = next(s for s in cycle if s.name.endswith("_sum"))
    assert total.value == 15.0


def test_agent_last_seen_from_state_and_stats() -> None:
    inventory = odd_inventory()
    state = populated_state(inventory, NOW)
    state.communes["79/26734"].vantage = "79/26734"
    stats = CycleStats(agents={"01": NOW + 5})
    seen = families(render(inventory, state, stats))["tslcd_agent_last_seen_timestamp_seconds"]
    assert sample(seen, agent="79/26734", province="79") == NOW
    assert sample(seen, agent="01", province="01") == NOW + 5
    assert sample(seen, agent="central") is None


def test_gzip_body_is_the_same_render() -> None:
    inventory = odd_inventory()
    exposition = Exposition()
    exposition.update(inventory, populated_state(inventory, NOW))
    assert gzip.decompress(exposition.body_gzip()) == exposition.body()
    assert len(exposition.body_gzip()) < len(exposition.body()) / 4


def test_process_metrics_appended_once() -> None:
    text = render(odd_inventory(), MonitorState()).decode()
    assert "# TYPE process_cpu_seconds_total counter" in text or "process_" not in text
    assert text.count("# TYPE python_info ") == 1


def test_body_is_always_one_whole_render_while_updating() -> None:
    inventory = odd_inventory()
    states = [populated_state(inventory, NOW + i) for i in range(3)]
    exposition = Exposition(process_metrics=False)
    exposition.update(inventory, states[0])
    stop = threading.Event()

    def keep_updating() -> None:
        i = 0
        while not stop.is_set():
            exposition.update(inventory, states[i % 3])
            i += 1

    workers = [threading.Thread(target=keep_updating) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        deadline = time.monotonic() + 1.0
        reads = 0
        while time.monotonic() < deadline:
            got = families(exposition.body())
            seen = {s.value for s in got["tslcd_commune_last_seen_timestamp_seconds"]}
            assert len(seen) == 1  # never half of one render and half of another
            reads += 1
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert reads > 0


def test_maintenance_window_marks_only_communes_inside_it_now() -> None:
    now = dt.datetime.now(dt.UTC)
    hour = dt.timedelta(hours=1)
    windows = (
        Maintenance("79/26734", now - hour, now + hour),
        Maintenance("79", now + hour, now + 2 * hour),  # later: not yet
    )
    inventory = dataclasses.replace(odd_inventory(), maintenance=windows)
    got = families(render(inventory, MonitorState()))["tslcd_commune_maintenance"]
    assert [(s.labels["province"], s.labels["commune"], s.value) for s in got] == [
        ("79", "26734", 1)
    ]
