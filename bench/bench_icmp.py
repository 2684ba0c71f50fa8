"""Our ICMP engine against fping and icmplib over a nationwide loopback inventory.

Addresses: the national generator's inventory (``inventory.generate.national``: 3,321
communes, commune ``i`` of province ``P`` owns ``127.P.(i//32).((i%32)*8)/29``), gateway and
two computers each, 9,963 addresses. Every contender runs as its own process, so its wall
time, CPU time (``wait4`` rusage of that child) and peak RSS are its own, in three cases:

* plain: in the root namespace, whose loopback answers every 127.x address, with no firewall
  rule loaded (checked before, and stated in the rows). The goal is judged here.
* in a benchmark namespace (``tslcdB-<pid>``, loopback only), all up;
* there again with echo to a random tenth of the addresses dropped by an nftables set in that
  namespace (the rules die with it). A loaded table makes the kernel's side of every echo
  dearer for both contenders alike, which flatters the ratio: it is shown, not judged.

    .venv/bin/python -m bench.bench_icmp [--hosts N] [--only NAME ...]

To add a contender (e.g. the whole ``tslcd-monitor check``), append a :class:`Contender`
to :data:`CONTENDERS`: its ``argv`` gets the :class:`Workspace` (addresses, a targets file,
a scratch directory for an inventory) and its ``alive`` parses the output.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench import Row
from tests.support.lab.nft import drop_echo_ruleset

ROOT = Path(__file__).resolve().parents[1]
PROVINCES = 34
COMMUNES = 3_321
PER_COMMUNE = 3  # gateway and two computers
DOWN_SHARE = 0.10
COUNT, TIMEOUT, SPACING = 3, 1.0, 1.0
ICMPLIB_LIMIT = 120.0  # seconds; it is recorded as "timed out" beyond
CONTENDER_LIMIT = 300.0
RUNS = 5  # runs of each quick contender per case, interleaved; the table gives the medians
#: The goal of issue 3: ``check`` against fping -C3, whole processes, paired run by run.
GOAL = {"wall": 1.5, "cpu": 3.0}
BASELINE, CHALLENGER = "fping -C3 -i0 -p1000 -q", "tslcd-monitor check --json (whole process)"
NAMESPACE = f"tslcdB-{os.getpid()}"
CASES = ("plain", "namespace", "namespace-drop")


@dataclass(frozen=True, slots=True)
class Workspace:
    addresses: list[str]
    targets: Path  # one address a line
    inventory: Path  # the national inventory YAML these addresses come from
    directory: Path


@dataclass(frozen=True, slots=True)
class Contender:
    name: str
    argv: Callable[[Workspace], list[str]]
    alive: Callable[[str, str], int]  # (stdout, stderr) -> how many answered
    limit: float = CONTENDER_LIMIT
    counts: str = "addresses"  # what ``alive`` counts
    runs: int = RUNS  # the slow contenders (icmplib) run once
    namespace_only: bool = False  # needs the namespace's ping_group_range (never set in root)


@dataclass(frozen=True, slots=True)
class Measurement:
    wall: float
    cpu: float
    rss_mb: float
    alive: int | None  # None: timed out or failed
    failure: str = ""


def national_workspace(directory: Path, limit: int | None = None) -> Workspace:
    """The national inventory (gateway and two computers per commune) and its addresses."""
    from inventory.generate import national
    from inventory.loader import load

    inventory = directory / "national.yaml"
    inventory.write_text(national(hosts_per_commune=PER_COMMUNE - 1), encoding="utf-8")
    addresses = [
        str(ip)
        for commune in load(inventory).communes()
        for ip in ([commune.gateway] if commune.gateway else []) + [h.ip for h in commune.hosts]
    ]
    if limit:
        addresses = addresses[:limit]
    targets = directory / "targets.txt"
    targets.write_text("\n".join(addresses) + "\n")
    return Workspace(addresses, targets, inventory, directory)


# --- contenders ------------------------------------------------------------------------


def _fping_alive(_stdout: str, stderr: str) -> int:
    """``-C``: ``ip : 0.03 - 0.04``; ``-c``: ``ip : xmt/rcv/%loss = 1/1/0%...``."""
    alive = 0
    for line in stderr.splitlines():
        _, sep, rest = line.partition(" : ")
        if not sep:
            continue
        counts = re.search(r"= \d+/(\d+)/", rest)
        if counts:
            alive += int(counts.group(1)) > 0
        else:
            alive += any(v != "-" for v in rest.split())
    return alive


def _last_int(stdout: str, _stderr: str) -> int:
    return int(stdout.strip().splitlines()[-1])


def _check_alive(stdout: str, _stderr: str) -> int:
    """``tslcd-monitor check --json``: one line per computer (gateways are not listed)."""
    return sum(json.loads(line).get("received", 0) > 0 for line in stdout.splitlines() if line)


ICMPLIB_SCRIPT = """
import asyncio, sys
from icmplib import async_multiping
hosts = open(sys.argv[1]).read().split()
options = dict(count=3, timeout=1.0)
if sys.argv[2] == "best":  # ping sockets (the kernel sorts replies to them), all at once
    options.update(interval=1.0, concurrent_tasks=len(hosts), privileged=False)
