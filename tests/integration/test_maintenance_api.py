"""Maintenance windows while running (issue 16 item 5): added, listed and ended through the
API (real web app on loopback, real tokens, a real SQLite state file) and the CLI (the real
``tslcd-monitor maintenance`` command on the same file); each scope acts only where it sees
every commune the window covers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient

from inventory.loader import dump, loads
from monitor.cli.maintenance import register
from monitor.common.config import Config, WebhookConfig
from monitor.decide.status import CommuneStatus
from monitor.present.web.auth import TokenStore, hash_token
from monitor.present.web.server import WebContext
from monitor.service.pipeline import Pipeline
from monitor.store.maintenance_db import MaintenanceBook
from tests.support import web as ws
from tests.support.engine_sim import STEP, make_commune, make_inventory, observe
from tests.support.operations_sim import INVENTORY as OPS_INVENTORY
from tests.support.operations_sim import B, b_down_on_election_day, vn
from tests.support.processes import stop
from tests.support.servers import WebhookReceiver, free_tcp_port

INV = ws.inventory(("75", "01"), per_province=4)  # operators alternate VNPT / Viettel
ADMIN, BRANCH, PROV75 = "adm-" + "a" * 40, "br-" + "c" * 40, "p75-" + "d" * 40
TOKENS = TokenStore.loads(yaml.safe_dump({"tokens": [
    {"name": "quan-tri", "token_sha256": hash_token(ADMIN), "scope": "admin"},
    {"name": "vnpt-dong-nai", "token_sha256": hash_token(BRANCH),
     "scope": ["isp:VNPT", "province:75"]},
    {"name": "tinh-75", "token_sha256": hash_token(PROV75), "scope": "province:75"},
]}), "tokens.yaml")
VNPT_75 = next(c for c in INV.communes() if c.province == "75" and c.isp == "VNPT")
EXE = str(Path(sys.executable).with_name("tslcd-monitor"))
Start = Callable[[WebContext], Awaitable[TestClient]]


def later(hours: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)).isoformat()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[TestClient, MaintenanceBook]]:
    book = MaintenanceBook(tmp_path / "state.db", recheck=0.0)
    async with ws.app_clients() as start:
        client = await start(WebContext(inventory=lambda: INV, state=ws.state_for(INV),
                                        metrics_body=lambda: b"", tokens=TOKENS,
                                        maintenance=book))
        yield client, book
    book.close()


async def test_add_list_and_end_through_the_api(
        site: tuple[TestClient, MaintenanceBook]) -> None:
    client, book = site
    added = await client.post("/api/v1/maintenance", headers=bearer(PROV75), json={
        "scope": "75", "to": later(2), "comment": "Cắt điện toàn tỉnh theo lịch"})
    assert added.status == 201, await added.text()
    window = await added.json()
    assert (window["scope"], window["by"], window["source"]) == ("75", "tinh-75", "api")
    assert book.windows()[0].scope == "75"  # what the engine will read

    listed = await (await client.get("/api/v1/maintenance", headers=bearer(BRANCH))).json()
    assert [w["id"] for w in listed["windows"]] == [window["id"]]  # it covers VNPT's lines too

    refused = await client.delete(f"/api/v1/maintenance/{window['id']}", headers=bearer(BRANCH))
    assert refused.status == 403  # it covers Viettel's lines too
    ended = await client.delete(f"/api/v1/maintenance/{window['id']}", headers=bearer(PROV75))
    assert ended.status == 200 and (await ended.json())["ended"] is not None
    assert book.windows() == ()
    again = await client.delete(f"/api/v1/maintenance/{window['id']}", headers=bearer(ADMIN))
    assert again.status == 409
    everything = await client.get("/api/v1/maintenance?all=1", headers=bearer(ADMIN))
    assert [w["id"] for w in (await everything.json())["windows"]] == [window["id"]]


async def test_each_scope_sets_windows_only_over_what_it_sees(
        site: tuple[TestClient, MaintenanceBook]) -> None:
    client, _ = site
    body = {"to": later(1), "comment": "Thay thiết bị"}
    own = await client.post("/api/v1/maintenance", headers=bearer(BRANCH),
                            json={**body, "scope": VNPT_75.key})
    assert own.status == 201
    whole = await client.post("/api/v1/maintenance", headers=bearer(BRANCH),
                              json={**body, "scope": "75"})
    assert whole.status == 403
    elsewhere = await client.post("/api/v1/maintenance", headers=bearer(PROV75),
                                  json={**body, "scope": "01"})
    assert elsewhere.status == 404
    listed = await (await client.get("/api/v1/maintenance", headers=bearer(PROV75))).json()
    assert [w["scope"] for w in listed["windows"]] == [VNPT_75.key]
    other = await client.get("/api/v1/maintenance", headers=bearer(BRANCH))
    assert [w["by"] for w in (await other.json())["windows"]] == ["vnpt-dong-nai"]


@pytest.mark.parametrize(("body", "message"), [
    ({"scope": "75", "to": later(1)}, "comment is required"),
    ({"scope": "75", "from": later(-2), "to": later(-1), "comment": "x"}, "already over"),
    ({"scope": "75", "to": later(24 * 40), "comment": "x"}, "at most 31 days"),
    ({"scope": "75", "to": "tomorrow", "comment": "x"}, "not an ISO date-time"),
    ({"scope": "75/1/2", "to": later(1), "comment": "x"}, "PROV or PROV/COMMUNE"),
])
async def test_a_bad_window_is_refused_with_the_reason(
        site: tuple[TestClient, MaintenanceBook], body: dict[str, str], message: str) -> None:
    client, book = site
    response = await client.post("/api/v1/maintenance", headers=bearer(ADMIN), json=body)
    assert response.status == 400 and message in (await response.json())["error"]
    assert book.listed(ended=True) == []


async def test_without_a_book_the_answer_is_clear() -> None:
    async with ws.app_clients() as start:
        client = await start(WebContext(inventory=lambda: INV, state=ws.state_for(INV),
                                        metrics_body=lambda: b""))
        assert (await client.get("/api/v1/maintenance")).status == 404
        added = await client.post("/api/v1/maintenance", json={"scope": "75"})
        assert added.status == 409 and "maintenance" in (await added.json())["error"]


def test_registered_commands_reach_the_same_book(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's verbs, through an argparse tree as main.py builds it."""
    parser = argparse.ArgumentParser(prog="tslcd-monitor")
    register(parser.add_subparsers(dest="command", required=True))
    state = tmp_path / "state.db"
    MaintenanceBook(state).close()  # the monitor made its state database

    def run(*argv: str) -> int:
        args = parser.parse_args(["maintenance", *argv])
        return int(args.handler(args))

    assert run("add", "--state", str(state), "--scope", "75/26041", "--to", later(1),
               "--comment", "Nâng cấp", "--by", "ky-thuat") == 0
    ident = int(capsys.readouterr().out.split("\t")[0])
    assert run("list", "--state", str(state)) == 0
    assert "75/26041" in capsys.readouterr().out
    assert run("end", "--state", str(state), str(ident)) == 0
    assert "ended" in capsys.readouterr().out
    assert run("end", "--state", str(state), str(ident)) == 1
    assert run("list", "--state", str(state)) == 0 and capsys.readouterr().out == ""
    assert run("add", "--state", str(tmp_path / "none.db"), "--scope", "75", "--to", later(1),
               "--comment", "x") == 2
    assert "no such state database" in capsys.readouterr().err


