"""The election-period keys of the inventory: drills, periods, warn_days, the inspection check.

Same style as test_inventory_validation: every planted mistake reported once, at its line.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory.loader import dump, loads, validate_text
from inventory.model import WARN_DAYS, Drill, Period
from monitor.alerts.event import VN_TZ
from tests.support.inventory_texts import DONG_NAI_FIRST

BASE = """\
version: 1
defaults: {interval: 30s}
milestones:
  - id: ip_installed
    title: "Cài đặt IP cho máy tính cập nhật dữ liệu"
    due: 2026-01-29
    requires: [ip_config, link]
  - id: stamped
    title: "Quét, dán tem kiểm định máy tính"
    due: 2026-02-03
    requires: [inspection]
    warn_days: 2
""" + DONG_NAI_FIRST + """\
        subnet: 198.18.1.0/29
        gateway: 198.18.1.1
        hosts:
          - {name: may-01, ip: 198.18.1.2, inspection: {stamp: "CA-0001", date: 2026-01-30}}
      - code: "26068"
        name: "Phường Biên Hòa"
        isp: Viettel
        subnet: 198.18.1.8/29
        gateway: 198.18.1.9
        hosts: []
drills:
  - id: dien-tap-1
    title: "Diễn tập lần 1"
    from: 2026-02-06T08:00:00+07:00
    to: 2026-02-06T11:30:00
  - id: dien-tap-xa
    title: "Diễn tập riêng"
    from: 2026-02-10T08:00:00
    to: 2026-02-10T09:00:00
    scope: ["75/26041"]
periods:
  - id: ngay-bau-cu
    title: "Ngày bầu cử"
    from: 2026-03-15T05:00:00
    to: 2026-03-15T23:00:00
    interval: 10s
    escalate_after: 15m
    scope: "75"
"""

# (replace this, with that, expected message fragment, line marker (default: that))
MISTAKES = {
    "drill unknown key": ("    title: \"Diễn tập lần 1\"", "    titel: \"Diễn tập lần 1\"",
                          "did you mean 'title'", None),
    "drill missing title": ("    title: \"Diễn tập riêng\"\n", "", "drill: missing 'title'",
                            "- id: dien-tap-xa"),
    "drill ends before it starts": ("to: 2026-02-06T11:30:00", "to: 2026-02-06T07:30:00",
                                    "end after it starts", None),
    "drill unknown scope": ('scope: ["75/26041"]', 'scope: ["75/26044"]',
                           "no province or commune '75/26044'", None),
    "duplicate drill": ("  - id: dien-tap-xa", "  - id: dien-tap-1", "duplicate drill "
                        "'dien-tap-1'", "- id: dien-tap-1\n    title: \"Diễn tập riêng"),
    "drill bad time": ("from: 2026-02-10T08:00:00", "from: sáng mai", "date and time", None),
    "period bad interval": ("interval: 10s", "interval: 10 giây", "malformed duration", None),
    "period zero escalation": ("escalate_after: 15m", "escalate_after: 0m", "more than zero",
                               None),
    "period unknown key": ("escalate_after: 15m", "escalate_afer: 15m",
                           "did you mean 'escalate_after'", None),
    "negative warn_days": ("warn_days: 2", "warn_days: -1", "between 0 and 365", None),
    "unknown check": ("requires: [inspection]", "requires: [inspected]",
                      "unknown check 'inspected'", None),
}


def line_of(text: str, marker: str) -> int:
    assert text.count(marker) == 1, marker
    return text[: text.index(marker)].count("\n") + 1


def test_base_loads_drills_periods_and_warn_days() -> None:
    inv = loads(BASE)
    first, own = inv.drills
    assert (first.id, first.title, first.scope) == ("dien-tap-1", "Diễn tập lần 1", ())
    assert first.end == dt.datetime(2026, 2, 6, 11, 30, tzinfo=VN_TZ)  # naive = Vietnam time
    assert own.scope == ("75/26041",)
    assert own.covers("75", "26041") and not own.covers("75", "26068")
    (period,) = inv.periods
    assert (period.interval, period.escalate_after, period.scope) == (10.0, 900.0, ("75",))
    assert [m.warn_days for m in inv.milestones] == [WARN_DAYS, 2]
    assert inv.milestones[1].requires == ("inspection",)


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_planted_mistake_reported_once_at_its_line(name: str) -> None:
    old, new, fragment, marker = MISTAKES[name]
    assert BASE.count(old) == 1, old
    text = BASE.replace(old, new)
    inventory, problems = validate_text(text, "inv.yaml")
    found = [p for p in problems if fragment in p.message]
    assert inventory is None
    assert len(found) == 1, problems
    assert found[0].line == line_of(text, marker or new.strip().splitlines()[0]), problems


def test_dump_reads_back_equal() -> None:
    inv = loads(BASE)
    again = loads(dump(inv))
    assert again == inv
    assert again.drills == inv.drills and again.periods == inv.periods


def test_scoped_inventory_keeps_the_calendar() -> None:
    inv = loads(BASE).scoped("75/26068")
    assert [d.id for d in inv.drills] == ["dien-tap-1", "dien-tap-xa"]
    assert [p.id for p in inv.periods] == ["ngay-bau-cu"]


def test_interval_is_the_periods_inside_it_and_the_default_outside() -> None:
    inv = loads(BASE)
    inside = dt.datetime(2026, 3, 15, 12, 0, tzinfo=VN_TZ).timestamp()
    assert inv.interval_at(inside) == 10.0
    assert inv.interval_at(inside - 8 * 3600) == 30.0  # 04:00, before the period
    assert inv.interval_at(dt.datetime(2026, 3, 15, 23, 0, tzinfo=VN_TZ).timestamp()) == 30.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60 * 24 * 400), st.integers(1, 60 * 24 * 3),
                          st.sampled_from([(), ("75",), ("75/26041", "75/26068")]),
                          st.none() | st.integers(1, 3600), st.none() | st.integers(1, 86400),
                          st.integers(0, 30)),
                min_size=1, max_size=4))
def test_calendar_round_trips_through_dump(entries: list[tuple]) -> None:
    base = loads(BASE)
    origin = dt.datetime(2026, 1, 1, tzinfo=VN_TZ)
    drills, periods = [], []
    for i, (start, length, scope, interval, escalate, _) in enumerate(entries):
        begin = origin + dt.timedelta(minutes=start)
        end = begin + dt.timedelta(minutes=length)
        drills.append(Drill(f"d{i}", f"Diễn tập {i}", begin, end, scope))
        periods.append(Period(f"p{i}", f"Giai đoạn {i}", begin, end,
                              None if interval is None else float(interval),
                              None if escalate is None else float(escalate), scope))
    milestones = tuple(dataclasses.replace(m, warn_days=entries[0][5]) for m in base.milestones)
    inv = dataclasses.replace(base, drills=tuple(drills), periods=tuple(periods),
                              milestones=milestones)
    assert loads(dump(inv)) == inv
