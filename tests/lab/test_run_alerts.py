"""End to end: `tslcd-monitor run` on the demo inventory, alerts on a real broker and webhook.

Everything runs inside a namespace the test creates (its own loopback, so one demo host can
be made unreachable with iptables without touching the machine's network): a Mosquitto
broker, a subscriber, a webhook receiver and the monitor itself. The test reads what they
received from files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from inventory.loader import dump, load
from tests.support import require_real
from tests.support.lab.netns import Lab
from tests.support.lab.observe import cycles as _cycles
from tests.support.lab.observe import events as _events
from tests.support.lab.observe import lines as _lines
from tests.support.lab.observe import wait_until as _wait
from tests.support.lab.run_files import block as _block
from tests.support.lab.run_files import mqtt_events as _mqtt_events
from tests.support.lab.run_files import small_demo as _small_demo
from tests.support.lab.run_files import unblock as _unblock

VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def monitored(lab: Lab, tmp_path: Path) -> Iterator[dict]:
    with contextlib.ExitStack() as files:
        yield _start_monitored(lab, tmp_path, lambda p: files.enter_context(open(p, "wb")))


def _start_monitored(lab: Lab, tmp_path: Path, out: Callable[[Path], BinaryIO], *,
                     timing: dict[str, object] | None = None, warm_up: int = 3) -> dict:
    """``timing``: defaults to override in the small demo (interval, down_after, ...)."""
    require_real(shutil.which("mosquitto") is not None or Path("/usr/sbin/mosquitto").exists(),
                 "mosquitto is not installed")
    node = lab.node("run")
    inv = tmp_path / "inventory.yaml"
    _, addresses = _small_demo(inv)
    if timing:
        demo = load(inv)
        inv.write_text(dump(dataclasses.replace(
            demo, defaults=dataclasses.replace(demo.defaults, **timing))), encoding="utf-8")
    broker_conf = tmp_path / "mosquitto.conf"
    broker_conf.write_text("listener 18830 127.0.0.1\nallow_anonymous true\n", encoding="utf-8")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    node.popen(mosquitto, "-c", str(broker_conf), stderr=out(tmp_path / "broker.log"))
    mqtt_out = tmp_path / "mqtt.txt"
    time.sleep(0.5)
    node.popen("mosquitto_sub", "-h", "127.0.0.1", "-p", "18830", "-q", "1", "-v",
               "-t", "tslcd/v1/alerts/#", stdout=out(mqtt_out))
    webhook = tmp_path / "webhook.jsonl"
    node.popen(sys.executable, "-m", "tests.support.lab.webhook_file", "--port", "19000",
               "--out", str(webhook), cwd=str(Path(__file__).resolve().parents[2]))
    config = tmp_path / "config.yaml"
    config.write_text(
        "listen: 127.0.0.1:19750\n"
        "alerts:\n  webhooks:\n    - url: http://127.0.0.1:19000/hook\n"
        "  mqtt:\n    url: mqtt://127.0.0.1:18830\n",
        encoding="utf-8",
    )
    log = tmp_path / "monitor.common.log"
    monitor = node.popen(str(VENV_BIN / "tslcd-monitor"), "run", "--config", str(config),
                         "--inventory", str(inv), "--state", str(tmp_path / "state.db"),
                         stderr=out(log))
    _wait(lambda: _cycles(log) >= warm_up, f"{warm_up} monitor cycles")
    assert monitor.poll() is None, _lines(log)
    return {"node": node, "webhook": webhook, "mqtt": mqtt_out, "log": log,
            "addresses": addresses}


def test_unreachable_host_gives_one_alert_and_one_recovery(monitored: dict) -> None:
    node, webhook, mqtt_out, log = (monitored[k] for k in ("node", "webhook", "mqtt", "log"))
    assert _events(webhook) == [], "nothing alerts while every demo host answers"
    commune, host, ip = monitored["addresses"][0]

    _block(node, ip)
    _wait(lambda: len(_events(webhook)) >= 1, "the host_down alert")
    seen = _cycles(log)
    _wait(lambda: _cycles(log) >= seen + 3, "three more cycles")
    events = _events(webhook)
    assert len(events) == 1, events
    fired = events[0]
    assert (fired["event"], fired["state"], fired["commune"], fired["host"]) == (
        "host_down", "firing", commune, host)
    assert fired["province"] == "75" and host in fired["message"], fired

    _unblock(node, ip)
    _wait(lambda: len(_events(webhook)) >= 2, "the recovery")
    seen = _cycles(log)
    _wait(lambda: _cycles(log) >= seen + 3, "three more cycles")
    events = _events(webhook)
    assert [e["state"] for e in events] == ["firing", "resolved"], events
    assert events[1]["id"] == fired["id"]
    _wait(lambda: len(_mqtt_events(mqtt_out)) >= 2, "both events on MQTT")
    assert [(e["id"], e["state"]) for e in _mqtt_events(mqtt_out)] == [
        (fired["id"], "firing"), (fired["id"], "resolved")]
    assert all(line.startswith("tslcd/v1/alerts/75 ") for line in _lines(mqtt_out))


def test_gateway_outage_gives_one_commune_alert(monitored: dict) -> None:
    node, webhook, log = monitored["node"], monitored["webhook"], monitored["log"]
    commune = monitored["addresses"][-1][0]  # the last commune's gateway
    dark = [ip for code, _, ip in monitored["addresses"] if code == commune]
    for ip in dark:  # the line is cut: gateway and computers all silent
        _block(node, ip)
    _wait(lambda: len(_events(webhook)) >= 1, "the commune_down alert")
    seen = _cycles(log)
    _wait(lambda: _cycles(log) >= seen + 3, "three more cycles")
    events = _events(webhook)
    assert [(e["event"], e["commune"], e["host"]) for e in events] == [
        ("commune_down", commune, None)], events
    assert events[0]["severity"] == "critical"


@pytest.mark.timeout(150)
def test_a_cut_line_at_10_s_alerts_once_within_20_s(lab: Lab, tmp_path: Path) -> None:
    """Issue 14's goal with fast confirmation: interval 10 s, down_after 3, retry 2 s."""
    with contextlib.ExitStack() as files:
        run = _start_monitored(lab, tmp_path, lambda p: files.enter_context(open(p, "wb")),
                               timing={"interval": 10.0, "down_after": 3, "up_after": 2,
                                       "retry_interval": 2.0}, warm_up=1)
        node, webhook, log = run["node"], run["webhook"], run["log"]
        commune = run["addresses"][-1][0]
        cut = time.monotonic()
        for ip in [ip for code, _, ip in run["addresses"] if code == commune]:
            _block(node, ip)
        _wait(lambda: len(_events(webhook)) >= 1, "the commune_down alert", timeout=40)
        to_alert = time.monotonic() - cut
        seen = _cycles(log)
        _wait(lambda: _cycles(log) >= seen + 2, "two more cycles")
        events = _events(webhook)
    print(f"cut line at a 10 s interval: alert after {to_alert:.1f} s")
    assert [(e["event"], e["commune"], e["state"]) for e in events] == [
        ("commune_down", commune, "firing")], events
    assert to_alert <= 20.0 + 1.0  # the goal, and the webhook file's polling


