"""Acknowledgement through a real Alertmanager (issue 16 item 4): the commune's alerts and
silences read from Alertmanager's API, silences created and expired through the monitor's
API by real tokens, each scope acting on exactly its lines; without Alertmanager a clear
answer and nothing offered.

The alerts reach Alertmanager through the shipped sink (``AlertmanagerSink``), the API is
the real web app on a loopback port, the tokens come from a real tokens file text.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from inventory.model import Commune
from monitor.alerts.alertmanager import AlertmanagerSink
from monitor.alerts.am_api import AlertmanagerApi, RefusedError
from monitor.alerts.event import alert_id, make_event
from monitor.common.backoff import Backoff
from monitor.present.web.auth import TokenStore, hash_token
from monitor.present.web.server import WebContext, build_app, serve
from tests.support import require_real
from tests.support import web as ws
from tests.support.alertmanager import Alertmanager, cluster, poll, wait_ready
from tests.support.servers import free_tcp_port

NOW = time.time()
INV = ws.inventory(("75", "01"), per_province=4)  # operators alternate VNPT / Viettel
ADMIN, VNPT, BRANCH, PROV75 = ("adm-" + "a" * 40, "vnpt-" + "b" * 40, "br-" + "c" * 40,
                               "p75-" + "d" * 40)
TOKENS_FILE = yaml.safe_dump({"tokens": [
    {"name": "quan-tri", "token_sha256": hash_token(ADMIN), "scope": "admin"},
    {"name": "vnpt", "token_sha256": hash_token(VNPT), "scope": "isp:VNPT"},
    {"name": "vnpt-dong-nai", "token_sha256": hash_token(BRANCH),
     "scope": ["isp:VNPT", "province:75"]},
    {"name": "tinh-75", "token_sha256": hash_token(PROV75), "scope": "province:75"},
]})
TOKENS = TokenStore.loads(TOKENS_FILE, "tokens.yaml")
Start = Callable[[WebContext], Awaitable[TestClient]]


def commune(province: str, isp: str, nth: int = 0) -> Commune:
    return [c for c in INV.communes() if c.province == province and c.isp == isp][nth]


VNPT_75, VIETTEL_75 = commune("75", "VNPT"), commune("75", "Viettel")
VNPT_01 = commune("01", "VNPT")


def context(alertmanager: AlertmanagerApi | None, tokens: TokenStore | None = TOKENS) -> WebContext:
    return WebContext(inventory=lambda: INV, state=ws.state_for(INV, NOW),
                      metrics_body=lambda: b"", tokens=tokens, alertmanager=alertmanager)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def url(c: Commune, tail: str = "") -> str:
    return f"/api/v1/communes/{c.province}/{c.code}{tail}"


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[Alertmanager]:
    """A real Alertmanager holding a firing commune_down of every commune, as the monitor's
    sink posts them."""
    config = tmp_path / "am.yml"
    config.write_text(yaml.safe_dump({"route": {"receiver": "nobody"},
                                      "receivers": [{"name": "nobody"}]}), encoding="utf-8")
    with cluster(config, tmp_path) as managers:
        am = managers[0]
        await wait_ready(am)
        sink = AlertmanagerSink(am.url, lambda: INV, page="http://127.0.0.1:1/",
                                backoff=Backoff(attempts=3, base=0.05, cap=0.2))
        try:
            for c in INV.communes():
                await sink.deliver(make_event(
                    event_id=alert_id("commune_down", c.key, "", NOW), event="commune_down",
                    state="firing", province=c.province, commune=c.code, host=None,
                    since=NOW - 60, message=f"{c.name}: mất kết nối"))
            yield am
        finally:
            await sink.close()


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    async with ws.app_clients() as starter:
        yield starter


async def shown(client: TestClient, token: str, c: Commune) -> dict[str, Any]:
    response = await client.get(url(c, "/alerts"), headers=bearer(token))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def until_silenced(client: TestClient, token: str, c: Commune, silenced: bool) -> None:
    """Alertmanager marks its alerts silenced on its own schedule: wait for the page's view."""
    async def check(_session: Any) -> bool:
        view = await shown(client, token, c)
        return view["silenced"] is silenced and all(
            a["silenced"] is silenced for a in view["alerts"])

    await poll(check, f"{c.key} silenced={silenced}")


