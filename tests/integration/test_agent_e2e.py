"""The commands as an operator runs them: agent and collector processes, a broker with
passwords and ACLs, /metrics over HTTP; and the agent unprivileged, as a non-root user."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from inventory.loader import load
from monitor.remote.collector import CollectorOptions
from tests.support import require_real
from tests.support.agentlab import ACL, USERS, write_inventory
from tests.support.processes import stop
from tests.support.servers import Mosquitto, free_tcp_port, receive

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "monitor.cli.main", *args]


class Processes:
    """Processes this test started, stopped by their own pid afterwards."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> \
            subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, **(env or {})})
        log.close()
        self.started.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        stop(self.started)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


async def poll_metrics(port: int, wanted: list[str], procs: Processes,
                       timeout: float = 45.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    body = ""
    while loop.time() < deadline:
        try:
            body = await asyncio.to_thread(metrics, port)
        except OSError:
            body = ""
        if all(w in body for w in wanted):
            return body
        await asyncio.sleep(0.3)
    raise AssertionError(f"missing {[w for w in wanted if w not in body]}; "
                         f"agent log:\n{procs.log('agent')[-3000:]}\n"
                         f"collector log:\n{procs.log('collector')[-3000:]}")


async def test_agent_to_collector_metric_with_passwords_acls_and_silence(
        tmp_path: Path, processes: Processes) -> None:
    inv = write_inventory(tmp_path / "inv.yaml")
    agents = tmp_path / "agents.yaml"
    agents.write_text('agents:\n  agent-75: "75"\n  agent-01: "01"\n', encoding="utf-8")
    communes = [c for c in load(inv).communes() if c.province == "75"]
    port = free_tcp_port()
    with Mosquitto(tmp_path / "broker", users=USERS, acl=ACL) as broker:
        processes.start("collector", command(
            "collector", "--inventory", str(inv), "--listen", f"127.0.0.1:{port}",
            "--mqtt", broker.url_for("collector", USERS["collector"]), "--agents", str(agents),
            "--silent-after", "30"))
        agent = processes.start("agent", command(
            "agent", "--inventory", str(inv), "--scope", "75", "--spool",
            str(tmp_path / "spool.db"), "--mqtt", f"mqtt://agent-75@127.0.0.1:{broker.port}"),
            env={"TSLCD_MQTT_PASSWORD": USERS["agent-75"]})  # not on the command line
        up = [f'tslcd_commune_status{{province="75",commune="{c.code}"}} 0' for c in communes]
        await poll_metrics(port, [*up, 'tslcd_agent_last_seen_timestamp_seconds{agent="75",'
                                  'province="75"}', 'tslcd_host_up{province="75"'], processes)
        # the operator's staff see their own lines, retained
        async with aiomqtt.Client("127.0.0.1", broker.port, username="vnpt",
                                  password=USERS["vnpt"]) as staff:
            await staff.subscribe("tslcd/v1/status/VNPT/#", qos=1)
            seen: dict[str, dict[str, object]] = {}
            expected = {c.code for c in load(inv).communes() if c.isp == "VNPT"}

            async def collect() -> None:
                async for message in staff.messages:
                    seen[str(message.topic)] = json.loads(message.payload)  # type: ignore[arg-type]
                    if {str(s["commune"]) for s in seen.values()} >= expected:
                        return

            await asyncio.wait_for(collect(), 15)
        assert all(t.startswith("tslcd/v1/status/VNPT/") for t in seen)
        vnpt75 = [s for s in seen.values() if s["province"] == "75"]
        assert vnpt75 and {s["status"] for s in vnpt75} == {"ok"}
        # the agent leaves: its last word is "offline", and its communes go to unknown
        # (through that word, not the silence timer 30 intervals later)
        await until_offline_is_believed(processes)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=20) == 0
        unknown = [f'tslcd_commune_status{{province="75",commune="{c.code}"}} 3'
                   for c in communes]
        await poll_metrics(port, [*unknown, 'tslcd_agent_silent{agent_id="agent-75",scope="75"} 1'],
                           processes)
    log = processes.log("collector")
    assert '"state": "offline", "retained": false, "believed": true' in log
    assert '"scope": "75", "reason": "offline"' in log  # agent_silent, from the last word


