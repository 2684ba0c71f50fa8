"""``tslcd-monitor run``: the scheduler, the pipeline and the web server in one process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import structlog
from aiohttp.web import AppRunner

from inventory.loader import InventoryError, demo_path, load
from inventory.model import Inventory
from monitor.common import config as config_mod
from monitor.common.config import Config, ConfigError
from monitor.cycle.observation import CycleReport
from monitor.cycle.scheduler import Scheduler, SchedulerOptions
from monitor.present.web.auth import TokenFileError, TokenStore
from monitor.present.web.server import WebContext, build_app, reload_tokens, serve
from monitor.service.pipeline import Pipeline
from monitor.service.report_schedule import start_report_schedule
from monitor.service.watch import InventoryWatch
from monitor.store.path_check import check_writable
from probes.icmp import IcmpPermissionError, Pinger

log = structlog.get_logger("app")


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
    try:
        svc = service_from_args(args)
    except SERVICE_ERRORS as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        asyncio.run(Monitor(svc.cfg, svc.inventory_path, svc.inventory, svc.tokens).run())
    except IcmpPermissionError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


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
        # reloaded on change and on SIGHUP (reload_tokens); no file, no access control
        tokens_file=Path(cfg.tokens_file) if cfg.tokens_file and tokens is not None else None,
    )
    host, port = cfg.listen_host_port
    return await serve(build_app(ctx), host, port, cfg.tls_cert, cfg.tls_key)


class Monitor:
    def __init__(self, cfg: Config, path: Path, inventory: Inventory,
                 tokens: TokenStore | None) -> None:
        self.cfg = cfg
        self.pipeline = Pipeline(inventory, cfg, cfg.state)
        self.watch = InventoryWatch(path)
        self.tokens = tokens
        self.stopping = asyncio.Event()
        self.runner: AppRunner | None = None

    async def run(self) -> None:
        await self.pipeline.start()
        runner = self.runner = await serve_web(self.pipeline, self.cfg, self.tokens)
        reports = start_report_schedule(self.pipeline, self.cfg)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        log.info("monitor_started", listen=self.cfg.listen, inventory=str(self.watch.path),
                 hosts=self.pipeline.inventory.host_count)
        try:
            async with Pinger() as pinger:
                scheduler = Scheduler(self.pipeline.inventory, pinger, SchedulerOptions())
                probing = asyncio.create_task(scheduler.run_forever(self._after_cycle(scheduler)))
                await self.stopping.wait()
                probing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await probing
        finally:
            if reports is not None:
                reports.cancel()
            await runner.cleanup()
            await self.pipeline.stop()
            log.info("monitor_stopped")

    def _request_reload(self) -> None:
        """SIGHUP: the inventory after the next cycle, the tokens file at once."""
        self.watch.requested = True
        if self.runner is not None:
            reload_tokens(self.runner)

    def _after_cycle(self, scheduler: Scheduler) -> Callable[[CycleReport], Awaitable[None]]:
        async def on_report(report: CycleReport) -> None:
            await self.pipeline.ingest_cycle(report)
            inventory = self.watch.poll()
            if inventory is not None:
                self.pipeline.reload(inventory)
                scheduler.inventory = inventory

        return on_report
