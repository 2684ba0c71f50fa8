"""One commune's bad data never freezes /metrics or the API for the others: the failing
host or commune is left out, logged once with its traceback, and everything else renders.
The bad values are put straight into the state objects, as a bug upstream would leave them;
the servers are real, on free loopback ports."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from monitor.decide.status import MonitorState
from monitor.present.metrics import Exposition, Family, labels
from monitor.present.web import api
from monitor.present.web.server import WebContext, build_app, serve
from probes.result import IcmpDetail
from tests.support import web as ws

AT = 1_790_000_000.0
INV = ws.inventory(("75",), per_province=4, hosts=2)
COMMUNES = list(INV.communes())
BAD = COMMUNES[0]  # OK in ws.state_for's cycle, so present in the state
GOOD = [c for c in COMMUNES[1:] if c.key in ws.state_for(INV, AT).communes]


def forged(cls: type, **values: object) -> object:
    """An instance with any field values, bypassing whatever checks the class makes."""
    obj = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj


def broken_state() -> MonitorState:
    """The state of ws.state_for with one host of BAD carrying non-numeric round trips."""
    state = ws.state_for(INV, AT)
    host = state.communes[BAD.key].hosts[BAD.hosts[0].name]
    bad_icmp = forged(IcmpDetail, sent=3, received=2, rtts=("a", "b"))
    host.last = dataclasses.replace(host.last, icmp=bad_icmp)
    return state


def render(state: MonitorState) -> str:
    exposition = Exposition(process_metrics=False)
    exposition.update(INV, state)
    return exposition.body().decode()


def test_a_host_with_non_numeric_rtts_is_left_out_and_the_rest_renders() -> None:
    text = render(broken_state())
    families = {f.name: f for f in text_string_to_metric_families(text)}  # well-formed
    bad_host = {"province": "75", "commune": BAD.code, "host": BAD.hosts[0].name}
    hosts_up = [s.labels for s in families["tslcd_host_up"].samples]
    assert bad_host not in hosts_up
    assert {**bad_host, "host": BAD.hosts[1].name} in hosts_up  # its neighbour is there
    for commune in GOOD:
        assert {"province": "75", "commune": commune.code, "host": commune.hosts[0].name} \
            in hosts_up
    assert not any(bad_host.items() <= s.labels.items() for f in families.values()
                   for s in f.samples)  # no half-written host
    assert "tslcd_exposition_skipped_rows 1" in text
    assert text == render(broken_state())  # stable from one render to the next


def test_a_commune_with_a_non_numeric_last_seen_is_left_out_whole() -> None:
    state = ws.state_for(INV, AT)
    state.communes[BAD.key].last_seen = "yesterday"  # type: ignore[assignment]
    text = render(state)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    statuses = {s.labels["commune"] for s in families["tslcd_commune_status"].samples}
    assert BAD.code not in statuses and {c.code for c in GOOD} <= statuses
    info = {s.labels["commune"] for s in families["tslcd_commune_info"].samples}
    assert BAD.code not in info and len(info) == len(COMMUNES) - 1


def test_the_failure_is_logged_once_with_its_traceback_not_at_every_render() -> None:
    state = broken_state()
    exposition = Exposition(process_metrics=False)
    with capture_logs() as logs:
        for _ in range(5):
            exposition.update(INV, state)
    skipped = [e for e in logs if e["event"] == "metrics_row_skipped"]
    assert len(skipped) == 1, skipped
    assert skipped[0]["key"] == f"{BAD.key}/{BAD.hosts[0].name}"
    assert skipped[0]["exc_info"] is True and skipped[0]["log_level"] == "error"


# --- through real servers -------------------------------------------------------------------


@pytest.fixture
async def base(unused_tcp_port: int) -> AsyncIterator[str]:
    api.RENDER_FAILURES.seen.clear()  # "logged once" is per process: start afresh
    state = broken_state()
    state.communes[BAD.key].last_seen = "yesterday"  # type: ignore[assignment]
    exposition = Exposition(process_metrics=False)
    exposition.update(INV, state)
    ctx = WebContext(inventory=lambda: INV, state=state, metrics_body=exposition.body,
                     samples=ws.samples_for(INV, ws.state_for(INV, AT), AT))
    runner = await serve(build_app(ctx), "127.0.0.1", unused_tcp_port)
    try:
        yield f"http://127.0.0.1:{unused_tcp_port}"
    finally:
        await runner.cleanup()


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session, \
            session.get(url) as response:
        return response.status, await response.text()


async def test_metrics_and_the_api_answer_for_the_other_communes(base: str) -> None:
    with capture_logs() as logs:
        status, text = await get(f"{base}/metrics")
        assert status == 200
        assert all(f'commune="{c.code}"' in text for c in GOOD)
        status, _ = await get(f"{base}/api/v1/communes")
        assert status == 200
        for _ in range(3):
            listed_status, listed = await get(f"{base}/api/v1/communes")
            assert listed_status == 200
            assert f'"{BAD.code}"' not in listed
            assert all(f'"commune":"{c.code}"' in listed for c in GOOD)
        for commune in GOOD:
            status, body = await get(f"{base}/api/v1/communes/75/{commune.code}")
            assert status == 200 and f'"commune":"{commune.code}"' in body
        for _ in range(3):
            status, body = await get(f"{base}/api/v1/communes/75/{BAD.code}")
            assert status == 500 and "could not be rendered" in body
            assert "Traceback" not in body
    failed = [e for e in logs if e["event"] == "api_commune_render_failed"]
    assert [e["key"] for e in failed] == [BAD.key]  # once, for list and detail alike


class _Source:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def families(self) -> list[Family]:
        if self.fail:
            raise RuntimeError("a bug in a family source")
        family = Family("tslcd_test_source", "gauge", "A source's family.")
        family.add(labels(agent_id='a"b'), 1)
        return [family]


def test_a_family_source_is_rendered_and_a_failing_one_leaves_the_rest() -> None:
    exposition = Exposition(process_metrics=False)
    exposition.add_source(_Source(fail=True))
    exposition.add_source(_Source(fail=False))
    exposition.update(INV, ws.state_for(INV, AT))
    families = {f.name: f for f in text_string_to_metric_families(exposition.body().decode())}
    [sample] = families["tslcd_test_source"].samples
    assert sample.labels == {"agent_id": 'a"b'} and sample.value == 1
    assert families["tslcd_host_up"].samples  # the rest rendered
    assert families["tslcd_exposition_skipped_rows"].samples[0].value == 1
