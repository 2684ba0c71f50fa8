"""The drill report written out (CSV, XLSX, HTML): the rows and wording of
:class:`monitor.decide.drills.DrillReport`, which :mod:`monitor.decide.drills` builds."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Iterator
from typing import Any

from monitor.decide.drills import DrillReport
from monitor.present.reports import (
    COMMUNE_HEADINGS,
    HTML_STYLE,
    VIETNAM,
    cell_text,
    csv_bytes,
    heading_cells,
    local_time,
    xlsx_bytes,
)
from monitor.store.ops_db import Span

TITLE = "Báo cáo kết quả diễn tập kết nối"
HEADINGS = (*COMMUNE_HEADINGS, "Đã kết nối", "Kết nối từ", "Kết nối đến",
            "Thời gian kết nối (phút)", "Các khoảng kết nối")
NEVER_HEADINGS = COMMUNE_HEADINGS
YES, NO = "Có", "Không"


def _clock(at: float) -> str:
    return dt.datetime.fromtimestamp(round(at), VIETNAM).strftime("%H:%M")


def _spans_text(spans: tuple[Span, ...]) -> str:
    return "; ".join(f"{_clock(s.start)}–{_clock(s.end)}" for s in spans)


def rows(report: DrillReport) -> Iterator[list[Any]]:
    for c in report.communes:
        yield [*heading_cells(c), YES if c.appeared else NO, local_time(c.first),
               local_time(c.last), round(c.seconds / 60, 1) if c.appeared else None,
               _spans_text(c.spans) or None]


def never_rows(report: DrillReport) -> Iterator[list[Any]]:
    return (heading_cells(c) for c in report.never)


def summary_lines(report: DrillReport) -> list[str]:
    d = report.drill
    start, end = (dt.datetime.fromtimestamp(t.timestamp(), VIETNAM) for t in (d.start, d.end))
    lines = [f"{d.title} ({d.id}): {start:%d/%m/%Y %H:%M} – {end:%d/%m/%Y %H:%M} (giờ Việt Nam)",
             f"Số xã, phường đã kết nối trong thời gian diễn tập: {report.appeared}/"
             f"{len(report.communes)}; chưa kết nối: {len(report.never)}"]
    if report.live is not None:
        lines.append(f"Đang diễn tập: hiện đang kết nối {report.live.connected}/"
                     f"{report.live.total}")
    lines.append(f"Thời điểm lập báo cáo: {cell_text(local_time(report.generated))} "
                 "(giờ Việt Nam)")
    return lines


def to_csv(report: DrillReport) -> bytes:
    """Summary, the per-commune table, then the communes that never connected."""
    return csv_bytes([
        ([TITLE], ([line] for line in summary_lines(report))),
        (list(HEADINGS), rows(report)),
        (["Xã, phường chưa kết nối"], []),
        (list(NEVER_HEADINGS), never_rows(report)),
    ])


def to_xlsx(report: DrillReport) -> bytes:
    return xlsx_bytes(TITLE, [
        ("Theo xã", (list(HEADINGS), rows(report))),
        ("Chưa kết nối", (list(NEVER_HEADINGS), never_rows(report))),
        ("Tổng hợp", (["Nội dung"], ([line] for line in summary_lines(report)))),
    ])


def to_html(report: DrillReport) -> str:
    def table(heads: tuple[str, ...], body: Iterator[list[Any]], mark: bool) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
        out = []
        for row in body:
            cells = "".join(f"<td>{html.escape(cell_text(v))}</td>" for v in row)
            cls = ' class="never"' if mark and row[6] == NO else ""
            out.append(f"<tr{cls}>{cells}</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(out)}</tbody></table>"

    summary = "".join(f"<p>{html.escape(line)}</p>" for line in summary_lines(report))
    return (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{TITLE}</title><style>{HTML_STYLE % 'never'}</style></head><body>"
        f"<h1>{TITLE}</h1>{summary}"
        f"<h2>Xã, phường chưa kết nối ({len(report.never)})</h2>"
        f"{table(NEVER_HEADINGS, never_rows(report), False)}"
        f"<h2>Chi tiết theo xã, phường</h2>{table(HEADINGS, rows(report), True)}"
        "</body></html>"
    )


WRITERS: dict[str, Callable[[DrillReport], bytes]] = {
    "csv": to_csv,
    "xlsx": to_xlsx,
    "html": lambda report: to_html(report).encode("utf-8"),
}
