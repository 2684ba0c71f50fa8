"""One alert book for every kind: the calendar's alerts kept, persisted and delivered with
the state engine's (one store, one outbox), and what older monitors stored taken over."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from inventory.model import Inventory, Milestone
from monitor.alerts.event import AlertEvent
from monitor.decide.engine import StateEngine
from monitor.decide.operations import Operations, stored_key
from monitor.store.ops_db import OpsStore
from monitor.store.state_db import Store, loads_key
from tests.support.engine_sim import T0, make_inventory

WARNING = ("deadline", "75", "line:warning")


def inventory() -> Inventory:
    line = Milestone("line", "Lắp đặt đường truyền", dt.date(2026, 2, 8), ("link",), warn_days=3)
    return dataclasses.replace(make_inventory(), milestones=(line,))


def start(db: Path) -> tuple[StateEngine, Operations]:
    engine = StateEngine(inventory(), Store(db), clock=lambda: T0)
    return engine, Operations(str(db), engine=engine)


def test_the_calendars_alerts_live_in_the_engines_book_store_and_outbox(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    engine, ops = start(db)
    fired = ops.evaluate(engine.inventory, engine.state, T0).alerts
    assert [(e.event, e.state, e.province) for e in fired] == [("deadline", "firing", "75")]
    assert engine.book.firing(WARNING) == fired[0]
    store = Store(db)
    assert [loads_key(k) for k in store.load().open_alerts] == [WARNING]
    assert [e.id for e in store.outbox_pending()] == [fired[0].id]
    engine.store.close()  # type: ignore[union-attr]
    ops.close()
    engine, ops = start(db)  # a restart: the book still has it, nothing fires twice
    assert engine.book.firing(WARNING) == fired[0]
    assert ops.evaluate(engine.inventory, engine.state, T0 + 60).alerts == []


def test_alerts_an_older_monitor_kept_in_the_operations_table_join_the_book(
        tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    Store(db).close()
    old = AlertEvent("abc123", "deadline", "firing", "warning", "75", None, None,
                     "2026-02-05T00:00:00+07:00", "Đồng Nai: còn 3 ngày")
    legacy = OpsStore(db)
    legacy.record_alerts({"deadline:line:75:warning": old}, [], {"deadline:line:75:warning": T0})
    legacy.close()
    engine, ops = start(db)
    assert engine.book.firing(WARNING) == old
    assert OpsStore(db).open_alerts() == {}
    assert [loads_key(k) for k in Store(db).load().open_alerts] == [WARNING]
    assert Store(db).outbox_pending() == []  # delivered long ago: not sent again
    assert ops.evaluate(engine.inventory, engine.state, T0).alerts == []  # fired once only


def test_escalations_stay_out_of_the_alert_outbox(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    engine, _ = start(db)
    with engine.batch():
        ev = engine.book.fire(("escalation", "75/26041", ""), T0, "Phường Trấn Biên: quá hạn",
                              province="75", commune="26041")
    assert ev is not None
    assert Store(db).outbox_pending() == []
    assert [loads_key(k) for k in Store(db).load().open_alerts] == [("escalation", "75/26041",
                                                                      "")]


def test_keys_written_by_older_monitors_are_read() -> None:
    assert stored_key("deadline:line:75:warning") == ("deadline", "75", "line:warning")
    assert stored_key("uninspected:75/26041:may-01") == ("uninspected_host", "75/26041",
                                                         "may-01")
    assert stored_key("escalation:75/26041") == ("escalation", "75/26041", "")
    assert stored_key('["deadline", "75", "line:late"]') == ("deadline", "75", "line:late")
