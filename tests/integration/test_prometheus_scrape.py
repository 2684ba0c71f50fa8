"""A real Prometheus scrapes the exposition and returns what we rendered, names and all."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bench.bench_exposition import populated_state
from monitor.present.metrics import CONTENT_TYPE, Exposition
from tests.integration.test_metrics import NOW, ODD_COMMUNE, ODD_HOST, odd_inventory
from tests.support.servers import daemon, free_tcp_port, serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
QUERY_DEADLINE = 60.0  # seconds for Prometheus to start and scrape


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus is required under CI")
        pytest.skip("prometheus not installed")
    return found


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
            await asyncio.sleep(0.5)
    pytest.fail(f"Prometheus never answered {promql!r} as expected; last answer: {last}")


def by_host(result: list[dict]) -> dict[tuple[str, str, str], float]:
    return {
        (r["metric"]["province"], r["metric"]["commune"], r["metric"]["host"]): float(r["value"][1])
        for r in result
    }


async def test_prometheus_scrapes_host_up_and_vietnamese_labels(tmp_path: Path) -> None:
    binary = prometheus_binary()
    inventory = odd_inventory()
    state = populated_state(inventory, NOW)
    state.communes["79/26737"].hosts["may-01"].up = False
    expected = {
        (c.province, c.commune, h.name): float(h.up)
        for c in state.communes.values()
        for h in c.hosts.values()
    }
    exposition = Exposition()
    exposition.update(inventory, state)
    async with serve_metrics(exposition) as (metrics_port, served):
        with run_prometheus(binary, metrics_port, tmp_path) as port:
            result = await query_until(
                port, "tslcd_host_up", lambda r: len(r) == len(expected)
            )
            assert by_host(result) == expected
            info = await query_until(port, 'tslcd_commune_info{commune="26734"}', bool)
            assert info[0]["metric"]["commune_name"] == ODD_COMMUNE

            state.communes["79/26734"].hosts[ODD_HOST].up = False
            exposition.update(inventory, state)
            key = ("79", "26734", ODD_HOST)
            result = await query_until(
                port, "tslcd_host_up", lambda r: by_host(r).get(key) == 0.0
            )
            assert by_host(result) == expected | {key: 0.0}
    assert "gzip" in served  # Prometheus took the pre-compressed body
