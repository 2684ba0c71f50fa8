"""``tslcd-monitor run`` and ``collector``: one service process (issue 14).

The pipeline, the web server and, as options, the central scheduler (``run``) and the
agents' batches from the broker (``run --mqtt``, ``collector``): one code path, so the
collector's validation and the retained status are the same in both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import structlog
from aiohttp.web import AppRunner

from inventory.loader import InventoryError, demo_path, load
from inventory.model import Inventory
from monitor.alerts import am_api
from monitor.common import config as config_mod
from monitor.common.config import Config, ConfigError
from monitor.common.exits import EXIT_BAD_INPUT, EXIT_OK
from monitor.common.mqtt_url import MqttUrl, parse_mqtt_url
from monitor.cycle.observation import CycleReport
from monitor.cycle.scheduler import Scheduler, SchedulerOptions
from monitor.present.availability import history_from_store
from monitor.present.web.auth import TokenFileError, TokenStore
from monitor.present.web.server import WebContext, build_app, reload_tokens
from monitor.present.web.server import serve as serve_app
from monitor.remote.agents_file import AgentsFileError, load_agents
from monitor.remote.collector import Collector, CollectorOptions
from monitor.service import demo_target
from monitor.service.memory import freeze_long_lived
from monitor.service.pipeline import Pipeline
from monitor.service.report_schedule import start_report_schedule
from monitor.service.watch import InventoryWatch
from monitor.store.path_check import check_writable
from probes.icmp import IcmpPermissionError, Pinger

log = structlog.get_logger("app")
PASSWORD_ENV = "TSLCD_MQTT_PASSWORD"
#: intervals after the start when the views and trackers the first cycles and batches made
#: are frozen with the rest (:func:`monitor.service.memory.freeze_long_lived`)
SETTLE_CYCLES = 3


def settings_from_args(args: argparse.Namespace) -> Config:
    """The configuration file, overridden by command-line flags (contract section 6)."""
    cfg = config_mod.load(getattr(args, "config", None))
    overrides = {
        key: value
        for key in ("inventory", "listen", "state", "report_schedule", "report_dir",
                    "report_webhook")
        if (value := getattr(args, key, None)) is not None
    }
    cfg = replace(cfg, **overrides)
    if cfg.report_schedule is not None:
        config_mod.check_report_schedule(cfg.report_schedule, "--report-schedule")
    cfg.listen_host_port  # noqa: B018 - validates the flag too
    return cfg


@dataclass(frozen=True, slots=True)
class Service:
    """What ``run``, ``collector`` and ``trial`` read before starting: the configuration with
    the flags applied, the inventory it names (the bundled demo by default), the tokens."""

    cfg: Config
    inventory_path: Path
    inventory: Inventory
    tokens: TokenStore | None


SERVICE_ERRORS = (ConfigError, InventoryError, TokenFileError)


def service_from_args(args: argparse.Namespace) -> Service:
    """Raises one of :data:`SERVICE_ERRORS`, each naming its file (and line), or the state
    database's path when it cannot be used (checked now, not at the first write)."""
    cfg = settings_from_args(args)
    if cfg.state:
        check_writable(cfg.state)
    path = Path(cfg.inventory) if cfg.inventory else demo_path()
    inventory = load(path)
    tokens = TokenStore.load(cfg.tokens_file) if cfg.tokens_file else None
    return Service(cfg, path, inventory, tokens)