res = asyncio.run(async_multiping(hosts, **options))
print(sum(h.is_alive for h in res))
"""

CONTENDERS: list[Contender] = [
    Contender(
        BASELINE,
        lambda ws: ["fping", "-C3", "-i0", "-p1000", "-q", "-f", str(ws.targets)],
        _fping_alive,
    ),
    Contender(
        "fping -c1 -i0 -q",
        lambda ws: ["fping", "-c1", "-i0", "-q", "-f", str(ws.targets)],
        _fping_alive,
    ),
    Contender(
        "icmplib async_multiping count=3 timeout=1 (defaults: raw, 50 tasks, interval 0.5)",
        lambda ws: [sys.executable, "-c", ICMPLIB_SCRIPT, str(ws.targets), "defaults"],
        _last_int,
        ICMPLIB_LIMIT,
        runs=1,
    ),
    Contender(
        "icmplib async_multiping count=3 timeout=1 interval=1 (ping sockets, all tasks at once)",
        lambda ws: [sys.executable, "-c", ICMPLIB_SCRIPT, str(ws.targets), "best"],
        _last_int,
        ICMPLIB_LIMIT,
        runs=1,
        namespace_only=True,
    ),
    Contender(
        CHALLENGER,
        lambda ws: [str(Path(sys.executable).parent / "tslcd-monitor"), "check",
                    "--inventory", str(ws.inventory), "--json"],
        _check_alive,
        counts="computers (gateways not listed)",
    ),
    Contender(
        "tslcd Pinger count=3 spacing=1 timeout=1 (unpaced)",
        lambda ws: [sys.executable, "-m", "bench.bench_icmp", "--engine", str(ws.targets)],
        _last_int,
    ),
    Contender(
        "tslcd Pinger count=3 (paced 20k pps, 50 pps/commune)",
        lambda ws: [sys.executable, "-m", "bench.bench_icmp", "--engine", str(ws.targets),
                    "--paced"],
        _last_int,
    ),
]


async def _engine(targets: Path, paced: bool) -> int:
    """What our contender process does: one ping_many over the targets; prints alive hosts."""
    from probes.icmp import Pinger
    from probes.pacing import Pacer

    hosts = [ipaddress.ip_address(a) for a in targets.read_text().split()]
    pacer = Pacer(20_000.0, 50.0) if paced else None

    def commune(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
        return int(ip) >> 3  # the /29

    async with Pinger() as pinger:
        results = await pinger.ping_many(
            hosts, count=COUNT, timeout=TIMEOUT, spacing=SPACING, pacer=pacer,
            group_of=commune if paced else None,
        )
    return sum(r.ok for r in results.values())


# --- measurement -----------------------------------------------------------------------


def measure(argv: list[str], limit: float) -> tuple[Measurement, str, str, bool]:
    """Run one process to completion (or kill it at ``limit``): its own rusage, its output,
    whether it timed out."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=ROOT)
        timed_out = False
        deadline = t0 + limit
        peak_kb = 0
        while True:
            peak_kb = max(peak_kb, _high_water_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                timed_out = True
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    m = Measurement(wall, usage.ru_utime + usage.ru_stime, peak_kb / 1024, None)
    return m, stdout, stderr, timed_out


def _high_water_kb(pid: int) -> int:
    """VmHWM of the running process, sampled: ``ru_maxrss`` would include the memory of
    this benchmark process itself, which the child inherits until it executes."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(found.group(1)) if found else 0


@dataclass
class Namespace:
    """The benchmark namespace: loopback only; deleted (with its rules) on exit."""

    name: str = NAMESPACE

    def __enter__(self) -> Namespace:
        _run(["ip", "netns", "add", self.name])
        try:
            _run(["ip", "-n", self.name, "link", "set", "lo", "up"])
            # unprivileged ping sockets for icmplib's best case; per namespace, dies with it
            _run(self.wrap(["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"]))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False, timeout=20)

    def wrap(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def drop_echo(self, addresses: list[str], directory: Path) -> None:
        rules = directory / "drop.nft"
        rules.write_text(drop_echo_ruleset(addresses))
        _run(self.wrap(["nft", "-f", str(rules)]))


class Place(Protocol):
    """Where a contender runs: ``wrap`` turns its argv into the command that runs it there."""

    def wrap(self, argv: list[str]) -> list[str]: ...


class RootNamespace:
    """The machine's own namespace, untouched: nothing is set or loaded in it."""

    def wrap(self, argv: list[str]) -> list[str]:
        return argv


def firewall_rules() -> int:
    """What the root namespace has loaded, read only: nftables tables (iptables-nft's
    included) plus legacy iptables rules beyond the default policies. Zero is what "plain"
    means; anything else is stated in the rows."""
    tables = _output(["nft", "list", "tables"])
    legacy = _output(["iptables-legacy", "-S"]) if shutil.which("iptables-legacy") else ""
    return len(tables.splitlines()) + sum(
        not line.startswith("-P") for line in legacy.splitlines() if line.strip())


def _output(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv[:6])}: {proc.stderr.strip()}")


