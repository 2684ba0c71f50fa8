"""The tokens file: validated like the inventory (``FILE:LINE: message``, every problem at
once, exit 2, never a traceback) and reloaded without a restart, on change and on SIGHUP,
against real servers (in process, and real ``run`` and ``collector`` processes) on loopback
ports."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from inventory.loader import dump
from monitor.present.web.auth import TokenFileError, TokenStore, hash_token
from monitor.present.web.server import WebContext, build_app, reload_tokens, serve
from tests.support import web as ws

VENV_BIN = Path(sys.executable).parent
INV = ws.inventory(("75",), per_province=2, hosts=1)  # loopback addresses only
KEPT, REVOKED = "kept-" + "k" * 40, "revoked-" + "r" * 40


def tokens_yaml(*tokens: str, scope: str = "admin") -> str:
    return "tokens:\n" + "".join(
        f"  - name: t{i}\n    token_sha256: {hash_token(t)}\n    scope: {scope}\n"
        for i, t in enumerate(tokens))


# --- validation ---------------------------------------------------------------------------

BROKEN = f"""\
tokens:
  - name: bad-date
    token_sha256: {hash_token("a" * 40)}
    scope: admin
    expires: 2026-13-45
  - name: [not, a, name]
    token_sha256: {hash_token("b" * 40)}
    scope: admin
  - name: unknown-kind
    token_sha256: {hash_token("c" * 40)}
    scope: galaxy:far
  - name: no-such-province
    token_sha256: {hash_token("d" * 40)}
    scope: province:99999
  - name: same-hash
    token_sha256: {hash_token("a" * 40)}
    scope: metrics
  - name: typo
    token_sha256: {hash_token("e" * 40)}
    scope: admin
    expire: 2026-01-01
"""


def test_every_problem_is_reported_at_its_line_in_one_run(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    with pytest.raises(TokenFileError) as caught:
        TokenStore.load(path)
    found = [(p.line, p.message) for p in caught.value.problems]
    assert [line for line, _ in found] == [5, 6, 11, 14, 16, 21], found
    text = str(caught.value)
    assert f"{path}:5: expires '2026-13-45'" in text
    assert f"{path}:6: name must be a single value" in text
    assert f"{path}:11: scope 'galaxy:far'" in text
    assert f"{path}:14: scope 'province:99999': no province" in text
    assert f"{path}:16: the same token_sha256 as the entry at line 3" in text
    assert f"{path}:21: unknown key 'expire'" in text


@pytest.mark.parametrize(("text", "line", "message"), [
    ("tokens: " + "[" * 600 + "]" * 600 + "\n", 1, "nested more than"),
    ("tokens:\n  - " + "- " * 600 + "x\n", 2, "nested more than"),
    ("tokens: {a: 1}\n", 1, "must be a list"),
    ("- just a list\n", 1, "expected a mapping"),
    ("tokens:\n  - name: x\n    scope: admin\n", 2, "token_sha256 is missing"),
    ("tokens:\n  - name: x\n    token_sha256: 12\n    scope: admin\n", 3, "64 hex digits"),
    ("tokens:\n  - name: x\n    token_sha256: {a: b}\n    scope: admin\n", 3, "single value"),
    ("tokens:\n  - 42\n", 2, "expected a mapping"),
    ("tokens:\n  - {name: x, token: hunter2hunter2, scope: admin}\n", 2, "never the token"),
    ("tokens: [\n", 2, "YAML syntax error"),
])
def test_malformed_files_name_the_line(tmp_path: Path, text: str, line: int,
                                       message: str) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TokenFileError) as caught:
        TokenStore.load(path)
    assert (caught.value.problems[0].line, caught.value.problems[0].file) == (line, str(path))
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_an_empty_list_revokes_every_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens: []\n", encoding="utf-8")
    assert TokenStore.load(path).entries == ()
    path.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(TokenFileError, match=":1: "):
        TokenStore.load(path)


def test_a_real_province_code_and_dates_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(tokens_yaml(KEPT, scope="'province:75'") + "    expires: 2999-12-31\n",
                    encoding="utf-8")
    entry = TokenStore.load(path).authenticate(KEPT)
    assert entry is not None and entry.scope.value == "75" and entry.expires is not None


def test_the_service_exits_2_with_every_problem_and_no_traceback(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(BROKEN, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(f"web:\n  tokens_file: {tokens}\n", encoding="utf-8")
    (tmp_path / "inv.yaml").write_text(dump(INV), encoding="utf-8")
    done = subprocess.run(
        [str(VENV_BIN / "tslcd-monitor"), "run", "--config", str(config), "--inventory",
         str(tmp_path / "inv.yaml"), "--listen", "127.0.0.1:9", "--state",
         str(tmp_path / "state.db")],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for line in (5, 6, 11, 14, 16, 21):
        assert f"{tokens}:{line}: " in done.stderr


# --- reloading, in process ------------------------------------------------------------------


@pytest.fixture
async def served(tmp_path: Path, unused_tcp_port: int) -> AsyncIterator[tuple[Path, object, str]]:
    """A real server whose tokens come from a file polled every 0.2 s."""
    path = tmp_path / "tokens.yaml"
    path.write_text(tokens_yaml(KEPT, REVOKED), encoding="utf-8")
    ctx = WebContext(inventory=lambda: INV, state=ws.state_for(INV),
                     metrics_body=lambda: b"", tokens=TokenStore.load(path),
                     tokens_file=path, tokens_poll=0.2)
    runner = await serve(build_app(ctx), "127.0.0.1", unused_tcp_port)
    try:
        yield path, runner, f"http://127.0.0.1:{unused_tcp_port}/api/v1/me"
    finally:
        await runner.cleanup()


async def status(url: str, token: str) -> int:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
            url, headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status


async def wait_for(check: Callable[[], object], seconds: float = 5.0) -> float:
    """Seconds until the awaitable made by ``check`` returns true; fails after ``seconds``."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds} s")


