"""Access control: each scope sees exactly its communes, everywhere (list, filters, search,
detail, reports, metrics); forged, expired and missing tokens get 401; the login cookie."""

from __future__ import annotations

import csv
import io
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openpyxl
import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from monitor.present.web.auth import Scope, TokenFileError, TokenStore, hash_token
from monitor.present.web.server import COOKIE, WebContext, build_app, serve
from tests.support import require_real
from tests.support import web as ws

NOW = time.time()
INV = ws.inventory(("75", "01"))
ADMIN, VNPT = "adm-" + "a" * 40, "vnpt-" + "b" * 40
PROV75, METRICS = "p75-" + "c" * 40, "m-" + "d" * 40
ZERO = "0" * 64  # YAML reads an all-digit hash as a number unless quoted
EXPIRED, FORGED = "old-" + "e" * 40, "vnpt-" + "b" * 39 + "x"
TOKENS = {ADMIN: "admin", VNPT: "isp:vnpt", PROV75: "province:75", METRICS: "metrics",
          EXPIRED: "admin"}
SCOPE_OF = {ADMIN: lambda c: True, VNPT: lambda c: c.isp == "VNPT",
            PROV75: lambda c: c.province == "75"}


def context(metrics_token: str | None = None) -> WebContext:
    state = ws.state_for(INV, NOW)
    return WebContext(
        inventory=lambda: INV,
        state=state,
        metrics_body=lambda: b"tslcd_host_up 1\n",
        samples=ws.samples_for(INV, state, NOW),
        tokens=ws.token_store(TOKENS, expired=[EXPIRED]),
        metrics_token=metrics_token,
    )


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(context("scrape-" + "f" * 40)),
                                     host="127.0.0.1")) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def expected_keys(token: str) -> set[str]:
    return {c.key for c in INV.communes() if SCOPE_OF[token](c)}


async def listed(client: TestClient, token: str, query: str = "") -> set[str]:
    resp = await client.get(f"/api/v1/communes{query}", headers=bearer(token))
    assert resp.status == 200
    return {f"{r['province']}/{r['commune']}" for r in (await resp.json())["communes"]}


@pytest.mark.parametrize("token", [ADMIN, VNPT, PROV75])
async def test_each_scope_lists_exactly_its_communes(client: TestClient, token: str) -> None:
    keys = await listed(client, token)
    assert keys == expected_keys(token)
    assert 0 < len(keys) <= len(list(INV.communes()))


@pytest.mark.parametrize(
    ("token", "query"),
    [
        (VNPT, "?isp=Viettel"),
        (PROV75, "?province=01"),
        (VNPT, "?q=Phường Biên Hòa"),  # a Viettel commune
        (PROV75, "?q=Hà Nội"),
        (VNPT, "?status=down,degraded,ok,unknown"),
    ],
)
async def test_filters_and_search_never_reach_outside_the_scope(client, token, query) -> None:
    assert await listed(client, token, query) <= expected_keys(token)


@pytest.mark.parametrize("token", [VNPT, PROV75])
async def test_detail_outside_the_scope_is_indistinguishable_from_missing(client, token) -> None:
    outside = next(c for c in INV.communes() if not SCOPE_OF[token](c))
    inside = next(c for c in INV.communes() if SCOPE_OF[token](c))
    resp = await client.get(f"/api/v1/communes/{outside.province}/{outside.code}",
                            headers=bearer(token))
    missing = await client.get("/api/v1/communes/75/99999", headers=bearer(token))
    assert (resp.status, await resp.json()) == (missing.status, await missing.json())
    assert resp.status == 404
    ok = await client.get(f"/api/v1/communes/{inside.province}/{inside.code}",
                          headers=bearer(token))
    assert ok.status == 200


@pytest.mark.parametrize("token", [ADMIN, VNPT, PROV75])
async def test_reports_hold_only_the_scope(client: TestClient, token: str) -> None:
    expected = expected_keys(token)
    resp = await client.get("/report/readiness.csv", headers=bearer(token))
    assert resp.status == 200
    text = (await resp.read()).decode("utf-8-sig")
    communes_part = text.split("\r\n\r\n")[0]
    rows = list(csv.reader(io.StringIO(communes_part)))[1:]
    assert {f"{r[0]}/{r[2]}" for r in rows} == expected

    xlsx = await client.get("/report/readiness.xlsx", headers=bearer(token))
    book = openpyxl.load_workbook(io.BytesIO(await xlsx.read()))
    sheet_rows = list(book["Theo xã"].iter_rows(min_row=2, values_only=True))
    assert {f"{r[0]}/{r[2]}" for r in sheet_rows} == expected
    provinces = {r[0] for r in book["Tổng hợp"].iter_rows(min_row=2, values_only=True)}
    assert provinces == {k.split("/")[0] for k in expected} | {None}  # None: the grand total

    page = await (await client.get("/report/readiness.html", headers=bearer(token))).text()
    outside = [c for c in INV.communes() if c.key not in expected]
    assert all(f"<td>{c.code}</td>" not in page for c in outside)


@pytest.mark.parametrize(
    "headers",
    [{}, bearer(FORGED), bearer(EXPIRED), bearer(METRICS), bearer(""),
     {"Authorization": f"Basic {VNPT}"}, {"Cookie": f"{COOKIE}={FORGED}"}],
    ids=["none", "forged", "expired", "metrics-only", "empty", "basic", "forged-cookie"],
)
@pytest.mark.parametrize("path", ["/api/v1/communes", "/api/v1/communes/75/26068",
                                  "/report/readiness.csv", "/api/v1/me"])
