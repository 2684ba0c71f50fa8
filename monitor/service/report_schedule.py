"""Scheduled reports: readiness, availability (and drill) reports on a cron schedule.

The provincial Home Affairs department is the one focal point that receives progress reports
"every Monday"; ``--report-schedule "0 7 * * 1"`` writes them to a folder at 07:00 Vietnam
time each Monday and, when a webhook is configured, POSTs them there (multipart: a JSON
``summary`` part, then one part per file); with ``reports.email`` they are also mailed
(:mod:`monitor.service.mailer`). Cron expressions are read in Asia/Ho_Chi_Minh
whatever the machine's time zone, and file names carry Vietnam time.

Clock and sleep are injectable, so tests run weeks of schedule in simulated time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from inventory.model import Drill, Inventory
from monitor.alerts.event import VN_TZ, iso_vn
from monitor.common.cron import next_run, parse_cron
from monitor.common.log import safe_url
from monitor.decide import drills
from monitor.decide.drills import DrillTracker
from monitor.decide.readiness import Evidence, from_state
from monitor.decide.status import MonitorState
from monitor.present import availability, drill_report, reports
from monitor.present.reports import name_part
from monitor.service.mailer import Mailer

if TYPE_CHECKING:
    from monitor.common.config import Config
    from monitor.service.pipeline import Pipeline

log = structlog.get_logger("schedule")

FORMATS = ("xlsx", "html", "csv")
MAX_SLEEP = 300.0  # seconds: wake up regularly, so a clock change or suspend is noticed
WEBHOOK_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class ReportFile:
    name: str
    content_type: str
    data: bytes


CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html; charset=utf-8",
}


def report_files(inventory: Inventory, state: MonitorState, tracker: DrillTracker | None,
                 at: float, previous: float | None,
                 status: availability.StateHistory | None = None,
                 evidence: Callable[[MonitorState], Evidence] = from_state,
                 ) -> tuple[list[ReportFile], dict[str, Any]]:
    """The readiness report, the availability report over all the state holds (when the
    status history is given), and the report of every drill running now or ended since the
    previous run; with a summary for the webhook."""
    stamp = dt.datetime.fromtimestamp(at, VN_TZ).strftime("%Y%m%d-%H%M")
    ready = reports.readiness(inventory, evidence(state), at)
    files = [ReportFile(f"bao-cao-san-sang-{stamp}.{fmt}", CONTENT_TYPES[fmt],
                        reports.WRITERS[fmt](ready)) for fmt in FORMATS]
    available = None
    if status is not None:
        available = availability.availability(inventory, status, None, at, at)
        files += [ReportFile(f"bao-cao-kha-dung-{stamp}.{fmt}", CONTENT_TYPES[fmt],
                             availability.WRITERS[fmt](available)) for fmt in FORMATS]
    summary: dict[str, Any] = {
        "generated": iso_vn(at),
        "readiness": [
            {"milestone": m.id, "title": m.title, "due": m.due.isoformat(),
             "communes": ready.total.communes, "met": ready.total.met[i],
             "late": ready.total.late[i]}
            for i, m in enumerate(inventory.milestones)
        ],
        "availability": (availability.to_json_groups(available)
                         if available is not None else None),
        "drills": [],
    }
    if tracker is not None:
        for drill in _drills_to_report(inventory, at, previous):
            try:
                drill_files, entry = _drill_files(drill, inventory, tracker, at, stamp)
            except Exception:  # one drill's failure must not cost the others their report
                log.exception("drill_report_failed", drill=drill.id)
                continue
            files += drill_files
            summary["drills"].append(entry)
    summary["files"] = [f.name for f in files]
    return files, summary


def _drill_files(drill: Drill, inventory: Inventory, tracker: DrillTracker, at: float,
                 stamp: str) -> tuple[list[ReportFile], dict[str, Any]]:
    report = drills.drill_report(drill, inventory, tracker.spans(drill.id), at,
                                 tracker.live.get(drill.id))
    name = f"dien-tap-{name_part(drill.id)}-{stamp}"
    files = [ReportFile(f"{name}.{fmt}", CONTENT_TYPES[fmt], drill_report.WRITERS[fmt](report))
             for fmt in FORMATS]
    return files, {"drill": drill.id, "title": drill.title, "connected": report.appeared,
                   "communes": len(report.communes)}


def _drills_to_report(inventory: Inventory, at: float, previous: float | None) -> list[Drill]:
    return [d for d in inventory.drills
            if d.start.timestamp() <= at
            and (d.end.timestamp() > at
                 or (previous is not None and d.end.timestamp() > previous))]


def write_files(folder: Path, files: list[ReportFile]) -> list[Path]:
    """Each file written whole or not at all (a temporary name, then renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in files:
        if Path(f.name).name != f.name or f.name.startswith(".") or "\\" in f.name:
            raise ValueError(f"report file name {f.name!r} is not a plain file name")
        path = folder / f.name
        tmp = folder / f".{f.name}.tmp"
        tmp.write_bytes(f.data)
        os.replace(tmp, path)
        paths.append(path)
    return paths


Builder = Callable[[float, float | None], tuple[list[ReportFile], dict[str, Any]]]
Sleep = Callable[[float], Awaitable[None]]


class ReportScheduler:
    def __init__(self, cron: str, folder: str | Path, build: Builder, *,
                 webhook: str | None = None, mailer: Mailer | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Sleep = asyncio.sleep, timeout: float = 30.0) -> None:
        self.cron = parse_cron(cron)
        self.folder = Path(folder)
        self.build = build
        self.webhook = webhook
        self.mailer = mailer
        self.clock = clock
        self.sleep = sleep
        self.timeout = timeout
        self.previous: float | None = None

    async def run_forever(self) -> None:
        while True:
            due = next_run(self.cron, self.clock())
            log.info("report_scheduled", at=iso_vn(due))
            while (left := due - self.clock()) > 0:
                await self.sleep(min(left, MAX_SLEEP))
            try:
                await self.run_once(due)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed report must not end the monitor
                log.exception("report_failed", at=iso_vn(due))

    async def run_once(self, at: float) -> list[Path]:
        files, summary = await asyncio.to_thread(self.build, at, self.previous)
        paths = await asyncio.to_thread(write_files, self.folder, files)
        self.previous = at
        log.info("report_written", at=iso_vn(at), files=[str(p) for p in paths])
        if self.webhook:
            await self.send(files, summary)
        if self.mailer is not None:  # after the folder copy: a mail failure keeps it
            await self.mailer.send(at, summary, files)
        return paths

    async def send(self, files: list[ReportFile], summary: dict[str, Any]) -> bool:
        """POST the files; 5xx and network errors are retried a few times."""
        url = safe_url(self.webhook or "")
        for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
            try:
                status = await self._post(files, summary)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, error = None, type(exc).__name__
            else:
                error = f"HTTP {status}"
                if 200 <= status < 300:
                    log.info("report_sent", webhook=url, files=len(files))
                    return True
                if status < 500 and status not in (408, 429):
                    break
            log.warning("report_send_retry", webhook=url, attempt=attempt, error=error)
            if attempt < WEBHOOK_ATTEMPTS:
                await self.sleep(2.0 ** attempt)
        log.error("report_send_failed", webhook=url)
        return False

    async def _post(self, files: list[ReportFile], summary: dict[str, Any]) -> int:
        form = aiohttp.FormData()
        form.add_field("summary", json.dumps(summary, ensure_ascii=False),
                       content_type="application/json; charset=utf-8")
        for f in files:
            form.add_field("files", f.data, filename=f.name, content_type=f.content_type)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
                self.webhook or "", data=form, headers={"User-Agent": "tslcd-monitor"}) as resp:
            return resp.status


