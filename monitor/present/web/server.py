"""The HTTP server of ``run`` and ``collector``: metrics, health, API, status page, reports.

Access control sits in one middleware: it resolves the caller's :class:`Scope` (bearer
token, or the same token in a cookie after the login form) before any handler runs, and
every handler reads only through that scope. With no tokens file everything is open (the
local demo); ``/healthz`` and the login page are always open.

The HTTP layer (:class:`HardenedRunner`) bounds what a client can hold open or send (header
timeout, field and body sizes), answers malformed requests with a bare status that never
echoes a header, and logs through structlog (one JSON line per request or error).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hmac
import ipaddress
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server as WebServer

from inventory.model import Commune, Inventory
from inventory.official import commune_code, province_code
from monitor.alerts import am_api
from monitor.common.clock import aware
from monitor.common.log import route_stdlib
from monitor.decide import drills, readiness
from monitor.decide.status import MonitorState
from monitor.present import availability, reports
from monitor.present.drill_report import WRITERS as DRILL_WRITERS
from monitor.present.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from monitor.present.rtt_history import RttHistory
from monitor.present.web import api, rights
from monitor.present.web.auth import OPEN, Scope, TokenEntry, TokenStore, TokenWatch, hash_token
from monitor.store.maintenance_db import MaintenanceBook, StoredWindow, normalise_scope, parse_time

log = structlog.get_logger("monitor.present.web")

COOKIE = "tslcd_token"
COOKIE_MAX_AGE = 12 * 3600  # seconds; a work day, then log in again
_PUBLIC = ("/healthz", "/login", "/static/", "/favicon.ico")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}


@dataclass
class WebContext:
    inventory: Callable[[], Inventory]
    state: MonitorState
    metrics_body: Callable[[], bytes]
    #: the same, gzipped once per render; when given, the one copy /metrics serves (a client
    #: that does not take gzip gets it unpacked as it reads, see :func:`unpacked`)
    metrics_body_gzip: Callable[[], bytes] | None = None
    history: Callable[[str, str], list[dict]] = field(default=lambda _p, _c: [])
    samples: RttHistory = field(default_factory=RttHistory)
    tokens: TokenStore | None = None  # None: no access control (local demo)
    metrics_token: str | None = None  # a token only for scraping /metrics
    ready: Callable[[], bool] = field(default=lambda: True)
    drills: drills.DrillTracker | None = None  # drill spans and live counts (operations)
    tokens_file: Path | None = None  # where ``tokens`` came from: watched, reloaded on change
    tokens_poll: float = 2.0  # seconds between checks of the tokens file
    #: the commune status changes of the given (scoped) inventory, for the availability
    #: report; None: no state behind this server (the report then holds no data)
    status_history: Callable[[Inventory], availability.StateHistory] | None = None
    #: Alertmanager's API (``alerts.alertmanagers``) for acknowledgement; None: not configured
    alertmanager: am_api.AlertmanagerApi | None = None
    #: run-time maintenance windows (the state database's); None: not available here
    maintenance: MaintenanceBook | None = None
    #: what readiness is judged on (first passes, first observations, attestations):
    #: the operations' in ``run``; by default what the state holds by itself
    evidence: Callable[[MonitorState], readiness.Evidence] = readiness.from_state


CTX = web.AppKey("ctx", WebContext)
VIEWS = web.AppKey("views", api.ScopedViews)
TOKEN_WATCH = web.AppKey("token_watch", TokenWatch)
SCOPE = web.RequestKey("scope", Scope)  # the caller's scope, set by the access control
CALLER = web.RequestKey("caller", str)  # the caller's token name (for a silence's createdBy)
OPEN_CALLER = "tslcd-monitor (no tokens file)"


def build_app(ctx: WebContext) -> web.Application:
    app = web.Application(middlewares=[_security_headers, _access_control],
                          client_max_size=MAX_BODY)
    app[CTX] = ctx
    app[VIEWS] = api.ScopedViews(ctx.inventory)
    static = resources.files("monitor.present.web") / "static"
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", index)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/v1/me", whoami)
    app.router.add_get("/api/v1/communes", list_communes)
    app.router.add_get("/api/v1/communes/{province}/{commune}", get_commune)
    app.router.add_get("/api/v1/communes/{province}/{commune}/alerts", commune_alerts)
    app.router.add_post("/api/v1/communes/{province}/{commune}/silence", silence_commune)
    app.router.add_delete("/api/v1/communes/{province}/{commune}/silence", unsilence_commune)
    app.router.add_get("/api/v1/maintenance", list_maintenance)
    app.router.add_post("/api/v1/maintenance", add_maintenance)
    app.router.add_delete("/api/v1/maintenance/{id:[0-9]+}", end_maintenance)
    app.router.add_get("/report/readiness.{fmt:csv|xlsx|html}", readiness_report)
    app.router.add_get("/report/availability.{fmt:csv|xlsx|html|json}", availability_report)
    app.router.add_get("/api/v1/availability", availability_api)
    app.router.add_get("/api/v1/drills", list_drills)
    app.router.add_get("/report/drill/{drill}.{fmt:csv|xlsx|html}", drill_report)
    app.router.add_static("/static/", str(static), append_version=False)
    if ctx.tokens_file is not None:
        app[TOKEN_WATCH] = TokenWatch(ctx.tokens_file, functools.partial(_use_tokens, ctx),
                                      ctx.tokens_poll)
        app.cleanup_ctx.append(_watch_tokens)
    return app


def _use_tokens(ctx: WebContext, store: TokenStore) -> None:
    """Swap the tokens in force: the next request authenticates against ``store``."""
    ctx.tokens = store


async def _watch_tokens(app: web.Application) -> AsyncIterator[None]:
    """Runs the tokens file's watch for as long as the app serves."""
    task = asyncio.create_task(app[TOKEN_WATCH].run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def reload_tokens(runner: web.AppRunner) -> None:
    """Re-read the tokens file now (SIGHUP); nothing when no tokens file is configured."""
    watch = runner.app.get(TOKEN_WATCH)
    if watch is not None:
        watch.request()


async def serve(app: web.Application, host: str, port: int, tls_cert: str | None = None,
                tls_key: str | None = None) -> web.AppRunner:
    """Start serving (HTTPS when given a certificate); stop with ``await runner.cleanup()``."""
    context = None
    if tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(tls_cert, tls_key)
    runner = HardenedRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=context).start()
    log.info("web_listening", host=host, port=port, tls=context is not None)
    ctx = app.get(CTX)
    if ctx is not None and ctx.tokens is None and not is_loopback(host):
        log.warning("web_open_beyond_loopback", host=host, port=port,
                    message="Trang, API và /metrics mở cho mọi người trên mạng (không có tệp "
                            "mã truy cập) / served beyond loopback without a tokens file")
    return runner


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine ("" and 0.0.0.0 are every interface)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- the HTTP layer: limits and logging ---------------------------------------------------------

