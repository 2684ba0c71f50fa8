"""The monitor's own configuration (contract section 6): a YAML file, flags override it.

The file is checked like the inventory (:mod:`monitor.common.yaml_file`): every problem as
``FILE:LINE: message`` in one run, never a traceback.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from inventory.loader import Problem, _Fields
from inventory.nodes import Node
from monitor.common import yaml_file

DEFAULT_LISTEN = "127.0.0.1:9750"
ESCALATION_TOPIC = "tslcd/v1/escalations"
REPORT_DIR = "reports"


T = TypeVar("T")


class ConfigError(Exception):
    """A configuration problem, with the file and line (or the flag) in the message;
    ``problems`` lists every one found in the file."""

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)

    @classmethod
    def of(cls, problems: Iterable[Problem]) -> ConfigError:
        problems = list(problems)
        return cls("\n".join(str(p) for p in problems), problems)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str


@dataclass(frozen=True, slots=True)
class EmailConfig:
    """``reports.email``: the scheduled reports mailed as attachments over SMTP."""

    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    starttls: bool | None = None  # None: when the server offers it; True: required; False: never
    user: str | None = None
    password_file: str | None = None  # read at each send; never logged
    ca_file: str | None = None  # the CA the server's certificate is checked against


@dataclass(frozen=True, slots=True)
class Config:
    listen: str = DEFAULT_LISTEN
    state: str | None = None
    inventory: str | None = None
    webhooks: tuple[WebhookConfig, ...] = ()
    alerts_mqtt_url: str | None = None
    alerts_mqtt_ca_file: str | None = None  # the network's CA, for an mqtts:// broker
    alertmanagers: tuple[WebhookConfig, ...] = ()  # POST /api/v2/alerts of each (section 8)
    escalation_webhooks: tuple[WebhookConfig, ...] = ()  # a commune down too long (periods)
    escalation_mqtt_url: str | None = None
    escalation_mqtt_topic: str = ESCALATION_TOPIC  # published on TOPIC/PROV
    report_schedule: str | None = None  # cron, Vietnam time: e.g. "0 7 * * 1"
    report_dir: str = REPORT_DIR
    report_webhook: str | None = None
    report_email: EmailConfig | None = None
    tokens_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    @property
    def listen_host_port(self) -> tuple[str, int]:
        return parse_listen(self.listen)


TOP_KEYS = ("listen", "state", "inventory", "alerts", "reports", "web")
ALERTS_KEYS = ("webhooks", "mqtt", "escalation", "alertmanagers")
ESCALATION_KEYS = ("webhooks", "mqtt")
MQTT_KEYS = ("url", "ca_file")
ESCALATION_MQTT_KEYS = ("url", "topic")
WEBHOOK_KEYS = ("url",)
REPORTS_KEYS = ("schedule", "dir", "webhook", "email")
EMAIL_KEYS = ("smtp", "from", "to", "starttls", "user", "password_file", "ca_file")
_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")
WEB_KEYS = ("tokens_file", "tls_cert", "tls_key")

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=[^\n]{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; HOST an address or a host name, empty for
    127.0.0.1) to a pair; raises ConfigError naming the text."""
    host, sep, port = text.strip().rpartition(":")
    shown = repr(text) if len(text) <= 80 else repr(text[:80]) + "…"
    if not (sep and port.isascii() and port.isdigit() and len(port) <= 5
            and 0 < int(port) < 65536):
        raise ConfigError(f"listen address {shown}: expected HOST:PORT, PORT 1-65535 "
                          "(e.g. 127.0.0.1:9750)")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if not host:
        return "127.0.0.1", int(port)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if bracketed or not _HOST_NAME.fullmatch(host) or host.rstrip(".").rpartition(".")[
                2].isdigit():  # "1.2.3.4.5" is no name: a top-level label is never a number
            raise ConfigError(f"listen address {shown}: neither an IP address nor a host "
                              "name before the port") from None
    return host, int(port)