@pytest.mark.timeout(120)
def test_the_lost_upstream_gives_one_vantage_isolated_alert_instead_of_the_communes(
        lab: Lab, tmp_path: Path) -> None:
    """``defaults.upstream`` pinged by ``run`` each cycle: when it stops answering (and the
    communes behind it with it), one alert for the central vantage, none per commune."""
    upstream = "127.99.0.1"  # the namespace's loopback answers for all of 127/8
    with contextlib.ExitStack() as files:
        run = _start_monitored(lab, tmp_path, lambda p: files.enter_context(open(p, "wb")),
                               timing={"upstream": (ipaddress.ip_address(upstream),)})
        node, webhook, log = run["node"], run["webhook"], run["log"]
        assert _events(webhook) == []
        for ip in [upstream, *(ip for _, _, ip in run["addresses"])]:
            _block(node, ip)  # our uplink, and so every commune, gone
        _wait(lambda: len(_events(webhook)) >= 1, "the vantage_isolated alert")
        seen = _cycles(log)
        _wait(lambda: _cycles(log) >= seen + 4, "four more cycles")
        isolated = _events(webhook)
        for ip in [upstream, *(ip for _, _, ip in run["addresses"])]:
            _unblock(node, ip)
        _wait(lambda: len(_events(webhook)) >= 2, "the resolution")
        seen = _cycles(log)
        _wait(lambda: _cycles(log) >= seen + 4, "four more cycles")
        events = _events(webhook)
    assert [(e["event"], e["state"]) for e in isolated] == [("vantage_isolated", "firing")]
    assert [(e["event"], e["state"]) for e in events] == [
        ("vantage_isolated", "firing"), ("vantage_isolated", "resolved")], events