#: Seconds a connection may take to send a whole request head, and may stay idle between
#: requests. aiohttp has no header-read timeout of its own, but its keep-alive timer already
#: runs from the moment a connection opens and closes it if no complete request head has
#: arrived when it fires (bytes dribbled in do not reset it), so it is the header timeout.
HEADER_TIMEOUT = 5.0
#: Largest request body (the login form only carries a token).
MAX_BODY = 64 * 1024
#: Largest request line and header field (aiohttp's default; a larger one is a 400).
MAX_FIELD = 8190
_LOGGED = web.RequestKey("logged", bool)  # its error is logged already: no access line


class _QuietRequestHandler(RequestHandler):
    """aiohttp's protocol with an error path that never echoes the request: its own
    ``handle_error`` puts the parser's message (which quotes the offending header line,
    cookie and all) into the 400 body and logs a multi-line traceback per bad request."""

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        request[_LOGGED] = True
        if status >= 500:
            log.error("web_handler_failed", method=request.method, path=request.path,
                      remote=request.remote, exc_info=exc)
        else:
            log.info("web_bad_request", status=status, remote=request.remote,
                     reason=type(exc).__name__ if exc is not None else "")
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        response = web.Response(status=status, text=f"{status} {_phrase(status)}\n")
        response.force_close()
        return response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class _Server(WebServer):
    def __call__(self) -> RequestHandler:
        return _QuietRequestHandler(self, loop=self._loop, **self._kwargs)