async def test_admin_silences_a_commune_it_shows_and_ends(manager: Alertmanager,
                                                          start: Start) -> None:
    client = await start(context(AlertmanagerApi([manager.url])))
    before = await shown(client, ADMIN, VIETTEL_75)
    assert [a["alertname"] for a in before["alerts"]] == ["commune_down"]
    assert before["silenced"] is False and before["may_silence"] is True

    response = await client.post(url(VIETTEL_75, "/silence"), headers=bearer(ADMIN),
                                 json={"comment": "Đang sửa cáp quang", "minutes": 120})
    assert response.status == 201, await response.text()
    ident = (await response.json())["id"]
    await until_silenced(client, ADMIN, VIETTEL_75, True)
    view = await shown(client, ADMIN, VIETTEL_75)
    assert [(s["id"], s["by"], s["comment"]) for s in view["silences"]] == [
        (ident, "quan-tri", "Đang sửa cáp quang")]
    others = await shown(client, ADMIN, VNPT_75)  # the silence is this commune's only
    assert others["silenced"] is False and not others["alerts"][0]["silenced"]

    ended = await client.delete(url(VIETTEL_75, "/silence"), headers=bearer(ADMIN))
    assert ended.status == 200 and (await ended.json())["expired"] == [ident]
    await until_silenced(client, ADMIN, VIETTEL_75, False)
    again = await client.delete(url(VIETTEL_75, "/silence"), headers=bearer(ADMIN))
    assert again.status == 404


async def test_an_operator_acts_only_on_its_own_lines(manager: Alertmanager,
                                                      start: Start) -> None:
    client = await start(context(AlertmanagerApi([manager.url])))
    assert (await client.get(url(VIETTEL_75, "/alerts"), headers=bearer(VNPT))).status == 404
    refused = await client.post(url(VIETTEL_75, "/silence"), headers=bearer(VNPT),
                                json={"comment": "x", "minutes": 60})
    assert refused.status == 403
    assert (await client.delete(url(VIETTEL_75, "/silence"), headers=bearer(VNPT))).status == 403
    assert (await shown(client, ADMIN, VIETTEL_75))["silences"] == []

    own = await client.post(url(VNPT_01, "/silence"), headers=bearer(VNPT),
                            json={"comment": "Bảo dưỡng", "minutes": 30})
    assert own.status == 201
    view = await shown(client, VNPT, VNPT_01)
    assert view["may_silence"] is True and view["silences"][0]["by"] == "vnpt"

    watcher = await shown(client, PROV75, VIETTEL_75)  # a province watches, does not silence
    assert watcher["may_silence"] is False
    assert (await client.post(url(VIETTEL_75, "/silence"), headers=bearer(PROV75),
                              json={"comment": "x", "minutes": 60})).status == 403


async def test_combined_scope_sees_and_silences_exactly_the_intersection(
        manager: Alertmanager, start: Start) -> None:
    client = await start(context(AlertmanagerApi([manager.url])))
    listed = await (await client.get("/api/v1/communes", headers=bearer(BRANCH))).json()
    expected = {c.key for c in INV.communes() if c.isp == "VNPT" and c.province == "75"}
    assert {f"{r['province']}/{r['commune']}" for r in listed["communes"]} == expected
    me = await (await client.get("/api/v1/me", headers=bearer(BRANCH))).json()
    assert me == {"scope": "isp:VNPT+province:75", "auth": True, "alertmanager": True}

    for outside in (VIETTEL_75, VNPT_01):
        assert (await client.get(url(outside, "/alerts"), headers=bearer(BRANCH))).status == 404
        assert (await client.post(url(outside, "/silence"), headers=bearer(BRANCH),
                                  json={"comment": "x", "minutes": 60})).status == 403
    done = await client.post(url(VNPT_75, "/silence"), headers=bearer(BRANCH),
                             json={"comment": "Chi nhánh Đồng Nai xử lý", "minutes": 60})
    assert done.status == 201
    await until_silenced(client, BRANCH, VNPT_75, True)


@pytest.mark.parametrize("body", [{"minutes": 60}, {"comment": " ", "minutes": 60},
                                  {"comment": "x", "minutes": 1},
                                  {"comment": "x", "minutes": 8 * 24 * 60},
                                  {"comment": "x", "minutes": "60"}, ["x"]])
