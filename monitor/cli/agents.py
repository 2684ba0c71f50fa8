"""``agent``, ``collector`` and ``trial``: the distributed deployment's commands (issue #5).

The broker password may be left out of ``--mqtt`` (visible in the process list) and given in
the environment variable ``TSLCD_MQTT_PASSWORD`` instead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import structlog

from inventory.loader import InventoryError, load
from inventory.official import commune_code, province_code
from monitor.common.exits import EXIT_BAD_INPUT, EXIT_OK
from monitor.remote.spool import DEFAULT_LIMIT

log = structlog.get_logger("cli")


def register(sub: Any) -> None:
    _add_agent(sub)
    _add_collector(sub)
    _add_trial(sub)


def add_service_flags(p: argparse.ArgumentParser) -> None:
    """The flags of the commands that keep state and serve the web (``run``, ``collector``,
    ``trial``); each overrides its key of the configuration file (contract section 6)."""
    p.add_argument("--config", help="monitor configuration (YAML)")
    p.add_argument("--inventory", help="inventory (YAML); default: the bundled demo inventory")
    p.add_argument("--listen", help="HOST:PORT to serve on (default 127.0.0.1:9750)")
    p.add_argument("--state", help="SQLite state database (default: in memory)")
    p.add_argument("--report-schedule", metavar="CRON",
                   help='scheduled reports, cron in Vietnam time (e.g. "0 7 * * 1": Mondays '
                        "07:00)")
    p.add_argument("--report-dir", metavar="DIR", help="folder of the scheduled reports")
    p.add_argument("--report-webhook", metavar="URL", help="POST the scheduled reports there")


def _add_agent(sub: Any) -> None:
    p = sub.add_parser("agent", help="probe a scope of the inventory, publish results over MQTT")
    p.add_argument("--inventory", required=True)
    p.add_argument("--scope", required=True, help="PROV or PROV/COMMUNE")
    _add_broker(p)
    p.add_argument("--agent-id", help="default: the MQTT user name, else agent-PROV[-COMMUNE]")
    p.add_argument("--spool", help="spool file (SQLite); default under the user's state dir")
    p.add_argument("--spool-limit", type=int, default=DEFAULT_LIMIT,
                   help=f"batches kept while the broker is away (default {DEFAULT_LIMIT})")
    p.add_argument("--icmp", choices=["auto", "raw", "dgram", "off"], default="auto")
    p.add_argument("--metrics-listen", help="HOST:PORT for the agent's own /metrics")
    p.set_defaults(handler=_cmd_agent)


def _add_collector(sub: Any) -> None:
    p = sub.add_parser("collector", help="take agents' results from MQTT; state, metrics, web "
                       "(run --mqtt without central probing)")
    add_service_flags(p)
    add_remote_flags(p, required=True)
    p.set_defaults(handler=_cmd_collector)


def add_remote_flags(p: argparse.ArgumentParser, *, required: bool) -> None:
    """The agents' side of ``collector`` and ``run --mqtt`` (contract section 1)."""
    _add_broker(p, required=required)
    p.add_argument("--agents", help="YAML 'agents: {agent-id: PROV[/COMMUNE]}': who may "
                   "speak for what (default: a batch's vantage must cover its commune)")
    p.add_argument("--silent-after", type=float, default=3.0,
                   help="intervals without a batch before an agent is silent (default 3)")
    p.add_argument("--client-id", default="tslcd-collector")


def _add_trial(sub: Any) -> None:
    p = sub.add_parser("trial", help="agents (one per province) and a collector in one process, "
                       "against a broker on loopback")
    add_service_flags(p)
    _add_broker(p)
    p.add_argument("--agents", type=int, help="at most this many agents (first provinces)")
    p.add_argument("--spool-dir", help="directory of the agents' spools (default: temporary)")
    p.add_argument("--icmp", choices=["auto", "raw", "dgram", "off"], default="auto")
    p.set_defaults(handler=_cmd_trial)