class HardenedRunner(web.AppRunner):
    """An :class:`~aiohttp.web.AppRunner` with the header timeout, the field limits, the
    quiet error path and access lines through structlog."""

    def __init__(self, app: web.Application) -> None:
        super().__init__(app, access_log_class=AccessLog, access_log=route_stdlib("aiohttp.access"),
                         keepalive_timeout=HEADER_TIMEOUT, max_line_size=MAX_FIELD,
                         max_field_size=MAX_FIELD, logger=route_stdlib("aiohttp.server"))
        for name in ("aiohttp.web", "aiohttp.internal"):
            route_stdlib(name)

    async def _make_server(self) -> WebServer:
        plain = await super()._make_server()
        return _Server(plain.request_handler, request_factory=plain.request_factory,
                       handler_cancellation=plain.handler_cancellation, **plain._kwargs)


class AccessLog(AbstractAccessLogger):
    """One structlog line per request: method, path (no query, no header), status, size,
    time. Successful requests at debug level (the page refreshes and Prometheus scrapes all
    day), and 401s too (the access control logs them with its reason); other refusals and
    failures at info."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.get(_LOGGED):
            return
        emit = log.debug if response.status < 400 or response.status == 401 else log.info
        emit("web_access", method=request.method, path=request.path, status=response.status,
             bytes=response.body_length, seconds=round(time, 4), remote=request.remote)

    @property
    def enabled(self) -> bool:
        return True


# --- middlewares ----------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.update(_SECURITY_HEADERS)
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def _access_control(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[CTX]
    path = request.path
    if path.startswith(_PUBLIC):
        return await handler(request)
    token = presented_token(request)
    if path == "/metrics":
        if _may_scrape(ctx, token):
            return await handler(request)
        return _unauthorized(request, "metrics")
    if ctx.tokens is None:
        request[SCOPE], request[CALLER] = OPEN, OPEN_CALLER
        return await handler(request)
    entry = ctx.tokens.authenticate(token)
    if entry is None or entry.scope.kind == "metrics":
        return _unauthorized(request, "missing" if not token else "rejected")
    request[SCOPE], request[CALLER] = entry.scope, entry.name
    return await handler(request)


def presented_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(COOKIE) or None


def _may_scrape(ctx: WebContext, token: str | None) -> bool:
    """Open when nothing is configured; else the metrics token, or an admin/metrics token."""
    if ctx.tokens is None and ctx.metrics_token is None:
        return True
    if ctx.metrics_token and token and _same(token, ctx.metrics_token):
        return True
    entry = ctx.tokens.authenticate(token) if ctx.tokens else None
    return entry is not None and entry.scope.kind in ("admin", "metrics")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(hash_token(a), hash_token(b))


def _unauthorized(request: web.Request, reason: str) -> web.StreamResponse:
    log.info("web_unauthorized", path=request.path, reason=reason, remote=request.remote)
    if request.method == "GET" and request.path == "/":
        raise web.HTTPSeeOther("/login")
    return web.json_response({"error": "unauthorized"}, status=401,
                             headers={"WWW-Authenticate": 'Bearer realm="tslcd-monitor"'})


def scope_of(request: web.Request) -> Scope:
    return request[SCOPE]


# --- plain endpoints ------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    ready = request.app[CTX].ready()
    return web.json_response({"status": "ok" if ready else "starting"},
                             status=200 if ready else 503)


async def metrics(request: web.Request) -> web.StreamResponse:
    """The render's one stored copy, gzipped, as it is for a client that takes gzip
    (Prometheus); unpacked as the client reads for one that does not."""
    ctx = request.app[CTX]
    headers = {"Content-Type": METRICS_CONTENT_TYPE, "Vary": "Accept-Encoding"}
    if ctx.metrics_body_gzip is None:
        return web.Response(body=ctx.metrics_body(), headers=headers)
    packed = ctx.metrics_body_gzip()
    if accepts_gzip(request.headers.get("Accept-Encoding")):
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=packed, headers=headers)
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    for piece in unpacked(packed):
        await response.write(piece)  # waits while the client's buffer is full
    await response.write_eof()
    return response


#: bytes of compressed input taken, and of plain text made, at one step of :func:`unpacked`
PACKED_STEP = 16 * 1024
PLAIN_STEP = 64 * 1024


def unpacked(packed: bytes) -> Iterator[bytes]:
    """A gzip member's text in pieces of at most ``PLAIN_STEP`` bytes, made as they are
    taken. A slow reader of plain /metrics then holds a piece, not a whole text of its own
    (nationwide ~12 MB: 60 such readers grew the collector by 114 MiB)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    view = memoryview(packed)
    for start in range(0, len(view), PACKED_STEP):
        data: bytes | memoryview = view[start:start + PACKED_STEP]
        while data:
            piece = inflater.decompress(data, PLAIN_STEP)
            data = inflater.unconsumed_tail
            if piece:
                yield piece
    rest = inflater.flush()
    if rest:
        yield rest


