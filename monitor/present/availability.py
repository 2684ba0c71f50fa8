"""The availability report: per commune, how long its line was down over a period.

Zabbix's SLA report, for the election period: availability, outages, downtime, longest
outage and mean time to repair per commune, with totals per operator and per province.

What it is computed from: the commune status changes the engine records in the state
database (``history`` rows with ``host`` NULL, ``old -> new``). A commune's timeline starts
at its first recorded change (before it: no data) and ends at the latest cycle that saw it
(``communes.last_seen``; after it: no data). Between, each span has the status it changed
to: ``down`` is an outage, ``ok`` and ``degraded`` are up (the line carries; a computer off
is not the line's outage), ``unknown`` (nothing observed, e.g. a silent agent) is no data.
No data is never counted as up: availability is ``up / (up + down)`` over the observed time
only, and None when nothing was observed. Limitation: the state records changes, not
heartbeats, so a stop of the monitor while a commune was ``ok`` cannot be told from the
database and counts as observed up time.

The caller passes an already-scoped inventory (a token for isp:VNPT sees only VNPT's
communes, and totals over them). The tables reuse the readiness report's writers (csv with
a BOM and :func:`~monitor.present.reports.inert` cells, xlsx, html).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inventory.model import Inventory
from monitor.decide.heading import CommuneHeading
from monitor.decide.status import MonitorState
from monitor.present.reports import (
    COMMUNE_HEADINGS,
    HTML_STYLE,
    VIETNAM,
    Table,
    cell_text,
    csv_bytes,
    heading_cells,
    local_time,
    xlsx_bytes,
)
from monitor.store.state_db import Store

TITLE = "Báo cáo mức độ sẵn sàng đường truyền (availability)"
DOWN = "down"
UP_STATUSES = frozenset({"ok", "degraded"})


@dataclass(frozen=True, slots=True)
class Change:
    """A commune's status changed from ``old`` to ``new`` at ``at`` (Unix time)."""

    at: float
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Outage:
    start: float
    end: float  # the repair, or the end of the observed time when still down
    repaired: bool

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Figures:
    """Observed up and down time and the outages, of one commune or summed over several."""

    up_seconds: float
    down_seconds: float
    outages: int
    longest: float  # seconds; 0 without outages
    repaired: int  # outages whose repair was seen in the period
    repair_seconds: float  # their total duration

    @property
    def observed_seconds(self) -> float:
        return self.up_seconds + self.down_seconds

    @property
    def availability(self) -> float | None:
        """0..1 over the observed time; None when nothing was observed."""
        observed = self.observed_seconds
        return None if observed <= 0 else self.up_seconds / observed

    @property
    def mttr(self) -> float | None:
        """Mean time to repair over the repaired outages (seconds); None without one."""
        return self.repair_seconds / self.repaired if self.repaired else None


NO_FIGURES = Figures(0.0, 0.0, 0, 0.0, 0, 0.0)


def commune_figures(changes: Sequence[Change], last_seen: float | None, start: float,
                    end: float) -> Figures:
    """One commune's figures over ``[start, end)``: the rule of this report, pure.

    ``changes`` in time order; the status holds from a change to the next, the last one
    until ``last_seen``. Spans outside the period are clipped to it."""
    if not changes:
        return NO_FIGURES
    stop = min(end, last_seen if last_seen is not None else changes[-1].at)
    up = down = 0.0
    outages: list[Outage] = []
    last = len(changes) - 1
    for i, change in enumerate(changes):
        until = changes[i + 1].at if i < last else stop  # the last status holds to the end
        a, b = max(change.at, start), min(until, stop)
        if b <= a:
            continue
        if change.new == DOWN:
            down += b - a
            outages.append(Outage(a, b, repaired=i < last and until <= stop))
        elif change.new in UP_STATUSES:
            up += b - a
    outages = _merge(outages)
    repaired = [o for o in outages if o.repaired]
    return Figures(up, down, len(outages), max((o.seconds for o in outages), default=0.0),
                   len(repaired), sum(o.seconds for o in repaired))


def _merge(outages: list[Outage]) -> list[Outage]:
    """Adjacent down spans (``down -> down`` rows after a restart) are one outage."""
    merged: list[Outage] = []
    for o in outages:
        if merged and merged[-1].end == o.start:
            merged[-1] = Outage(merged[-1].start, o.end, o.repaired)
        else:
            merged.append(o)
    return merged


def add(a: Figures, b: Figures) -> Figures:
    return Figures(a.up_seconds + b.up_seconds, a.down_seconds + b.down_seconds,
                   a.outages + b.outages, max(a.longest, b.longest), a.repaired + b.repaired,
                   a.repair_seconds + b.repair_seconds)


def total(figures: Iterable[Figures]) -> Figures:
    result = NO_FIGURES
    for f in figures:
        result = add(result, f)
    return result


