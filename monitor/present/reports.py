"""The readiness report: per commune, each milestone met or not, when, and late or not.

The provincial Home Affairs department reports progress by fixed deadlines ("IPs installed
by 29/01"); this is the table it sends. A milestone is met once every check it requires has
passed at least once (``first_passed``); it is met at the latest of those first passes. It
is late when it is still unmet after its due day (end of the day, Vietnam time) or was met
after it. The caller passes an already-scoped inventory, so a scoped token's report holds
only its communes. Headings are Vietnamese: the readers are the provincial committees.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import html
import io
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inventory.model import Commune, Inventory, Milestone
from monitor.common.clock import VIETNAM_TZ as VIETNAM  # one zone (re-exported: its users)
from monitor.decide.status import MonitorState
from monitor.decide.verdicts import MilestoneResult, judge

TITLE = "Báo cáo tiến độ sẵn sàng đường truyền"
FirstPassed = Mapping[str, Mapping[str, float]]  # "PROV/COMMUNE" -> {check: Unix time}


@dataclass(frozen=True, slots=True)
class CommuneReadiness:
    province: str
    province_name: str
    commune: str
    commune_name: str
    isp: str
    circuit: str | None
    results: tuple[MilestoneResult, ...]  # one per milestone, in the report's order


@dataclass(frozen=True, slots=True)
class ProvinceTotals:
    province: str  # "" for the grand total
    province_name: str
    communes: int
    met: tuple[int, ...]  # per milestone
    late: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    generated: float
    milestones: tuple[Milestone, ...]
    communes: tuple[CommuneReadiness, ...]
    provinces: tuple[ProvinceTotals, ...]
    total: ProvinceTotals


def readiness(inventory: Inventory, first_passed: FirstPassed, now: float) -> ReadinessReport:
    milestones = inventory.milestones
    rows, totals = [], []
    for province in inventory.provinces:
        prov_rows = [_commune_row(c, province.name, milestones, first_passed, now)
                     for c in province.communes]
        rows += prov_rows
        totals.append(_totals(province.code, province.name, prov_rows, len(milestones)))
    return ReadinessReport(now, milestones, tuple(rows), tuple(totals),
                           _totals("", "Tổng cộng", rows, len(milestones)))


def _commune_row(commune: Commune, province_name: str, milestones: tuple[Milestone, ...],
                 first_passed: FirstPassed, now: float) -> CommuneReadiness:
    passed = first_passed.get(commune.key, {})
    return CommuneReadiness(
        commune.province, province_name, commune.code, commune.name, commune.isp,
        commune.circuit, tuple(judge(m, passed, now) for m in milestones),
    )


def _totals(code: str, name: str, rows: list[CommuneReadiness], n: int) -> ProvinceTotals:
    met = tuple(sum(r.results[i].met for r in rows) for i in range(n))
    late = tuple(sum(r.results[i].late for r in rows) for i in range(n))
    return ProvinceTotals(code, name, len(rows), met, late)


def first_passed_from_state(state: MonitorState) -> dict[str, dict[str, float]]:
    return {key: dict(c.first_passed) for key, c in state.communes.items() if c.first_passed}


def first_passed_from_db(path: str | Path) -> dict[str, dict[str, float]]:
    """Read ``first_passed(province, commune, check_name, at)`` of the state database."""
    uri = f"file:{Path(path).resolve()}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True) as db:
            rows = db.execute("SELECT province, commune, check_name, at FROM first_passed")
            result: dict[str, dict[str, float]] = {}
            for province, commune, check, at in rows:
                result.setdefault(f"{province}/{commune}", {})[check] = float(at)
            return result
    except sqlite3.Error as exc:
        raise ValueError(f"{path}: cannot read first passes from the state database: {exc}") \
            from exc


# --- the table, shared by the writers -------------------------------------------------------

COMMUNE_HEADINGS = ("Mã tỉnh", "Tỉnh, thành phố", "Mã xã", "Xã, phường", "Nhà mạng",
                    "Mã đường truyền")
TOTALS_HEADINGS = ("Mã tỉnh", "Tỉnh, thành phố", "Số xã, phường")
YES, NO, LATE = "Đạt", "Chưa đạt", "Trễ hạn"
#: The three columns under each milestone, per commune and in the totals.
COMMUNE_MILESTONE_COLUMNS = ("kết quả", "thời điểm đạt", "trễ hạn")
TOTALS_MILESTONE_COLUMNS = ("đạt", "chưa đạt", "trễ hạn")


def _milestone_label(m: Milestone) -> str:
    return f"{m.title} (hạn {m.due:%d/%m/%Y})"


def _flat_headings(fixed: tuple[str, ...], per_milestone: tuple[str, ...],
                   report: ReadinessReport) -> list[str]:
    """One heading per column ("Cài đặt IP … (hạn 29/01/2026): kết quả"), for csv and xlsx."""
    heads = list(fixed)
    for m in report.milestones:
        heads += [f"{_milestone_label(m)}: {column}" for column in per_milestone]
    return heads


def commune_headings(report: ReadinessReport) -> list[str]:
    return _flat_headings(COMMUNE_HEADINGS, COMMUNE_MILESTONE_COLUMNS, report)


def commune_rows(report: ReadinessReport) -> Iterator[list[Any]]:
    """Cell values (None: empty); times as naive Vietnam-time datetimes, as a sheet shows them."""
    for r in report.communes:
        row: list[Any] = [r.province, r.province_name, r.commune, r.commune_name, r.isp,
                          r.circuit or None]
        for m in r.results:
            row += [YES if m.met else NO, local_time(m.met_at), LATE if m.late else None]
        yield row


def totals_headings(report: ReadinessReport) -> list[str]:
    return _flat_headings(TOTALS_HEADINGS, TOTALS_MILESTONE_COLUMNS, report)


def totals_rows(report: ReadinessReport) -> Iterator[list[Any]]:
    for t in (*report.provinces, report.total):
        row: list[Any] = [t.province or None, t.province_name, t.communes]
        for met, late in zip(t.met, t.late, strict=True):
            row += [met, t.communes - met, late]
        yield row


def local_time(at: float | None) -> dt.datetime | None:
    """Unix time as a naive Vietnam-time datetime, as a spreadsheet shows it."""
    if at is None:
        return None
    return dt.datetime.fromtimestamp(round(at), VIETNAM).replace(tzinfo=None)


#: What makes a spreadsheet program read a text cell as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: Any) -> Any:
    """A text cell no spreadsheet evaluates: text starting with one of :data:`FORMULA_STARTS`
    gets a leading ``'`` (OWASP's advice). Commune names, circuits and milestone or drill
    titles come from operators' spreadsheets, and a report is opened in Excel by the
    provincial committee: ``=HYPERLINK(...)`` must stay text. Other values pass unchanged
    (the reports' numbers are never negative)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_NAME_PART = 60


def name_part(ident: str) -> str:
    """An id (a drill's, a milestone's, a period's) as part of a file name, whatever it
    holds: ASCII letters, digits, ``-`` and ``_`` only, so no ``../``, slash, quote, CR or
    LF can reach the file system or a webhook's multipart header. Vietnamese letters lose
    their marks; an id that had to change gets a short hash of the original, so two ids
    never share a name ("a/b" and "a:b")."""
    folded = unicodedata.normalize("NFKD", ident.replace("đ", "d").replace("Đ", "D"))
    ascii_text = folded.encode("ascii", "ignore").decode("ascii")
    part = _UNSAFE.sub("-", ascii_text).strip("-")[:MAX_NAME_PART]
    if part == ident and part:
        return part
    digest = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{part}-{digest}" if part else digest


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _generated_line(report: ReadinessReport) -> str:
    return f"Thời điểm lập báo cáo: {cell_text(local_time(report.generated))} (giờ Việt Nam)"


# --- writers --------------------------------------------------------------------------------


Table = tuple[list[str], Iterable[list[Any]]]  # (headings, rows of cell values)


def csv_bytes(tables: Iterable[Table]) -> bytes:
    """UTF-8 with a BOM (Excel then shows the diacritics); tables separated by a blank line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for i, (heads, rows) in enumerate(tables):
        if i:
            writer.writerow([])
        writer.writerow([inert(cell_text(h)) for h in heads])
        writer.writerows([inert(v) if isinstance(v, str) else cell_text(v) for v in row]
                         for row in rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def xlsx_bytes(title: str, sheets: Iterable[tuple[str, Table]]) -> bytes:
    """One sheet per (name, table), bold frozen headings; times are real date cells; text
    always a string cell, never a formula (see :func:`xlsx_row`)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    for i, (name, (heads, rows)) in enumerate(sheets):
        sheet = book.active if i == 0 else book.create_sheet()
        sheet.title = name
        sheet.append(xlsx_row(sheet, heads))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append(xlsx_row(sheet, row))
        sheet.freeze_panes = "A2"
    book.properties.title = title
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def xlsx_row(sheet: Any, values: Iterable[Any]) -> list[Any]:
    """Cells for ``sheet.append``. openpyxl makes a formula of any text starting with "="
    (and an error cell of "#N/A"), so text goes in as a cell forced to a string, made
    :func:`inert`, without the control characters xlsx cannot hold; times get a date format."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell

    cells: list[Any] = []
    for value in values:
        if isinstance(value, str):
            cell = Cell(sheet, value=inert(ILLEGAL_CHARACTERS_RE.sub("", value)))
            cell.data_type = "s"  # never "f" (formula) nor "e" (error)
            value = cell
        elif isinstance(value, dt.datetime):
            value = Cell(sheet, value=value)
            value.number_format = "dd/mm/yyyy hh:mm"
        cells.append(value)
    return cells


def to_csv(report: ReadinessReport) -> bytes:
    """Communes, a blank line, totals."""
    return csv_bytes([(commune_headings(report), commune_rows(report)),
                      (totals_headings(report), totals_rows(report))])


def to_xlsx(report: ReadinessReport) -> bytes:
    """Two sheets, "Theo xã" and "Tổng hợp"."""
    return xlsx_bytes(TITLE, [("Theo xã", (commune_headings(report), commune_rows(report))),
                              ("Tổng hợp", (totals_headings(report), totals_rows(report)))])


def to_html(report: ReadinessReport) -> str:
    """Two tables; each milestone's title spans its three columns in a two-row header."""

    def table(fixed: tuple[str, ...], per_milestone: tuple[str, ...], rows: Iterator[list[Any]],
              late_col: bool) -> str:
        top = "".join(f'<th rowspan="2">{html.escape(h)}</th>' for h in fixed) + "".join(
            f'<th colspan="{len(per_milestone)}">{html.escape(_milestone_label(m))}</th>'
            for m in report.milestones)
        sub = "".join(f"<th>{html.escape(h)}</th>" for _ in report.milestones
                      for h in per_milestone)
        head = f"<tr>{top}</tr><tr>{sub}</tr>" if report.milestones else f"<tr>{top}</tr>"
        body = []
        for row in rows:
            cells = "".join(f"<td>{html.escape(cell_text(v))}</td>" for v in row)
            cls = ' class="late"' if late_col and LATE in row else ""
            body.append(f"<tr{cls}>{cells}</tr>")
        return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"

    return (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{TITLE}</title><style>{HTML_STYLE % 'late'}</style></head><body>"
        f"<h1>{TITLE}</h1><p>{html.escape(_generated_line(report))}</p>"
        f"<h2>Tổng hợp theo tỉnh, thành phố</h2>"
        f"{table(TOTALS_HEADINGS, TOTALS_MILESTONE_COLUMNS, totals_rows(report), False)}"
        f"<h2>Chi tiết theo xã, phường</h2>"
        f"{table(COMMUNE_HEADINGS, COMMUNE_MILESTONE_COLUMNS, commune_rows(report), True)}"
        "</body></html>"
    )


#: The HTML reports' common look; a row of the given class is highlighted (late, never).
HTML_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1rem}"
    "table{border-collapse:collapse;font-size:.85rem;margin-bottom:1.5rem}"
    "th,td{border:1px solid #bbb;padding:.25rem .4rem;text-align:left}"
    "th{background:#eef}tr.%s td{background:#fde8e8}"
)

WRITERS: dict[str, Callable[[ReadinessReport], bytes]] = {
    "csv": to_csv,
    "xlsx": to_xlsx,
    "html": lambda report: to_html(report).encode("utf-8"),
}