async def test_a_token_removed_from_the_file_gets_401_within_seconds(
    served: tuple[Path, object, str],
) -> None:
    path, _runner, url = served
    assert await status(url, REVOKED) == 200
    path.write_text(tokens_yaml(KEPT), encoding="utf-8")
    took = await wait_for(lambda: _is(status(url, REVOKED), 401))
    assert took < 3
    assert await status(url, KEPT) == 200


async def test_a_broken_new_file_keeps_the_old_tokens_and_logs_the_problems(
    served: tuple[Path, object, str],
) -> None:
    path, _runner, url = served
    with capture_logs() as logs:
        path.write_text(tokens_yaml(KEPT) + "    expires: 2026-13-45\n", encoding="utf-8")
        await wait_for(lambda: _logged(logs, "tokens_reload_failed"))
    assert await status(url, REVOKED) == 200 and await status(url, KEPT) == 200
    failed = [e for e in logs if e["event"] == "tokens_reload_failed"]
    assert len(failed) == 1 and f"{path}:5: expires" in failed[0]["problems"][0]
    path.write_text(tokens_yaml(KEPT), encoding="utf-8")  # fixed: applied
    await wait_for(lambda: _is(status(url, REVOKED), 401))


async def test_reload_tokens_rereads_at_once(tmp_path: Path, unused_tcp_port: int) -> None:
    """What SIGHUP calls: no waiting for the next poll (here an hour away)."""
    path = tmp_path / "tokens.yaml"
    path.write_text(tokens_yaml(KEPT, REVOKED), encoding="utf-8")
    ctx = WebContext(inventory=lambda: INV, state=ws.state_for(INV), metrics_body=lambda: b"",
                     tokens=TokenStore.load(path), tokens_file=path, tokens_poll=3600)
    runner = await serve(build_app(ctx), "127.0.0.1", unused_tcp_port)
    url = f"http://127.0.0.1:{unused_tcp_port}/api/v1/me"
    try:
        await asyncio.sleep(0.2)  # the watch is waiting
        path.write_text(tokens_yaml(KEPT), encoding="utf-8")
        assert await status(url, REVOKED) == 200  # not polled yet
        reload_tokens(runner)
        await wait_for(lambda: _is(status(url, REVOKED), 401), 2.0)
    finally:
        await runner.cleanup()