def load(path: str | Path | None) -> Config:
    """The configuration file (defaults for None or an empty file). Raises ConfigError with
    every problem of the file, each as ``FILE:LINE: message``."""
    if path is None:
        return Config()
    root, problems = yaml_file.read_tree(path)
    if problems:
        raise ConfigError.of(problems)
    if root is None:
        return Config()
    checker = _ConfigChecker(str(path))
    config = checker.config(root)
    errors = checker.errors()
    if errors or config is None:
        raise ConfigError.of(errors or checker.problems)
    return config


def check_report_schedule(cron: str, where: str) -> None:
    """A malformed ``reports.schedule`` (or ``--report-schedule``) is a ConfigError."""
    from monitor.common.cron import ScheduleError, parse_cron

    try:
        parse_cron(cron)
    except ScheduleError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


class _ConfigChecker(yaml_file.Checker):
    """Walks the configuration's tree once: every problem at its line, the Config if none."""

    def config(self, root: Node) -> Config | None:
        top = self.fields(root, "configuration", TOP_KEYS)
        if top is None:
            return None
        alerts = self.section(top, "alerts", ALERTS_KEYS)
        escalation = self.section(alerts, "escalation", ESCALATION_KEYS, "alerts.escalation")
        alerts_mqtt = self.section(alerts, "mqtt", MQTT_KEYS, "alerts.mqtt")
        escalation_mqtt = self.section(escalation, "mqtt", ESCALATION_MQTT_KEYS,
                                       "alerts.escalation.mqtt")
        reports = self.section(top, "reports", REPORTS_KEYS)
        web = self.section(top, "web", WEB_KEYS)
        self.check_tls(top, web)
        return Config(
            listen=self.optional(top, "listen", self.listen, "listen") or DEFAULT_LISTEN,
            state=self.optional(top, "state", self.path, "state"),
            inventory=self.optional(top, "inventory", self.path, "inventory"),
            webhooks=self.webhooks(alerts, "alerts.webhooks"),
            alerts_mqtt_url=self.get(alerts_mqtt, "url", self.mqtt_url, "alerts.mqtt.url"),
            alerts_mqtt_ca_file=self.get(alerts_mqtt, "ca_file", self.path, "alerts.mqtt.ca_file"),
            alertmanagers=self.webhooks(alerts, "alerts.alertmanagers", "alertmanagers"),
            escalation_webhooks=self.webhooks(escalation, "alerts.escalation.webhooks"),
            escalation_mqtt_url=self.get(escalation_mqtt, "url", self.mqtt_url,
                                         "alerts.escalation.mqtt.url"),
            escalation_mqtt_topic=self.get(escalation_mqtt, "topic", self.topic,
                                           "alerts.escalation.mqtt.topic") or ESCALATION_TOPIC,
            report_schedule=self.get(reports, "schedule", self.cron, "reports.schedule"),
            report_dir=self.get(reports, "dir", self.path, "reports.dir") or REPORT_DIR,
            report_webhook=self.get(reports, "webhook", self.http_url, "reports.webhook"),
            report_email=self.email(reports),
            tokens_file=self.get(web, "tokens_file", self.path, "web.tokens_file"),
            tls_cert=self.get(web, "tls_cert", self.path, "web.tls_cert"),
            tls_key=self.get(web, "tls_key", self.path, "web.tls_key"),
        )

    def get(self, fields: _Fields | None, key: str, convert: Callable[[Node, str], T | None],
            what: str) -> T | None:
        """``optional`` for a section that may itself be absent."""
        return None if fields is None else self.optional(fields, key, convert, what)

    def webhooks(self, fields: _Fields | None, what: str,
                  key: str = "webhooks") -> tuple[WebhookConfig, ...]:
        """A list of ``{url}`` under ``key`` (webhooks, or Alertmanagers)."""
        hooks = []
        for item in self.items(fields.get(key) if fields else None, what):
            hook = self.fields(item, what, WEBHOOK_KEYS, required=("url",))
            url = self.get(hook, "url", self.http_url, f"{what}: url")
            if url is not None:
                hooks.append(WebhookConfig(url))
        return tuple(hooks)

    def email(self, reports: _Fields | None) -> EmailConfig | None:
        """``reports.email``; every problem at its line, None when absent or wrong."""
        what = "reports.email"
        mail = self.section(reports, "email", EMAIL_KEYS, what)
        if mail is None:
            return None
        before = len(self.errors())
        smtp = self.get(mail, "smtp", self.listen, f"{what}.smtp")
        sender = self.get(mail, "from", self.address, f"{what}.from")
        to = tuple(a for node in self.items(mail.given("to"), f"{what}.to")
                   if (a := self.address(node, f"{what}.to")) is not None)
        if not mail.given("to") or (smtp is None and mail.given("smtp") is None):
            self.error(mail.node, f"{what}: smtp (HOST:PORT) and to (a list of addresses) "
                                  "are required")
        email = EmailConfig(
            *(parse_listen(smtp) if smtp else ("", 0)), sender or "", to,
            starttls=self.get(mail, "starttls", self.boolean, f"{what}.starttls"),
            user=self.get(mail, "user", self.text, f"{what}.user"),
            password_file=self.get(mail, "password_file", self.path, f"{what}.password_file"),
            ca_file=self.get(mail, "ca_file", self.path, f"{what}.ca_file"),
        )
        if email.password_file and not email.user:
            self.error(mail.node, f"{what}: password_file needs user")
        if sender is None and mail.given("from") is None:
            self.error(mail.node, f"{what}: from (the sender's address) is required")
        return email if len(self.errors()) == before and smtp and sender and to else None

    def address(self, node: Node, what: str) -> str | None:
        """An e-mail address (one, bare: no display name, no list)."""
        text = self.text(node, what)
        if text is not None and not _ADDRESS.fullmatch(text):
            self.error(node, f"{what}: {text[:80]!r} is not an e-mail address")
            return None
        return text

    def check_tls(self, top: _Fields, web: _Fields | None) -> None:
        given = [key for key in ("tls_cert", "tls_key") if web and web.given(key) is not None]
        if len(given) == 1:
            self.error(web.node if web else top.node,
                       "web: tls_cert and tls_key go together (HTTPS needs both)")

    def listen(self, node: Node, what: str) -> str | None:
        text = self.text(node, what)
        return text if text is None else self.converted(node, None, text, parse_listen)

    def cron(self, node: Node, what: str) -> str | None:
        from monitor.common.cron import parse_cron

        text = self.text(node, what)
        return text if text is None else self.converted(node, what, text, parse_cron)

    def mqtt_url(self, node: Node, what: str) -> str | None:
        """A broker URL; the error never repeats it (it may hold a password)."""
        from monitor.common.mqtt_url import parse_mqtt_url

        text = self.text(node, what)
        return text if text is None else self.converted(node, what, text, parse_mqtt_url)

    def http_url(self, node: Node, what: str) -> str | None:
        """An http(s) URL; the error never repeats it (its query may hold a secret)."""
        text = self.text(node, what)
        if text is None:
            return None
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.error(node, f"{what}: expected an http:// or https:// URL with a host")
            return None
        return text

    def topic(self, node: Node, what: str) -> str | None:
        text = self.text(node, what)
        if text is not None and (set(text) & {"+", "#", "\0"} or text.endswith("/")):
            self.error(node, f"{what}: an MQTT topic without + # or a trailing /")
            return None
        return text

    def converted(self, node: Node, what: str | None, text: str,
                  convert: Callable[[str], object]) -> str | None:
        """``text`` if ``convert`` accepts it, else its error (after ``what``) at the node."""
        try:
            convert(text)
        except (ValueError, ConfigError) as exc:
            self.error(node, f"{what}: {exc}" if what else str(exc))
            return None
        return text
