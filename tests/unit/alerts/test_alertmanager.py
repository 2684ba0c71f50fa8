"""The Alertmanager sink: the alert it makes of an event (pure), and its posts to a real
aiohttp receiver on loopback standing in for ``/api/v2/alerts``."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from inventory.loader import loads
from inventory.model import Contact
from monitor.alerts.alertmanager import (
    BATCH,
    EXPIRE_AFTER,
    AlertmanagerSink,
    alert_labels,
    alertmanager_sinks,
    contacts_text,
    page_url,
    to_alert,
)
from monitor.alerts.event import AlertEvent
from monitor.common.backoff import Backoff
from monitor.common.config import Config, ConfigError, WebhookConfig, load
from tests.support.inventory_texts import WITH_CONTACT
from tests.support.servers import WebhookReceiver

INVENTORY_TEXT = WITH_CONTACT + """\
          - {name: "Trần Thị B", email: b@example.gov.vn}
        hosts:
          - {name: may-01, ip: 198.18.1.2}
"""
INVENTORY = loads(INVENTORY_TEXT)
PAGE = "http://127.0.0.1:9750/"
FAST = Backoff(attempts=4, base=0.01, cap=0.05)
NOW = 1_770_346_800.0  # 2026-02-06T03:00:00Z, 10:00 in Vietnam


def event(state: str = "firing", *, event_id: str = "a" * 24, name: str = "commune_down",
          host: str | None = None, since: str = "2026-02-06T08:15:30+07:00") -> AlertEvent:
    return AlertEvent(id=event_id, event=name, state=state,  # type: ignore[arg-type]
                      severity="critical", province="75", commune="26041", host=host,
                      since=since, message="Phường Trấn Biên (VNPT, DNI-0001): mất kết nối")


def sink(url: str, resend: float = 3600.0) -> AlertmanagerSink:
    return AlertmanagerSink(url, lambda: INVENTORY, page=PAGE, resend=resend, backoff=FAST,
                            clock=lambda: NOW)


def test_contacts_read_as_one_line() -> None:
    contacts = (Contact("Nguyễn Văn A", "cán bộ CNTT xã", "0912 345 678"),
                Contact("Trần Thị B", email="b@example.gov.vn"))
    assert contacts_text(contacts) == ("Nguyễn Văn A (cán bộ CNTT xã) 0912 345 678; "
                                       "Trần Thị B b@example.gov.vn")


def test_alert_carries_labels_of_section_8_and_the_commune_page() -> None:
    alert = to_alert(event(host="may-01"), INVENTORY, PAGE)
    assert alert["labels"] == {"alertname": "commune_down", "severity": "critical",
                               "province": "75", "commune": "26041", "host": "may-01",
                               "isp": "VNPT", "circuit": "DNI-0001"}
    assert alert["annotations"]["summary"].endswith("mất kết nối")
    assert alert["annotations"]["contacts"].startswith("Nguyễn Văn A (cán bộ CNTT xã)")
    assert alert["annotations"]["commune_name"] == INVENTORY.commune("75", "26041").name
    assert alert["generatorURL"] == "http://127.0.0.1:9750/#/75/26041"
    assert alert["startsAt"] == "2026-02-06T08:15:30+07:00"


def test_labels_hold_nothing_that_differs_between_two_monitors() -> None:
    """Two monitors see the same outage at different moments, with different ids."""
    one = event(event_id="1" * 24, since="2026-02-06T08:15:30+07:00")
    other = event(event_id="2" * 24, since="2026-02-06T08:15:41+07:00")
    commune = INVENTORY.commune("75", "26041")
    assert alert_labels(one, commune) == alert_labels(other, commune)


def test_unknown_place_has_no_operator_labels() -> None:
    target = AlertEvent(id="b" * 24, event="target_unreachable", state="firing",
                        severity="warning", province=None, commune=None, host=None,
                        since="2026-02-06T08:15:30+07:00", message="…")
    alert = to_alert(target, INVENTORY, PAGE)
    assert alert["labels"] == {"alertname": "target_unreachable", "severity": "warning"}
    assert "contacts" not in alert["annotations"]
    assert alert["generatorURL"] == PAGE


def test_page_url_from_the_listen_address() -> None:
    assert page_url(("127.0.0.1", 9750), tls=False) == "http://127.0.0.1:9750/"
    assert page_url(("::1", 9443), tls=True) == "https://[::1]:9443/"


def test_config_makes_one_sink_per_alertmanager() -> None:
    config = Config(alertmanagers=(WebhookConfig("http://127.0.0.1:9093"),
                                   WebhookConfig("http://127.0.0.1:9094/")))
    sinks = alertmanager_sinks(config, lambda: INVENTORY)
    assert [s.endpoint for s in sinks] == ["http://127.0.0.1:9093/api/v2/alerts",
                                           "http://127.0.0.1:9094/api/v2/alerts"]
    assert all(s.page == "http://127.0.0.1:9750/" for s in sinks)


def ends(alert: dict) -> float:
    return dt.datetime.fromisoformat(alert["endsAt"]).timestamp()


async def test_firing_ends_ahead_and_resolution_ends_now() -> None:
    async with WebhookReceiver() as am:
        am_sink = sink(am.url.removesuffix("/hook"))
        await am_sink.deliver(event())
        await am_sink.deliver(event("resolved", since="2026-02-06T08:20:00+07:00"))
        await am_sink.close()
    (firing,), (resolved,) = am.received
    assert ends(firing) == NOW + am_sink.resend * EXPIRE_AFTER
    assert resolved["labels"] == firing["labels"]
    assert resolved["startsAt"] == firing["startsAt"] == "2026-02-06T08:15:30+07:00"
    assert ends(resolved) == NOW
    assert am.headers[0]["Content-Type"] == "application/json"


async def test_same_labels_resolve_with_the_last_firing() -> None:
    """Two firings with one label set (two unknown devices) are one alert until both end."""
    async with WebhookReceiver() as am:
        am_sink = sink(am.url)
        await am_sink.deliver(event(event_id="1" * 24, name="unknown_device"))
        await am_sink.deliver(event(event_id="2" * 24, name="unknown_device",
                                    since="2026-02-06T09:00:00+07:00"))
        assert am.received[1][0]["startsAt"] == "2026-02-06T08:15:30+07:00"  # the earliest
        await am_sink.deliver(event("resolved", event_id="1" * 24, name="unknown_device"))
        assert len(am.received) == 2  # the first resolution changes nothing
        assert [a["labels"]["alertname"] for a in am_sink.firing()] == [
            "Watchdog", "unknown_device"]
        await am_sink.deliver(event("resolved", event_id="2" * 24, name="unknown_device"))
        await am_sink.close()
    assert ends(am.received[-1][0]) == NOW
    assert [a["labels"]["alertname"] for a in am_sink.firing()] == ["Watchdog"]


async def test_resend_posts_watchdog_and_firing_until_closed() -> None:
    async with WebhookReceiver() as am:
        am_sink = sink(am.url, resend=0.05)
        await am_sink.start()
        await am_sink.deliver(event())
        await am.wait_for(4)
        await am_sink.close()
        count = len(am.received)
        await asyncio.sleep(0.2)
        assert len(am.received) == count  # closed: nothing more
    resends = [body for body in am.received if len(body) == 2]
    assert resends, "the firing alert is re-sent with the Watchdog"
    watchdog, firing = resends[-1]
    assert watchdog["labels"] == {"alertname": "Watchdog", "severity": "none"}
    assert firing["labels"]["alertname"] == "commune_down"
    assert ends(firing) == NOW + 0.05 * EXPIRE_AFTER


async def test_retries_with_backoff_and_never_logs_credentials() -> None:
    async with WebhookReceiver(fail_first=2, fail_status=503) as am:
        url = am.url.replace("127.0.0.1", "am:p4ssw0rd@127.0.0.1") + "?token=T0KEN"
        am_sink = sink(url)
        with capture_logs() as logs:
            await am_sink.deliver(event())
        await am_sink.close()
    assert len(am.attempts) == 3 and len(am.received) == 1
    assert am.headers[-1]["Authorization"].startswith("Basic ")
    assert len([e for e in logs if e["event"] == "alert_delivery_retry"]) == 2
    text = repr(logs) + am_sink.name
    assert "p4ssw0rd" not in text and "T0KEN" not in text


def test_config_reads_alertmanagers_and_names_file_and_line_of_a_bad_one(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("alerts:\n  alertmanagers:\n    - url: http://127.0.0.1:9093\n"
                    "    - url: http://127.0.0.1:9094\n", encoding="utf-8")
    assert [am.url for am in load(good).alertmanagers] == ["http://127.0.0.1:9093",
                                                          "http://127.0.0.1:9094"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("alerts:\n  alertmanagers:\n    - url: http://127.0.0.1:9093\n"
                   "    - url: am.example:9093?token=s3cret\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(bad)
    message = str(caught.value)
    assert message.startswith(f"{bad}:4:") and "alerts.alertmanagers" in message
    assert "s3cret" not in message


async def test_resend_of_many_alerts_goes_in_batches() -> None:
    async with WebhookReceiver() as am:
        am_sink = sink(am.url, resend=3600.0)
        for n in range(BATCH * 2 + 1):  # one more than two batches, the Watchdog besides
            await am_sink.deliver(event(event_id=f"{n:024x}", name="host_down",
                                        host=f"may-{n:04d}"))
        await am_sink.start()
        await am.wait_for(BATCH * 2 + 1 + 3)
        await am_sink.close()
    resend = am.received[BATCH * 2 + 1:]
    assert [len(body) for body in resend] == [BATCH, BATCH, 2]
    assert resend[0][0]["labels"]["alertname"] == "Watchdog"


async def test_resolution_ends_what_fired_though_the_inventory_changed_meanwhile() -> None:
    inventories = [INVENTORY]
    async with WebhookReceiver() as am:
        am_sink = AlertmanagerSink(am.url, lambda: inventories[-1], page=PAGE, backoff=FAST,
                                   clock=lambda: NOW)
        await am_sink.deliver(event())
        inventories.append(loads(INVENTORY_TEXT.replace("isp: VNPT", "isp: Viettel")))
        await am_sink.deliver(event("resolved"))
        await am_sink.close()
    (firing,), (resolved,) = am.received
    assert resolved["labels"] == firing["labels"] and firing["labels"]["isp"] == "VNPT"
    assert [a["labels"]["alertname"] for a in am_sink.firing()] == ["Watchdog"]