#: Seconds after its connection in which the collector does not believe an "offline" (the
#: wills a broker restart publishes arrive then): the product's default, which the CLI keeps.
SETTLE = next(f.default for f in dataclasses.fields(CollectorOptions) if f.name == "settle")


async def until_offline_is_believed(procs: Processes) -> None:
    """Wait out the collector's ``settle`` seconds after its connection to the broker, so
    that an agent's last word is what the test sees acted on."""
    line = next(line for line in procs.log("collector").splitlines()
                if '"event": "broker_connected"' in line)
    connected = dt.datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
    await asyncio.sleep(max(0.0, connected + SETTLE + 0.5 - time.time()))


# ------------------------------------------------------------- unprivileged agent


def unprivileged_python() -> list[str]:
    """argv prefix running this project's Python as ``nobody``: the venv's interpreter when
    that user may execute it, else the system's Python of the same version on the venv's
    packages (a venv built from a private pyenv under /root is not reachable)."""
    require_real(os.geteuid() == 0 and shutil.which("setpriv") is not None,
                 "root and setpriv are needed to switch to an unprivileged user")
    drop = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for python in (sys.executable, f"/usr/bin/{version}"):
        ok = subprocess.run([*drop, python, "-c", "import psutil, aiomqtt, monitor.remote.agent"],
                            cwd=ROOT, capture_output=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": pythonpath()}).returncode == 0
        if ok:
            return [*drop, python]
    require_real(False, "no Python interpreter usable by nobody")
    raise AssertionError("unreachable")


def pythonpath() -> str:
    import aiomqtt as module

    return os.pathsep.join([str(Path(module.__file__).resolve().parents[1]), str(ROOT)])


@pytest.fixture
def readable_dir() -> Iterator[Path]:
    """A directory the unprivileged user can read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="tslcd-agent-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_unprivileged_agent_says_what_it_skipped_and_still_reports(
        tmp_path: Path, readable_dir: Path, processes: Processes) -> None:
    prefix = unprivileged_python()
    inv = write_inventory(readable_dir / "inv.yaml", provinces=("75",), communes=1,
                          target=f"http://127.0.0.1:{free_tcp_port()}/")
    spool_dir = readable_dir / "spool"
    spool_dir.mkdir()
    shutil.chown(spool_dir, "nobody", "nogroup")
    with Mosquitto(tmp_path / "broker") as broker:
        async with aiomqtt.Client("127.0.0.1", broker.port) as listener:
            await listener.subscribe("tslcd/v1/results/#", qos=1)
            processes.start("agent", [
                *prefix, "-m", "monitor.cli.main", "agent", "--inventory", str(inv), "--scope",
                "75", "--mqtt", broker.url, "--spool", str(spool_dir / "spool.db")],
                env={"PYTHONPATH": pythonpath()})

            async def first_batch() -> dict[str, object]:
                async for message in listener.messages:
                    return json.loads(message.payload)  # type: ignore[arg-type]
                raise AssertionError("no message")

            try:
                batch = await asyncio.wait_for(first_batch(), 30)
            except TimeoutError:
                raise AssertionError(processes.log("agent")) from None
    commune = batch["commune"]
    assert isinstance(commune, dict)
    assert set(commune["skipped_checks"]) == {"icmp", "arp"}
    kinds = {r["kind"] for h in commune["hosts"] for r in h["results"]}
    assert kinds == {"tcp"}  # no ICMP, yet every host was asked (tcp/9: refused = alive)
    assert all(h["alive"] for h in commune["hosts"])
    assert commune["gateway_alive"] is True  # the gateway answered TCP
    assert [t["kind"] for t in commune["targets"]] == ["target"]
    assert "agent_checks_skipped" in processes.log("agent")


async def test_trial_runs_an_agent_per_province_and_a_collector(
        tmp_path: Path, processes: Processes) -> None:
    inv = write_inventory(tmp_path / "inv.yaml")
    port = free_tcp_port()
    with Mosquitto(tmp_path / "broker") as broker:
        trial = processes.start("collector", command(
            "trial", "--inventory", str(inv), "--mqtt", broker.url, "--listen",
            f"127.0.0.1:{port}", "--spool-dir", str(tmp_path / "spools")))
        heard = [f'tslcd_agent_last_seen_timestamp_seconds{{agent="{p}",province="{p}"}}'
                 for p in ("01", "75")]
        statuses = [f'tslcd_commune_status{{province="{c.province}",commune="{c.code}"}} 0'
                    for c in load(inv).communes()]
        await poll_metrics(port, heard + statuses, processes)
        trial.send_signal(signal.SIGINT)
        assert trial.wait(timeout=20) == 0
    assert sorted(p.name for p in (tmp_path / "spools").iterdir() if p.suffix == ".db") == \
        ["01.db", "75.db"]


def test_agent_refuses_a_scope_outside_the_inventory(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv.yaml")
    proc = subprocess.run(command("agent", "--inventory", str(inv), "--scope", "79",
                                  "--mqtt", "mqtt://127.0.0.1:1"),
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2
    assert "--scope 79" in proc.stderr


# --------------------------------------------------------------- run --mqtt (issue 14)


async def test_run_with_mqtt_probes_centrally_takes_an_agents_batches_and_publishes_status(
        tmp_path: Path, processes: Processes) -> None:
    """One process: central cycles, a real agent's batches through the collector's checks,
    and the retained status on the broker (which plain ``collector`` also publishes)."""
    require_real(os.geteuid() == 0, "central probing needs raw ICMP (root)")
    inv = write_inventory(tmp_path / "inv.yaml", provinces=("75",), communes=2)
    communes = list(load(inv).communes())
    port = free_tcp_port()
    with Mosquitto(tmp_path / "broker") as broker:
        async with aiomqtt.Client("127.0.0.1", broker.port) as staff:
            await staff.subscribe("tslcd/v1/status/#", qos=1)
            processes.start("collector", command(
                "run", "--inventory", str(inv), "--listen", f"127.0.0.1:{port}",
                "--mqtt", broker.url))
            processes.start("agent", command(
                "agent", "--inventory", str(inv), "--scope", "75", "--icmp", "off", "--spool",
                str(tmp_path / "spool.db"), "--mqtt", broker.url))
            body = await poll_metrics(port, [
                "tslcd_collector_batches_total", "tslcd_probe_cycle_duration_seconds_count",
                'tslcd_agent_spool_queued_batches{agent_id="agent-75",scope="75"}'], processes)
            batches = [line for line in body.splitlines()
                       if line.startswith("tslcd_collector_batches_total")]
            cycles = [line for line in body.splitlines()
                      if line.startswith("tslcd_probe_cycle_duration_seconds_count")]
            assert float(batches[0].split()[-1]) >= 1  # the agent's, validated
            assert float(cycles[0].split()[-1]) >= 1  # central probing, same process
            seen: dict[str, dict[str, object]] = {}

            async def collect() -> None:
                async for message in staff.messages:
                    seen[str(message.topic)] = json.loads(message.payload)  # type: ignore[arg-type]
                    if len(seen) >= len(communes):
                        return

            await asyncio.wait_for(collect(), 20)
        async with aiomqtt.Client("127.0.0.1", broker.port) as later:  # retained: still there
            await later.subscribe("tslcd/v1/status/#", qos=1)
            retained = await receive(later, len(communes), quiet=2.0)
        assert {str(m.topic) for m in retained} == set(seen)
        assert all(m.retain and m.qos == 1 for m in retained)
    assert {(s["province"], s["commune"]) for s in seen.values()} == \
        {(c.province, c.code) for c in communes}
    assert all(t.startswith("tslcd/v1/status/") for t in seen)