# --- the shipped path: a window added through the API mutes the next outage, no restart ------

DARK, ALSO_DARK = make_commune("26041"), make_commune("26068", name="Phường Tam Hiệp")


async def test_a_window_added_through_the_api_mutes_the_next_outage(tmp_path: Path) -> None:
    """One monitor as ``run`` builds it (pipeline over a state file, a webhook sink, the web
    app over its book): the window for 75/26041 is posted while it runs; the next outage of
    that commune notifies nobody, the same outage of its neighbour does."""
    async with WebhookReceiver() as hook:
        config = Config(webhooks=(WebhookConfig(hook.url),))
        pipeline = Pipeline(make_inventory(DARK, ALSO_DARK), config, str(tmp_path / "s.db"))
        await pipeline.start()
        try:
            async with ws.app_clients() as start:
                client = await start(WebContext(
                    inventory=lambda: pipeline.inventory, state=pipeline.engine.state,
                    metrics_body=lambda: b"", maintenance=pipeline.maintenance))
                now = time.time()
                for n in range(2):
                    cycle(pipeline, now + n * STEP, dark=False)
                added = await client.post("/api/v1/maintenance", json={
                    "scope": "75/26041", "to": later(1), "comment": "Thay bộ định tuyến"})
                assert added.status == 201
                for n in range(2, 8):
                    cycle(pipeline, now + n * STEP, dark=True)
                down = await hook.wait_for(1)
                await asyncio.sleep(0.5)  # a muted alert would have come with the other
            assert [(a["event"], a["commune"]) for a in hook.received] == [
                ("commune_down", "26068")], down
        finally:
            await pipeline.stop()