def _rows(case: str, contender: Contender, runs: list[Measurement],
          expected: int) -> Iterator[Row]:
    """Medians of the runs (peak RSS: the largest); a failed run fails the contender."""
    label = f"icmp {case}: {contender.name}"
    failed = next((m for m in runs if m.alive is None), None)
    if failed is not None:
        yield Row(f"{label} wall", failed.wall, "s", failed.failure)
        return
    walls, cpus = [m.wall for m in runs], [m.cpu for m in runs]
    of = f"median of {len(runs)}: " if len(runs) > 1 else ""
    note = f"answered: {runs[-1].alive} {contender.counts}; {expected} addresses answer"
    yield Row(f"{label} wall", statistics.median(walls), "s", f"{of}{_runs(walls)}; {note}")
    yield Row(f"{label} cpu", statistics.median(cpus), "s",
              f"{of}{_runs(cpus)}; user+system of the process")
    yield Row(f"{label} peak rss", max(m.rss_mb for m in runs), "MB",
              "VmHWM sampled every 10 ms, largest of the runs")


def _ratios(case: str, measured: dict[str, list[Measurement]],
            judged: bool) -> Iterator[Row]:
    """``check`` over fping, run by run (each pair ran back to back); against the goal only
    where ``judged`` (the plain case)."""
    ours, theirs = measured.get(CHALLENGER, []), measured.get(BASELINE, [])
    pairs = [(a, b) for a, b in zip(ours, theirs, strict=False)
             if a.alive is not None and b.alive is not None]
    if not pairs:
        return
    for what, goal in GOAL.items():
        ratios = [getattr(a, what) / getattr(b, what) for a, b in pairs]
        ratio = statistics.median(ratios)
        verdict = ("meets" if ratio <= goal else "does NOT meet") if judged else \
            "not judged (the goal is judged on the plain run)"
        yield Row(f"icmp {case}: check / fping -C3, {what}", ratio, "x",
                  f"median of {len(pairs)} pairs: {_runs(ratios)}; {verdict} goal <= {goal:g}x")


