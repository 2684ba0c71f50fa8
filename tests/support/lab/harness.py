"""The shipped processes started inside a province lab, and watched from files (test-only).

:func:`start_run` starts, each with ``ip netns exec`` in its own namespace:

* Mosquitto in the core namespace on the core's lab address (:data:`BROKER`), the broker
  every vantage reaches across the lab;
* a webhook receiver (:mod:`tests.support.lab.webhook_file`) on the core's loopback, the
  alert sink the test reads;
* ``tslcd-monitor run --mqtt`` in the core namespace: central probing through the lines plus
  the agents' batches, fused into one verdict per commune (contract §7);
* one ``tslcd-monitor agent --scope PROV/COMMUNE`` in each chosen commune's router namespace:
  the vantage on the commune's segment (ARP, the election system from the commune). Its
  batches reach the broker only across the commune's line, so a cut line silences it.

Nothing runs in the test process but the reading: alerts from the receiver's file, cycles
from ``run``'s JSON log, the metrics fetched from ``run``'s ``/metrics`` by a thread that
entered the core namespace (:class:`NamespaceLoop`). Every process belongs to the lab,
which ends it by pid when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from tests.support.lab import observe
from tests.support.lab.netns import Lab
from tests.support.lab.province import (
    CORE_TO_ELECTION,
    CommuneLab,
    ProvinceLab,
    build_province,
)
from tests.support.servers import mosquitto_binary

ROOT = Path(__file__).resolve().parents[3]
MONITOR = str(Path(sys.executable).parent / "tslcd-monitor")
WEBHOOK_PORT = 19000  # on the core namespace's own loopback
LISTEN = "127.0.0.1:19750"  # run's web server, on the core namespace's own loopback
BROKER_PORT = 1883
BROKER = f"mqtt://{CORE_TO_ELECTION}:{BROKER_PORT}"  # reachable from every commune router
METRICS_POLL = 0.5  # seconds between two fetches of /metrics: run renders it on each
CLONE_NEWNET = 0x40000000
T = TypeVar("T")
_libc = ctypes.CDLL(None, use_errno=True)


class NamespaceLoop:
    """An event loop on its own thread, inside another network namespace (``setns(2)`` is
    per thread, and a socket stays in the namespace it was made in)."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.loop = asyncio.new_event_loop()
        self._error: OSError | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True,
                                        name=f"netns-{netns}")
        self._thread.start()
        ready.wait(10)
        if self._error is not None:
            raise self._error

    def _serve(self, ready: threading.Event) -> None:
        try:
            fd = os.open(f"/run/netns/{self.netns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {self.netns}")
            finally:
                os.close(fd)
        except OSError as exc:
            self._error = exc
            ready.set()
            return
        asyncio.set_event_loop(self.loop)
        ready.set()
        self.loop.run_forever()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on this namespace's loop (its sockets are made in the namespace)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on this namespace's loop from synchronous code."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


