"""Logging: JSON lines on the current stderr, secrets redacted."""

from __future__ import annotations

import io
import json
import sys

import pytest
import structlog

from monitor.common import log


def logging_to_buffer(monkeypatch: pytest.MonkeyPatch, level: str = "info",
                      json_lines: bool = True) -> io.StringIO:
    """Logging configured at ``level`` onto a buffer standing for stderr; the buffer."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    log.configure(level, json=json_lines)
    return out


def test_lines_go_to_the_current_stderr_and_secrets_are_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    log.configure("info", json=True)
    logger = structlog.get_logger("test")
    logger.info("host_down", commune="Phường Trấn Biên", password="s3cret", api_token="t0k")
    first.close()  # e.g. a harness closed the stream it handed out
    monkeypatch.setattr(sys, "stderr", second)
    logger.warning("host_up", commune="26041")
    line = json.loads(second.getvalue())
    assert line["event"] == "host_up" and line["level"] == "warning"
    assert "s3cret" not in second.getvalue()


def test_secret_keys_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    out = logging_to_buffer(monkeypatch, "debug")
    structlog.get_logger("test").info("login", token="abc", Authorization="Bearer x", user="u")
    line = json.loads(out.getvalue())
    assert (line["token"], line["Authorization"], line["user"]) == ("***", "***", "u")


@pytest.mark.parametrize("json_lines", [True, False])
def test_an_exception_is_logged_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, json_lines: bool,
) -> None:
    """``log.exception("cycle_failed")`` must say what failed, not only that it did."""
    out = logging_to_buffer(monkeypatch, json_lines=json_lines)
    try:
        raise TypeError("_scan_segments() takes 2 positional arguments but 3 were given")
    except TypeError:
        structlog.get_logger("test").exception("cycle_failed")
    text = out.getvalue()
    assert "Traceback" in text and "takes 2 positional arguments" in text
    if json_lines:
        assert "Traceback" in json.loads(text)["exception"]


SESSION = "s3ss10n-" + "q" * 40


def test_header_values_and_bearer_tokens_in_free_text_are_scrubbed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A library's message or traceback may quote the request; the values never get out."""
    out = logging_to_buffer(monkeypatch)
    try:
        raise ValueError(f"Got more than 8190 bytes when reading: Cookie: tslcd_token={SESSION}"
                         f"; x=1\r\nAuthorization: Bearer {SESSION}")
    except ValueError:
        structlog.get_logger("test").exception(f"bad line Authorization: Bearer {SESSION}",
                                               detail=f"tslcd_token={SESSION}")
    line = json.loads(out.getvalue())
    assert SESSION not in out.getvalue()
    assert "Cookie: ***" in line["exception"] and "Authorization: ***" in line["event"]
    assert line["detail"] == "tslcd_token=***"


@pytest.mark.parametrize(("text", "secret"), [
    ('127.0.0.1 "POST /hook?token=T0KEN&x=1 HTTP/1.1" 500', "T0KEN"),
    ("http://hook:p4ssw0rd@127.0.0.1:9000/hook", "p4ssw0rd"),
    ("https://127.0.0.1/api?api_key=K3Y#frag", "K3Y"),
    ("mqtt://agent:s3cr3t@127.0.0.1:1883", "s3cr3t"),
])
def test_secrets_in_urls_are_scrubbed(text: str, secret: str) -> None:
    """An access-log line or an error may carry a URL with a password or a token in it."""
    cleaned = log.scrub(text)
    assert secret not in cleaned and "***" in cleaned


def test_scrubbing_leaves_ordinary_urls_alone() -> None:
    assert log.scrub("GET /metrics?page=2&province=75 HTTP/1.1") == \
        "GET /metrics?page=2&province=75 HTTP/1.1"


def test_a_routed_stdlib_logger_writes_one_json_line_through_the_redaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = logging_to_buffer(monkeypatch)
    logger = log.route_stdlib("tests.routed")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("Error handling request: Cookie: %s", f"tslcd_token={SESSION}")
    logger.debug("below the configured level")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "error" and "RuntimeError: boom" in entry["exception"]
    assert SESSION not in lines[0]


def test_once_log_logs_a_key_the_first_time_only() -> None:
    once = log.OnceLog("row_failed", limit=2)
    with structlog.testing.capture_logs() as logs:
        for key in ("a", "a", "b", "c", "a"):
            try:
                raise KeyError(key)
            except KeyError:
                once.failed(key, kind="test")
    assert [e["key"] for e in logs] == ["a", "b"]  # "c": over the limit
    assert all(e["exc_info"] is True and e["event"] == "row_failed" for e in logs)