def cycle(pipeline: Pipeline, at: float, *, dark: bool) -> None:
    for commune in (DARK, ALSO_DARK):
        pipeline.ingest_commune(observe(at, hosts=not dark, gateway=not dark, commune=commune),
                                "central")


def test_the_cli_reaches_a_running_monitor_within_a_cycle(tmp_path: Path) -> None:
    """The real ``run`` (2 s cycles over loopback communes) and the real ``maintenance``
    command on its state database: the window shows in ``tslcd_commune_maintenance`` within
    a few cycles, and goes when ended; the monitor is never restarted."""
    quick = ws.inventory(("75",), per_province=2, hosts=1)
    quick = dataclasses.replace(quick, defaults=dataclasses.replace(quick.defaults, interval=2.0))
    (tmp_path / "inventory.yaml").write_text(dump(quick), encoding="utf-8")
    port, state = free_tcp_port(), tmp_path / "state.db"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "listen": f"127.0.0.1:{port}", "state": str(state),
        "inventory": str(tmp_path / "inventory.yaml")}), encoding="utf-8")
    target = next(iter(quick.communes()))
    sample = f'tslcd_commune_maintenance{{province="75",commune="{target.code}"'
    with (tmp_path / "run.log").open("wb") as log:
        monitor = subprocess.Popen([EXE, "run", "--config", str(tmp_path / "config.yaml")],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        assert wait_metrics(port, lambda text: "tslcd_commune_maintenance" in text), \
            (tmp_path / "run.log").read_text("utf-8", "replace")[-2000:]
        added = subprocess.run([EXE, "maintenance", "add", "--state", str(state), "--scope",
                                target.key, "--to", later(1), "--comment", "Thay thiết bị"],
                               capture_output=True, text=True, timeout=30, check=True)
        ident = added.stdout.split("\t")[0]
        assert wait_metrics(port, lambda text: sample in text)
        subprocess.run([EXE, "maintenance", "end", "--state", str(state), ident],
                       capture_output=True, timeout=30, check=True)
        assert wait_metrics(port, lambda text: sample not in text)
        assert monitor.poll() is None  # the same process all along
    finally:
        stop([monitor])


def wait_metrics(port: int, done: Callable[[str], bool], timeout: float = 30.0) -> bool:
    """Scrape ``/metrics`` every half second until ``done`` says so (False at ``timeout``)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(OSError), urllib.request.urlopen(
                f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            if done(response.read().decode("utf-8")):
                return True
        time.sleep(0.5)
    return False


async def test_a_stored_window_holds_the_calendars_escalation_too(tmp_path: Path) -> None:
    """Operations asks the engine's windows: B down 18 minutes on election day inside a
    stored window escalates to nobody (without it, test_operations' twin escalates)."""
    async with WebhookReceiver() as boss_hook:
        config = Config(escalation_webhooks=(WebhookConfig(boss_hook.url),))
        pipeline = Pipeline(loads(OPS_INVENTORY), config, str(tmp_path / "state.db"))
        pipeline.maintenance.clock = lambda: vn(2026, 3, 15, 5, 0)  # the simulated day
        pipeline.maintenance.add(f"75/{B}", vn(2026, 3, 15, 5, 0), vn(2026, 3, 15, 8, 0),
                                 "Thay thiết bị", "admin")
        await pipeline.start()
        try:
            b_down_on_election_day(pipeline)
            assert pipeline.engine.state.communes[f"75/{B}"].status == CommuneStatus.DOWN
            await asyncio.sleep(0.5)
        finally:
            await pipeline.stop()
        assert boss_hook.received == []