async def http_get(address: str, path: str, timeout: float = 10.0) -> str:
    """The body of ``GET http://address/path`` (HTTP/1.0, so the server closes the stream);
    empty when nothing answers yet."""
    host, port = address.rsplit(":", 1)
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                writer.write(f"GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
                await writer.drain()
                response = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return ""
    head, _, body = response.partition(b"\r\n\r\n")
    return body.decode("utf-8") if head.split(b" ", 2)[1:2] == [b"200"] else ""


@dataclass
class LabRun:
    """``run --mqtt`` and the agents in a province lab: what a test reads and waits on."""

    province: ProvinceLab
    workdir: Path
    process: subprocess.Popen[bytes]
    core_loop: NamespaceLoop
    down_after: int
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def webhook(self) -> Path:
        return self.workdir / "webhook.jsonl"

    @property
    def log(self) -> Path:
        return self.workdir / "run.log"

    def events(self) -> list[dict]:
        return observe.events(self.webhook)

    def cycles(self) -> int:
        """Whole cycles of the central vantage (re-probes between cycles not counted)."""
        return observe.cycles(self.log)

    def wait_cycles(self, count: int, timeout: float = observe.WAIT) -> int:
        self.assert_alive()
        return observe.wait_cycles(self.log, count, timeout)

    def exposition(self) -> str:
        return self.core_loop.call(http_get(LISTEN, "/metrics"))

    def metrics(self) -> observe.Samples:
        return observe.parse(self.exposition())

    def metric(self, name: str, *keys: str) -> dict[tuple[str, ...], float]:
        return observe.by_label(self.metrics(), name, *keys)

    def statuses(self) -> dict[str, float]:
        """Commune code -> ``tslcd_commune_status``."""
        return {k[0]: v for k, v in self.metric("tslcd_commune_status", "commune").items()}

    def assert_alive(self) -> None:
        assert self.process.poll() is None, observe.lines(self.log)[-20:]
        dead = {key: p.returncode for key, p in self.agents.items() if p.poll() is not None}
        assert not dead, f"agents ended: {dead}"

    def wait_all_up(self, timeout: float = observe.WAIT) -> None:
        """Every commune judged and OK (status 0), and every agent's election-system check
        up: the quiet baseline a fault departs from."""
        expected = {c.code for c in self.province.communes}
        vantages = set(self.agents)

        def quiet() -> bool:
            samples = self.metrics()
            status = observe.by_label(samples, "tslcd_commune_status", "commune")
            target = observe.by_label(samples, "tslcd_target_up", "vantage")
            return ({k[0] for k, v in status.items() if v == 0} >= expected
                    and {k[0] for k, v in target.items() if v == 1} >= vantages)

        observe.wait_until(quiet, "every commune up, every agent reaching the election system",
                           timeout, detail=lambda: {k: v for k, v in self.statuses().items()
                                                    if v != 0}, poll=METRICS_POLL)


@contextlib.contextmanager
def province_lab(workdir: Path, communes: int) -> Iterator[tuple[ProvinceLab, list[BinaryIO]]]:
    """A new lab holding a province of ``communes`` communes, and the list :func:`start_run`
    keeps its open log files in: closed once the lab, and every process in it, is gone."""
    opened: list[BinaryIO] = []
    try:
        with Lab() as lab:
            yield build_province(lab, workdir, communes), opened
    finally:
        for file in opened:
            file.close()


def start_run(province: ProvinceLab, workdir: Path, files: list[BinaryIO], *,
              agents: Iterable[CommuneLab] | None = None, mqtt: bool = True,
              **defaults: object) -> LabRun:
    """Write the lab's inventory (``defaults`` override its defaults), start the broker,
    the receiver, ``run --mqtt`` and an agent in each of ``agents`` (default: every
    commune), and wait for run's first two cycles. ``files`` collects the open log files
    (the caller closes them, after the lab). ``mqtt=False``: ``run`` alone, without broker
    and agents (the central monitor by itself)."""
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = province.write_inventory(workdir / "inventory.yaml", **defaults)
    core = province.core

    def log_file(name: str) -> BinaryIO:
        opened = open(workdir / name, "wb")  # noqa: SIM115 - closed by the caller
        files.append(opened)
        return opened

    if mqtt:
        _start_broker(province, workdir, log_file("mosquitto.log"))
    core.popen(sys.executable, "-m", "tests.support.lab.webhook_file", "--port",
               str(WEBHOOK_PORT), "--out", str(workdir / "webhook.jsonl"), cwd=str(ROOT),
               stderr=log_file("webhook.log"))
    _wait_listening(province, WEBHOOK_PORT, "the webhook receiver")
    config = workdir / "config.yaml"
    config.write_text(f"listen: {LISTEN}\nalerts:\n  webhooks:\n"
                      f"    - url: http://127.0.0.1:{WEBHOOK_PORT}/hook\n", encoding="utf-8")
    process = core.popen(MONITOR, "run", "--config", str(config), "--inventory", str(inventory),
                         "--state", str(workdir / "state.db"),
                         *(("--mqtt", BROKER) if mqtt else ()),
                         stderr=log_file("run.log"))
    started = {}
    for place in (province.communes if agents is None else agents) if mqtt else ():
        started[place.key] = place.router.popen(
            MONITOR, "agent", "--inventory", str(inventory), "--scope", place.key,
            "--mqtt", BROKER, "--agent-id", f"agent-{place.commune.province}-{place.code}",
            "--spool", str(workdir / f"spool-{place.code}.db"),
            stderr=log_file(f"agent-{place.code}.log"))
    down_after = int(defaults.get("down_after", province.inventory.defaults.down_after))
    run = LabRun(province, workdir, process, NamespaceLoop(core.netns), down_after, started)
    files.append(_Closing(run.core_loop))
    run.wait_cycles(2, timeout=120)
    return run


class _Closing:
    """Lets the caller's list of files end the core thread too (``close()`` like a file)."""

    def __init__(self, loop: NamespaceLoop) -> None:
        self._loop = loop

    def close(self) -> None:
        self._loop.close()


def _start_broker(province: ProvinceLab, workdir: Path, log: BinaryIO) -> None:
    """Mosquitto in the core namespace on the core's lab address."""
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {BROKER_PORT} {CORE_TO_ELECTION}\nallow_anonymous true\n"
                    "persistence false\nmax_queued_messages 100000\nuser root\n",
                    encoding="utf-8")
    province.core.popen(mosquitto_binary(), "-c", str(conf), stdout=log,
                        stderr=subprocess.STDOUT)
    _wait_listening(province, BROKER_PORT, "the broker")


def _wait_listening(province: ProvinceLab, port: int, what: str) -> None:
    observe.wait_until(lambda: province.core.run(
        "ss", "-Hltn", f"sport = :{port}").stdout.strip() != "", f"{what} listening")


def wait_for_alert(run: LabRun, event: str, commune: str, state: str, start: int,
                   timeout: float) -> float:
    """Poll the receiver's file until ``event`` for ``commune`` in ``state`` arrives among
    the events after the ``start``-th; returns the monotonic time it was first seen."""
    observe.wait_until(
        lambda: any((e["event"], e["commune"], e["state"]) == (event, commune, state)
                    for e in run.events()[start:]),
        f"{event} {state} for {commune}", timeout,
        detail=lambda: observe.fired(run.events()[start:], state))
    return time.monotonic()

