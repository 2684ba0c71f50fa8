"""The status page in a real headless Chromium (Debian's package, driven by Playwright).

Screenshots go to ``artifacts/`` (the CI keeps them). Under CI=true a missing Chromium is
a failure, not a skip.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from inventory.loader import demo_path, load
from monitor.decide.status import CommuneStatus
from monitor.present.web.server import WebContext, build_app, serve
from tests.support import require_real
from tests.support import web as ws

pytestmark = [pytest.mark.asyncio(loop_scope="module")]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
NOW = time.time()
DEMO = load(demo_path())
VNPT_TOKEN = "vnpt-" + "k" * 40
TEXTS = "els => els.map(e => e.textContent)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _context(tokens: Any = None) -> WebContext:
    state = ws.state_for(DEMO, NOW)
    return WebContext(inventory=lambda: DEMO, state=state, metrics_body=lambda: b"",
                      samples=ws.samples_for(DEMO, state, NOW, cycles=150), tokens=tokens)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Any]:
    require_real(os.access(ws.CHROMIUM, os.X_OK), f"{ws.CHROMIUM} is not installed")
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        chromium = await ws.launch_chromium(pw)
        yield chromium
        await chromium.close()


async def _site(ctx: WebContext) -> AsyncIterator[tuple[str, WebContext]]:
    port = _free_port()
    runner = await serve(build_app(ctx), "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}", ctx
    await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def open_site() -> AsyncIterator[tuple[str, WebContext]]:
    async for site in _site(_context()):
        yield site


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def token_site() -> AsyncIterator[tuple[str, WebContext]]:
    async for site in _site(_context(ws.token_store({VNPT_TOKEN: "isp:VNPT"}))):
        yield site


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    pg = await context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    await context.close()
    assert not errors, f"JavaScript errors: {errors}"


async def rendered(pg: Any) -> int:
    await pg.wait_for_selector("#list[data-count]")
    return int(await pg.get_attribute("#list", "data-count"))


async def shown_names(pg: Any) -> list[str]:
    return await pg.eval_on_selector_all("tr.commune td:first-child a", TEXTS)


async def test_page_lists_the_demo_communes_in_vietnamese(page, open_site) -> None:
    url, _ = open_site
    await page.goto(url + "/")
    count = await rendered(page)
    names = await shown_names(page)
    assert count == len(names) == len(list(DEMO.communes())) == 95
    assert set(names) == {c.name for c in DEMO.communes()}
    assert await page.get_attribute("html", "lang") == "vi"
    assert "Mất kết nối" in await page.inner_text("#summary")
    await page.screenshot(path=str(ARTIFACTS / "browser-list.png"))


async def test_search_ignores_diacritics_and_filters_narrow_the_list(page, open_site) -> None:
    url, ctx = open_site
    await page.goto(url + "/")
    await rendered(page)
    await page.fill("#q", "bien hoa")
    await page.wait_for_selector("#list[data-count='1']")
    assert await shown_names(page) == ["Phường Biên Hòa"]

    await page.fill("#q", "")
    await page.select_option("#f-isp", "Viettel")
    viettel = {c.name for c in DEMO.communes() if c.isp == "Viettel"}
    await page.wait_for_selector(f"#list[data-count='{len(viettel)}']")
    assert set(await shown_names(page)) == viettel

    await page.select_option("#f-status", "down")
    down = {c.name for c in DEMO.communes() if c.isp == "Viettel"
            and (s := ctx.state.communes.get(c.key)) and s.status is CommuneStatus.DOWN}
    await page.wait_for_selector(f"#list[data-count='{len(down)}']")
    assert set(await shown_names(page)) == down
    badges = await page.eval_on_selector_all("tr.commune .badge",
                                             "els => els.map(e => e.className)")
    assert badges and all(b == "badge down" for b in badges)


async def test_detail_page_shows_hosts_charts_and_switches_to_english(page, open_site) -> None:
    url, _ = open_site
    commune = next(c for c in DEMO.communes() if c.name == "Phường Biên Hòa")
    await page.goto(url + "/")
    await rendered(page)
    await page.click(f"a[href='#/{commune.province}/{commune.code}']")
    await page.wait_for_selector(".detail .host")
    hosts = await page.eval_on_selector_all(".host", "els => els.map(e => e.dataset.host)")
    assert hosts == [h.name for h in commune.hosts]
    assert await page.locator(".host svg.chart polyline").count() == len(commune.hosts)
    assert "Cấu hình IP" in await page.inner_text(".detail")
    await page.screenshot(path=str(ARTIFACTS / "browser-detail.png"), full_page=True)
    await page.click("#lang")
    await page.wait_for_selector("html[lang='en']")
    await page.wait_for_selector(".detail h3:text-is('Hosts')")
    assert "IP configuration" in await page.inner_text(".detail")


async def test_list_refreshes_itself_without_reloading_the_page(page, open_site) -> None:
    url, ctx = open_site
    commune = next(c for c in DEMO.communes()
                   if (s := ctx.state.communes.get(c.key)) and s.status is CommuneStatus.OK)
    await page.goto(url + "/?refresh=1")
    await rendered(page)
    await page.evaluate("window.__sameDocument = true")
    row = f"tr[data-key='{commune.key}']"
    assert await page.get_attribute(row, "class") == "commune st-ok"
    ctx.state.communes[commune.key].status = CommuneStatus.DOWN
    try:
        await page.wait_for_selector(f"{row}.st-down", timeout=10_000)
    finally:
        ctx.state.communes[commune.key].status = CommuneStatus.OK
    assert await page.evaluate("window.__sameDocument") is True


async def test_scoped_token_logs_in_and_sees_only_its_operator(browser, token_site) -> None:
    url, _ = token_site
    context = await browser.new_context(viewport={"width": 390, "height": 844},
                                        device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        pg = await context.new_page()
        await pg.goto(url + "/")
        assert pg.url.endswith("/login")
        await pg.fill("#token", "wrong-" + "x" * 40)
        await pg.click("button[type=submit]")
        assert "không hợp lệ" in await pg.inner_text("body")
        await pg.fill("#token", VNPT_TOKEN)
        await pg.click("button[type=submit]")
        count = await rendered(pg)
        vnpt = {c.name for c in DEMO.communes() if c.isp == "VNPT"}
        assert count == len(vnpt)
        assert set(await shown_names(pg)) == vnpt
        isps = await pg.eval_on_selector_all("tr.commune td:nth-child(3)", TEXTS)
        assert set(isps) == {"VNPT"}
        options = await pg.eval_on_selector_all("#f-isp option", "els => els.map(e => e.value)")
        assert options == ["", "VNPT"]
        assert "isp:VNPT" in await pg.inner_text("#who")
        await pg.screenshot(path=str(ARTIFACTS / "browser-vnpt-phone.png"))
        outside = next(c for c in DEMO.communes() if c.isp != "VNPT")
        await pg.goto(f"{url}/#/{outside.province}/{outside.code}")
        await pg.wait_for_selector("#detail-view .error")
        assert outside.name not in await pg.inner_text("body")
    finally:
        await context.close()


async def test_page_says_when_the_monitor_is_unreachable_and_keeps_its_data(page) -> None:
    port = _free_port()
    runner = await serve(build_app(_context()), "127.0.0.1", port)
    try:
        await page.goto(f"http://127.0.0.1:{port}/?refresh=1")
        count = await rendered(page)
    finally:
        await runner.cleanup()
    await page.wait_for_selector("#updated .error", timeout=10_000)
    assert "Không kết nối được" in await page.inner_text("#updated")
    assert len(await shown_names(page)) == count == 95
