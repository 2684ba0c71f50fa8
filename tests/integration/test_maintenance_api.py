"""Maintenance windows while running (issue 16 item 5): added, listed and ended through the
API (real web app on loopback, real tokens, a real SQLite state file) and the CLI (the real
``tslcd-monitor maintenance`` command on the same file); each scope acts only where it sees
every commune the window covers."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient

from monitor.cli.maintenance import register
from monitor.present.web.auth import TokenStore, hash_token
from monitor.present.web.server import WebContext
from monitor.store.maintenance_db import MaintenanceBook
from tests.support import web as ws

INV = ws.inventory(("75", "01"), per_province=4)  # operators alternate VNPT / Viettel
ADMIN, BRANCH, PROV75 = "adm-" + "a" * 40, "br-" + "c" * 40, "p75-" + "d" * 40
TOKENS = TokenStore.loads(yaml.safe_dump({"tokens": [
    {"name": "quan-tri", "token_sha256": hash_token(ADMIN), "scope": "admin"},
    {"name": "vnpt-dong-nai", "token_sha256": hash_token(BRANCH),
     "scope": ["isp:VNPT", "province:75"]},
    {"name": "tinh-75", "token_sha256": hash_token(PROV75), "scope": "province:75"},
]}), "tokens.yaml")
VNPT_75 = next(c for c in INV.communes() if c.province == "75" and c.isp == "VNPT")
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
