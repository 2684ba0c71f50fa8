"""The readiness report: per commune, each milestone's state, when, and late or not.

The provincial Home Affairs department reports progress by fixed deadlines ("IPs installed
by 29/01"); this is the table it sends. Each milestone of each commune is in exactly one
state, :func:`monitor.decide.readiness.judge`'s (met on time, met late, met but not observed
before the due day, attested by a person, not observable with what is missing, not met);
the cells say it in Vietnamese (English with ``language="en"``). The report also counts the
computers of each commune and, in the totals, the communes with fewer than two. The caller
passes an already-scoped inventory, so a scoped token's report holds only its communes.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import html
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from inventory.model import MIN_COMPUTERS, Inventory, Milestone
from monitor.common.clock import VIETNAM_TZ as VIETNAM  # one zone (re-exported: its users)
from monitor.decide import readiness as rules
from monitor.decide.heading import CommuneHeading
from monitor.decide.readiness import Evidence, FirstPassed, MilestoneResult, Missing, Readiness

TITLE = "Báo cáo tiến độ sẵn sàng đường truyền"
Language = Literal["vi", "en"]


@dataclass(frozen=True, slots=True)
class CommuneReadiness(CommuneHeading):
    computers: int
    results: tuple[MilestoneResult, ...]  # one per milestone, in the report's order


@dataclass(frozen=True, slots=True)
class ProvinceTotals:
    province: str  # "" for the grand total
    province_name: str
    communes: int
    met: tuple[int, ...]  # per milestone: met, measured or attested
    late: tuple[int, ...]
    attested: tuple[int, ...]  # of ``met``, by a person's record
    unobservable: tuple[int, ...]
    few_computers: int  # communes with fewer than MIN_COMPUTERS computers


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    generated: float
    milestones: tuple[Milestone, ...]
    communes: tuple[CommuneReadiness, ...]
    provinces: tuple[ProvinceTotals, ...]
    total: ProvinceTotals


def readiness(inventory: Inventory, evidence: Evidence | FirstPassed,
              now: float) -> ReadinessReport:
    """The report; ``evidence`` from :meth:`monitor.decide.operations.Operations.evidence`
    (or :func:`evidence_from_db`), or bare first passes (no attestations, no agents)."""
    if not isinstance(evidence, Evidence):
        evidence = Evidence(evidence)
    milestones = inventory.milestones
    has_targets = bool(inventory.targets)
    rows, totals = [], []
    for province in inventory.provinces:
        prov_rows = [
            CommuneReadiness(*CommuneHeading.of(c, province.name), len(c.hosts),
                             tuple(rules.judge(m, evidence.of(c, has_targets), now)
                                   for m in milestones))
            for c in province.communes]
        rows += prov_rows
        totals.append(_totals(province.code, province.name, prov_rows, len(milestones)))
    return ReadinessReport(now, milestones, tuple(rows), tuple(totals),
                           _totals("", "Tổng cộng", rows, len(milestones)))


def _totals(code: str, name: str, rows: list[CommuneReadiness], n: int) -> ProvinceTotals:
    def count(test: Callable[[MilestoneResult], bool]) -> tuple[int, ...]:
        return tuple(sum(test(r.results[i]) for r in rows) for i in range(n))

    return ProvinceTotals(code, name, len(rows), count(lambda m: m.met), count(lambda m: m.late),
                          count(lambda m: m.state == Readiness.ATTESTED),
                          count(lambda m: m.state == Readiness.NOT_OBSERVABLE),
                          sum(r.computers < MIN_COMPUTERS for r in rows))


def evidence_from_db(path: str) -> Evidence:
    """Everything a state database holds for the report (read-only); ValueError if unreadable."""
    from monitor.store.ops_db import read_readiness

    record = read_readiness(path)
    return Evidence(record.first_passed, record.watched, rules.by_commune(record.attestations),
                    record.segment)


# --- the table, shared by the writers -------------------------------------------------------

COMMUNE_HEADINGS = ("Mã tỉnh", "Tỉnh, thành phố", "Mã xã", "Xã, phường", "Nhà mạng",
                    "Mã đường truyền")  # every per-commune report's first columns
COMPUTERS_HEADING = "Số máy tính"  # the commune row's last column
TOTALS_HEADINGS = ("Mã tỉnh", "Tỉnh, thành phố", "Số xã, phường",
                   f"Số xã có dưới {MIN_COMPUTERS} máy tính")
#: The columns under each milestone, per commune and in the totals.
COMMUNE_MILESTONE_COLUMNS = ("kết quả", "thời điểm đạt", "trễ hạn", "ghi chú")
TOTALS_MILESTONE_COLUMNS = ("đạt", "trong đó theo xác nhận", "không kiểm tra được",
                            "chưa đạt", "trễ hạn")

#: The cells' words, Vietnamese and English.
STATE_WORDS: Mapping[Readiness, tuple[str, str]] = {
    Readiness.MET: ("Đạt", "Met"),
    Readiness.MET_LATE: ("Đạt, trễ hạn", "Met late"),
    Readiness.MET_UNWATCHED: ("Đạt, không theo dõi trước hạn", "Met, not observed before due"),
    Readiness.ATTESTED: ("Đạt theo xác nhận", "Attested"),
    Readiness.NOT_OBSERVABLE: ("Không kiểm tra được", "Not observable"),
    Readiness.NOT_MET: ("Chưa đạt", "Not met"),
}
MISSING_WORDS: Mapping[Missing, tuple[str, str]] = {
    Missing.HOSTS: ("danh mục không có máy tính", "no computer in the inventory"),
    Missing.SEGMENT: ("không có agent tại xã và không đọc SNMP router",
                      "no agent in the commune and no SNMP router"),
    Missing.TARGET: ("danh mục không có hệ thống bầu cử", "no election system in the inventory"),
}
LATE_WORDS = ("Trễ hạn", "Late")


def _lang(language: Language) -> int:
    return 0 if language == "vi" else 1


def state_text(result: MilestoneResult, language: Language = "vi") -> str:
    return STATE_WORDS[result.state][_lang(language)]


def note_text(result: MilestoneResult, language: Language = "vi") -> str | None:
    """What is missing (not observable), or who attested it and for which day."""
    i = _lang(language)
    if result.missing:
        return "; ".join(f"{check}: {MISSING_WORDS[missing][i]}"
                         for check, missing in result.missing)
    a = result.attestation
    if a is not None:
        day = f"{a.day:%d/%m/%Y}"
        return f"xác nhận bởi {a.who}, ngày {day}" if i == 0 else f"attested by {a.who}, {day}"
    return None


def _milestone_label(m: Milestone) -> str:
    return f"{m.title} (hạn {m.due:%d/%m/%Y})"


def _flat_headings(fixed: tuple[str, ...], per_milestone: tuple[str, ...],
                   report: ReadinessReport) -> list[str]:
    """One heading per column ("Cài đặt IP … (hạn 29/01/2026): kết quả"), for csv and xlsx."""
    heads = list(fixed)
    for m in report.milestones:
        heads += [f"{_milestone_label(m)}: {column}" for column in per_milestone]
    return heads


def heading_cells(row: CommuneHeading) -> list[Any]:
    """A per-commune row's first cells, under :data:`COMMUNE_HEADINGS` (None: empty)."""
    return [row.province, row.province_name, row.commune, row.commune_name, row.isp,
            row.circuit or None]