#: RFC 9110 §12.4.2 qvalue: 0 to 1, at most three decimals
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether a client's ``Accept-Encoding`` takes gzip (RFC 9110 §12.5.3): ``gzip`` (or its
    alias ``x-gzip``), or failing that ``*``, with a weight above 0: ``gzip;q=0`` and
    ``*;q=0`` refuse it. Names and ``q`` are case-insensitive, spaces optional; a malformed
    weight counts as 0. No header: plain text (any coding would do, plain is what every
    client reads)."""
    weights: dict[str, float] = {}
    for element in (accept_encoding or "").split(","):
        coding, *params = (part.strip() for part in element.split(";"))
        coding = {"x-gzip": "gzip"}.get(coding.lower(), coding.lower())
        if coding in ("gzip", "*"):
            weights[coding] = max(weights.get(coding, 0.0), _weight(params))
    return weights.get("gzip", weights.get("*", 0.0)) > 0


def _weight(params: list[str]) -> float:
    """The ``q`` of one Accept-Encoding element's parameters (1 when absent)."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            value = value.strip()
            return float(value) if _QVALUE.fullmatch(value) else 0.0
    return 1.0


@functools.cache
def _template(name: str) -> str:
    return (resources.files("monitor.present.web") / "templates" / name).read_text(encoding="utf-8")


async def index(request: web.Request) -> web.Response:
    return web.Response(text=_template("index.html"), content_type="text/html",
                        headers={"Cache-Control": "no-cache"})


# --- login ----------------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    return _login_page(failed=False)


def _login_page(failed: bool) -> web.Response:
    message = ('<p class="error">Mã truy cập không hợp lệ hoặc đã hết hạn / '
               "invalid or expired token</p>") if failed else ""
    text = _template("login.html").replace("<!--ERROR-->", message)
    return web.Response(text=text, content_type="text/html", status=401 if failed else 200)


