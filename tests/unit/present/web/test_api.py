"""The JSON API, health and metrics endpoints over a real loopback socket (no tokens: open)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient

from monitor.decide.status import CommuneStatus, TargetState
from monitor.decide.verdicts import deadline
from monitor.present.web.server import WebContext
from probes.result import ProbeResult, TargetDetail
from tests.support import web as ws

NOW = time.time()
INV = ws.inventory(("75", "01"))


def context(**overrides: object) -> WebContext:
    state = ws.state_for(INV, NOW)
    fields: dict = {
        "inventory": lambda: INV,
        "state": state,
        "metrics_body": lambda: b"tslcd_host_up 1\n",
        "samples": ws.samples_for(INV, state, NOW),
    }
    fields.update(overrides)
    return WebContext(**fields)


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[WebContext], object]]:
    async with ws.app_clients() as start:
        yield start


async def communes(client: TestClient, query: str = "") -> list[dict]:
    resp = await client.get(f"/api/v1/communes{query}")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["count"] == len(body["communes"])
    return body["communes"]


async def test_list_has_every_commune_with_live_status(client_for) -> None:
    client = await client_for(context())
    rows = await communes(client)
    assert len(rows) == len(list(INV.communes())) == 95 + 126
    assert {r["province"] for r in rows} == {"75", "01"}
    by_key = {f"{r['province']}/{r['commune']}": r for r in rows}
    state = ws.state_for(INV, NOW)
    for key, row in by_key.items():
        expected = state.communes[key].status if key in state.communes else CommuneStatus.UNKNOWN
        assert row["status_code"] == int(expected)
        assert row["status"] == expected.name.lower()


@pytest.mark.parametrize(
    ("query", "check"),
    [
        ("?province=75", lambda r: r["province"] == "75"),
        ("?province=1", lambda r: r["province"] == "01"),  # codes are normalised
        ("?isp=viettel", lambda r: r["isp"] == "Viettel"),
        ("?status=down", lambda r: r["status"] == "down"),
        ("?status=ok,degraded", lambda r: r["status"] in ("ok", "degraded")),
        ("?status=3", lambda r: r["status"] == "unknown"),
        ("?province=75&isp=VNPT&status=ok", lambda r: (r["province"], r["isp"], r["status"])
         == ("75", "VNPT", "ok")),
    ],
)
async def test_filters_keep_exactly_the_matching_communes(client_for, query, check) -> None:
    client = await client_for(context())
    everything = await communes(client)
    filtered = await communes(client, query)
    assert filtered, f"{query} matched nothing: the test data should cover it"
    assert filtered == [r for r in everything if check(r)]


async def test_search_ignores_diacritics_and_case(client_for) -> None:
    client = await client_for(context())
    rows = await communes(client, "?q=BIEN HOA")
    assert [r["name"] for r in rows] == ["Phường Biên Hòa"]
    assert await communes(client, "?q=Biên Hòa") == rows


async def test_unknown_status_is_a_client_error(client_for) -> None:
    client = await client_for(context())
    resp = await client.get("/api/v1/communes?status=broken")
    assert resp.status == 400
    assert "broken" in (await resp.json())["error"]


async def test_detail_has_hosts_samples_milestones_history_and_targets(client_for) -> None:
    state = ws.state_for(INV, NOW)
    commune = INV.commune("75", "26068")
    detail = ProbeResult("target", "congtaidaibieu", False, NOW, 1.0, "timeout",
                         TargetDetail("https://x/", failed_phase="connect"))
    state.targets[("congtaidaibieu", "central")] = TargetState("congtaidaibieu", "central", False,
                                                               detail)
    state.targets[("congtaidaibieu", "01/00004")] = TargetState("congtaidaibieu", "01/00004",
                                                                True, detail)
    history = [{"at": NOW - 600, "host": None, "old": "ok", "new": "degraded"}]
    ctx = context(state=state, samples=ws.samples_for(INV, state, NOW),
                  history=lambda p, c: history if (p, c) == ("75", "26068") else [])
    client = await client_for(ctx)
    resp = await client.get("/api/v1/communes/75/26068")
    assert resp.status == 200
    body = await resp.json()
    assert body["name"] == "Phường Biên Hòa"
    assert body["subnet"] == str(commune.subnet)
    assert [h["name"] for h in body["hosts"]] == ["may-01", "may-02"]
    host = body["hosts"][0]
    assert host["up"] is True
    assert host["rtt"] == pytest.approx(0.0022)
    assert host["ip_config_ok"] is True
    assert len(host["samples"]) == 20
    assert host["samples"][-1]["rtt"] == pytest.approx(0.0022, rel=1e-3)
    assert body["history"] == history
    # another commune's vantage is not shown here
    assert [(t["vantage"], t["failed_phase"]) for t in body["targets"]] == [("central", "connect")]
    met = {m["id"]: (m["met"], m["late"]) for m in body["milestones"]}
    connected_due = deadline(ws.MILESTONES[1])
    assert met == {"ip_installed": (True, False), "connected": (False, connected_due < NOW)}


async def test_detail_of_unknown_commune_is_404(client_for) -> None:
    client = await client_for(context())
    resp = await client.get("/api/v1/communes/75/99999")
    assert resp.status == 404


async def test_unchanged_list_answers_304_to_its_etag(client_for) -> None:
    client = await client_for(context())
    first = await client.get("/api/v1/communes")
    etag = first.headers["ETag"]
    again = await client.get("/api/v1/communes", headers={"If-None-Match": etag})
    assert again.status == 304


async def test_healthz_follows_readiness_and_metrics_serves_the_body(client_for) -> None:
    ready = {"now": False}
    client = await client_for(context(ready=lambda: ready["now"]))
    assert (await client.get("/healthz")).status == 503
    ready["now"] = True
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert await resp.text() == "tslcd_host_up 1\n"


async def test_page_and_static_files_are_served(client_for) -> None:
    client = await client_for(context())
    page = await client.get("/")
    assert page.status == 200
    text = await page.text()
    assert '<html lang="vi">' in text and "/static/app.js" in text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for name in ("app.js", "app.css"):
        assert (await client.get(f"/static/{name}")).status == 200
