"""The scheduled reports by e-mail (``reports.email``): Sở Nội vụ receives reports by mail.

One message per scheduled run: a Vietnamese subject and body (the summary: readiness and
availability totals), each report file attached. SMTP with STARTTLS when the server offers
it (``starttls: true`` requires it, ``false`` never uses it); the server's certificate is
checked (against ``ca_file`` when given). A refused or failed delivery is retried with
backoff and logged; the folder copy, written before, stays whatever happens. The password
is read from ``password_file`` at each send and never logged nor put in an error.

:mod:`smtplib` blocks: each attempt runs on a worker thread, the waits on the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import smtplib
import ssl
from collections.abc import Awaitable, Callable, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol

import structlog

from monitor.alerts.event import VN_TZ
from monitor.common.config import EmailConfig

log = structlog.get_logger("mail")

ATTEMPTS = 4
FIRST_WAIT = 2.0  # seconds before the second attempt; doubled after each failure
TIMEOUT = 30.0  # seconds per SMTP conversation step


class Attachment(Protocol):
    """What is attached (``report_schedule.ReportFile``)."""

    name: str
    content_type: str
    data: bytes


class MailError(Exception):
    """A delivery that cannot succeed by retrying (configuration, STARTTLS required but not
    offered, password file unreadable): the message names the cause, never a secret."""


def subject(at: float) -> str:
    day = dt.datetime.fromtimestamp(at, VN_TZ).strftime("%d/%m/%Y %H:%M")
    return f"[tslcd-monitor] Báo cáo định kỳ đường truyền bầu cử – {day}"


def body(summary: dict[str, Any], files: Sequence[Attachment]) -> str:
    """The summary in Vietnamese: each milestone's count met, availability per operator."""
    lines = ["Kính gửi Quý cơ quan,", "",
             "tslcd-monitor gửi báo cáo định kỳ về đường truyền số liệu chuyên dùng phục vụ "
             "bầu cử (tệp đính kèm).", ""]
    for r in summary.get("readiness", []):
        lines.append(f"- {r['title']} (hạn {r['due']}): {r['met']}/{r['communes']} xã, phường "
                     f"đạt; {r['late']} trễ hạn")
    for g in summary.get("availability") or []:
        if g["kind"] in ("isp", "total") and g["availability"] is not None:
            lines.append(f"- Tỷ lệ sẵn sàng {g['name']}: {g['availability'] * 100:.2f}% "
                         f"({g['outages']} lần mất kết nối)")
    lines += ["", "Tệp đính kèm:", *(f"- {f.name}" for f in files), "",
              "Thư được gửi tự động, vui lòng không trả lời.",
              "(Automatic message from tslcd-monitor: the scheduled reports are attached.)"]
    return "\n".join(lines) + "\n"


def message(cfg: EmailConfig, at: float, summary: dict[str, Any],
            files: Sequence[Attachment]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject(at)
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.to)
    msg["Date"] = formatdate(at, localtime=False)
    msg["Message-ID"] = make_msgid(domain=cfg.sender.rpartition("@")[2] or None)
    msg.set_content(body(summary, files))
    for f in files:
        maintype, _, subtype = f.content_type.partition(";")[0].partition("/")
        # text reports are UTF-8 (Vietnamese): say so, or a mail program guesses Latin-1
        params = {"charset": "utf-8"} if maintype == "text" else {}
        msg.add_attachment(f.data, maintype=maintype, subtype=subtype, filename=f.name,
                           params=params)
    return msg


def _password(cfg: EmailConfig) -> str | None:
    if cfg.password_file is None:
        return None
    try:
        return Path(cfg.password_file).read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise MailError(f"{cfg.password_file}: cannot read the SMTP password file: "
                        f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None


def deliver(cfg: EmailConfig, msg: EmailMessage, timeout: float = TIMEOUT) -> None:
    """One SMTP conversation (blocking). OSError/SMTPException: worth retrying;
    MailError: not."""
    context = ssl.create_default_context(cafile=cfg.ca_file)
    with smtplib.SMTP(cfg.host, cfg.port, timeout=timeout) as smtp:
        smtp.ehlo()
        offered = smtp.has_extn("starttls")
        if cfg.starttls and not offered:
            raise MailError(f"{cfg.host}:{cfg.port} does not offer STARTTLS "
                            "(reports.email.starttls: true)")
        if offered and cfg.starttls is not False:
            smtp.starttls(context=context)
            smtp.ehlo()
        if cfg.user:
            _login(smtp, cfg)
        smtp.send_message(msg)


#: The first of these the server offers is used, once: a refused password is reported as
#: refused (not as the next mechanism's error, as :meth:`smtplib.SMTP.login` would).
MECHANISMS = ("PLAIN", "LOGIN")


def _login(smtp: smtplib.SMTP, cfg: EmailConfig) -> None:
    offered = (smtp.esmtp_features.get("auth") or "").upper().split()
    mechanism = next((m for m in MECHANISMS if m in offered), None)
    if mechanism is None:
        raise MailError(f"{cfg.host}:{cfg.port} offers no password login (AUTH PLAIN or "
                        "LOGIN) over this connection")
    smtp.user, smtp.password = cfg.user or "", _password(cfg) or ""
    try:
        smtp.auth(mechanism, getattr(smtp, f"auth_{mechanism.lower()}"))
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"{cfg.host}:{cfg.port}: login as {cfg.user} refused "
                        f"(SMTP {exc.smtp_code})") from None
    finally:
        smtp.password = ""


Sleep = Callable[[float], Awaitable[None]]


class Mailer:
    """Sends one run's reports; retried with backoff; False when they could not be sent."""

    def __init__(self, cfg: EmailConfig, *, sleep: Sleep = asyncio.sleep,
                 attempts: int = ATTEMPTS, first_wait: float = FIRST_WAIT,
                 timeout: float = TIMEOUT) -> None:
        self.cfg = cfg
        self.sleep = sleep
        self.attempts = attempts
        self.first_wait = first_wait
        self.timeout = timeout

    @property
    def server(self) -> str:
        return f"{self.cfg.host}:{self.cfg.port}"

    async def send(self, at: float, summary: dict[str, Any],
                   files: Sequence[Attachment]) -> bool:
        msg = message(self.cfg, at, summary, files)
        wait = self.first_wait
        for attempt in range(1, self.attempts + 1):
            try:
                await asyncio.to_thread(deliver, self.cfg, msg, self.timeout)
            except MailError as exc:
                log.error("report_mail_failed", server=self.server, error=str(exc))
                return False
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("report_mail_retry", server=self.server, attempt=attempt,
                            error=_describe(exc), retry_in=wait if attempt < self.attempts
                            else None)
                if attempt < self.attempts:
                    await self.sleep(wait)
                    wait *= 2
                continue
            log.info("report_mailed", server=self.server, to=list(self.cfg.to),
                     files=len(files))
            return True
        log.error("report_mail_failed", server=self.server, attempts=self.attempts,
                  message="Không gửi được báo cáo qua thư điện tử; bản trong thư mục vẫn "
                          "được giữ (reports not mailed; the folder copy is kept)")
        return False


def _describe(exc: BaseException) -> str:
    """The error without anything the server echoed back of our credentials."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__