async def login(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    form = await request.post()
    token = str(form.get("token", "")).strip()
    if ctx.tokens is None:
        raise web.HTTPSeeOther("/")
    entry = ctx.tokens.authenticate(token)
    if entry is None or entry.scope.kind == "metrics":
        log.info("web_login_failed", remote=request.remote)
        return _login_page(failed=True)
    log.info("web_login", name=entry.name, scope=str(entry.scope), remote=request.remote)
    response = web.HTTPSeeOther("/")
    response.set_cookie(COOKIE, token, max_age=_cookie_age(entry), path="/", httponly=True,
                        samesite="Strict", secure=request.secure)
    raise response


def _cookie_age(entry: TokenEntry) -> int:
    if entry.expires is None:
        return COOKIE_MAX_AGE
    left = (entry.expires - dt.datetime.now(dt.UTC)).total_seconds()
    return max(1, min(COOKIE_MAX_AGE, int(left)))


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


async def whoami(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    scope = scope_of(request)
    return web.json_response({"scope": str(scope), "auth": ctx.tokens is not None,
                              "alertmanager": ctx.alertmanager is not None})


# --- API ------------------------------------------------------------------------------------


async def list_communes(request: web.Request) -> web.Response:
    try:
        flt = api.ListFilter.from_query(request.query)
    except ValueError as exc:
        return api.error(request, 400, str(exc))
    view = request.app[VIEWS].get(scope_of(request))
    return api.json_response(request, api.commune_list(view, request.app[CTX].state, flt))


async def get_commune(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    view = request.app[VIEWS].get(scope_of(request))
    prov = province_code(request.match_info["province"])
    commune = view.inventory.commune(prov, commune_code(request.match_info["commune"]))
    if commune is None:  # also: outside the caller's scope
        return api.error(request, 404, "no such commune")
    province = view.inventory.province(prov)
    try:
        detail = api.commune_detail(
            commune,
            province.name if province else "",
            view.inventory.milestones,
            ctx.state,
            ctx.samples,
            ctx.history(commune.province, commune.code),
            time.time(),
            ctx.evidence(ctx.state).of(commune, bool(view.inventory.targets)),
        )
        return api.json_response(request, detail)
    except Exception:  # this commune's data only: logged once, not at every refresh
        api.RENDER_FAILURES.failed(commune.key, view="detail")
        return api.error(request, 500, "Không hiển thị được dữ liệu của xã này / this "
                                       "commune's data could not be rendered")


# --- acknowledgement: the commune's alerts and silences in Alertmanager ----------------------

NO_ALERTMANAGER = ("Chưa cấu hình Alertmanager (alerts.alertmanagers): không có xác nhận cảnh "
                   "báo / no Alertmanager configured: acknowledgement is not available")


def _visible_commune(request: web.Request) -> Commune | None:
    """The commune of the URL if the caller's scope sees it (else None: answered 404)."""
    view = request.app[VIEWS].get(scope_of(request))
    return view.inventory.commune(province_code(request.match_info["province"]),
                                  commune_code(request.match_info["commune"]))


def _acknowledged(request: web.Request) -> tuple[Commune, am_api.AlertmanagerApi] | web.Response:
    """The commune of the URL and the Alertmanager API, or the answer refusing them: 404
    when the commune does not exist or (reading) is outside the scope, 403 when silencing
    one outside the scope or not the caller's to silence, 404 (reading) or 409 (silencing)
    without Alertmanager."""
    reading = request.method == "GET"
    commune = _visible_commune(request)
    if commune is None:
        exists = request.app[CTX].inventory().commune(
            province_code(request.match_info["province"]),
            commune_code(request.match_info["commune"]))
        if exists is not None and not reading:
            return api.error(request, 403, rights.NOT_OPERATOR)
        return api.error(request, 404, "no such commune")
    manager = request.app[CTX].alertmanager
    if manager is None:
        return api.error(request, 404 if reading else 409, NO_ALERTMANAGER)
    reason = None if reading else rights.may_silence(scope_of(request), commune)
    if reason is not None:
        return api.error(request, 403, reason)
    return commune, manager


async def commune_alerts(request: web.Request) -> web.Response:
    """``{"alerts": [...], "silences": [...], "silenced", "may_silence"}``: what Alertmanager
    holds for the commune, read at every request (the page refreshes it)."""
    found = _acknowledged(request)
    if isinstance(found, web.Response):
        return found
    commune, manager = found
    try:
        held = await manager.commune_alerts(commune.province, commune.code)
        silences = await manager.commune_silences(commune.province, commune.code)
    except am_api.AlertmanagerError as exc:
        return api.error(request, 502, str(exc))
    alerts = [_am_alert(a) for a in held if (a.get("status") or {}).get("state") != "unprocessed"]
    return api.json_response(request, {
        "alerts": sorted(alerts, key=lambda a: a["since"]),
        "silences": [s.as_json() for s in silences],
        "silenced": any(s.state == "active" for s in silences),
        "may_silence": rights.may_silence(scope_of(request), commune) is None,
    })


def _am_alert(alert: dict[str, Any]) -> dict[str, Any]:
    labels, status = alert.get("labels") or {}, alert.get("status") or {}
    return {"alertname": labels.get("alertname", ""), "severity": labels.get("severity", ""),
            "host": labels.get("host"), "summary": (alert.get("annotations") or {}).get(
                "summary", ""), "since": alert.get("startsAt", ""),
            "silenced": bool(status.get("silencedBy")),
            "inhibited": bool(status.get("inhibitedBy"))}


async def silence_commune(request: web.Request) -> web.Response:
    """``{"comment": "…", "minutes": 120}`` -> an Alertmanager silence of the commune
    (matchers province=, commune=; createdBy = the token's name); 201 ``{"id", "until"}``."""
    found = _acknowledged(request)
    if isinstance(found, web.Response):
        return found
    commune, manager = found
    try:
        body = await request.json()
    except ValueError:
        return api.error(request, 400, "expected a JSON object {comment, minutes}")
    comment = str(body.get("comment", "")).strip() if isinstance(body, dict) else ""
    if not comment:
        return api.error(request, 400, "Cần ghi chú lý do / a comment is required")
    try:
        start, end = am_api.silence_span(body.get("minutes"), dt.datetime.now(dt.UTC))
    except ValueError as exc:
        return api.error(request, 400, str(exc))
    try:
        ident = await manager.silence(commune.province, commune.code, start, end,
                                      request[CALLER], comment[:am_api.MAX_COMMENT])
    except am_api.AlertmanagerError as exc:
        return api.error(request, 502, str(exc))
    log.info("commune_silenced", commune=commune.key, by=request[CALLER], silence=ident,
             until=end.isoformat())
    return api.json_response(request, {"id": ident, "until": end.isoformat()}, status=201)


async def unsilence_commune(request: web.Request) -> web.Response:
    """Expire the commune's silences (those in force or pending); 404 when there is none."""
    found = _acknowledged(request)
    if isinstance(found, web.Response):
        return found
    commune, manager = found
    try:
        silences = await manager.commune_silences(commune.province, commune.code)
        for silence in silences:
            await manager.expire(silence.id)
    except am_api.AlertmanagerError as exc:
        return api.error(request, 502, str(exc))
    if not silences:
        return api.error(request, 404, "Xã này không có lệnh tắt cảnh báo / no silence "
                                       "for this commune")
    log.info("commune_unsilenced", commune=commune.key, by=request[CALLER],
             silences=[s.id for s in silences])
    return api.json_response(request, {"expired": [s.id for s in silences]})


# --- maintenance windows set while running -----------------------------------------------------

NO_MAINTENANCE = "Không có cơ sở dữ liệu bảo trì / run-time maintenance is not available here"


def _sees_scope(request: web.Request, scope: str) -> bool:
    """Whether the caller sees some commune a maintenance scope ``PROV[/COMMUNE]`` covers."""
    province, _, commune = scope.partition("/")
    view = request.app[VIEWS].get(scope_of(request))
    return bool(rights.covered(view.inventory, province, commune or None))


def _may_maintain(request: web.Request, scope: str) -> web.Response | None:
    """None when the caller may set or end a window over ``scope``, else the answer: 404
    when it sees nothing there, 403 when it sees only part of it."""
    if not _sees_scope(request, scope):
        return api.error(request, 404, "no such province or commune")
    province, _, commune = scope.partition("/")
    reason = rights.may_maintain(scope_of(request), request.app[CTX].inventory(), province,
                                 commune or None)
    return None if reason is None else api.error(request, 403, reason)


async def list_maintenance(request: web.Request) -> web.Response:
    """The windows the caller sees: the run-time ones (``?all=1``: ended ones too) and the
    inventory's (``"id": null``, ended only by editing the inventory)."""
    book = request.app[CTX].maintenance
    if book is None:
        return api.error(request, 404, NO_MAINTENANCE)
    stored = await asyncio.to_thread(book.listed, ended=request.query.get("all") == "1")
    rows = [{**w.as_json(), "source": "api"} for w in stored if _sees_scope(request, w.scope)]
    rows += [{"id": None, "scope": m.scope, "from": aware(m.start).isoformat(),
              "to": aware(m.end).isoformat(), "source": "inventory"}
             for m in request.app[CTX].inventory().maintenance if _sees_scope(request, m.scope)]
    return api.json_response(request, {"windows": rows})


async def add_maintenance(request: web.Request) -> web.Response:
    """``{"scope": "75/26041", "from": "2026-03-15T22:00", "to": "…", "comment": "…"}``
    (``from`` defaults to now; no offset means Vietnam time) -> 201 the window."""
    book = request.app[CTX].maintenance
    if book is None:
        return api.error(request, 409, NO_MAINTENANCE)
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object {scope, from, to, comment}")
        scope = normalise_scope(body.get("scope", ""))
        start = parse_time(body["from"], "from") if body.get("from") else time.time()
        end = parse_time(body.get("to", ""), "to")
    except ValueError as exc:
        return api.error(request, 400, str(exc))
    refused = _may_maintain(request, scope)
    if refused is not None:
        return refused
    try:
        window = await asyncio.to_thread(book.add, scope, start, end,
                                         str(body.get("comment", "")), request[CALLER])
    except ValueError as exc:
        return api.error(request, 400, str(exc))
    log.info("maintenance_added", id=window.id, scope=window.scope, by=window.created_by)
    return api.json_response(request, {**window.as_json(), "source": "api"}, status=201)


async def end_maintenance(request: web.Request) -> web.Response:
    """End a run-time window now: 200 the window; 404 unknown or not the caller's to see,
    409 over already."""
    book = request.app[CTX].maintenance
    if book is None:
        return api.error(request, 409, NO_MAINTENANCE)
    found: StoredWindow | None = await asyncio.to_thread(book.get, int(request.match_info["id"]))
    if found is None:
        return api.error(request, 404, "no such maintenance window")
    refused = _may_maintain(request, found.scope)
    if refused is not None:
        return refused
    ended = await asyncio.to_thread(book.end, found.id)
    if ended is None:
        return api.error(request, 409, "the window is over already")
    log.info("maintenance_ended", id=ended.id, scope=ended.scope, by=request[CALLER])
    return api.json_response(request, {**ended.as_json(), "source": "api"})


# --- reports --------------------------------------------------------------------------------

_REPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html; charset=utf-8",
}


async def readiness_report(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    fmt = request.match_info["fmt"]
    view = request.app[VIEWS].get(scope_of(request))
    report = reports.readiness(view.inventory, ctx.evidence(ctx.state),
                               time.time())
    body: Any = await asyncio.to_thread(reports.WRITERS[fmt], report)
    headers = {"Content-Type": _REPORT_TYPES[fmt], "Cache-Control": "no-store"}
    if fmt != "html":
        day = dt.datetime.now(reports.VIETNAM).strftime("%Y%m%d")
        headers["Content-Disposition"] = (
            f'attachment; filename="bao-cao-san-sang-{day}.{fmt}"')
    return web.Response(body=body, headers=headers)


def _availability(request: web.Request) -> availability.AvailabilityReport:
    """Over the caller's communes only (totals too); ``?from=&to=`` Vietnam dates.
    Raises ValueError on a bad date."""
    ctx = request.app[CTX]
    start, end = availability.period(request.query.get("from"), request.query.get("to"))
    view = request.app[VIEWS].get(scope_of(request))
    history = (ctx.status_history(view.inventory) if ctx.status_history is not None
               else availability.StateHistory({}, {}))
    return availability.availability(view.inventory, history, start, end, time.time())


async def availability_report(request: web.Request) -> web.Response:
    fmt = request.match_info["fmt"]
    try:
        report = _availability(request)
    except ValueError as exc:
        return api.error(request, 400, str(exc))
    body: Any = await asyncio.to_thread(availability.WRITERS[fmt], report)
    content_type = _REPORT_TYPES.get(fmt, "application/json; charset=utf-8")
    headers = {"Content-Type": content_type, "Cache-Control": "no-store"}
    if fmt not in ("html", "json"):
        day = dt.datetime.now(reports.VIETNAM).strftime("%Y%m%d")
        headers["Content-Disposition"] = (
            f'attachment; filename="bao-cao-kha-dung-{day}.{fmt}"')
    return web.Response(body=body, headers=headers)


async def availability_api(request: web.Request) -> web.Response:
    """``{"from", "to", "communes": [...], "totals": [...]}`` (times ISO, Vietnam)."""
    try:
        report = _availability(request)
    except ValueError as exc:
        return api.error(request, 400, str(exc))
    return api.json_response(request, {
        "from": dt.datetime.fromtimestamp(report.start, reports.VIETNAM).isoformat(),
        "to": dt.datetime.fromtimestamp(report.end, reports.VIETNAM).isoformat(),
        "communes": availability.to_json_rows(report),
        "totals": availability.to_json_groups(report),
    })


# --- drills ---------------------------------------------------------------------------------


def _drill_reports(request: web.Request) -> list[drills.DrillReport]:
    """Every drill that has started, over the caller's communes (none without a tracker)."""
    ctx = request.app[CTX]
    if ctx.drills is None:
        return []
    view = request.app[VIEWS].get(scope_of(request))
    now = time.time()
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    return [
        drills.drill_report(d, view.inventory, ctx.drills.spans(d.id), now,
                            ctx.drills.live.get(d.id))
        for d in ctx.inventory().drills if d.start <= at
    ]


async def list_drills(request: web.Request) -> web.Response:
    """Drills that started, newest first; ``connected`` is live while the drill runs."""
    rows = [
        {"id": r.drill.id, "title": r.drill.title, "from": r.drill.start.isoformat(),
         "to": r.drill.end.isoformat(), "active": r.live is not None,
         "connected": r.live.connected if r.live else None,
         "appeared": r.appeared, "total": len(r.communes)}
        for r in await asyncio.to_thread(_drill_reports, request)
    ]
    rows.sort(key=lambda r: r["from"], reverse=True)
    return api.json_response(request, {"drills": rows})


async def drill_report(request: web.Request) -> web.Response:
    fmt, ident = request.match_info["fmt"], request.match_info["drill"]
    found = [r for r in await asyncio.to_thread(_drill_reports, request) if r.drill.id == ident]
    if not found:
        return api.error(request, 404, "no such drill (or it has not started)")
    body: Any = await asyncio.to_thread(DRILL_WRITERS[fmt], found[0])
    headers = {"Content-Type": _REPORT_TYPES[fmt], "Cache-Control": "no-store"}
    if fmt != "html":
        headers["Content-Disposition"] = (  # the id may hold a quote, CR/LF, a slash
            f'attachment; filename="dien-tap-{reports.name_part(ident)}.{fmt}"')
    return web.Response(body=body, headers=headers)
