"""The availability report: the rule on hand-made timelines, then the whole path: the real
engine writes a real state database, ``tslcd-monitor report availability`` reads it."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from inventory.loader import demo_path, load
from inventory.model import Commune, Inventory
from monitor.cli.main import main
from monitor.cycle.observation import CommuneObservation, HostObservation
from monitor.decide.engine import StateEngine
from monitor.present import availability as av
from monitor.present.availability import Change, StateHistory
from monitor.present.web.server import WebContext, build_app
from monitor.store.state_db import Store
from tests.support import web as ws

T0 = av.day_start(av.parse_day("2026-02-06", "test"))  # 00:00 Vietnam time


def changes(*rows: tuple[float, str, str]) -> list[Change]:
    return [Change(T0 + at, old, new) for at, old, new in rows]


# --- the rule -------------------------------------------------------------------------------


def test_one_outage_between_up_spans() -> None:
    f = av.commune_figures(changes((0, "unknown", "ok"), (100, "ok", "down"),
                                   (120, "down", "ok")), T0 + 1000, T0, T0 + 2000)
    assert (f.outages, f.down_seconds, f.longest, f.mttr) == (1, 20, 20, 20)
    assert f.observed_seconds == 1000  # to the last sighting, not to the period's end
    assert f.availability == pytest.approx(980 / 1000)


def test_time_before_the_first_record_and_unknown_spans_are_no_data() -> None:
    f = av.commune_figures(changes((500, "unknown", "ok"), (600, "ok", "unknown"),
                                   (900, "unknown", "ok")), T0 + 1000, T0, T0 + 2000)
    assert (f.up_seconds, f.down_seconds, f.availability) == (200, 0, 1.0)
    assert av.commune_figures([], None, T0, T0 + 10).availability is None


def test_degraded_is_up_and_an_ongoing_outage_is_not_repaired() -> None:
    f = av.commune_figures(changes((0, "unknown", "degraded"), (50, "degraded", "down")),
                           T0 + 80, T0, T0 + 2000)
    assert (f.up_seconds, f.down_seconds, f.outages, f.repaired, f.mttr) == (50, 30, 1, 0, None)


def test_the_period_clips_spans_and_an_outage_ending_after_it_is_not_repaired() -> None:
    rows = changes((0, "unknown", "ok"), (100, "ok", "down"), (300, "down", "ok"))
    f = av.commune_figures(rows, T0 + 1000, T0 + 200, T0 + 250)
    assert (f.down_seconds, f.up_seconds, f.outages, f.repaired) == (50, 0, 1, 0)
    f = av.commune_figures(rows, T0 + 1000, T0 + 400, T0 + 500)
    assert (f.outages, f.availability) == (0, 1.0)


def test_down_to_down_rows_make_one_outage() -> None:
    f = av.commune_figures(changes((0, "unknown", "down"), (10, "down", "down"),
                                   (30, "down", "ok")), T0 + 40, T0, T0 + 40)
    assert (f.outages, f.longest) == (1, 30)


def test_period_is_vietnam_days_both_included() -> None:
    start, end = av.period("2026-02-06", "07/02/2026")
    assert end - start == 2 * 86400  # type: ignore[operator]
    assert start == T0
    with pytest.raises(ValueError, match="--from"):
        av.period("6 Feb", None)
    with pytest.raises(ValueError, match="before"):
        av.period("2026-02-07", "2026-02-06")


def _three_communes() -> Inventory:
    """Three demo communes (both operators); the third named like a formula."""
    inv = load(demo_path())
    prov = inv.provinces[0]
    a, b, c = prov.communes[:3]
    c = dataclasses.replace(c, name='=HYPERLINK("http://x","y")')
    return Inventory(version=1, defaults=inv.defaults,
                     provinces=(dataclasses.replace(prov, communes=(a, b, c)),))


def test_totals_per_operator_and_province_and_inert_cells(tmp_path: Path) -> None:
    inv = _three_communes()
    a, b, c = (x.key for x in inv.provinces[0].communes)
    hist = StateHistory(
        {a: changes((0, "unknown", "ok"), (100, "ok", "down"), (200, "down", "ok")),
         b: changes((0, "unknown", "ok"))},
        {a: T0 + 1000, b: T0 + 1000})
    report = av.availability(inv, hist, None, None, T0 + 1000)
    by_kind = {(g.kind, g.key): g.figures for g in report.groups}
    isp_a = inv.provinces[0].communes[0].isp
    assert by_kind[("isp", isp_a)].outages == 1
    assert by_kind[("total", "")].down_seconds == 100
    assert by_kind[("total", "")].availability == pytest.approx(1 - 100 / 2000)
    rows = {r.commune: r.figures.availability for r in report.communes}
    assert rows[c.split("/")[1]] is None  # never seen: no data, not up
    text = av.to_csv(report).decode("utf-8-sig")
    assert av.NO_DATA in text
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][0] == "Loại"
    formulas = [v for row in table for v in row if "HYPERLINK" in v]
    assert formulas == ["'=HYPERLINK(\"http://x\",\"y\")"]
    assert av.to_xlsx(report)[:2] == b"PK"
    assert "<tr class=\"outage\">" in av.to_html(report)


# --- the shipped path -----------------------------------------------------------------------


def _observation(commune: Commune, at: float, alive: bool) -> CommuneObservation:
    return CommuneObservation(
        province=commune.province, commune=commune.code, at=at,
        hosts=tuple(HostObservation(h.name, str(h.ip), alive, "icmp" if alive else None)
                    for h in commune.hosts),
        gateway_alive=alive)


def test_a_20_s_outage_from_the_real_engine_in_the_json_report(tmp_path: Path) -> None:
    """Demo inventory (95 communes), engine with a real Store; one commune's line cut from
    t=10 s to t=30 s, cycles every 2 s (down after 3 failures, up after 2 successes)."""
    inventory = load(demo_path())
    communes = list(inventory.communes())
    cut = communes[7]
    db = tmp_path / "state.db"
    store = Store(db)
    engine = StateEngine(inventory, store, clock=lambda: T0)
    for step in range(31):
        at = T0 + 2.0 * step
        alive = {c.key: not (c is cut and 10 <= 2 * step <= 30) for c in communes}
        engine.apply_cycle([_observation(c, at, alive[c.key]) for c in communes])
    store.close()

    out = tmp_path / "availability.json"
    assert main(["report", "availability", "--inventory", str(demo_path()), "--state", str(db),
                 "--format", "json", "-o", str(out)]) == 0
    rows = {r["commune"]: r for r in json.loads(out.read_text("utf-8"))}
    assert len(rows) == 95
    down = rows[cut.code]
    assert down["outages"] == 1
    assert down["downtime_seconds"] == pytest.approx(20, abs=2)
    assert 0 < down["availability"] < 1
    assert {r["availability"] for code, r in rows.items() if code != cut.code} == {1.0}
    assert {"province", "commune", "availability", "outages", "downtime_seconds"} <= set(down)

    # the same day named as Vietnam dates; a day before it holds no data
    assert main(["report", "availability", "--inventory", str(demo_path()), "--state", str(db),
                 "--from", "2026-02-05", "--to", "2026-02-05", "--format", "json",
                 "-o", str(out)]) == 0
    assert {r["availability"] for r in json.loads(out.read_text("utf-8"))} == {None}


def test_bad_input_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "state.db"
    Store(db).close()
    assert main(["report", "availability", "--inventory", str(demo_path()), "--state", str(db),
                 "--from", "yesterday"]) == 2
    assert "--from 'yesterday'" in capsys.readouterr().err
    assert main(["report", "availability", "--inventory", str(demo_path()), "--state",
                 str(tmp_path / "missing.db")]) == 2
    assert "missing.db" in capsys.readouterr().err


# --- the page and the API, scoped -----------------------------------------------------------

ADMIN, VNPT = "adm-" + "a" * 40, "vnpt-" + "b" * 40


async def test_page_and_api_hold_only_the_callers_communes(tmp_path: Path) -> None:
    """One VNPT and one Viettel commune cut for 20 s (real engine, real Store, real aiohttp
    server on loopback): a token for isp:VNPT sees VNPT's communes, outage and totals only."""
    inventory = load(demo_path())
    communes = list(inventory.communes())
    cuts = [next(c for c in communes if c.isp == isp) for isp in ("VNPT", "Viettel")]
    store = Store(tmp_path / "state.db")
    engine = StateEngine(inventory, store, clock=lambda: T0)
    for step in range(31):
        at = T0 + 2.0 * step
        engine.apply_cycle([_observation(c, at, not (c in cuts and 10 <= 2 * step <= 30))
                            for c in communes])
    ctx = WebContext(
        inventory=lambda: inventory, state=engine.state, metrics_body=lambda: b"",
        tokens=ws.token_store({ADMIN: "admin", VNPT: "isp:vnpt"}),
        status_history=lambda inv: av.history_from_store(inv, store, engine.state))
    async with TestClient(TestServer(build_app(ctx), host="127.0.0.1")) as client:
        for token, isps in ((ADMIN, {"VNPT", "Viettel"}), (VNPT, {"VNPT"})):
            headers = {"Authorization": f"Bearer {token}"}
            resp = await client.get("/api/v1/availability", headers=headers)
            assert resp.status == 200
            body = await resp.json()
            assert {r["isp"] for r in body["communes"]} == isps
            expected = [c for c in communes if c.isp in isps]
            assert len(body["communes"]) == len(expected)
            cut = [r for r in body["communes"] if r["outages"]]
            assert [r["commune"] for r in cut] == [c.code for c in cuts if c.isp in isps]
            totals = {(g["kind"], g["key"]): g for g in body["totals"]}
            assert totals[("total", "")]["downtime_seconds"] == pytest.approx(20 * len(cut),
                                                                              abs=2)
            assert {k for kind, k in totals if kind == "isp"} == isps
            page = await client.get("/report/availability.html", headers=headers)
            text = await page.text()
            assert all(f"<td>{c.code}</td>" not in text for c in communes
                       if c.isp not in isps)
            sheet = await client.get("/report/availability.csv", headers=headers)
            assert sheet.headers["Content-Disposition"].startswith("attachment")
        bad = await client.get("/api/v1/availability?from=someday",
                               headers={"Authorization": f"Bearer {ADMIN}"})
        assert bad.status == 400
        assert (await client.get("/api/v1/availability")).status == 401
    store.close()
