"""Event-style structured logging (structlog), to stderr, as JSON or for a console."""

from __future__ import annotations

import logging
import sys

import structlog

_SECRET_KEYS = ("password", "token", "secret", "authorization")


def _redact_secrets(_logger: object, _name: str, event: dict) -> dict:
    """Tokens and passwords never reach the logs, whatever a caller passes."""
    for key in event:
        if any(s in key.lower() for s in _SECRET_KEYS):
            event[key] = "***"
    return event


class _StderrLogger:
    """Writes each line to whatever ``sys.stderr`` is *now* (not the one at configure time,
    which a test harness or a daemon may have closed and replaced since)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _stderr_logger(*_args: object) -> _StderrLogger:
    return _StderrLogger()


def configure(level: str = "info", json: bool | None = None) -> None:
    if json is None:
        json = not sys.stderr.isatty()
    renderer = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_secrets,
            # JSON lines carry the traceback as text; the console renderer formats its own
            *([structlog.processors.format_exc_info] if json else []),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_stderr_logger,
        # Not cached: module-level loggers must follow a later configure() (and tests'
        # capture_logs); a log call is per event, never per probe, so the cost is nil.
        cache_logger_on_first_use=False,
    )
