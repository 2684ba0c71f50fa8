"""Real ``prometheus-alertmanager`` processes on loopback (alone, or peered as a cluster),
an SMTP server to receive their email, and polling of their API."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support import require_real
from tests.support.servers import daemon, free_tcp_port

DEADLINE = 30.0  # seconds for an Alertmanager to start, or to show what is waited for


def alertmanager_binary() -> str:
    """The Debian package's binary; skipped without it (failed under CI=true)."""
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    require_real(found is not None, "prometheus-alertmanager not installed")
    assert found is not None
    return found


@dataclass
class Alertmanager:
    """One running Alertmanager: its API port and process (stopped by :func:`cluster`)."""

    port: int
    process: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@contextlib.contextmanager
def cluster(config: Path, workdir: Path, size: int = 1) -> Iterator[list[Alertmanager]]:
    """``size`` Alertmanagers with ``config``, peered on loopback when more than one (short
    gossip and peer timeouts, so a test sees de-duplication in seconds); stopped after."""
    binary = alertmanager_binary()
    gossip = [free_tcp_port() for _ in range(size)]
    with contextlib.ExitStack() as stack:
        managers = []
        for index in range(size):
            port = free_tcp_port()
            argv = [binary, f"--config.file={config}",
                    f"--storage.path={workdir / f'am{index}'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    f"--web.external-url=http://127.0.0.1:{port}"]
            if size == 1:
                argv.append("--cluster.listen-address=")
            else:
                argv += [f"--cluster.listen-address=127.0.0.1:{gossip[index]}",
                         "--cluster.peer-timeout=2s", "--cluster.settle-timeout=2s",
                         "--cluster.gossip-interval=100ms", "--cluster.pushpull-interval=2s"]
                argv += [f"--cluster.peer=127.0.0.1:{p}" for p in gossip if p != gossip[index]]
            process = stack.enter_context(daemon(argv, workdir / f"am{index}.log"))
            managers.append(Alertmanager(port, process))
        yield managers


async def wait_ready(manager: Alertmanager, peers: int = 0) -> None:
    """Until the API answers (and, in a cluster, sees ``peers`` other members)."""
    async def ready(session: aiohttp.ClientSession) -> bool:
        async with session.get(f"{manager.url}/api/v2/status") as response:
            if response.status != 200:
                return False
            status = await response.json()
        return len(status.get("cluster", {}).get("peers") or []) >= peers + (1 if peers else 0)

    await poll(ready, f"Alertmanager on port {manager.port} ready")


async def alerts(manager: Alertmanager, **params: str) -> list[dict[str, Any]]:
    """``GET /api/v2/alerts`` (active, silenced and inhibited included unless filtered)."""
    async with aiohttp.ClientSession() as session, session.get(
            f"{manager.url}/api/v2/alerts", params=params) as response:
        response.raise_for_status()
        return list(await response.json())


async def poll(check: Callable[[aiohttp.ClientSession], Any], what: str,
               deadline: float = DEADLINE) -> None:
    """Call the async ``check`` every 0.2 s until it is true; fail naming ``what``."""
    end = time.monotonic() + deadline
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                if await check(session):
                    return
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.2)


@dataclass
class Mailbox:
    """What an SMTP server received: parsed messages, in order."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: Envelope) -> str:
        """aiosmtpd's hook (its name), run in the server's own thread."""
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)  # one append: atomic for the test's thread
        return "250 OK"

    async def wait_for(self, count: int, timeout: float = DEADLINE) -> list[EmailMessage]:
        end = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > end:
                raise AssertionError(f"{len(self.messages)} of {count} emails arrived")
            await asyncio.sleep(0.1)
        return self.messages


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    """An aiosmtpd server on a free loopback port (its own thread); yields port and mailbox."""
    mailbox = Mailbox()
    port = free_tcp_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()
