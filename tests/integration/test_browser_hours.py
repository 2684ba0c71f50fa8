"""The status page in a real headless Chromium: a computer silent outside working hours is
shown as off ("tắt ngoài giờ làm việc"), not as down, and both lines of a commune with a
backup line are shown with their operators (the real engine's state, a real server on a
free loopback port)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import socket

from inventory.model import WorkingHours
from monitor.present.web.server import WebContext, build_app, serve
from tests.support import require_real
from tests.support import web as ws
from tests.support.engine_sim import T0, Sim, make_commune, make_inventory

EVENING = T0 + 11 * 3600  # Friday 2026-02-06 18:00, Vietnam time


async def test_page_shows_a_computer_off_and_both_lines() -> None:
    require_real(os.access(ws.CHROMIUM, os.X_OK), f"{ws.CHROMIUM} is not installed")
    from playwright.async_api import async_playwright

    commune = dataclasses.replace(
        make_commune(backup=True), backup_gateway=ipaddress.ip_address("198.19.200.1"),
        backup_isp="Viettel", backup_circuit="DNI-B-0001")
    inventory = make_inventory(commune)
    inventory = dataclasses.replace(inventory, defaults=dataclasses.replace(
        inventory.defaults, working_hours=WorkingHours((0, 1, 2, 3, 4), dt.time(7),
                                                       dt.time(17))))
    sim = Sim(inventory, start=EVENING)
    sim.cycles(4, hosts={"may-02": False}, backup=False)
    ctx = WebContext(inventory=lambda: inventory, state=sim.engine.state,
                     metrics_body=lambda: b"")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runner = await serve(build_app(ctx), "127.0.0.1", port)
    try:
        async with async_playwright() as pw:
            chromium = await ws.launch_chromium(pw)
            page = await chromium.new_page()
            await page.goto(f"http://127.0.0.1:{port}/")
            row = page.locator('tr[data-key="75/26041"]')
            await row.wait_for()
            assert "2/3 (1 tắt)" in (await row.text_content() or "")
            assert await row.locator(".badge").text_content() == "Bình thường"
            await page.goto(f"http://127.0.0.1:{port}/#/75/26041")
            off = page.locator('.detail .host[data-state="off"]')
            await off.wait_for()
            assert await off.get_attribute("data-host") == "may-02"
            assert await off.locator(".badge").text_content() == "tắt ngoài giờ làm việc"
            assert await page.locator('.detail .host[data-state="down"]').count() == 0
            facts = await page.locator(".detail .facts").text_content() or ""
            assert "Đường chính198.18.1.1 (VNPT, DNI-0001) hoạt động" in facts
            assert "Đường dự phòng198.19.200.1 (Viettel, DNI-B-0001) không trả lời" in facts
            await chromium.close()
    finally:
        await runner.cleanup()