def run_from_args(args: argparse.Namespace) -> int:
    """``run``: central probing; with ``--mqtt`` the agents' batches too, in one process."""
    try:
        svc = service_from_args(args)
        remote = remote_from_args(args) if getattr(args, "mqtt", None) else None
    except (*SERVICE_ERRORS, AgentsFileError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        run_until_signal(lambda stop: serve(svc, stop, probe=True, remote=remote))
    except IcmpPermissionError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def remote_from_args(args: argparse.Namespace) -> CollectorOptions:
    """The broker side of ``run --mqtt`` and ``collector``: ``--mqtt``, ``--ca-file``,
    ``--agents`` (who may speak for what), ``--silent-after``, ``--client-id``."""
    agents = load_agents(args.agents) if args.agents else None
    return CollectorOptions(broker=broker_from_url(args.mqtt), ca_file=args.ca_file,
                            agents=agents, silent_after=args.silent_after,
                            client_id=args.client_id)


def broker_from_url(url: str) -> MqttUrl:
    """``--mqtt``, the password possibly from ``TSLCD_MQTT_PASSWORD`` (not the process list)."""
    broker = parse_mqtt_url(url)
    password = os.environ.get(PASSWORD_ENV)
    if password is not None and broker.password is None:
        broker = replace(broker, password=password)
    return broker


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)``; SIGTERM/SIGINT set ``stop`` for a clean exit (``offline`` sent)."""
    if sys.platform == "win32":  # paho needs add_reader, which the proactor loop lacks
        asyncio.set_event_loop_policy(asyncio.WindowsSelectorEventLoopPolicy())  # type: ignore[attr-defined]

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
                loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


async def serve_web(pipeline: Pipeline, cfg: Config, tokens: TokenStore | None,
                    ready: Callable[[], bool] | None = None) -> AppRunner:
    """The status page, API and /metrics of ``run`` and ``collector``, over the pipeline;
    ``ready`` for /healthz (default: a first cycle ran)."""
    ctx = WebContext(
        inventory=lambda: pipeline.inventory,
        state=pipeline.engine.state,
        metrics_body=pipeline.exposition.body,
        metrics_body_gzip=pipeline.exposition.body_gzip,
        history=lambda prov, comm: pipeline.store.history(prov, comm),
        samples=pipeline.samples,
        tokens=tokens,
        ready=ready or (lambda: pipeline.cycles > 0),
        drills=pipeline.operations.drills,
        status_history=lambda inv: history_from_store(inv, pipeline.store,
                                                      pipeline.engine.state),
        # reloaded on change and on SIGHUP (reload_tokens); no file, no access control
        tokens_file=Path(cfg.tokens_file) if cfg.tokens_file and tokens is not None else None,
        alertmanager=am_api.from_config(cfg),  # acknowledgement (silences) on the page
        maintenance=pipeline.maintenance,  # windows added, listed, ended through the API
        evidence=pipeline.operations.evidence,  # attestations and first observations too
    )
    host, port = cfg.listen_host_port
    return await serve_app(build_app(ctx), host, port, cfg.tls_cert, cfg.tls_key)


async def serve(svc: Service, stop: asyncio.Event, *, probe: bool,
                remote: CollectorOptions | None) -> None:
    """The one service process, until ``stop``: with ``probe`` the central scheduler, with
    ``remote`` the agents' batches from the broker (validated by the collector), both into
    one pipeline (``run``, ``run --mqtt``, ``collector``), with the web, the scheduled
    reports and SIGHUP (inventory and tokens reloaded)."""
    cfg = svc.cfg
    pipeline = Pipeline(svc.inventory, cfg, cfg.state)
    watch = InventoryWatch(svc.inventory_path)
    collector = Collector(pipeline, remote, watch) if remote is not None else None
    # the bundled demo's election system on loopback, up before the first cycle
    demo = probe and svc.inventory_path == demo_path()
    stand_ins = await demo_target.start_for_demo(svc.inventory) if demo else []
    await pipeline.start()
    freeze_long_lived()  # the inventory and the state restored
    settled = asyncio.create_task(_freeze_once_settled(pipeline), name="freeze when settled")
    runner = await serve_web(pipeline, cfg, svc.tokens, ready=lambda: pipeline.cycles > 0 or (
        collector is not None and collector.accepted > 0))
    reports = start_report_schedule(pipeline, cfg)

    def reload() -> None:
        watch.requested = True
        reload_tokens(runner)

    with contextlib.suppress(NotImplementedError, RuntimeError):  # no SIGHUP on Windows
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
    log.info("monitor_started", listen=cfg.listen, inventory=str(watch.path),
             hosts=pipeline.inventory.host_count, probing=probe,
             broker=None if remote is None else remote.broker.redacted())
    try:
        async with contextlib.AsyncExitStack() as tasks:
            if probe:
                await tasks.enter_async_context(_central_probing(pipeline, watch, collector))
            await (collector.run(stop) if collector is not None else stop.wait())
    finally:
        settled.cancel()
        if reports is not None:
            reports.cancel()
        await runner.cleanup()
        await pipeline.stop()
        for stand_in in stand_ins:
            await stand_in.stop()
        log.info("monitor_stopped")


async def _freeze_once_settled(pipeline: Pipeline) -> None:
    """Once the first cycles and the agents' first batches have made every vantage's view
    and trackers (``SETTLE_CYCLES`` intervals), those are frozen too."""
    await asyncio.sleep(SETTLE_CYCLES * pipeline.inventory.defaults.interval)
    freeze_long_lived()


@contextlib.asynccontextmanager
async def _central_probing(pipeline: Pipeline, watch: InventoryWatch,
                           collector: Collector | None) -> AsyncIterator[None]:
    """The central scheduler in the background while the context lasts. Its inventory is
    the pipeline's: reloaded after a cycle here, or on the collector's timer when there is
    one (one watcher, not two)."""
    async with Pinger() as pinger:
        scheduler = Scheduler(pipeline.inventory, pinger, SchedulerOptions(upstream=True))

        async def on_report(report: CycleReport) -> None:
            await pipeline.ingest_cycle(report)
            if collector is None and (inventory := watch.poll()) is not None:
                pipeline.reload(inventory)
            scheduler.inventory = pipeline.inventory

        probing = asyncio.create_task(scheduler.run_forever(on_report), name="central probing")
        try:
            yield
        finally:
            probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probing
