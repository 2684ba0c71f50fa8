"""The ``tslcd-monitor`` command line (contract section 1)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from monitor.cli import agents as cli_agents
from monitor.cli import inventory as cli_inventory
from monitor.cli import maintenance as cli_maintenance
from monitor.cli import reports as cli_reports
from monitor.common.exits import EXIT_BAD_INPUT, EXIT_DOWN, EXIT_INTERRUPTED, EXIT_OK
from monitor.cycle.observation import CycleReport


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))


def console() -> NoReturn:
    """The ``tslcd-monitor`` executable: :func:`main`, then, after a one-shot command
    (``check``), exit without tearing the interpreter down: freeing the nationwide
    inventory's objects one by one at exit costs a nationwide check 50 ms (4 % of it), for
    memory the kernel takes back at once anyway (mypy exits the same way)."""
    args = build_parser().parse_args()
    code = run_command(args)
    if getattr(args, "one_shot", False):
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def run_command(args: argparse.Namespace) -> int:
    from monitor.common import log

    log.configure(args.log_level)
    raise_open_file_limit()
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def raise_open_file_limit() -> None:
    """Soft limit on open files up to the hard one, as Go programs do at start.

    A cycle asks up to a thousand silent computers on two TCP ports at once: 2,000 sockets
    against the usual soft limit of 1,024 (systemd's default too), past which probes would
    fail with "Too many open files" and hosts be reported down.
    """
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):  # a kernel cap below the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tslcd-monitor",
        description="Giám sát mạng truyền số liệu chuyên dùng phục vụ bầu cử / "
        "reachability and IP-configuration monitor for the election data network",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    _add_check(sub)
    cli_inventory.register(sub)
    cli_reports.register(sub)
    cli_agents.register(sub)
    cli_maintenance.register(sub)
    return parser


def _add_run(sub: Any) -> None:
    p = sub.add_parser("run", help="probe on schedule; serve /metrics, the status page and the "
                       "API; with --mqtt, the agents' results too, fused in one verdict")
    cli_agents.add_service_flags(p)
    cli_agents.add_remote_flags(p, required=False)
    p.set_defaults(handler=_cmd_run)


def _add_check(sub: Any) -> None:
    p = sub.add_parser("check", help="one probe cycle, then a table; exit 1 if any host is down")
    p.add_argument("--inventory", required=True)
    p.add_argument("--json", action="store_true", help="JSON lines, one per host")
    p.add_argument("--scope", help="PROV or PROV/COMMUNE")
    p.set_defaults(handler=_cmd_check, one_shot=True)


def _cmd_run(args: argparse.Namespace) -> int:
    from monitor.cli import run as app

    return app.run_from_args(args)


def _cmd_check(args: argparse.Namespace) -> int:
    from inventory.loader import gc_paused

    # One cycle allocates a few hundred thousand objects and frees them at exit, with no
    # reference cycles among them: the cyclic collector would only walk them (5 % of CPU).
    with gc_paused():
        return _check(args)


def _check(args: argparse.Namespace) -> int:
    from inventory.loader import InventoryError, load
    from monitor.cycle.scheduler import Scheduler, SchedulerOptions
    from probes.icmp import IcmpPermissionError, Pinger

    try:
        inventory = load(args.inventory).scoped(_scope(args.scope))
    except (InventoryError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.scope and not inventory.provinces:
        print(f"--scope {args.scope}: no such province or commune in {args.inventory}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    reports: list[CycleReport] = []

    async def one_cycle() -> None:
        # The report is handed out through a list, not returned: asyncio.run() formats the
        # main task's repr (result included) when it restores the SIGINT handler, and the
        # repr of a nationwide report costs 0.7 s.
        async with Pinger() as pinger:
            scheduler = Scheduler(inventory, pinger, SchedulerOptions(spread=0.0))
            reports.append(await scheduler.cycle())

    try:
        asyncio.run(one_cycle())
    except IcmpPermissionError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    report = reports[0]
    rows = list(_host_rows(inventory, report))
    (_print_json if args.json else _print_table)(rows, sys.stdout)
    return EXIT_OK if all(r["up"] for r in rows) else EXIT_DOWN


def _scope(text: str | None) -> str | None:
    """Normalise ``PROV[/COMMUNE]`` codes as the inventory stores them ("1/4" -> "01/00004")."""
    if not text:
        return None
    from inventory.official import commune_code, province_code

    prov, _, comm = text.strip().strip("/").partition("/")
    return province_code(prov) + (f"/{commune_code(comm)}" if comm else "")


def _host_rows(inventory: Any, report: CycleReport) -> Any:
    observed = {(o.province, o.commune): o for o in report.communes}
    for commune in inventory.communes():
        obs = observed[(commune.province, commune.code)]
        for host in obs.hosts:
            icmp = host.icmp
            rtt = icmp.rtt_mean if icmp else None
            yield {
                "province": commune.province,
                "commune": commune.code,
                "commune_name": commune.name,
                "isp": commune.isp,
                "host": host.name,
                "ip": host.ip,
                "up": host.alive,
                "method": host.method,
                "rtt_ms": None if rtt is None else round(rtt * 1000, 3),
                "loss": None if icmp is None else round(icmp.loss_ratio, 3),
                "sent": icmp.sent if icmp else 0,
                "received": icmp.received if icmp else 0,
            }


def _print_json(rows: list[dict[str, Any]], out: TextIO) -> None:
    encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder for 10,000 lines
    # one write: stdout may be unbuffered (PYTHONUNBUFFERED), 10,000 writes 10,000 syscalls
    out.write("".join([encode(row) + "\n" for row in rows]))


def _print_table(rows: list[dict[str, Any]], out: TextIO) -> None:
    headers = ["province", "commune", "commune_name", "host", "ip", "up", "method", "rtt_ms",
               "loss"]
    cells = [[_cell(r[h]) for h in headers] for r in rows]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers)]
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n")
    for c in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip() + "\n")
    down = sum(1 for r in rows if not r["up"])
    out.write(f"{len(rows)} hosts, {len(rows) - down} up, {down} down\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "up" if value else "DOWN"
    return str(value)


if __name__ == "__main__":
    console()
