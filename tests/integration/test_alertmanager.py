"""Alerts through real Alertmanager processes (contract section 8, issue 16).

Two monitors of an HA pair are two pipelines built from ``alerts.alertmanagers`` as ``run``
builds them, each seeing one outage on its own cycles (its own ids and moments); they post to
a cluster of two peered ``prometheus-alertmanager`` processes, whose webhook receiver must
get exactly one firing and one resolved notification, even when one monitor and one
Alertmanager die in between. The shipped configuration (dashboards/alertmanager/) delivers
a real email, in Vietnamese, through an SMTP server started by the test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from aiohttp import web

from inventory.loader import loads
from inventory.model import Contact
from monitor.alerts.alertmanager import AlertmanagerSink
from monitor.alerts.event import AlertEvent, alert_id, make_event, place_label, render
from monitor.alerts.sinks import Dispatcher
from monitor.common.backoff import Backoff
from monitor.common.config import Config, WebhookConfig
from monitor.service.pipeline import Pipeline
from tests.support import ROOT, require_real
from tests.support.alertmanager import (
    Alertmanager,
    alerts,
    cluster,
    smtp_server,
    wait_ready,
)
from tests.support.engine_sim import STEP, make_commune, make_inventory, observe
from tests.support.inventory_texts import WITH_CONTACT
from tests.support.servers import WebhookReceiver, serving

SHIPPED = ROOT / "dashboards" / "alertmanager"
PAGE = "http://127.0.0.1:9750/"
FAST = Backoff(attempts=3, base=0.05, cap=0.2)
RESEND = 1.0  # seconds: a firing alert ends 4 s after its last send
INVENTORY = loads(WITH_CONTACT + """\
        hosts:
          - {name: may-01, ip: 198.18.1.2}
      - code: "26068"
        isp: Viettel
        circuit: DNI-0002
        subnet: 198.18.1.8/29
        gateway: 198.18.1.9
        hosts:
          - {name: may-01, ip: 198.18.1.10}
""")
DARK = dataclasses.replace(make_commune("26041"), contacts=(
    Contact("Nguyễn Văn A", "cán bộ CNTT xã", "0912 345 678"),))
FINE = make_commune("26068", name="Phường Tam Hiệp")
SIM_INVENTORY = make_inventory(DARK, FINE)


def outage(state: str, began: float, at: float | None = None) -> AlertEvent:
    """The commune_down of 75/26041 as one monitor's engine words it (its id from when that
    monitor saw the outage begin)."""
    commune = INVENTORY.commune("75", "26041")
    assert commune is not None
    place = place_label(commune.name, commune.isp, commune.circuit)
    body = render("commune_down", state, reason="gateway", gateway="198.18.1.1")  # type: ignore[arg-type]
    return make_event(event_id=alert_id("commune_down", "75/26041", "", began),
                      event="commune_down", state=state, province="75", commune="26041",  # type: ignore[arg-type]
                      host=None, since=began if at is None else at,
                      message=f"{place}: {body}")


def monitor(managers: list[Alertmanager]) -> Dispatcher:
    return Dispatcher([AlertmanagerSink(am.url, lambda: INVENTORY, page=PAGE, resend=RESEND,
                                        backoff=FAST) for am in managers])


def webhook_config(path: Path, hook: str) -> Path:
    """Every alert to ``hook`` within a second, no repeat; the Watchdog to nobody."""
    config = {
        "route": {"receiver": "hook", "group_by": ["alertname", "province", "commune"],
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h",
                  "routes": [{"matchers": ['alertname="Watchdog"'], "receiver": "nobody"}]},
        "receivers": [{"name": "hook", "webhook_configs": [{"url": hook,
                                                              "send_resolved": True}]},
                      {"name": "nobody"}],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def notifications(hook: WebhookReceiver, status: str) -> list[dict[str, Any]]:
    return [body for body in hook.received if body["status"] == status]


async def until(condition: Any, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def active(manager: Alertmanager) -> list[dict[str, Any]]:
    return [a for a in await alerts(manager) if a["labels"]["alertname"] != "Watchdog"]


def pair_member(managers: list[Alertmanager]) -> Pipeline:
    """One monitor of the pair, built as ``run`` builds it (its configuration's
    ``alerts.alertmanagers``), with production's one-minute resend shortened to a second."""
    config = Config(alertmanagers=tuple(WebhookConfig(m.url) for m in managers))
    pipeline = Pipeline(SIM_INVENTORY, config, None)
    sinks = [s for s in pipeline.dispatcher.sinks if isinstance(s, AlertmanagerSink)]
    assert len(sinks) == len(managers)
    for sink in sinks:
        sink.resend, sink.backoff = RESEND, FAST
    return pipeline


def cycle(pipeline: Pipeline, at: float, *, dark: bool) -> None:
    """One probe cycle of both communes: 75/26041 dark or not, 75/26068 always fine."""
    pipeline.ingest_commune(observe(at, hosts=not dark, gateway=not dark, commune=DARK),
                            "central")
    pipeline.ingest_commune(observe(at, commune=FINE), "central")