def commune_headings(report: ReadinessReport) -> list[str]:
    return [*_flat_headings(COMMUNE_HEADINGS, COMMUNE_MILESTONE_COLUMNS, report),
            COMPUTERS_HEADING]


def commune_rows(report: ReadinessReport, language: Language = "vi") -> Iterator[list[Any]]:
    """Cell values (None: empty); times as naive Vietnam-time datetimes, as a sheet shows them."""
    late = LATE_WORDS[_lang(language)]
    for r in report.communes:
        row: list[Any] = heading_cells(r)
        for m in r.results:
            row += [state_text(m, language), local_time(m.met_at), late if m.late else None,
                    note_text(m, language)]
        yield [*row, r.computers]


def totals_headings(report: ReadinessReport) -> list[str]:
    return _flat_headings(TOTALS_HEADINGS, TOTALS_MILESTONE_COLUMNS, report)


def totals_rows(report: ReadinessReport) -> Iterator[list[Any]]:
    for t in (*report.provinces, report.total):
        row: list[Any] = [t.province or None, t.province_name, t.communes, t.few_computers]
        for met, attested, unobservable, late in zip(t.met, t.attested, t.unobservable, t.late,
                                                     strict=True):
            row += [met, attested, unobservable, t.communes - met - unobservable, late]
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


