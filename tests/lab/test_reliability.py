"""Reliability under faults of the monitor itself (issue #7, item 3), in a province lab.

``tslcd-monitor run`` runs in the lab's core namespace, alerting a webhook receiver there;
the test breaks what the monitor depends on — its state database (locked, disk full), its
inventory (a broken file, on SIGHUP and on a file change), its own process (kill -9) and
single probes (raising) — and checks that probing goes on, the problem is reported, and no
alert is lost or repeated.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from structlog.testing import capture_logs

from inventory.model import IcmpSettings
from monitor.cycle.scheduler import Scheduler, SchedulerOptions
from probes.icmp import Pinger
from tests.support import require_real
from tests.support.lab import faults, observe
from tests.support.lab.harness import ROOT, WEBHOOK_PORT, NamespaceLoop
from tests.support.lab.netns import Lab, Node
from tests.support.lab.province import (
    CORE_TO_ELECTION,
    ELECTION_IP,
    CommuneLab,
    ProvinceLab,
    build_province,
    tools_missing,
)
from tests.support.processes import stop
from tests.support.servers import mosquitto_binary


@pytest.fixture(scope="module", autouse=True)
def lab_tools() -> None:
    missing = tools_missing()
    require_real(not missing, f"the lab needs {', '.join(missing)}")

MONITOR = str(Path(sys.executable).parent / "tslcd-monitor")
LISTEN = "127.0.0.1:19750"  # inside the core namespace
BROKEN = "version: 1\nprovinces:\n  - code: '75'\n    communes: [{code: 'x'\n"


@dataclass
class Run:
    """``tslcd-monitor run`` in the core namespace of a small province lab."""

    province: ProvinceLab
    workdir: Path
    files: list[BinaryIO] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    receiver: subprocess.Popen[bytes] | None = None
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)
    starts: int = 0

    @property
    def core(self) -> Node:
        return self.province.core

    @property
    def inventory(self) -> Path:
        return self.workdir / "inventory.yaml"

    @property
    def log(self) -> Path:
        return self.workdir / "monitor.common.log"

    @property
    def webhook(self) -> Path:
        return self.workdir / "webhook.jsonl"

    def start(self, *, state: Path | None = None, wrap: tuple[str, ...] = ()) -> None:
        """Start (or restart) the monitor; ``wrap`` runs it through another command."""
        config = self.workdir / "config.yaml"
        config.write_text(
            f"listen: {LISTEN}\n"
            f"alerts:\n  webhooks:\n    - url: http://127.0.0.1:{WEBHOOK_PORT}/hook\n",
            encoding="utf-8")
        log = self.open_log(self.log)
        argv = [MONITOR, "run", "--config", str(config), "--inventory", str(self.inventory),
                "--state", str(state or self.workdir / "state.db")]
        self.process = self.core.popen(*wrap, *argv, stderr=log)
        self.starts += 1
        observe.wait_until(lambda: self.cycles_since_start() >= 2, "the first cycles",
                           detail=lambda: observe.lines(self.log)[-5:])

    def open_log(self, path: Path) -> BinaryIO:
        """A log file for a process of the run, closed after the lab is gone."""
        log = open(path, "ab")  # noqa: SIM115 - closed with the run
        self.files.append(log)
        return log

    def start_receiver(self) -> None:
        self.receiver = self.core.popen(
            sys.executable, "-m", "tests.support.lab.webhook_file", "--port", str(WEBHOOK_PORT),
            "--out", str(self.webhook), cwd=str(ROOT))
        observe.wait_until(lambda: self.core.run(
            "ss", "-Hltn", f"sport = :{WEBHOOK_PORT}").stdout.strip() != "", "the receiver")

    def stop_receiver(self) -> None:
        assert self.receiver is not None
        self.receiver.terminate()
        self.receiver.wait(timeout=10)

    def kill(self) -> None:
        """kill -9: no chance to flush or close anything."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def cycles_since_start(self) -> int:
        starts = [i for i, line in enumerate(observe.lines(self.log))
                  if '"monitor_started"' in line]
        if len(starts) < self.starts:
            return 0
        tail = observe.lines(self.log)[starts[-1]:]
        return sum('"cycle_done"' in line for line in tail)

    def wait_cycles(self, count: int) -> None:
        assert self.process is not None and self.process.poll() is None, \
            observe.lines(self.log)[-10:]
        observe.wait_cycles(self.log, count)

    def metrics(self) -> str:
        """/metrics, fetched from inside the core namespace (where the monitor listens);
        empty while nothing listens yet."""
        fetch = ("import urllib.request as u; "
                 f"print(u.urlopen('http://{LISTEN}/metrics').read().decode())")
        return self.core.run(sys.executable, "-c", fetch, check=False).stdout

    def events(self) -> list[dict[str, Any]]:
        return observe.events(self.webhook)

    def statuses(self) -> dict[str, float]:
        samples = observe.parse(self.metrics())
        return {k[0]: v for k, v in
                observe.by_label(samples, "tslcd_commune_status", "commune").items()}

    def batches(self) -> float:
        samples = observe.parse(self.metrics())
        return sum(observe.by_label(samples, "tslcd_collector_batches_total").values())

    def log_records(self, name: str) -> list[dict[str, Any]]:
        return observe.log_events(self.log, name)