async def test_bad_or_missing_token_is_401(client, headers, path) -> None:
    resp = await client.get(path, headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Phường" not in await resp.text()


async def test_page_without_token_redirects_to_login_and_healthz_stays_open(client) -> None:
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    assert (await client.get("/login")).status == 200
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/static/app.js")).status == 200


@pytest.mark.parametrize(
    ("token", "status"),
    [(ADMIN, 200), (METRICS, 200), ("scrape-" + "f" * 40, 200), (VNPT, 401), (PROV75, 401),
     (FORGED, 401), (EXPIRED, 401), ("", 401)],
)
async def test_metrics_needs_its_own_or_an_admin_token(client, token, status) -> None:
    resp = await client.get("/metrics", headers=bearer(token) if token else {})
    assert resp.status == status


async def test_metrics_token_alone_guards_metrics_but_nothing_else() -> None:
    ctx = context("scrape-" + "f" * 40)
    ctx.tokens = None
    async with TestClient(TestServer(build_app(ctx), host="127.0.0.1")) as c:
        assert (await c.get("/metrics")).status == 401
        assert (await c.get("/metrics", headers=bearer("scrape-" + "f" * 40))).status == 200
        assert (await c.get("/api/v1/communes")).status == 200  # no tokens file: open


async def test_login_sets_a_strict_httponly_cookie_that_then_scopes_the_api(client) -> None:
    bad = await client.post("/login", data={"token": FORGED}, allow_redirects=False)
    assert bad.status == 401
    assert "Set-Cookie" not in bad.headers
    resp = await client.post("/login", data={"token": VNPT}, allow_redirects=False)
    assert resp.status == 303
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    keys = {f"{r['province']}/{r['commune']}" for r in
            (await (await client.get("/api/v1/communes")).json())["communes"]}
    assert keys == expected_keys(VNPT)
    assert (await (await client.get("/api/v1/me")).json())["scope"] == "isp:vnpt"  # as filed
    out = await client.post("/logout", allow_redirects=False)
    assert out.status == 303
    assert (await client.get("/api/v1/communes")).status == 401


async def test_tokens_are_never_logged(client) -> None:
    with capture_logs() as logs:
        await client.post("/login", data={"token": FORGED})
        await client.post("/login", data={"token": VNPT})
        await client.get("/api/v1/communes", headers=bearer(EXPIRED))
    assert logs, "authentication events are logged"
    assert not any(tok in repr(logs) for tok in (FORGED, VNPT, EXPIRED))


async def test_tls_serves_https_and_marks_the_cookie_secure(tmp_path: Path, free_port) -> None:
    require_real(shutil.which("openssl") is not None, "openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    runner = await serve(build_app(context()), "127.0.0.1", free_port, str(cert), str(key))
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as session:
            url = f"https://127.0.0.1:{free_port}"
            async with session.get(f"{url}/healthz", ssl=trust) as resp:
                assert resp.status == 200
            async with session.post(f"{url}/login", data={"token": ADMIN}, ssl=trust,
                                    allow_redirects=False) as resp:
                assert resp.status == 303
                assert "Secure" in resp.headers["Set-Cookie"]
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{free_port}/healthz"):
                    pass
    finally:
        await runner.cleanup()


# --- the tokens file ----------------------------------------------------------------------


def test_tokens_file_holds_hashes_with_scope_and_expiry(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(
        "tokens:\n"
        f"  - {{name: vnpt, token_sha256: {hash_token(VNPT)}, scope: 'isp:VNPT'}}\n"
        f"  - {{name: old, token_sha256: {hash_token(EXPIRED)}, scope: admin,"
        " expires: 2020-01-01T00:00:00+07:00}\n"
        f"  - {{name: p, token_sha256: {hash_token(PROV75).upper()}, scope: 'province:75',"
        " expires: 2999-01-01}\n",
        encoding="utf-8",
    )
    store = TokenStore.load(path)
    assert store.authenticate(VNPT).scope == Scope("isp", "vnpt")
    assert str(store.authenticate(VNPT).scope) == "isp:VNPT"
    assert store.authenticate(EXPIRED) is None
    assert store.authenticate(PROV75).scope == Scope("province", "75")
    assert store.authenticate(FORGED) is None
    assert store.authenticate(None) is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: x, token: secret, scope: admin}", "never the token"),
        ("{name: x, token_sha256: abc, scope: admin}", "64 hex"),
        (f"{{name: x, token_sha256: '{ZERO}', scope: 'isp:'}}", "scope"),
        (f"{{name: x, token_sha256: '{ZERO}', scope: root}}", "scope"),
        (f"{{name: x, token_sha256: '{ZERO}', scope: admin, colour: red}}", "unknown"),
        (f"{{name: x, token_sha256: '{ZERO}', scope: admin, expires: soon}}", "soon"),
    ],
)
def test_malformed_tokens_file_is_rejected(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens:\n  - {entry}\n", encoding="utf-8")
    with pytest.raises(TokenFileError, match=message):
        TokenStore.load(path)


def test_new_token_helper_prints_an_entry_that_authenticates_the_token(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "monitor.present.web.auth", "new",
                          "--name", "vnpt-dni",
                          "--scope", "isp:VNPT"], capture_output=True, text=True, check=True,
                         timeout=60)
    token = out.stderr.strip().rsplit(" ", 1)[-1]
    assert len(token) >= 40 and token not in out.stdout
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens:\n" + "".join(f"  {line}\n" for line in out.stdout.splitlines()))
    entry = TokenStore.load(path).authenticate(token)
    assert entry is not None and entry.name == "vnpt-dni" and str(entry.scope) == "isp:VNPT"


def test_hash_helper_prints_the_sha256_of_the_token_on_stdin() -> None:
    out = subprocess.run([sys.executable, "-m", "monitor.present.web.auth", "hash"],
                         input=VNPT + "\n",
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == hash_token(VNPT)
    assert VNPT not in out.stdout