def to_csv(report: ReadinessReport, language: Language = "vi") -> bytes:
    """Communes, a blank line, totals."""
    return csv_bytes([(commune_headings(report), commune_rows(report, language)),
                      (totals_headings(report), totals_rows(report))])


def to_xlsx(report: ReadinessReport, language: Language = "vi") -> bytes:
    """Two sheets, "Theo xã" and "Tổng hợp"."""
    return xlsx_bytes(TITLE, [
        ("Theo xã", (commune_headings(report), commune_rows(report, language))),
        ("Tổng hợp", (totals_headings(report), totals_rows(report)))])


def to_html(report: ReadinessReport, language: Language = "vi") -> str:
    """Two tables; each milestone's title spans its columns in a two-row header."""
    late = LATE_WORDS[_lang(language)]

    def table(fixed: tuple[str, ...], per_milestone: tuple[str, ...], rows: Iterator[list[Any]],
              late_col: bool, trailing: tuple[str, ...] = ()) -> str:
        spanned = "".join(f'<th colspan="{len(per_milestone)}">{html.escape(_milestone_label(m))}'
                          "</th>" for m in report.milestones)
        top = "".join(f'<th rowspan="2">{html.escape(h)}</th>' for h in fixed) + spanned + \
            "".join(f'<th rowspan="2">{html.escape(h)}</th>' for h in trailing)
        sub = "".join(f"<th>{html.escape(h)}</th>" for _ in report.milestones
                      for h in per_milestone)
        head = f"<tr>{top}</tr><tr>{sub}</tr>" if report.milestones else f"<tr>{top}</tr>"
        body = []
        for row in rows:
            cells = "".join(f"<td>{html.escape(cell_text(v))}</td>" for v in row)
            cls = ' class="late"' if late_col and late in row else ""
            body.append(f"<tr{cls}>{cells}</tr>")
        return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"

    communes = table(COMMUNE_HEADINGS, COMMUNE_MILESTONE_COLUMNS, commune_rows(report, language),
                     True, (COMPUTERS_HEADING,))

    return (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{TITLE}</title><style>{HTML_STYLE % 'late'}</style></head><body>"
        f"<h1>{TITLE}</h1><p>{html.escape(_generated_line(report))}</p>"
        f"<h2>Tổng hợp theo tỉnh, thành phố</h2>"
        f"{table(TOTALS_HEADINGS, TOTALS_MILESTONE_COLUMNS, totals_rows(report), False)}"
        f"<h2>Chi tiết theo xã, phường</h2>"
        f"{communes}"
        "</body></html>"
    )


#: The HTML reports' common look; a row of the given class is highlighted (late, never).
HTML_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1rem}"
    "table{border-collapse:collapse;font-size:.85rem;margin-bottom:1.5rem}"
    "th,td{border:1px solid #bbb;padding:.25rem .4rem;text-align:left}"
    "th{background:#eef}tr.%s td{background:#fde8e8}"
)

def _html_bytes(report: ReadinessReport, language: Language = "vi") -> bytes:
    return to_html(report, language).encode("utf-8")


#: ``WRITERS[fmt](report)`` in Vietnamese, ``WRITERS[fmt](report, "en")`` in English.
WRITERS: dict[str, Callable[..., bytes]] = {"csv": to_csv, "xlsx": to_xlsx, "html": _html_bytes}
