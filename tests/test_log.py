"""Logging: JSON lines on the current stderr, secrets redacted."""

from __future__ import annotations

import io
import json
import sys

import pytest
import structlog

from monitor import log


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
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    log.configure("debug", json=True)
    structlog.get_logger("test").info("login", token="abc", Authorization="Bearer x", user="u")
    line = json.loads(out.getvalue())
    assert (line["token"], line["Authorization"], line["user"]) == ("***", "***", "u")


@pytest.mark.parametrize("json_lines", [True, False])
def test_an_exception_is_logged_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, json_lines: bool,
) -> None:
    """``log.exception("cycle_failed")`` must say what failed, not only that it did."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    log.configure("info", json=json_lines)
    try:
        raise TypeError("_scan_segments() takes 2 positional arguments but 3 were given")
    except TypeError:
        structlog.get_logger("test").exception("cycle_failed")
    text = out.getvalue()
    assert "Traceback" in text and "takes 2 positional arguments" in text
    if json_lines:
        assert "Traceback" in json.loads(text)["exception"]
