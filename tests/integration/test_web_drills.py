"""The status page's election-period data over a real loopback socket: the live drill count,
drill reports, the line carrying each commune and inspection records, scoped by token."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.present.reports import name_part
from monitor.present.web.server import WebContext, build_app
from tests.support import web as ws
from tests.support.operations_sim import A, B, Sim, vn

VIETTEL = {"viettel-token": "isp:Viettel", "admin-token": "admin"}


@pytest.fixture
def running_drill(tmp_path: Path) -> Sim:
    """The drill at 08:05: A on its backup line, B on its primary, C never seen."""
    sim = Sim(tmp_path)
    for minute in range(6):
        sim.cycle(vn(2026, 2, 6, 8, minute), {A: True, B: True},
                  gateway={A: minute == 0, B: True}, backup={A: True})
    return sim


@pytest.fixture
async def client(running_drill: Sim) -> AsyncIterator[Callable[..., TestClient]]:
    async with ws.app_clients() as start:

        async def make(tokens: dict[str, str] | None = None) -> TestClient:
            return await start(WebContext(
                inventory=lambda: running_drill.inventory, state=running_drill.engine.state,
                metrics_body=lambda: b"", drills=running_drill.ops.drills,
                tokens=ws.token_store(tokens) if tokens else None))

        yield make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_live_drill_count_for_everyone_and_per_scope(client) -> None:
    open_client = await client()
    body = await (await open_client.get("/api/v1/drills")).json()
    assert body["drills"] == [{"id": "dien-tap-1", "title": "Diễn tập lần 1",
                               "from": "2026-02-06T08:00:00+07:00",
                               "to": "2026-02-06T11:30:00+07:00", "active": True,
                               "connected": 2, "appeared": 2, "total": 3}]
    scoped = await client(VIETTEL)
    resp = await scoped.get("/api/v1/drills", headers=bearer("viettel-token"))
    (row,) = (await resp.json())["drills"]
    assert (row["connected"], row["total"]) == (1, 1)  # only Viettel's commune B


async def test_drill_report_download_is_scoped(client) -> None:
    scoped = await client(VIETTEL)
    resp = await scoped.get("/report/drill/dien-tap-1.csv", headers=bearer("viettel-token"))
    assert resp.status == 200
    assert "dien-tap-dien-tap-1.csv" in resp.headers["Content-Disposition"]
    text = (await resp.read()).decode("utf-8-sig")
    assert "Phường Đồng Xoài" in text and "Phường Bình Phước" not in text
    assert "hiện đang kết nối 1/1" in text
    resp = await scoped.get("/report/drill/khong-co.html", headers=bearer("admin-token"))
    assert resp.status == 404
    assert (await scoped.get("/report/drill/dien-tap-1.csv")).status == 401


async def test_commune_rows_say_which_line_carries_it_and_hosts_their_stamp(client) -> None:
    c = await client()
    rows = {r["commune"]: r for r in (await (await c.get("/api/v1/communes")).json())["communes"]}
    assert (rows[A]["line"], rows[A]["on_backup"]) == ("backup", True)
    assert rows[B]["line"] == "primary" and rows["25217"]["line"] == "none"
    detail = await (await c.get(f"/api/v1/communes/75/{B}")).json()
    assert detail["hosts"][0]["inspection"] == {"stamp": "CA-2", "date": "2026-01-30"}
    detail = await (await c.get(f"/api/v1/communes/75/{A}")).json()
    assert detail["hosts"][0]["inspection"] is None


async def test_page_shows_the_live_drill_count_backup_line_and_missing_stamp(
        running_drill: Sim) -> None:
    """In a real headless Chromium: the banner, the backup badge, the commune's page."""
    ctx = WebContext(inventory=lambda: running_drill.inventory,
                     state=running_drill.engine.state, metrics_body=lambda: b"",
                     drills=running_drill.ops.drills)
    async with ws.browser_on(ctx) as (page, site):
        await page.goto(f"{site}/")
        banner = page.locator("#drills .drill.live")
        await banner.wait_for()
        assert await banner.locator(".count").text_content() == "2/3"
        assert "Diễn tập lần 1" in (await banner.text_content() or "")
        row = page.locator(f'tr[data-key="75/{A}"]')
        assert await row.locator(".line-backup").text_content() == "đường dự phòng"
        assert await page.locator(f'tr[data-key="75/{B}"] .line-backup').count() == 0
        await page.goto(f"{site}/#/75/{A}")
        await page.locator(".detail .host").first.wait_for()
        detail = await page.locator(".detail").text_content() or ""
        assert "Đường đang dùng" in detail and "CHƯA KIỂM ĐỊNH" in detail


@pytest.mark.parametrize("ident", ['dt"1', "dt\r\nSet-Cookie: x=1", "../dt/1", "Diễn tập 1"])
async def test_a_drill_id_that_is_no_file_name_gives_a_safe_download_name(
        tmp_path: Path, ident: str) -> None:
    """The id comes from the inventory; the file name offered for download is made safe
    (no quote, CR/LF or slash in the header), and the report still downloads."""
    base = Sim(tmp_path)
    inventory = dataclasses.replace(
        base.inventory, drills=(dataclasses.replace(base.inventory.drills[0], id=ident),))
    sim = Sim(tmp_path, inventory)
    sim.cycle(vn(2026, 2, 6, 8, 0), {A: True, B: True})
    ctx = WebContext(inventory=lambda: sim.inventory, state=sim.engine.state,
                     metrics_body=lambda: b"", drills=sim.ops.drills)
    async with TestClient(TestServer(build_app(ctx), host="127.0.0.1")) as c:
        resp = await c.get(f"/report/drill/{quote(ident, safe='')}.xlsx")
        assert resp.status == 200
        assert "Set-Cookie" not in resp.headers
        disposition = resp.headers["Content-Disposition"]
        assert disposition == f'attachment; filename="dien-tap-{name_part(ident)}.xlsx"'
        assert len(await resp.read()) > 1000
