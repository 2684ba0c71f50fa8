"""The monitor's own configuration (contract section 6): a YAML file, flags override it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_LISTEN = "127.0.0.1:9750"
ESCALATION_TOPIC = "tslcd/v1/escalations"
REPORT_DIR = "reports"


class ConfigError(Exception):
    """A configuration problem, with the file (and line where known) in the message."""


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str


@dataclass(frozen=True, slots=True)
class Config:
    listen: str = DEFAULT_LISTEN
    state: str | None = None
    inventory: str | None = None
    webhooks: tuple[WebhookConfig, ...] = ()
    alerts_mqtt_url: str | None = None
    escalation_webhooks: tuple[WebhookConfig, ...] = ()  # a commune down too long (periods)
    escalation_mqtt_url: str | None = None
    escalation_mqtt_topic: str = ESCALATION_TOPIC  # published on TOPIC/PROV
    report_schedule: str | None = None  # cron, Vietnam time: e.g. "0 7 * * 1"
    report_dir: str = REPORT_DIR
    report_webhook: str | None = None
    tokens_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    @property
    def listen_host_port(self) -> tuple[str, int]:
        return parse_listen(self.listen)


_SCHEMA: dict[str, Any] = {
    "listen": str,
    "state": str,
    "inventory": str,
    "alerts": {"webhooks": list, "mqtt": {"url": str},
               "escalation": {"webhooks": list, "mqtt": {"url": str, "topic": str}}},
    "reports": {"schedule": str, "dir": str, "webhook": str},
    "web": {"tokens_file": str, "tls_cert": str, "tls_key": str},
}


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) to a pair; raises ConfigError."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"listen address {text!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def load(path: str | Path | None) -> Config:
    if path is None:
        return Config()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the configuration must be a mapping")
    _check_keys(path, data, _SCHEMA, "")
    alerts = data.get("alerts") or {}
    web = data.get("web") or {}
    escalation = alerts.get("escalation") or {}
    escalation_mqtt = escalation.get("mqtt") or {}
    reports = data.get("reports") or {}
    config = Config(
        listen=data.get("listen", DEFAULT_LISTEN),
        state=data.get("state"),
        inventory=data.get("inventory"),
        webhooks=_webhooks(path, alerts.get("webhooks"), "alerts.webhooks"),
        alerts_mqtt_url=(alerts.get("mqtt") or {}).get("url"),
        escalation_webhooks=_webhooks(path, escalation.get("webhooks"),
                                      "alerts.escalation.webhooks"),
        escalation_mqtt_url=escalation_mqtt.get("url"),
        escalation_mqtt_topic=escalation_mqtt.get("topic") or ESCALATION_TOPIC,
        report_schedule=reports.get("schedule"),
        report_dir=reports.get("dir") or REPORT_DIR,
        report_webhook=reports.get("webhook"),
        tokens_file=web.get("tokens_file"),
        tls_cert=web.get("tls_cert"),
        tls_key=web.get("tls_key"),
    )
    parse_listen(config.listen)
    if config.report_schedule is not None:
        check_report_schedule(config.report_schedule, f"{path}: reports.schedule")
    return config


def check_report_schedule(cron: str, where: str) -> None:
    """A malformed ``reports.schedule`` (or ``--report-schedule``) is a ConfigError."""
    from monitor.schedule import ScheduleError, parse_cron

    try:
        parse_cron(cron)
    except ScheduleError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _webhooks(path: Path, items: list[Any] | None, where: str) -> tuple[WebhookConfig, ...]:
    hooks = []
    for item in items or []:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise ConfigError(f"{path}: {where}: each item needs a url")
        hooks.append(WebhookConfig(item["url"]))
    return tuple(hooks)


def _check_keys(path: Path, data: dict[str, Any], schema: dict[str, Any], prefix: str) -> None:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in schema:
            raise ConfigError(f"{path}: unknown key {name!r}")
        expected = schema[key]
        if value is None:
            continue
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: {name} must be a mapping")
            _check_keys(path, value, expected, f"{name}.")
        elif not isinstance(value, expected):
            raise ConfigError(f"{path}: {name} must be a {expected.__name__}")