async def test_ha_pair_gives_one_notification_per_outage_and_loses_none(
        tmp_path: Path) -> None:
    async with WebhookReceiver() as hook:
        config = webhook_config(tmp_path / "alertmanager.yml", hook.url)
        with cluster(config, tmp_path, size=2) as managers:
            for manager in managers:
                await wait_ready(manager, peers=1)
            first, second = pair_member(managers), pair_member(managers)
            await first.start()
            await second.start()
            try:
                await _outage_then_repair(managers, first, second, hook)
            finally:
                await first.stop()
                await second.stop()
    firing, = notifications(hook, "firing")
    resolved, = notifications(hook, "resolved")
    for body in (firing, resolved):
        assert [a["labels"]["commune"] for a in body["alerts"]] == ["26041"]
        assert [a["labels"]["alertname"] for a in body["alerts"]] == ["commune_down"]
    assert resolved["alerts"][0]["annotations"]["summary"].endswith("đã kết nối trở lại")


async def _outage_then_repair(managers: list[Alertmanager], first: Pipeline,
                              second: Pipeline, hook: WebhookReceiver) -> None:
    began = time.time() - 300
    for n in range(4):  # each monitor sees the outage on its own cycle, 7 s apart
        cycle(first, began + n * STEP, dark=True)
        cycle(second, began + n * STEP + 7, dark=True)

    async def one_alert_everywhere() -> bool:
        return [len(await active(m)) for m in managers] == [1, 1]

    await until(one_alert_everywhere, "the outage in both Alertmanagers")
    (alert,) = await active(managers[1])
    assert alert["labels"] == {"alertname": "commune_down", "severity": "critical",
                               "province": "75", "commune": "26041", "isp": "VNPT",
                               "circuit": "DNI-0001"}
    assert alert["annotations"]["contacts"] == "Nguyễn Văn A (cán bộ CNTT xã) 0912 345 678"
    assert alert["generatorURL"] == "http://127.0.0.1:9750/#/75/26041"
    watchdogs = [a for a in await alerts(managers[0]) if a["labels"]["alertname"] == "Watchdog"]
    assert len(watchdogs) == 1 and watchdogs[0]["labels"]["severity"] == "none"

    await hook.wait_for(1)
    await asyncio.sleep(5)  # the second Alertmanager's turn (peer timeout 2 s) passes
    assert len(notifications(hook, "firing")) == 1, hook.received

    await first.dispatcher.stop()  # one monitor dies: its alerts would expire 4 s later
    managers[0].kill()  # and one Alertmanager
    await asyncio.sleep(4 * RESEND + 2)
    assert len(await active(managers[1])) == 1, "the other monitor keeps it firing"
    assert not notifications(hook, "resolved")

    repaired = began + 4 * STEP + 7
    for n in range(3):
        cycle(second, repaired + n * STEP, dark=False)
    await until(lambda: _has(hook, "resolved"), "the resolved notification")
    await asyncio.sleep(3)


async def _has(hook: WebhookReceiver, status: str) -> bool:
    return bool(notifications(hook, status))


def shipped_config_towards(tmp_path: Path, smtp_port: int, telegram: str | None = None) -> Path:
    """The shipped configuration and templates, mail to the test's SMTP server, Telegram to
    the test's stand-in for its API (or none), no webhooks, groups flushed within a second."""
    config = yaml.safe_load((SHIPPED / "alertmanager.yml").read_text(encoding="utf-8"))
    config["global"]["smtp_smarthost"] = f"127.0.0.1:{smtp_port}"
    if telegram is not None:
        config["global"]["telegram_api_url"] = telegram
    for receiver in config["receivers"]:
        if telegram is None:
            receiver.pop("telegram_configs", None)
        receiver.pop("webhook_configs", None)
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        route.update({"group_wait": "500ms", "group_interval": "1s"} if "group_wait" in route
                     or route is config["route"] else {})
        routes += route.get("routes", [])
    shutil.copy(SHIPPED / "tslcd.tmpl", tmp_path / "tslcd.tmpl")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, message
    return str(part.get_content())


def to(messages: list[EmailMessage], address: str) -> list[EmailMessage]:
    return [m for m in messages if m["To"] == address]