def _runs(values: list[float]) -> str:
    return "runs " + ", ".join(f"{v:.3g}" for v in values)


def run(hosts: int | None = None, only: list[str] | None = None,
        cases: tuple[str, ...] = CASES) -> list[Row]:
    contenders = [c for c in CONTENDERS if not only or any(o in c.name for o in only)]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tslcdB-") as tmp:
        ws = national_workspace(Path(tmp), hosts)
        n = len(ws.addresses)
        if "plain" in cases:
            rules = firewall_rules()
            state = "no firewall rules" if rules == 0 else f"{rules} firewall tables/rules loaded"
            plain = [c for c in contenders if not c.namespace_only]
            rows += _case(f"{n} hosts, all up, plain (root namespace, {state})",
                          RootNamespace(), plain, ws, n, judged=rules == 0)
        if {"namespace", "namespace-drop"} & set(cases):
            with Namespace() as ns:
                if "namespace" in cases:
                    rows += _case(f"{n} hosts, all up, in a namespace", ns, contenders, ws, n,
                                  judged=False)
                if "namespace-drop" in cases:
                    down = sorted(random.Random(20260206).sample(ws.addresses,
                                                                 int(n * DOWN_SHARE)))
                    ns.drop_echo(down, ws.directory)
                    rows += _case(f"{n} hosts, 10% down by nftables, in a namespace", ns,
                                  contenders, ws, n - len(down), judged=False)
    return rows


def _case(label: str, place: Place, contenders: list[Contender], ws: Workspace,
          expected: int, judged: bool) -> list[Row]:
    measured = _measure_interleaved(place, contenders, ws)
    rows = [row for c in contenders for row in _rows(label, c, measured[c.name], expected)]
    return rows + list(_ratios(label, measured, judged))


def _measure_interleaved(place: Place, contenders: list[Contender],
                         ws: Workspace) -> dict[str, list[Measurement]]:
    """Round after round, every contender once: a slow spell of this shared machine falls
    on all of them alike, not on one."""
    measured: dict[str, list[Measurement]] = {c.name: [] for c in contenders}
    for round_ in range(max((c.runs for c in contenders), default=0)):
        for contender in contenders:
            if round_ < contender.runs:
                measured[contender.name].append(_measure_contender(place, contender, ws))
    return measured


def _measure_contender(place: Place, contender: Contender, ws: Workspace) -> Measurement:
    m, stdout, stderr, timed_out = measure(place.wrap(contender.argv(ws)), contender.limit)
    if timed_out:
        return dataclasses.replace(m, failure=f"timed out after {contender.limit:g} s")
    try:
        alive = contender.alive(stdout, stderr)
    except (ValueError, IndexError):
        tail = " ".join(stderr.split()[-30:])
        return dataclasses.replace(m, failure=f"failed: {tail}")
    return dataclasses.replace(m, alive=alive)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=None,
                        help="first N addresses (the check contender: whole inventory)")
    parser.add_argument("--only", nargs="*", help="contenders whose name contains one of these")
    parser.add_argument("--cases", nargs="*", choices=CASES, default=list(CASES),
                        help="plain (root namespace), namespace, namespace-drop")
    parser.add_argument("--engine", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--paced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        print(asyncio.run(_engine(args.engine, args.paced)))
        return
    for r in run(args.hosts, args.only, tuple(args.cases)):
        print(f"{r.benchmark:<80} {r.value:>9.3f} {r.unit:<3} {r.note}", flush=True)


if __name__ == "__main__":
    main()
