"""``reports.email``: the scheduled reports mailed to a real SMTP server (aiosmtpd) on a free
loopback port: plain, STARTTLS with a certificate made here by openssl and a login whose
password comes from a file (and never reaches the log), a refused connection (retried with
backoff, logged, the folder copy kept), STARTTLS required but not offered."""

from __future__ import annotations

import email
import email.policy
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from structlog.testing import capture_logs

from monitor.common import config
from monitor.common.config import ConfigError, EmailConfig
from monitor.present import availability
from monitor.service.mailer import Mailer
from monitor.service.report_schedule import ReportScheduler, report_files
from monitor.store.state_db import Store
from tests.support import require_real
from tests.support.operations_sim import A, B, Sim, vn
from tests.support.servers import free_tcp_port

USER, PASSWORD = "tslcd", "s3cret-Pa55-word"
MONDAY_7 = "0 7 * * 1"


@dataclass
class Inbox:
    """aiosmtpd's handler: every message received, as parsed e-mail."""

    messages: list[email.message.EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.original_content,
                                                      policy=email.policy.default))
        return "250 OK"


@contextmanager
def smtp_server(**kwargs: Any) -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_tcp_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for IP 127.0.0.1 and its key, made by openssl for this test."""
    require_real(shutil.which("openssl") is not None, "openssl is not installed")
    cert, key = folder / "smtp.crt", folder / "smtp.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def write_config(tmp_path: Path, email_yaml: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"reports:\n  schedule: '{MONDAY_7}'\n  email:\n{email_yaml}", "utf-8")
    return path


def monitored(tmp_path: Path) -> tuple[Sim, availability.StateHistory]:
    """Readiness data and a status history from the real engine and a real Store."""
    sim = Sim(tmp_path)
    store = Store(tmp_path / "state.db")
    sim.engine.store = store
    for minute in range(10):
        sim.cycle(vn(2026, 2, 6, 8, minute), {A: True, B: minute < 3 or minute > 6})
    sim.engine.flush()
    history = availability.history_from_store(sim.inventory, store, sim.engine.state)
    store.close()
    return sim, history


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def scheduler(tmp_path: Path, cfg: EmailConfig, sleeps: Sleeps | None = None
              ) -> ReportScheduler:
    sim, history = monitored(tmp_path)

    def build(at: float, previous: float | None) -> tuple[list, dict]:
        return report_files(sim.inventory, sim.engine.state, None, at, previous, history)

    mailer = Mailer(cfg, sleep=sleeps or Sleeps(), timeout=10.0)
    return ReportScheduler(MONDAY_7, tmp_path / "out", build, mailer=mailer)


def attachments(msg: email.message.EmailMessage) -> dict[str, bytes]:
    return {part.get_filename(): part.get_payload(decode=True) for part in msg.iter_attachments()}


async def test_reports_are_mailed_with_a_vietnamese_subject_and_attachments(
        tmp_path: Path) -> None:
    with smtp_server() as (inbox, port):
        cfg = config.load(write_config(tmp_path, f"""\
    smtp: 127.0.0.1:{port}
    from: tslcd-monitor@example.gov.vn
    to: [sonoivu@example.gov.vn, ubbc@example.gov.vn]
"""))
        assert cfg.report_email is not None
        paths = await scheduler(tmp_path, cfg.report_email).run_once(vn(2026, 2, 9, 7, 0))
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert msg["Subject"].startswith("[tslcd-monitor] Báo cáo định kỳ")
    assert "09/02/2026 07:00" in msg["Subject"]
    assert inbox.envelopes == [("tslcd-monitor@example.gov.vn",
                                ["sonoivu@example.gov.vn", "ubbc@example.gov.vn"])]
    text = msg.get_body(("plain",)).get_content()
    assert "Kính gửi" in text and "Tỷ lệ sẵn sàng" in text
    files = attachments(msg)
    assert set(files) == {p.name for p in paths}  # every report of the folder, attached
    assert {n.rsplit(".", 1)[1] for n in files if n.startswith("bao-cao-kha-dung")} == \
        {"xlsx", "html", "csv"}
    for p in paths:
        assert files[p.name] == p.read_bytes()
    html_part = next(part for part in msg.iter_attachments()
                     if part.get_filename().startswith("bao-cao-kha-dung")
                     and part.get_content_type() == "text/html")
    assert "Báo cáo" in html_part.get_content()  # decoded as UTF-8 by a mail program


async def test_starttls_with_the_networks_ca_and_a_password_from_a_file(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == PASSWORD.encode(), handled=False)

    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n", "utf-8")
    with smtp_server(tls_context=server_tls, require_starttls=True,
                     authenticator=authenticator, auth_required=True) as (inbox, port):
        cfg = config.load(write_config(tmp_path, f"""\
    smtp: 127.0.0.1:{port}
    from: tslcd-monitor@example.gov.vn
    to: [sonoivu@example.gov.vn]
    starttls: true
    user: {USER}
    password_file: {secret}
    ca_file: {cert}
