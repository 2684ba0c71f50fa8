"""A real Prometheus on loopback scraping a real /metrics endpoint, for the scrape and
dashboard tests: serve an exposition, run Prometheus against it, poll its query API."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor.present.metrics import CONTENT_TYPE, Exposition
from tests.support import installed
from tests.support.servers import daemon, free_tcp_port, serving

QUERY_DEADLINE = 60.0  # seconds for Prometheus to start and scrape


def prometheus_binary() -> str:
    """The installed ``prometheus``; skipped without it (failed under CI=true)."""
    return installed("prometheus")


@contextlib.asynccontextmanager
async def serve_metrics(exposition: Exposition) -> AsyncIterator[tuple[int, list[str]]]:
    """/metrics on a free loopback port, gzipped when asked; yields the port and the list of
    encodings served so far."""
    served: list[str] = []

    async def metrics(request: web.Request) -> web.Response:
        headers = {"Content-Type": CONTENT_TYPE}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            served.append("gzip")
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=exposition.body_gzip(), headers=headers)
        served.append("identity")
        return web.Response(body=exposition.body(), headers=headers)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    async with serving(app) as port:
        yield port, served


@contextlib.contextmanager
def run_prometheus(
    binary: str, target_port: int, workdir: Path, rule_files: tuple[Path, ...] = ()
) -> Iterator[int]:
    """Prometheus on a free loopback port scraping ``target_port`` every second; stopped after."""
    config = workdir / "prometheus.yml"
    rules = "".join(f"  - {path}\n" for path in rule_files)
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
        + (f"rule_files:\n{rules}" if rules else "")
        + "scrape_configs:\n"
        + "  - job_name: tslcd\n"
        + f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n",
        encoding="utf-8",
    )
    port = free_tcp_port()
    with daemon(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        workdir / "prometheus.log",
    ):
        yield port


async def query_until(
    port: int, promql: str, ready: Callable[[list[dict]], bool]
) -> list[dict]:
    """Poll the HTTP API until ``ready(result)`` holds; fail with the last answer otherwise."""
    url = f"http://127.0.0.1:{port}/api/v1/query"
    deadline = time.monotonic() + QUERY_DEADLINE
    last: object = None
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url, params={"query": promql}) as response:
                    last = await response.json()
                    result = last.get("data", {}).get("result", [])
                    if ready(result):
                        return result
            await asyncio.sleep(0.2)
    pytest.fail(f"Prometheus never answered {promql!r} as expected; last answer: {last}")
