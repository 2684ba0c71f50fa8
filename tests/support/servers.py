"""Real servers for tests: a mosquitto broker, webhook and multipart receivers, on loopback ports;
what a subscriber receives from the broker.

Usage::

    from tests.support.servers import Mosquitto, WebhookReceiver

    def test_x(tmp_path):
        with Mosquitto(tmp_path) as broker:           # anonymous broker
            ... broker.url  # "mqtt://127.0.0.1:PORT"

        with Mosquitto(tmp_path, users={"agent": "s3cret"}, acl="user agent\\ntopic #") as b:
            ... b.url_for("agent", "s3cret")

    async def test_y():
        async with WebhookReceiver(fail_first=2) as hook:
            ... hook.url; await hook.wait_for(1); hook.received  # list of JSON bodies

A missing mosquitto skips the test, but fails it under CI=true (it must be there).
Each server is stopped afterwards (by its own pid), whatever the test's outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Self

import aiomqtt
from aiohttp import web

from tests.support import require_real
from tests.support.processes import stop

STARTUP_TIMEOUT = 10.0


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[int]:
    """``app`` on a port of 127.0.0.1 the kernel picks (yielded: no race for a port thought
    free), without access log lines; stopped after."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def daemon(argv: list[str], log_path: Path,
           cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A server process (in ``cwd``, if given) with its output in ``log_path``; terminated
    (killed if it must be) after, whatever the test did."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
        try:
            yield proc
        finally:
            stop([proc], timeout=15)


def mosquitto_binary() -> str:
    """Path of mosquitto; skips the test (fails it under CI=true) when it is missing."""
    path = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)),
        None,
    )
    require_real(path is not None, "mosquitto is not installed")
    assert path is not None
    return path


class Mosquitto:
    """A private mosquitto on 127.0.0.1:free port; no persistence, stopped on exit.

    ``users`` (name -> password) writes a password file and disables anonymous access (or
    pass a ready ``password_file``); ``acl`` is the text of an ACL file (or pass a ready
    ``acl_file``); ``extra`` adds raw configuration lines; ``port`` 0 picks a free one.
    """

    def __init__(self, workdir: Path, *, users: dict[str, str] | None = None,
                 password_file: Path | None = None, acl: str | None = None,
                 acl_file: Path | None = None, extra: tuple[str, ...] = (),
                 port: int = 0) -> None:
        self.workdir = Path(workdir)
        self.users = users or {}
        self.password_file = password_file
        self.acl = acl
        self.acl_file = acl_file
        self.extra = extra
        self.port = port  # 0: a free port, chosen at start
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def url_for(self, user: str, password: str) -> str:
        return f"mqtt://{user}:{password}@127.0.0.1:{self.port}"

    def __enter__(self) -> Mosquitto:
        binary = mosquitto_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_tcp_port()
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(self._config_lines()) + "\n", encoding="utf-8")
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=log_file,
                                            stderr=subprocess.STDOUT)
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        stop([self.process], timeout=5)

    def _config_lines(self) -> list[str]:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            "log_dest stdout",
            f"allow_anonymous {'false' if self.users or self.password_file else 'true'}",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # keep read access to the test's private files
        password_file = self._password_file() if self.users else self.password_file
        if password_file is not None:
            lines.append(f"password_file {password_file}")
        acl_file = self.acl_file
        if self.acl is not None:
            acl_file = self.workdir / "mosquitto.acl"
            acl_file.write_text(self.acl + "\n", encoding="utf-8")
        if acl_file is not None:
            lines.append(f"acl_file {acl_file}")
        return lines + list(self.extra)

    def _password_file(self) -> Path:
        path = self.workdir / "mosquitto.passwd"
        path.write_text("", encoding="utf-8")
        for user, password in self.users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True,
                           capture_output=True, timeout=10)
        return path

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log_path.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening in time")


async def receive(client: aiomqtt.Client, count: int, quiet: float = 0.5
                  ) -> list[aiomqtt.Message]:
    """``count`` messages, then anything else arriving within ``quiet`` seconds."""
    got: list[aiomqtt.Message] = []

    async def collect() -> None:
        async for message in client.messages:
            got.append(message)

    task = asyncio.create_task(collect())
    try:
        async with asyncio.timeout(10):
            while len(got) < count:
                await asyncio.sleep(0.02)
        await asyncio.sleep(quiet)
    finally:
        task.cancel()
    return got


class _Receiver:
    """An aiohttp server on 127.0.0.1 answering POSTs to ``ROUTE`` with ``_handle`` while
    the ``async with`` block lasts; ``.url`` is ``PATH`` on its port."""

    ROUTE = "/"
    PATH = "/"
    MAX_BODY = 2**20  # aiohttp's own default

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.url = ""
        self._server = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=self.MAX_BODY)
        app.router.add_post(self.ROUTE, self._handle)
        port = await self._server.enter_async_context(serving(app))
        self.url = f"http://127.0.0.1:{port}{self.PATH}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.aclose()

    async def _handle(self, request: web.Request) -> web.Response:
        raise NotImplementedError


class WebhookReceiver(_Receiver):
    """An aiohttp server on 127.0.0.1 collecting POSTed JSON; the first ``fail_first``
    POSTs are answered with ``fail_status`` (to exercise retries)."""

    ROUTE = "/{tail:.*}"
    PATH = "/hook"

    def __init__(self, *, fail_first: int = 0, fail_status: int = 500) -> None:
        super().__init__(fail_first)
        self.fail_status = fail_status
        self.attempts: list[dict[str, Any]] = []  # every POST body, failed ones included
        self.received: list[dict[str, Any]] = []  # bodies answered with 200
        self.headers: list[dict[str, str]] = []
        self._arrived = asyncio.Condition()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until ``count`` bodies were received (200); returns them all."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.received) >= count), timeout)
        return self.received

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.attempts.append(body)
        self.headers.append(dict(request.headers))
        if len(self.attempts) <= self.fail_first:
            return web.json_response({"error": "try again"}, status=self.fail_status)
        self.received.append(body)
        async with self._arrived:
            self._arrived.notify_all()
        return web.json_response({"ok": True})


class MultipartReceiver(_Receiver):
    """A real HTTP server on 127.0.0.1 keeping each multipart POST (file name -> bytes) to
    ``/reports``; the first ``fail_first`` answered 503 (to exercise retries)."""

    ROUTE = PATH = "/reports"
    MAX_BODY = 50 * 2**20

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__(fail_first)
        self.posts: list[dict[str, bytes]] = []

    async def _handle(self, request: web.Request) -> web.Response:
        parts: dict[str, bytes] = {}
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            parts[part.filename or part.name or ""] = await part.read()  # type: ignore[union-attr]
        self.posts.append(parts)
        if len(self.posts) <= self.fail_first:
            return web.Response(status=503)
        return web.Response(text="ok")
