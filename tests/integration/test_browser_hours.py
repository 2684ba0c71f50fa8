"""The status page in a real headless Chromium: a computer silent outside working hours is
shown as off ("tắt ngoài giờ làm việc"), not as down, and both lines of a commune with a
backup line are shown with their operators (the real engine's state, a real server on a
free loopback port)."""

from __future__ import annotations

from monitor.present.web.server import WebContext
from tests.support import web as ws
from tests.support.engine_sim import office_evening


async def test_page_shows_a_computer_off_and_both_lines() -> None:
    sim = office_evening()
    ctx = WebContext(inventory=lambda: sim.inventory, state=sim.engine.state,
                     metrics_body=lambda: b"")
    async with ws.browser_on(ctx) as (page, site):
        await page.goto(f"{site}/")
        row = page.locator('tr[data-key="75/26041"]')
        await row.wait_for()
        assert "2/3 (1 tắt)" in (await row.text_content() or "")
        assert await row.locator(".badge").text_content() == "Bình thường"
        await page.goto(f"{site}/#/75/26041")
        off = page.locator('.detail .host[data-state="off"]')
        await off.wait_for()
        assert await off.get_attribute("data-host") == "may-02"
        assert await off.locator(".badge").text_content() == "tắt ngoài giờ làm việc"
        assert await page.locator('.detail .host[data-state="down"]').count() == 0
        facts = await page.locator(".detail .facts").text_content() or ""
        assert "Đường chính198.18.1.1 (VNPT, DNI-0001) hoạt động" in facts
        assert "Đường dự phòng198.19.200.1 (Viettel, DNI-B-0001) không trả lời" in facts
