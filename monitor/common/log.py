"""Event-style structured logging (structlog), to stderr, as JSON or for a console.

Libraries that log through the standard ``logging`` module (aiohttp's server, error and
access loggers) are routed here too by :func:`route_stdlib`, so every line on stderr is one
JSON object and goes through the same redaction.
"""

from __future__ import annotations

import logging
import re
import sys
from urllib.parse import urlsplit

import structlog

_SECRET_KEYS = ("password", "token", "secret", "authorization", "cookie")

#: Secrets inside free text (a library's error message, a traceback, an access-log line):
#: header values of Authorization and Cookie, the session cookie, a bearer token, and in
#: URLs the password of user:password@ and query parameters named like a secret.
_SECRET_TEXT = (
    (re.compile(r"(?i)([?&][\w.-]*(?:token|password|passwd|secret|key|auth)[\w.-]*=)[^&\s'\"#]*"),
     r"\1***"),
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]*:)[^@/\s'\"]*@"), r"\1***@"),
    (re.compile(r"(?i)\b((?:proxy-)?authorization|(?:set-)?cookie)(\s*[:=]\s*)[^\r\n'\"]*"),
     r"\1\2***"),
    (re.compile(r"(?i)\b(bearer\s+)[^\s'\",;]+"), r"\1***"),
    (re.compile(r"(?i)\b(tslcd_token=)[^\s'\",;]*"), r"\1***"),
)


def scrub(text: str) -> str:
    """``text`` with Authorization/Cookie header values, bearer tokens, URL passwords and
    secret-named query parameters replaced by ***."""
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def _redact_secrets(_logger: object, _name: str, event: dict) -> dict:
    """Tokens and passwords never reach the logs, whatever a caller passes."""
    for key in event:
        if any(s in key.lower() for s in _SECRET_KEYS):
            event[key] = "***"
    return event


def _scrub_text(_logger: object, _name: str, event: dict) -> dict:
    """Free text (the event, a formatted traceback) may quote a request's headers."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = scrub(value)
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
            # the traceback as text in both renderings, so that it can be scrubbed
            structlog.processors.format_exc_info,
            _scrub_text,
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


class StructlogHandler(logging.Handler):
    """Forwards standard-library records to structlog: one line each, traceback included,
    secrets scrubbed by the processors above."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = str(record.msg)
        logger = structlog.get_logger(record.name)
        level = record.levelname.lower()
        method = getattr(logger, level if level in _LEVELS else "info")
        if record.exc_info and record.exc_info[0] is not None:
            method(message, exc_info=record.exc_info)
        else:
            method(message)


_LEVELS = ("debug", "info", "warning", "error", "critical")


def route_stdlib(name: str) -> logging.Logger:
    """The standard logger ``name`` writing through structlog only (no plain-text handler
    of the root logger, no ``logging.lastResort`` on stderr)."""
    logger = logging.getLogger(name)
    if not any(isinstance(h, StructlogHandler) for h in logger.handlers):
        logger.addHandler(StructlogHandler())
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.DEBUG)  # structlog's filtering bound logger decides
    return logger


class OnceLog:
    """Logs a failure with its traceback the first time per key only.

    A row of bad data (one commune's state) fails again at every render, every few seconds;
    one line with the traceback says what is wrong, the same line every render would bury
    everything else. At most ``limit`` keys are remembered (the inventory bounds them).
    """

    def __init__(self, event: str, limit: int = 100_000) -> None:
        self.event = event
        self.limit = limit
        self.seen: set[str] = set()

    def failed(self, key: str, **fields: object) -> bool:
        """Call inside ``except``; True when this was logged (the first time for ``key``)."""
        if key in self.seen or len(self.seen) >= self.limit:
            return False
        self.seen.add(key)
        structlog.get_logger("monitor").exception(self.event, key=key, **fields)
        return True


def safe_url(url: str) -> str:
    """scheme://host:port/path: what may appear in logs (no user, password or query)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