async def test_a_silence_needs_a_comment_and_a_bounded_duration(
        manager: Alertmanager, start: Start, body: Any) -> None:
    client = await start(context(AlertmanagerApi([manager.url])))
    response = await client.post(url(VNPT_75, "/silence"), headers=bearer(ADMIN), json=body)
    assert response.status == 400
    assert (await shown(client, ADMIN, VNPT_75))["silences"] == []


async def test_without_alertmanager_the_answer_is_clear(start: Start) -> None:
    client = await start(context(None))
    me = await (await client.get("/api/v1/me", headers=bearer(ADMIN))).json()
    assert me["alertmanager"] is False
    read = await client.get(url(VNPT_75, "/alerts"), headers=bearer(ADMIN))
    assert read.status == 404 and "Alertmanager" in (await read.json())["error"]
    write = await client.post(url(VNPT_75, "/silence"), headers=bearer(ADMIN),
                              json={"comment": "x", "minutes": 60})
    assert write.status == 409 and "Alertmanager" in (await write.json())["error"]


async def test_an_unreachable_alertmanager_never_shows_its_credentials(start: Start) -> None:
    secret = "s3cr3t-pass"
    dead = f"http://monitor:{secret}@127.0.0.1:{free_tcp_port()}"
    client = await start(context(AlertmanagerApi([dead], timeout=2.0)))
    with capture_logs() as logs:
        response = await client.get(url(VNPT_75, "/alerts"), headers=bearer(ADMIN))
        text = await response.text()
    assert response.status == 502 and "no Alertmanager answered" in text
    assert secret not in text and secret not in repr(logs) and ADMIN not in repr(logs)


# --- the page, in a real headless Chromium ----------------------------------------------------


@pytest.fixture
async def browser_page() -> AsyncIterator[Any]:
    require_real(os.access(ws.CHROMIUM, os.X_OK), f"{ws.CHROMIUM} is not installed")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await ws.launch_chromium(pw)
        try:
            yield await chromium.new_page()
        finally:
            await chromium.close()


async def test_the_page_silences_a_commune_and_shows_it(manager: Alertmanager,
                                                        browser_page: Any) -> None:
    """No tokens file (the local demo: everyone is admin): the commune's page lists its
    firing alert, the form silences it, the page then shows the silence and who made it."""
    port = free_tcp_port()
    runner = await serve(build_app(context(AlertmanagerApi([manager.url]), tokens=None)),
                         "127.0.0.1", port)
    try:
        await browser_page.goto(f"http://127.0.0.1:{port}/#/{VNPT_75.key}")
        ack = browser_page.locator("#ack")
        await ack.get_by_text("commune_down").wait_for()
        await ack.locator("input[name=comment]").fill("Đang thay bộ chuyển đổi quang")
        await ack.locator("button[type=submit]").click()
        await ack.get_by_text("Đang thay bộ chuyển đổi quang").wait_for()
        assert "tslcd-monitor (no tokens file)" in await ack.inner_text()
        await ack.locator("button[name=unsilence]").wait_for()
    finally:
        await runner.cleanup()


async def test_the_page_says_when_there_is_no_alertmanager(browser_page: Any) -> None:
    port = free_tcp_port()
    runner = await serve(build_app(context(None, tokens=None)), "127.0.0.1", port)
    try:
        await browser_page.goto(f"http://127.0.0.1:{port}/#/{VNPT_75.key}")
        ack = browser_page.locator("#ack")
        await ack.get_by_text("Chưa cấu hình Alertmanager").wait_for()
        assert await ack.locator("form").is_hidden()
    finally:
        await runner.cleanup()


async def test_a_refusal_by_alertmanager_is_told_apart_from_silence(
        manager: Alertmanager) -> None:
    """A 4xx is Alertmanager's answer (RefusedError), not a dead Alertmanager: the next
    one is not tried and the message names the call, not the request's content."""
    client = AlertmanagerApi([manager.url])
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(RefusedError, match="refused POST /api/v2/silences: HTTP 400"):
        await client.silence("75", VNPT_75.code, now, now - dt.timedelta(hours=1), "t", "x")
    assert await client.commune_silences("75", VNPT_75.code) == []
