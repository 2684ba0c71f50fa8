"""The status page with the whole nationwide inventory (3,321 communes) in headless Chromium.

Measures, median of a few runs: the time from navigation to the list rendered and painted
(goal: under 1 s), the API's ``/api/v1/communes`` response time, and one detail page.
Everything runs on loopback; the inventory and state are built in code.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import replace

import aiohttp

from bench import Row
from monitor.cycle.observation import CommuneObservation
from monitor.present.rtt_history import RttHistory
from monitor.present.web.server import WebContext, build_app, serve
from tests.support import web as ws

RUNS = 5
PAINTED = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
#: The page's own mark, set once the first full list has been painted (ms since navigation).
PAINTED_MARK = "() => performance.getEntriesByName('list-painted')[0]?.startTime ?? null"


def run() -> list[Row]:
    return [*asyncio.run(_run()), *_history_rows()]


def _history_rows() -> list[Row]:
    """Feeding the charts' ring buffer: one cycle of ~10,600 hosts, and its memory."""
    import tracemalloc

    inventory = ws.nationwide(hosts=4)
    now = time.time()
    state = ws.state_for(inventory, now)
    observations = [CommuneObservation(c.province, c.commune, 0.0, hosts=tuple(
        h.last for h in c.hosts.values() if h.last)) for c in state.communes.values()]

    def cycle(history: RttHistory, n: int) -> float:
        start = time.perf_counter()
        for obs in observations:
            history.record(replace(obs, at=now + 30 * n))
        return (time.perf_counter() - start) * 1000

    timed = RttHistory()
    times = [cycle(timed, n) for n in range(6)]
    tracemalloc.start()
    measured = RttHistory()
    cycle(measured, 0)  # the rings are allocated whole on a host's first sample
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return [
        Row(f"RttHistory.record, one cycle of {len(timed)} hosts (median of 5 after the first)",
            statistics.median(times[1:]), "ms", f"first cycle {times[0]:.0f} ms"),
        Row(f"RttHistory memory, {len(timed)} hosts x 180 buckets (6 h at 2 min)",
            memory / 1e6, "MB", "fixed whatever the uptime"),
    ]


async def _run() -> list[Row]:
    from playwright.async_api import async_playwright

    inventory = ws.nationwide(hosts=3)
    now = time.time()
    state = ws.state_for(inventory, now)
    ctx = WebContext(inventory=lambda: inventory, state=state, metrics_body=lambda: b"",
                     samples=ws.samples_for(inventory, state, now, cycles=180))
    port = _free_port()
    runner = await serve(build_app(ctx), "127.0.0.1", port)
    url = f"http://127.0.0.1:{port}"
    n = sum(1 for _ in inventory.communes())
    try:
        api_ms, size = await _get_times(f"{url}/api/v1/communes", RUNS * 2)
        xlsx_ms, xlsx_size = await _get_times(f"{url}/report/readiness.xlsx", 3)
        async with async_playwright() as pw:
            browser = await ws.launch_chromium(pw)
            try:
                loads = [await _page_load(browser, url, n) for _ in range(RUNS)]
                detail_s = [await _detail_load(browser, url) for _ in range(RUNS)]
            finally:
                await browser.close()
    finally:
        await runner.cleanup()
    page_s = [wall for wall, _ in loads]
    in_page = [mark / 1000 for _, mark in loads if mark is not None]
    return [
        Row(f"status page, {n} communes: navigation to list painted (median of {RUNS})",
            statistics.median(page_s), "s", f"goal < 1 s; runs {_fmt(page_s)}"),
        Row(f"status page, {n} communes: the page's own list-painted mark (median of {RUNS})",
            statistics.median(in_page) if in_page else float("nan"), "s",
            "browser clock, without Playwright's round trips"),
        Row(f"GET /api/v1/communes, {n} communes (median of {RUNS * 2})",
            statistics.median(api_ms), "ms", f"{size / 1e6:.2f} MB JSON uncompressed"),
        Row(f"GET /report/readiness.xlsx, {n} communes x {len(inventory.milestones)} milestones"
            " (median of 3)",
            statistics.median(xlsx_ms), "ms", f"{xlsx_size / 1e3:.0f} kB"),
        Row(f"commune detail page, 3 hosts x 6 h charts (median of {RUNS})",
            statistics.median(detail_s), "s", f"runs {_fmt(detail_s)}"),
    ]


async def _get_times(url: str, runs: int) -> tuple[list[float], int]:
    """Milliseconds per GET, and the body's size."""
    times, size = [], 0
    async with aiohttp.ClientSession() as session:
        for _ in range(runs):
            start = time.perf_counter()
            async with session.get(url) as resp:
                size = len(await resp.read())
            times.append((time.perf_counter() - start) * 1000)
    return times, size


async def _page_load(browser: object, url: str, n: int) -> tuple[float, float | None]:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    try:
        start = time.perf_counter()
        await page.goto(f"{url}/", wait_until="commit")
        await page.wait_for_selector(f"#list[data-count='{n}']", timeout=30_000)
        await page.evaluate(PAINTED)
        wall = time.perf_counter() - start
        await page.wait_for_function(PAINTED_MARK, timeout=30_000)
        return wall, await page.evaluate(PAINTED_MARK)
    finally:
        await page.close()


async def _detail_load(browser: object, url: str) -> float:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    try:
        start = time.perf_counter()
        await page.goto(f"{url}/#/75/26068", wait_until="commit")
        await page.wait_for_selector(".host svg.chart polyline", state="attached", timeout=30_000)
        await page.evaluate(PAINTED)
        return time.perf_counter() - start
    finally:
        await page.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    for row in run():
        print(f"{row.benchmark}: {row.value:.3f} {row.unit} ({row.note})")