def status_history(state_path: str) -> availability.StateHistory | None:
    """The state database's status history, read on the builder's worker thread through a
    connection of its own (WAL: the monitor keeps writing meanwhile). An in-memory state
    (``run`` without ``--state``) cannot be opened twice: no availability report then."""
    if state_path == ":memory:":
        log.info("availability_report_skipped", reason="no state database (--state)")
        return None
    return availability.history_from_db(state_path)


def start_report_schedule(pipeline: Pipeline, cfg: Config) -> asyncio.Task[None] | None:
    """``run``/``collector``: the scheduled reports of ``reports:`` / ``--report-schedule``
    over the pipeline's live state, as a task (None when no schedule is configured)."""
    if not cfg.report_schedule:
        return None

    def build(at: float, previous: float | None) -> tuple[list[ReportFile], dict[str, Any]]:
        return report_files(pipeline.inventory, pipeline.engine.state,
                            pipeline.operations.drills, at, previous,
                            status_history(pipeline.store.path), pipeline.operations.evidence)

    mailer = Mailer(cfg.report_email) if cfg.report_email is not None else None
    scheduler = ReportScheduler(cfg.report_schedule, cfg.report_dir, build,
                                webhook=cfg.report_webhook, mailer=mailer)
    return asyncio.create_task(scheduler.run_forever(), name="report schedule")