@pytest.fixture
def run(netns_ready: None, tmp_path: Path) -> Iterator[Run]:
    with Lab() as lab:
        province = build_province(lab, tmp_path, 3)
        # no loss in these tests: one echo a host makes cycles of about 1.5 s
        province.write_inventory(tmp_path / "inventory.yaml", interval=1.5,
                                 icmp=IcmpSettings(1, 0.5))
        built = Run(province, tmp_path)
        try:
            yield built
        finally:
            _stop_all(built.agents)  # while the broker still takes their "offline"
            lab.close()  # the processes first, then the log files they write
            for f in built.files:
                f.close()


def test_a_locked_state_database_is_reported_and_probing_and_alerting_go_on(
    run: Run,
) -> None:
    run.start_receiver()
    run.start()
    place = run.province.communes[0]
    blocker = sqlite3.connect(run.workdir / "state.db", timeout=5, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        run.wait_cycles(2)
        assert run.log_records("state_store_error"), "the lock is reported"
        with faults.link_down(place):
            observe.wait_until(
                lambda: ("commune_down", place.code, None) in observe.fired(run.events()),
                "the alert while the database is locked")
        run.wait_cycles(1)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    errors = len(run.log_records("state_store_error"))
    run.wait_cycles(3)
    assert len(run.log_records("state_store_error")) == errors, "writes succeed again"
    with sqlite3.connect(run.workdir / "state.db") as db:
        assert db.execute("SELECT count(*) FROM open_alerts").fetchone()[0] == 0
    assert sorted(e["state"] for e in run.events()) == ["firing", "resolved"]


def test_a_full_disk_is_reported_and_probing_goes_on(run: Run) -> None:
    """The state lives on a 1 MiB tmpfs mounted in a mount namespace of the monitor's own;
    the test fills it up from inside that namespace, then frees it."""
    run.start_receiver()
    small = run.workdir / "small"
    small.mkdir()
    state = small / "state.db"
    script = (f"mount -t tmpfs -o size=1m tslcd-lab {small} && exec \"$@\"")
    run.start(state=state, wrap=("unshare", "--mount", "--propagation", "private",
                                 "sh", "-c", script, "sh"))
    assert run.process is not None
    inside = ("nsenter", "-t", str(run.process.pid), "-m")
    run.core.run(*inside, "dd", "if=/dev/zero", f"of={small}/filler", "bs=64k", check=False)
    place = run.province.communes[1]
    with faults.link_down(place):
        observe.wait_until(lambda: bool(run.log_records("state_disk_full")),
                           "the full disk reported")
        observe.wait_until(
            lambda: ("commune_down", place.code, None) in observe.fired(run.events()),
            "the alert while the disk is full")
        run.wait_cycles(2)
    assert not small.joinpath("filler").exists(), "the tmpfs is the monitor's alone"
    run.core.run(*inside, "rm", f"{small}/filler")
    observe.wait_until(
        lambda: ("commune_down", place.code, None) in observe.fired(run.events(), "resolved"),
        "the resolution")
    errors = len(run.log_records("state_disk_full"))
    run.wait_cycles(3)
    assert len(run.log_records("state_disk_full")) == errors, "writes succeed again"


@pytest.mark.parametrize("trigger", ["sighup", "file_change"])
def test_a_broken_inventory_is_reported_and_the_old_one_stays(run: Run, trigger: str) -> None:
    run.start_receiver()
    run.start()
    good = run.inventory.read_text(encoding="utf-8")
    before = os.stat(run.inventory)
    run.inventory.write_text(BROKEN, encoding="utf-8")
    if trigger == "sighup":
        os.utime(run.inventory, ns=(before.st_atime_ns, before.st_mtime_ns))  # no file change
        run.wait_cycles(2)
        assert run.log_records("inventory_reload_failed") == [], "unchanged file: no reload"
        assert run.process is not None
        run.process.send_signal(signal.SIGHUP)
    observe.wait_until(lambda: bool(run.log_records("inventory_reload_failed")),
                       "the reload error")
    problems = run.log_records("inventory_reload_failed")[0]["problems"]
    assert any(str(run.inventory) in p for p in problems), problems
    run.wait_cycles(2)
    hosts_up = observe.by_label(observe.parse(run.metrics()), "tslcd_host_up", "commune", "host")
    assert len(hosts_up) == 6 and set(hosts_up.values()) == {1.0}, hosts_up
    place = run.province.communes[2]
    with faults.link_down(place):  # the old inventory is still the one probed
        observe.wait_until(
            lambda: ("commune_down", place.code, None) in observe.fired(run.events()),
            "an alert from the old inventory")
    run.inventory.write_text(good, encoding="utf-8")  # a valid file is taken again
    if trigger == "sighup":
        run.process.send_signal(signal.SIGHUP)
    observe.wait_until(lambda: bool(run.log_records("inventory_reloaded")), "the good reload")


def test_kill_9_and_restart_loses_and_repeats_no_alert(run: Run) -> None:
    a, b = run.province.communes[0], run.province.communes[1]
    run.start_receiver()
    run.start()
    down_a = faults.link_down(a)
    observe.wait_until(lambda: observe.fired(run.events()) == [("commune_down", a.code, None)],
                       "A's alert", detail=run.events)
    run.wait_cycles(2)  # its delivery recorded
    run.stop_receiver()
    with faults.link_down(b):
        # B's alert is decided and committed while no receiver listens, then the monitor dies
        observe.wait_until(lambda: any(r.get("alert") == "commune_down"
                                       and r.get("commune") == b.code
                                       for r in run.log_records("alert")), "B's alert decided")
        run.kill()
        down_a.clear()
        run.start_receiver()
        run.start()
        observe.wait_until(
            lambda: len(run.events()) >= 3, "B's alert and A's resolution after the restart",
            detail=run.events)
        run.wait_cycles(3)
    events = run.events()
    pairs = [(e["event"], e["commune"], e["state"]) for e in events]
    assert sorted(pairs[:1]) == [("commune_down", a.code, "firing")]
    assert sorted(pairs[1:]) == sorted([("commune_down", a.code, "resolved"),
                                        ("commune_down", b.code, "firing")]), events
    assert len({(e["id"], e["state"]) for e in events}) == len(events), "nothing repeated"
    fired_a = next(e for e in events if e["commune"] == a.code and e["state"] == "firing")
    resolved_a = next(e for e in events if e["commune"] == a.code and e["state"] == "resolved")
    assert fired_a["id"] == resolved_a["id"]


@pytest.mark.parametrize("broken", ["target", "icmp"])
async def test_a_probe_that_raises_fails_alone_and_the_cycle_goes_on(
    netns_ready: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str,
) -> None:
    """The scheduler, run on a thread inside the lab's core namespace, with one kind of
    probe raising: that probe's results are failures, everything else is judged."""
    with Lab() as lab:
        province = build_province(lab, tmp_path, 2)
        target = dataclasses.replace(province.inventory.targets[0], url=f"https://{ELECTION_IP}/")
        inventory = dataclasses.replace(province.inventory, targets=(target,))

        async def boom(*_: object, **__: object) -> Any:
            raise RuntimeError("probe exploded")

        if broken == "target":
            monkeypatch.setattr("probes.target.probe", boom)
        else:
            monkeypatch.setattr(Pinger, "ping_each", boom)
        core = NamespaceLoop(province.core.netns)
        try:
            with capture_logs() as logs:
                report = await core.run(_one_cycle(inventory))
        finally:
            core.close()
    events = [entry["event"] for entry in logs]
    target_ok = [r.ok for r in report.targets]
    hosts_alive = [h.alive for c in report.communes for h in c.hosts]
    if broken == "target":
        assert "probe_failed" in events and target_ok == [False]
        assert "probe exploded" in (report.targets[0].error or "")
        assert hosts_alive == [True] * 4, "ICMP judged every host regardless"
    else:
        assert "icmp_cycle_failed" in events and hosts_alive == [False] * 4
        assert target_ok == [True], "the election system is still checked"
    assert len(report.communes) == 2


async def _one_cycle(inventory: Any) -> Any:
    async with Pinger() as pinger:
        return await Scheduler(inventory, pinger, SchedulerOptions(arp=False)).cycle()



def test_collector_keeps_working_across_a_broker_restart(run: Run) -> None:
    """The contract's architecture in the lab: an agent in every commune router, a broker
    and the collector in the core. The broker restarts; batches flow again, and a fault an
    agent finds afterwards still reaches the webhook."""
    place = _agents_through_a_broker_restart(run)
    assert ("wrong_mac", place.code, "may-01") in observe.fired(run.events())
    observe.wait_until(lambda: set(run.statuses().values()) == {0.0}, "every commune ok",
                       detail=run.statuses)


def test_a_broker_restart_raises_no_alert(run: Run) -> None:
    place = _agents_through_a_broker_restart(run)
    assert observe.fired(run.events()) == [("wrong_mac", place.code, "may-01")], run.events()


def _agents_through_a_broker_restart(run: Run) -> CommuneLab:
    """Agents, broker and collector up and quiet; the broker restarted; batches flowing
    again; then a wrong MAC on the first commune, detected. Returns that commune."""
    # 3 s cycles: an agent's ARP scan listens 1.5 s, which a 1.5 s cycle always cuts short
    run.province.write_inventory(run.inventory, interval=3.0, icmp=IcmpSettings(1, 0.5))
    run.start_receiver()
    broker = _start_broker(run)
    url = f"mqtt://{CORE_TO_ELECTION}:1883"
    config = run.workdir / "config.yaml"
    config.write_text(
        f"listen: {LISTEN}\n"
        f"alerts:\n  webhooks:\n    - url: http://127.0.0.1:{WEBHOOK_PORT}/hook\n",
        encoding="utf-8")
    run.core.popen(MONITOR, "collector", "--config", str(config), "--inventory",
                   str(run.inventory), "--mqtt", url, stderr=run.open_log(run.log))
    for place in run.province.communes:
        run.agents.append(place.router.popen(
            MONITOR, "agent", "--inventory", str(run.inventory), "--scope", place.key,
            "--mqtt", url, "--spool", str(run.workdir / f"spool-{place.code}.db"),
            stderr=run.open_log(run.workdir / f"agent-{place.code}.log")))
    codes = {p.code for p in run.province.communes}
    observe.wait_until(lambda: run.statuses() == dict.fromkeys(codes, 0.0),
                       "every commune up through the agents", detail=run.statuses)
    assert run.events() == []

    broker.terminate()
    broker.wait(timeout=10)
    observe.wait_until(lambda: bool(run.log_records("broker_unreachable")),
                       "the collector noticing the broker gone")
    _start_broker(run)
    before = run.batches()
    observe.wait_until(lambda: run.batches() >= before + 3 * len(codes),
                       "batches after the restart", detail=run.batches)
    place = run.province.communes[0]
    with faults.wrong_mac(place, "may-01"):
        observe.wait_until(
            lambda: ("wrong_mac", place.code, "may-01") in observe.fired(run.events()),
            "the wrong MAC found by the agent", detail=run.events)
    return place


def _stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    stop(processes)


def _start_broker(run: Run) -> subprocess.Popen[bytes]:
    """Mosquitto in the core namespace on the core's lab address, persistent (the
    collector's session survives a restart, as in production)."""
    data = run.workdir / "broker"
    data.mkdir(exist_ok=True)
    conf = data / "mosquitto.conf"
    conf.write_text(f"listener 1883 {CORE_TO_ELECTION}\nallow_anonymous true\n"
                    f"persistence true\npersistence_location {data}/\nautosave_interval 1\n"
                    "user root\n", encoding="utf-8")
    proc = run.core.popen(mosquitto_binary(), "-c", str(conf),
                          stdout=run.open_log(data / "mosquitto.log"), stderr=subprocess.STDOUT)
    observe.wait_until(lambda: "1883" in run.core.run("ss", "-Hltn", "sport = :1883").stdout,
                       "the broker listening")
    return proc