@dataclass(frozen=True, slots=True)
class CommuneAvailability(CommuneHeading):
    figures: Figures


@dataclass(frozen=True, slots=True)
class GroupAvailability:
    """Totals of a province (``kind`` "province"), an operator ("isp") or all ("total")."""

    kind: str
    key: str
    name: str
    communes: int
    figures: Figures


@dataclass(frozen=True, slots=True)
class AvailabilityReport:
    generated: float
    start: float
    end: float
    communes: tuple[CommuneAvailability, ...]
    groups: tuple[GroupAvailability, ...]  # provinces, then operators, then the total


@dataclass(frozen=True, slots=True)
class StateHistory:
    """What the report reads of the state: status changes and the latest sighting."""

    changes: Mapping[str, Sequence[Change]]  # "PROV/COMMUNE" -> in time order
    last_seen: Mapping[str, float]

    @property
    def first(self) -> float | None:
        return min((c[0].at for c in self.changes.values() if c), default=None)

    @property
    def last(self) -> float | None:
        return max(self.last_seen.values(), default=None)


def availability(inventory: Inventory, state: StateHistory, start: float | None,
                 end: float | None, now: float) -> AvailabilityReport:
    """The report over ``[start, end)``; None bounds: all the state holds."""
    lo = start if start is not None else (state.first or now)
    hi = end if end is not None else max(state.last or now, lo)
    rows: list[CommuneAvailability] = []
    groups: list[GroupAvailability] = []
    for province in inventory.provinces:
        prov_rows = [
            CommuneAvailability(
                *CommuneHeading.of(c, province.name),
                commune_figures(state.changes.get(c.key, ()), state.last_seen.get(c.key),
                                lo, hi))
            for c in province.communes
        ]
        rows += prov_rows
        groups.append(GroupAvailability("province", province.code, province.name,
                                        len(prov_rows), total(r.figures for r in prov_rows)))
    for isp in sorted({r.isp for r in rows}):
        mine = [r for r in rows if r.isp == isp]
        groups.append(GroupAvailability("isp", isp, isp, len(mine),
                                        total(r.figures for r in mine)))
    groups.append(GroupAvailability("total", "", "Tổng cộng", len(rows),
                                    total(r.figures for r in rows)))
    return AvailabilityReport(now, lo, hi, tuple(rows), tuple(groups))


# --- reading the state ----------------------------------------------------------------------


def history_from_db(path: str | Path) -> StateHistory:
    """The commune status changes and last sightings of a state database (read only)."""
    uri = f"file:{Path(path).resolve()}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True) as db:
            return history_from_connection(db)
    except sqlite3.Error as exc:
        raise ValueError(f"{path}: cannot read the status history from the state database: "
                         f"{exc}") from exc


def history_from_connection(db: sqlite3.Connection) -> StateHistory:
    changes: dict[str, list[Change]] = {}
    rows = db.execute("SELECT at, province, commune, old, new FROM history "
                      "WHERE host IS NULL ORDER BY at, rowid")
    for at, province, commune, old, new in rows:
        changes.setdefault(f"{province}/{commune}", []).append(Change(float(at), old, new))
    last_seen = {f"{p}/{c}": float(at) for p, c, at in
                 db.execute("SELECT province, commune, last_seen FROM communes "
                            "WHERE last_seen IS NOT NULL")}
    return StateHistory(changes, last_seen)


MAX_ROWS_PER_COMMUNE = 1_000_000  # the whole record: an election period holds far fewer


def history_from_store(inventory: Inventory, store: Store, state: MonitorState) -> StateHistory:
    """The same from the running monitor's own store (on its thread; an in-memory store
    too) and its live state's last sightings, for the communes of ``inventory``."""
    changes: dict[str, list[Change]] = {}
    for c in inventory.communes():
        rows = store.history(c.province, c.code, limit=MAX_ROWS_PER_COMMUNE)
        mine = [Change(float(r["at"]), r["old"], r["new"]) for r in rows if r["host"] is None]
        if mine:
            changes[c.key] = mine
    last_seen = {key: cs.last_seen for key, cs in state.communes.items()
                 if cs.last_seen is not None}
    return StateHistory(changes, last_seen)


def parse_day(text: str, what: str) -> dt.date:
    """``2026-02-06`` or ``06/02/2026``; ValueError naming ``what``."""
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return dt.datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{what} {text!r}: expected a date as 2026-02-06 or 06/02/2026")


def day_start(day: dt.date) -> float:
    """Midnight at the start of ``day``, Vietnam time, as Unix time."""
    return dt.datetime.combine(day, dt.time(), VIETNAM).timestamp()