def _add_broker(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--mqtt", required=required, help="broker URL mqtt[s]://[user[:password]@]host[:port]")
    p.add_argument("--ca-file", help="CA bundle that signed the broker's certificate (mqtts)")


# ---------------------------------------------------------------------- commands


def _cmd_agent(args: argparse.Namespace) -> int:
    from monitor.cli.run import broker_from_url, run_until_signal
    from monitor.common.config import ConfigError, parse_listen
    from monitor.remote import envelope
    from monitor.remote.agent import Agent, AgentOptions

    try:
        broker = broker_from_url(args.mqtt)
        scope = normalise_scope(args.scope)
        inventory = load(args.inventory).scoped(scope)
        if not inventory.provinces:
            raise ValueError(f"--scope {args.scope}: no such province or commune in the inventory")
        agent_id = envelope.check_agent_id(args.agent_id or broker.username or default_id(scope))
        metrics_at = parse_listen(args.metrics_listen) if args.metrics_listen else None
    except (InventoryError, ValueError, ConfigError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    options = AgentOptions(
        agent_id=agent_id, scope=scope,
        spool_path=Path(args.spool) if args.spool else default_spool(agent_id),
        spool_limit=args.spool_limit, icmp=args.icmp, ca_file=args.ca_file)
    agent = Agent(inventory, broker, options)
    if metrics_at is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_at[1], metrics_at[0], registry=agent.metrics.registry)
    run_until_signal(agent.run)
    return EXIT_OK


def _cmd_collector(args: argparse.Namespace) -> int:
    from monitor.cli.run import (
        SERVICE_ERRORS,
        remote_from_args,
        run_until_signal,
        serve,
        service_from_args,
    )
    from monitor.remote.agents_file import AgentsFileError

    try:
        svc = service_from_args(args)
        remote = remote_from_args(args)
    except (*SERVICE_ERRORS, AgentsFileError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    run_until_signal(lambda stop: serve(svc, stop, probe=False, remote=remote))
    return EXIT_OK


def _cmd_trial(args: argparse.Namespace) -> int:
    import tempfile

    from monitor.cli.run import (
        SERVICE_ERRORS,
        broker_from_url,
        run_until_signal,
        serve,
        service_from_args,
    )
    from monitor.remote.agent import Agent, AgentOptions
    from monitor.remote.collector import CollectorOptions

    try:
        svc = service_from_args(args)
        broker = broker_from_url(args.mqtt)
    except (*SERVICE_ERRORS, ValueError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    inventory = svc.inventory
    scopes = [p.code for p in inventory.provinces][: args.agents]
    spool_dir = Path(args.spool_dir or tempfile.mkdtemp(prefix="tslcd-trial-"))
    agents = [
        Agent(inventory.scoped(scope), broker, AgentOptions(
            agent_id=default_id(scope), scope=scope, spool_path=spool_dir / f"{scope}.db",
            icmp=args.icmp, ca_file=args.ca_file))
        for scope in scopes
    ]
    options = CollectorOptions(broker=broker, ca_file=args.ca_file,
                               agents={a.options.agent_id: a.options.scope for a in agents})

    async def trial(stop: asyncio.Event) -> None:
        log.info("trial_started", agents=len(agents), spool_dir=str(spool_dir))
        await asyncio.gather(serve(svc, stop, probe=False, remote=options),
                             *(a.run(stop) for a in agents))

    run_until_signal(trial)
    return EXIT_OK


# ------------------------------------------------------------------------ helpers


def normalise_scope(text: str) -> str:
    """``PROV[/COMMUNE]`` with official zero-padded codes ("1/4" -> "01/00004")."""
    prov, _, comm = text.strip().strip("/").partition("/")
    if not prov:
        raise ValueError("--scope must be PROV or PROV/COMMUNE")
    return province_code(prov) + (f"/{commune_code(comm)}" if comm else "")


def default_id(scope: str) -> str:
    return "agent-" + scope.replace("/", "-")


def default_spool(agent_id: str) -> Path:
    """Per user: %LOCALAPPDATA% on Windows, else $XDG_STATE_HOME or ~/.local/state."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "tslcd-monitor" / f"spool-{agent_id}.db"