"""))
        assert cfg.report_email is not None
        with capture_logs() as logs:
            await scheduler(tmp_path, cfg.report_email).run_once(vn(2026, 2, 9, 7, 0))
        assert len(inbox.messages) == 1
        assert logins == [(USER.encode(), PASSWORD.encode())]
        assert [e["event"] for e in logs if e["event"].startswith("report_mail")] == \
            ["report_mailed"]

        # a wrong password: refused, not retried, logged without the password
        secret.write_text("wrong-" + PASSWORD, "utf-8")
        sleeps = Sleeps()
        with capture_logs() as logs:
            await scheduler(tmp_path, cfg.report_email, sleeps).run_once(vn(2026, 2, 16, 7, 0))
        assert len(inbox.messages) == 1 and sleeps.waits == []
        assert [e["event"] for e in logs if e["event"].startswith("report_mail")] == \
            ["report_mail_failed"]
        assert PASSWORD not in repr(logs)

        # a certificate the client does not trust: no mail, never in clear text
        untrusted = EmailConfig("127.0.0.1", port, "a@example.gov.vn", ("b@example.gov.vn",),
                                user=USER, password_file=str(secret))
        with capture_logs() as logs:
            sent = await Mailer(untrusted, sleep=Sleeps(), attempts=2).send(0.0, {}, [])
        assert sent is False and len(inbox.messages) == 1
        assert "SSLCertVerificationError" in repr(logs)


async def test_a_refused_connection_is_retried_with_backoff_and_the_folder_copy_kept(
        tmp_path: Path) -> None:
    port = free_tcp_port()  # nothing listens there
    cfg = EmailConfig("127.0.0.1", port, "a@example.gov.vn", ("b@example.gov.vn",))
    sleeps = Sleeps()
    with capture_logs() as logs:
        paths = await scheduler(tmp_path, cfg, sleeps).run_once(vn(2026, 2, 9, 7, 0))
    assert paths and all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert sleeps.waits == [2.0, 4.0, 8.0]
    events = [e for e in logs if e["event"].startswith("report_mail")]
    assert [e["event"] for e in events] == ["report_mail_retry"] * 4 + ["report_mail_failed"]
    assert "ConnectionRefusedError" in events[0]["error"]
    assert events[-1]["server"] == f"127.0.0.1:{port}"


async def test_starttls_required_but_not_offered_is_not_sent(tmp_path: Path) -> None:
    with smtp_server() as (inbox, port):
        cfg = EmailConfig("127.0.0.1", port, "a@example.gov.vn", ("b@example.gov.vn",),
                          starttls=True)
        sleeps = Sleeps()
        with capture_logs() as logs:
            assert await Mailer(cfg, sleep=sleeps).send(0.0, {}, []) is False
    assert inbox.messages == [] and sleeps.waits == []
    assert "does not offer STARTTLS" in logs[-1]["error"]


@pytest.mark.parametrize(("yaml", "line", "message"), [
    ("    smtp: 127.0.0.1\n    from: a@b.vn\n    to: [c@d.vn]\n", 4, "HOST:PORT"),
    ("    smtp: 127.0.0.1:25\n    from: not-an-address\n    to: [c@d.vn]\n", 5,
     "not an e-mail address"),
    ("    smtp: 127.0.0.1:25\n    from: a@b.vn\n    to: [c@d.vn]\n    starttls: maybe\n", 7,
     "true or false"),
    ("    smtp: 127.0.0.1:25\n    from: a@b.vn\n", 4, "required"),
    ("    smtp: 127.0.0.1:25\n    from: a@b.vn\n    to: [c@d.vn]\n    pasword_file: x\n", 7,
     "pasword_file"),
])
def test_bad_email_configuration_names_file_and_line(tmp_path: Path, yaml: str, line: int,
                                                     message: str) -> None:
    path = write_config(tmp_path, yaml)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert any(p.line == line and message in p.message for p in err.value.problems), \
        str(err.value)
    assert str(err.value).startswith(f"{path}:")