def period(from_day: str | None, to_day: str | None) -> tuple[float | None, float | None]:
    """``--from``/``--to`` (Vietnam dates, both days included) to ``[start, end)``."""
    start = day_start(parse_day(from_day, "--from")) if from_day else None
    end = day_start(parse_day(to_day, "--to") + dt.timedelta(days=1)) if to_day else None
    if start is not None and end is not None and end <= start:
        raise ValueError(f"--to {to_day} is before --from {from_day}")
    return start, end


# --- the tables -----------------------------------------------------------------------------

FIGURE_HEADINGS = ("Tỷ lệ sẵn sàng (%)", "Số lần mất kết nối", "Tổng thời gian mất (giây)",
                   "Lần mất lâu nhất (giây)", "Thời gian khắc phục trung bình (giây)",
                   "Thời gian có dữ liệu (giây)")
GROUP_HEADINGS = ("Loại", "Mã", "Tên", "Số xã, phường")
GROUP_KINDS = {"province": "Tỉnh, thành phố", "isp": "Nhà mạng", "total": "Tổng cộng"}
NO_DATA = "Không có dữ liệu"


def _figure_cells(f: Figures) -> list[Any]:
    avail = f.availability
    mttr = f.mttr
    return [NO_DATA if avail is None else round(avail * 100, 3), f.outages,
            round(f.down_seconds), round(f.longest), None if mttr is None else round(mttr),
            round(f.observed_seconds)]


def commune_table(report: AvailabilityReport) -> Table:
    rows: Iterator[list[Any]] = (
        [*heading_cells(r), *_figure_cells(r.figures)] for r in report.communes)
    return [*COMMUNE_HEADINGS, *FIGURE_HEADINGS], rows


def group_table(report: AvailabilityReport) -> Table:
    rows: Iterator[list[Any]] = (
        [GROUP_KINDS[g.kind], g.key or None, g.name, g.communes, *_figure_cells(g.figures)]
        for g in report.groups)
    return [*GROUP_HEADINGS, *FIGURE_HEADINGS], rows


def _period_line(report: AvailabilityReport) -> str:
    return (f"Kỳ báo cáo: {cell_text(local_time(report.start))} – "
            f"{cell_text(local_time(report.end))} (giờ Việt Nam); lập lúc "
            f"{cell_text(local_time(report.generated))}")


def to_csv(report: AvailabilityReport) -> bytes:
    """Totals (provinces, operators, all), a blank line, communes."""
    return csv_bytes([group_table(report), commune_table(report)])


def to_xlsx(report: AvailabilityReport) -> bytes:
    return xlsx_bytes(TITLE, [("Tổng hợp", group_table(report)),
                              ("Theo xã", commune_table(report))])


def to_html(report: AvailabilityReport) -> str:
    def table(t: Table) -> str:
        heads, rows = t
        head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
        body = []
        outages_col = len(heads) - len(FIGURE_HEADINGS) + 1
        for row in rows:
            cells = "".join(f"<td>{html.escape(cell_text(v))}</td>" for v in row)
            cls = ' class="outage"' if row[outages_col] else ""
            body.append(f"<tr{cls}>{cells}</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    return (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(TITLE)}</title><style>{HTML_STYLE % 'outage'}</style></head>"
        f"<body><h1>{html.escape(TITLE)}</h1><p>{html.escape(_period_line(report))}</p>"
        f"<h2>Tổng hợp theo tỉnh, nhà mạng</h2>{table(group_table(report))}"
        f"<h2>Chi tiết theo xã, phường</h2>{table(commune_table(report))}"
        "</body></html>"
    )


def _figures_json(f: Figures) -> dict[str, Any]:
    return {"availability": f.availability, "outages": f.outages,
            "downtime_seconds": round(f.down_seconds, 3),
            "longest_outage_seconds": round(f.longest, 3),
            "mttr_seconds": None if f.mttr is None else round(f.mttr, 3),
            "observed_seconds": round(f.observed_seconds, 3)}


def to_json_rows(report: AvailabilityReport) -> list[dict[str, Any]]:
    """Contract §1: a list of objects with at least province, commune, availability,
    outages, downtime_seconds (availability null: no data)."""
    return [{**r.heading_json(), **_figures_json(r.figures)} for r in report.communes]


def to_json_groups(report: AvailabilityReport) -> list[dict[str, Any]]:
    return [{"kind": g.kind, "key": g.key, "name": g.name, "communes": g.communes,
             **_figures_json(g.figures)} for g in report.groups]


def to_json(report: AvailabilityReport) -> bytes:
    return json.dumps(to_json_rows(report), ensure_ascii=False, indent=1).encode("utf-8")


WRITERS: dict[str, Callable[[AvailabilityReport], bytes]] = {
    "csv": to_csv,
    "xlsx": to_xlsx,
    "html": lambda report: to_html(report).encode("utf-8"),
    "json": to_json,
}