async def test_shipped_configuration_mails_the_operator_in_vietnamese(tmp_path: Path) -> None:
    with (smtp_server() as (port, mailbox),
          cluster(shipped_config_towards(tmp_path, port), tmp_path) as (manager,)):
        await wait_ready(manager)
        dispatcher = monitor([manager])
        await dispatcher.start()
        try:
            began = time.time() - 60
            dispatcher.publish(outage("firing", began))
            await mailbox.wait_for(2)  # VNPT Đồng Nai, and the central team (critical)
            dispatcher.publish(outage("resolved", began, at=time.time()))
            await mailbox.wait_for(4)
        finally:
            await dispatcher.stop()
    team = to(mailbox.messages, "kythuat@dongnai.vnpt.example.vn")
    central = to(mailbox.messages, "trungtam-giamsat@example.gov.vn")
    assert len(team) == 2 and len(central) == 2, [m["To"] for m in mailbox.messages]
    firing, resolved = team
    assert firing["Subject"] == (
        "[TSLCD CẢNH BÁO] commune_down: Phường Trấn Biên (VNPT, DNI-0001)")
    assert resolved["Subject"].startswith("[TSLCD ĐÃ KHẮC PHỤC] commune_down: Phường Trấn Biên")
    body = text(firing)
    for line in ("Đang xảy ra: Phường Trấn Biên (VNPT, DNI-0001): mất kết nối: đường truyền "
                 "không phản hồi (gateway 198.18.1.1)",
                 "Xã/phường: Phường Trấn Biên (mã 75/26041)", "Tỉnh/thành phố: Đồng Nai",
                 "Nhà mạng: VNPT", "Mã đường truyền: DNI-0001",
                 "Liên hệ: Nguyễn Văn A (cán bộ CNTT xã) 0912 345 678",
                 "Xem: http://127.0.0.1:9750/#/75/26041"):
        assert line in body, body
    assert "Đã khắc phục: " in text(resolved)
    assert "Viettel" not in body  # the other commune is fine: nothing of it


async def test_shipped_configuration_telegrams_the_teams(tmp_path: Path) -> None:
    """Telegram's Bot API stood in for by an aiohttp server on loopback."""
    sent: list[dict[str, Any]] = []

    async def bot_api(request: web.Request) -> web.Response:
        fields = dict(await request.post()) or await request.json()
        sent.append({"path": request.path, **fields})
        chat = {"id": int(fields.get("chat_id", 0)), "type": "group"}
        return web.json_response({"ok": True, "result": {"message_id": len(sent), "date": 0,
                                                         "chat": chat, "text": "ok"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", bot_api)
    async with serving(app) as api_port:
        with (smtp_server() as (port, _),
              cluster(shipped_config_towards(tmp_path, port, f"http://127.0.0.1:{api_port}"),
                      tmp_path) as (manager,)):
            await wait_ready(manager)
            dispatcher = monitor([manager])
            await dispatcher.start()
            try:
                dispatcher.publish(outage("firing", time.time() - 60))

                async def two_chats() -> bool:
                    return len([m for m in sent if m["path"].endswith("/sendMessage")]) >= 2

                await until(two_chats, "messages to both chats")
            finally:
                await dispatcher.stop()
    messages = {int(m["chat_id"]): m for m in sent if m["path"].endswith("/sendMessage")}
    assert set(messages) == {-1001000000075, -1001000000001}  # VNPT Đồng Nai, central team
    message = messages[-1001000000075]
    assert message["parse_mode"] == "HTML"
    assert message["text"].startswith(
        "<b>[TSLCD CẢNH BÁO] commune_down: Phường Trấn Biên (VNPT, DNI-0001)</b>\n")
    assert "Liên hệ: Nguyễn Văn A (cán bộ CNTT xã) 0912 345 678" in message["text"]
    assert all("/bot0000000000:thay-bang-token-that/" in m["path"] for m in sent)


def amtool_route(*labels: str) -> str:
    done = subprocess.run(
        ["amtool", "config", "routes", "test",
         f"--config.file={SHIPPED / 'alertmanager.yml'}", *labels],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(("labels", "receivers"), [
    (("alertname=Watchdog", "severity=none"), "dead-mans-switch"),
    (("alertname=vantage_isolated", "severity=warning"), "trung-tam"),
    (("alertname=monitor_not_cycling", "severity=critical", "instance=a:9750"), "trung-tam"),
    (("alertname=commune_down", "severity=critical", "province=75", "commune=26041",
      "isp=VNPT", "circuit=DNI-0001"), "vnpt-dong-nai,trung-tam"),
])
def test_shipped_routes_for_the_watchers(labels: tuple[str, ...], receivers: str) -> None:
    require_real(shutil.which("amtool") is not None, "amtool (prometheus-alertmanager) missing")
    assert amtool_route(*labels) == receivers


def test_shipped_configuration_names_only_loopback_addresses() -> None:
    """A test that loads it can never reach out; real addresses are the operator's edit."""
    config = yaml.safe_load((SHIPPED / "alertmanager.yml").read_text(encoding="utf-8"))
    hosts = [config["global"]["smtp_smarthost"].rpartition(":")[0],
             urlsplit(config["global"]["telegram_api_url"]).hostname]
    for receiver in config["receivers"]:
        hosts += [urlsplit(w["url"]).hostname for w in receiver.get("webhook_configs", [])]
        hosts += [urlsplit(t["api_url"]).hostname for t in receiver.get("telegram_configs", [])
                  if "api_url" in t]
    assert set(hosts) == {"127.0.0.1"}
    receivers = {r["name"]: r for r in config["receivers"]}
    assert {"email_configs", "telegram_configs", "webhook_configs"} <= receivers[
        "trung-tam"].keys()
