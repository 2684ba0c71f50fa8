"""The bundled demo shows the product working: the real ``tslcd-monitor run`` with no
``--inventory`` (a subprocess, on a free loopback port) starts the election-system stand-in
(HTTPS on 127.75.255.254 with a CA made at start), reaches it with the certificate checked,
meets every milestone of every commune and raises no deadline alert."""

from __future__ import annotations

import re
import ssl
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from inventory.loader import demo_path, load
from monitor.service import demo_target
from tests.support.servers import daemon, free_tcp_port

DEMO = load(demo_path())
COMMUNES = len(list(DEMO.communes()))
TARGET = DEMO.targets[0]
SAMPLE = re.compile(r"^(tslcd_[a-z_]+)\{([^}]*)\} (\S+)$")


def scrape(port: int) -> list[tuple[str, str, float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode("utf-8")
    return [(m[1], m[2], float(m[3])) for line in text.splitlines()
            if (m := SAMPLE.match(line))]


def milestones_met(samples: list[tuple[str, str, float]]) -> dict[str, int]:
    """Per milestone, how many communes have it met."""
    met: dict[str, int] = {}
    for name, labels, value in samples:
        if name == "tslcd_milestone_met" and value == 1:
            milestone = re.search(r'milestone="([^"]+)"', labels)
            assert milestone is not None
            met[milestone[1]] = met.get(milestone[1], 0) + 1
    return met


def cycles_done(log_path: Path) -> int:
    return log_path.read_text("utf-8", "replace").count('"event": "cycle_done"')


def test_the_demo_target_is_the_stand_in_on_loopback() -> None:
    where = demo_target.endpoint(TARGET)
    assert where.host == "127.75.255.254" and TARGET.verify_tls is not False
    assert all("ip_config" not in m.requires for m in DEMO.milestones)  # needs an ARP vantage


def test_run_on_the_bundled_demo_meets_its_milestones_without_deadline_alerts(
        tmp_path: Path) -> None:
    port = free_tcp_port()
    log_path = tmp_path / "run.log"
    with daemon([sys.executable, "-m", "monitor.cli.main", "run", "--listen",
                 f"127.0.0.1:{port}"], log_path, cwd=tmp_path) as proc:
        met: dict[str, int] = {}
        samples: list[tuple[str, str, float]] = []
        until = time.monotonic() + 150  # two cycles: ~17 s, the 30 s interval, ~17 s
        while time.monotonic() < until and proc.poll() is None:
            time.sleep(1)
            if cycles_done(log_path) < 2:
                continue
            samples = scrape(port)
            met = milestones_met(samples)
            break
        assert proc.poll() is None, log_path.read_text("utf-8", "replace")[-3000:]
        assert met == {m.id: COMMUNES for m in DEMO.milestones}, met
        targets = [(labels, v) for name, labels, v in samples if name == "tslcd_target_up"]
        assert targets and all(v == 1 for _labels, v in targets), targets

        # the stand-in is real HTTPS: its certificate checks against the CA file written
        context = ssl.create_default_context(cafile=TARGET.ca_file)
        with urllib.request.urlopen(TARGET.url, context=context, timeout=5) as resp:
            assert "bầu cử" in resp.read().decode("utf-8")
    output = log_path.read_text("utf-8", "replace")
    assert "deadline" not in output, [ln for ln in output.splitlines() if "deadline" in ln][:5]
    cycles = [ln for ln in output.splitlines() if '"event": "cycle_done"' in ln]
    assert len(cycles) >= 2 and all('"alerts": 0' in ln for ln in cycles), cycles
    assert "Traceback" not in output
    assert "demo_stand_in_started" in output or "demo_stand_in_busy" in output


@pytest.mark.parametrize("url", ["http://127.75.255.254:8443/", "https://192.0.2.1/",
                                 "https://example.org/"])
def test_the_stand_in_serves_only_https_on_loopback(url: str) -> None:
    with pytest.raises(demo_target.StandInError, match="loopback"):
        demo_target.endpoint(type(TARGET)("x", url, ca_file="/tmp/x.pem"))
