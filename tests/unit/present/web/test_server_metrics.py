"""/metrics' content coding: gzip only for a client whose Accept-Encoding takes it (RFC 9110
§12.5.3, q values included), and the plain text made from the one gzipped copy."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import aiohttp
import pytest
from structlog.testing import capture_logs

from monitor.present.web.server import (
    PLAIN_STEP,
    WebContext,
    accepts_gzip,
    build_app,
    serve,
    unpacked,
)
from tests.support import web as ws


@pytest.mark.parametrize(("header", "gzip"), [
    (None, False), ("", False), ("identity", False), ("br, deflate", False),
    ("gzip", True), ("GZip", True), ("x-gzip", True), ("gzip, deflate, br", True),
    ("deflate;q=0.5 , gzip ; q=0.1", True), ("gzip;Q=1.000", True), ("*", True),
    ("gzip;q=0", False), ("gzip;q=0.000", False), ("gzip; q=0, identity", False),
    ("GZIP;Q=0", False), ("*;q=0", False), ("gzip;q=0, *", False), ("gzip, *;q=0", True),
    ("*;q=0.001", True), ("identity, *;q=0", False),
    ("gzip;q=2", False), ("gzip;q=abc", False), ("gzip;q=0.0001", False), ("gzip;q=", False),
    ("gzipped", False), ("notgzip, identity", False), (" , ,gzip", True),
])
def test_gzip_is_taken_only_with_a_weight_above_zero(header: str | None, gzip: bool) -> None:
    """``gzip`` (or ``x-gzip``) decides, else ``*``; a weight of 0 refuses, a malformed one
    counts as 0 (plain text is always safe); names and ``q`` in any case, spaces anywhere."""
    assert accepts_gzip(header) is gzip


TEXT = b"".join(b'tslcd_host_up{province="75",commune="%05d",host="may-01"} 1\n' % i
                for i in range(40_000))  # ~2.4 MB, some 40 pieces


def test_unpacked_gives_the_text_in_bounded_pieces() -> None:
    pieces = list(unpacked(gzip.compress(TEXT, 1)))
    assert b"".join(pieces) == TEXT
    assert len(pieces) > 10 and max(len(p) for p in pieces) <= PLAIN_STEP
    assert list(unpacked(gzip.compress(b""))) == []


@pytest.fixture
async def port(unused_tcp_port: int) -> AsyncIterator[int]:
    """A real server whose /metrics has the render's gzip, as ``run`` and ``collector``."""
    inventory = ws.inventory(("75",), per_province=1)
    ctx = WebContext(inventory=lambda: inventory, state=ws.state_for(inventory),
                     metrics_body=lambda: pytest.fail("the plain copy is never asked for"),
                     metrics_body_gzip=lambda: gzip.compress(TEXT, 1, mtime=0))
    runner = await serve(build_app(ctx), "127.0.0.1", unused_tcp_port)
    try:
        yield unused_tcp_port
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("accept", "coding"), [
    ({}, None), ({"Accept-Encoding": "gzip;q=0, identity"}, None),
    ({"Accept-Encoding": "gzip"}, "gzip")])
async def test_metrics_is_served_from_the_one_gzipped_copy(
        port: int, accept: dict[str, str], coding: str | None) -> None:
    async with aiohttp.ClientSession(auto_decompress=False) as session, \
            session.get(f"http://127.0.0.1:{port}/metrics", headers=accept,
                        skip_auto_headers=["Accept-Encoding"]) as response:
        body = await response.read()
    assert response.status == 200 and response.headers.get("Content-Encoding") == coding
    assert (gzip.decompress(body) if coding else body) == TEXT


async def test_a_plain_reader_that_leaves_midway_costs_nothing_more(port: int) -> None:
    """A client that asks for plain text, reads a little and hangs up: no error logged, the
    server goes on serving."""
    with capture_logs() as logs:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readexactly(4096)).startswith(b"HTTP/1.1 200")
        writer.transport.abort()
        await asyncio.sleep(0.5)
    assert [e for e in logs if e.get("log_level") in ("error", "critical")] == []
    async with aiohttp.ClientSession() as session, \
            session.head(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200 and await response.read() == b""
