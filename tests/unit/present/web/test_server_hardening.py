"""The HTTP layer under malformed and slow requests, with raw sockets against a real server
on a free loopback port: error bodies never echo a header, every log line is JSON with no
token in it (one per malformed request), half-sent requests are closed, bodies are bounded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog

from monitor.common import log
from monitor.present.web import server
from monitor.present.web.server import COOKIE, WebContext, build_app, serve
from tests.support import web as ws

INV = ws.inventory(("75",), per_province=3)
TOKEN = "adm-" + "s" * 40  # the secret that must never come back


class Stderr:
    """What the service wrote on stderr (pytest's capture of it), read once at the end."""

    def __init__(self, capture: pytest.CaptureFixture[str]) -> None:
        self.capture = capture
        self.text = ""

    def getvalue(self) -> str:
        self.text += self.capture.readouterr().err
        return self.text


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[Stderr]:
    """Everything logged, as the service writes it: JSON lines on stderr."""
    log.configure("debug", json=True)
    yield Stderr(capsys)
    structlog.reset_defaults()


@pytest.fixture
async def port(unused_tcp_port: int) -> AsyncIterator[int]:
    ctx = WebContext(inventory=lambda: INV, state=ws.state_for(INV),
                     metrics_body=lambda: b"tslcd_host_up 1\n",
                     tokens=ws.token_store({TOKEN: "admin"}))
    runner = await serve(build_app(ctx), "127.0.0.1", unused_tcp_port)
    try:
        yield unused_tcp_port
    finally:
        await runner.cleanup()


async def exchange(port: int, request: bytes, wait: float = 5.0) -> bytes:
    """Send ``request`` raw, read until the server closes (or ``wait`` seconds)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(1 << 20), wait)
    finally:
        writer.close()


def json_lines(out: Stderr) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


MALFORMED = {
    "oversized cookie": (
        b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nCookie: " + f"{COOKIE}={TOKEN}; ".encode()
        + b"p=" + b"x" * 9000 + b"\r\n\r\n"),
    "oversized authorization": (
        b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
        + b"y" * 9000 + b"\r\n\r\n"),
    "malformed request line": (
        b"GET /api/v1/me?" + TOKEN.encode() + b" HTTP/1.1 extra\r\nCookie: "
        + f"{COOKIE}={TOKEN}".encode() + b"\r\n\r\n"),
    "bad header": (
        b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + f"{COOKIE}={TOKEN}".encode()
        + b"\r\nBad Header Name: " + TOKEN.encode() + b"\r\n\r\n"),
    "bad method": b"G\x00T / HTTP/1.1\r\nCookie: " + f"{COOKIE}={TOKEN}".encode() + b"\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
async def test_a_malformed_request_gets_a_bare_400_and_one_json_line_without_the_token(
    stderr: Stderr, port: int, name: str
) -> None:
    response = await exchange(port, MALFORMED[name])
    assert response.startswith((b"HTTP/1.1 400 ", b"HTTP/1.0 400 ")), response[:200]
    assert TOKEN.encode() not in response and b"xxxx" not in response
    body = response.partition(b"\r\n\r\n")[2]
    assert body == b"400 Bad Request\n"
    await asyncio.sleep(0.05)
    lines = json_lines(stderr)  # each line must be JSON: json.loads raises otherwise
    assert TOKEN not in stderr.getvalue()
    bad = [entry for entry in lines if entry["event"] != "web_listening"]
    assert len(bad) == 1, bad
    assert bad[0]["event"] == "web_bad_request" and bad[0]["status"] == 400


async def test_a_failing_handler_is_one_json_line_with_its_traceback_and_no_cookie(
    stderr: Stderr, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("rendering exploded")

    monkeypatch.setattr(server.api, "commune_list", broken)
    response = await exchange(port, (
        f"GET /api/v1/communes HTTP/1.1\r\nHost: x\r\nCookie: {COOKIE}={TOKEN}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n").encode())
    assert response.startswith(b"HTTP/1.1 500 ")
    assert TOKEN.encode() not in response and b"Traceback" not in response
    await asyncio.sleep(0.05)
    failed = [e for e in json_lines(stderr) if e["event"] == "web_handler_failed"]
    assert len(failed) == 1 and "rendering exploded" in failed[0]["exception"]
    assert TOKEN not in stderr.getvalue()


async def test_requests_are_logged_as_json_access_lines_without_headers(
    stderr: Stderr, port: int
) -> None:
    for token in (TOKEN, "forged-" + "z" * 40):
        await exchange(port, (
            f"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Connection: close\r\n\r\n").encode())
    await asyncio.sleep(0.05)
    access = [e for e in json_lines(stderr) if e["event"] == "web_access"]
    assert [(e["path"], e["status"]) for e in access] == [("/api/v1/me", 200),
                                                         ("/api/v1/me", 401)]
    assert TOKEN not in stderr.getvalue() and "zzzz" not in stderr.getvalue()


async def closed_after(port: int, first: bytes, dribble: bytes | None) -> tuple[float, bytes]:
    """Send ``first``, then ``dribble`` every half second (if any) for at most 20 s; the
    seconds until the server closed the connection, and what it sent before closing."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(first)
        for n in range(40):
            try:
                data = await asyncio.wait_for(reader.read(1024), 0.5)
            except TimeoutError:
                if dribble is not None:
                    writer.write(dribble % n if b"%d" in dribble else dribble)
                continue
            received += data
            if not data:
                return time.monotonic() - started, received
    finally:
        writer.close()
    raise AssertionError("the half-sent request was never closed")


async def test_a_half_sent_request_line_is_closed_within_the_header_timeout(port: int) -> None:
    seconds, received = await closed_after(port, b"GET /api/v1/me HT", None)
    assert received == b"" and seconds <= server.HEADER_TIMEOUT + 2


async def test_headers_dribbled_in_slowly_are_closed_within_the_header_timeout(
    port: int,
) -> None:
    """Slow-loris: a valid header line every half second never completes the head."""
    seconds, received = await closed_after(port, b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\n",
                                           b"X-Slow-%d: 1\r\n")
    assert received == b"" and seconds <= server.HEADER_TIMEOUT + 2


async def test_a_body_over_the_limit_is_refused_with_413(port: int) -> None:
    body = b"token=" + b"a" * (server.MAX_BODY + 10)
    response = await exchange(port, (
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body))
    assert response.startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize(("host", "tokens", "warned"), [
    ("127.0.0.1", False, False),
    ("0.0.0.0", True, False),
    ("0.0.0.0", False, True),
])
async def test_serving_beyond_loopback_without_tokens_is_warned_at_start(
    stderr: Stderr, unused_tcp_port: int, host: str, tokens: bool, warned: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The warning depends on the address asked for; the socket itself is only ever bound
    on loopback (the test swaps the site's address), so nothing listens beyond it."""
    real_site = server.web.TCPSite

    def loopback_site(runner: object, _host: str, port: int, **kw: object) -> object:
        return real_site(runner, "127.0.0.1", port, **kw)

    monkeypatch.setattr(server.web, "TCPSite", loopback_site)
    ctx = WebContext(inventory=lambda: INV, state=ws.state_for(INV),
                     metrics_body=lambda: b"", tokens=ws.token_store({TOKEN: "admin"}) if tokens
                     else None)
    runner = await serve(build_app(ctx), host, unused_tcp_port)
    await runner.cleanup()
    events = [e["event"] for e in json_lines(stderr)]
    assert ("web_open_beyond_loopback" in events) is warned


def test_loopback_addresses_are_recognised() -> None:
    assert server.is_loopback("127.0.0.1") and server.is_loopback("::1")
    assert server.is_loopback("localhost") and server.is_loopback("[::1]")
    assert not server.is_loopback("0.0.0.0") and not server.is_loopback("")
    assert not server.is_loopback("198.18.5.5")