async def _is(awaitable: object, expected: int) -> bool:
    return await awaitable == expected


async def _logged(logs: list[dict], event: str) -> bool:
    return any(e["event"] == event for e in logs)


# --- reloading in real `run` and `collector` processes, on SIGHUP -----------------------------


#: ``collector`` with no broker (a closed loopback port): it keeps retrying and serving.
COMMANDS = {"run": ["run"], "collector": ["collector", "--mqtt", "mqtt://127.0.0.1:1"]}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_sighup_reloads_the_tokens_of_a_running_service(tmp_path: Path, unused_tcp_port: int,
                                                        command: str) -> None:
    """The file is rewritten in place with the same size, inode and modification time (as
    an attacker or a careless copy might): the change time still gives it away, so the
    revoked token gets 401 within seconds; SIGHUP then re-reads the file at once."""
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(tokens_yaml(KEPT, REVOKED), encoding="utf-8")
    before = tokens.stat()
    config = tmp_path / "config.yaml"
    config.write_text(f"web:\n  tokens_file: {tokens}\n", encoding="utf-8")
    (tmp_path / "inv.yaml").write_text(dump(INV), encoding="utf-8")
    url = f"http://127.0.0.1:{unused_tcp_port}/api/v1/me"
    process = subprocess.Popen(
        [str(VENV_BIN / "tslcd-monitor"), *COMMANDS[command], "--config", str(config),
         "--inventory", str(tmp_path / "inv.yaml"), "--listen", f"127.0.0.1:{unused_tcp_port}",
         "--state", str(tmp_path / "state.db")],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "err.txt", "wb"))  # noqa: SIM115
    try:
        asyncio.run(_sighup_scenario(url, tokens, before, process.pid, tmp_path / "err.txt"))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    log_text = (tmp_path / "err.txt").read_text(encoding="utf-8")
    assert "tokens_reloaded" in log_text and KEPT not in log_text and REVOKED not in log_text


async def _sighup_scenario(url: str, tokens: Path, before: os.stat_result, pid: int,
                           log_file: Path) -> None:
    async def up() -> bool:
        try:
            return await status(url, REVOKED) == 200
        except aiohttp.ClientError:
            return False

    await wait_for(up, 30.0)
    text = tokens_yaml(KEPT, "x" * len(REVOKED))  # same length: same size
    with tokens.open("r+", encoding="utf-8") as f:  # same inode
        f.write(text)
    os.utime(tokens, ns=(before.st_atime_ns, before.st_mtime_ns))
    await wait_for(lambda: _is(status(url, REVOKED), 401), 5.0)
    reloads = _count(log_file, "tokens_reloaded")

    async def reread() -> bool:
        return _count(log_file, "tokens_reloaded") > reloads

    os.kill(pid, signal.SIGHUP)
    await wait_for(reread, 5.0)
    assert await status(url, KEPT) == 200 and await status(url, REVOKED) == 401


def _count(log_file: Path, event: str) -> int:
    return log_file.read_text(encoding="utf-8").count(f'"{event}"')


@pytest.mark.parametrize("scope", ["root", "province:99999", "isp:"])
def test_the_new_token_helper_refuses_a_bad_scope_with_exit_2(scope: str) -> None:
    done = subprocess.run([sys.executable, "-m", "monitor.present.web.auth", "new", "--name", "x",
                           "--scope", scope], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2 and scope in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
