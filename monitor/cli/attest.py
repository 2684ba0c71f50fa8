"""The file of ``tslcd-monitor report attest FILE.csv``: milestones recorded by people.

What was verified before the monitor existed, or what no vantage can check (an IP
configuration with no agent in the commune and no SNMP router), is recorded by the person
who checked it: one row per commune and milestone, with the day it was met and who says so.
The readiness report shows those as *attested*, never as measured
(:mod:`monitor.decide.readiness`).

The file is CSV (UTF-8, a BOM allowed; ``,`` or ``;`` between cells) with a heading row naming,
in Vietnamese or English, the columns ``commune`` / ``mã xã`` (a commune code, or
``PROV/COMMUNE``), ``milestone`` / ``mốc`` (a milestone id of the inventory), ``date`` /
``ngày`` (2026-01-20 or 20/01/2026, not in the future) and ``who`` / ``người xác nhận``;
optionally ``province`` / ``mã tỉnh``. Every bad row is reported as ``FILE:LINE: message``
and then nothing is stored (exit 2): a half-imported sheet would be worse than none.
"""

from __future__ import annotations

import _csv
import csv
import datetime as dt
import io
import re
import unicodedata
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from inventory.model import Commune, Inventory
from monitor.common.clock import local

if TYPE_CHECKING:
    from monitor.store.ops_db import Attestation

#: Accepted headings (compared folded: NFC, case-folded, spaces collapsed) -> column.
HEADINGS: Mapping[str, str] = {
    **dict.fromkeys(("commune", "commune code", "xã", "mã xã", "xã, phường", "mã xã, phường",
                     "mã xã/phường"), "commune"),
    **dict.fromkeys(("milestone", "milestone id", "mốc", "mã mốc", "mốc tiến độ"),
                    "milestone"),
    **dict.fromkeys(("date", "day", "ngày", "ngày đạt", "ngày hoàn thành", "ngày xác nhận"),
                    "date"),
    **dict.fromkeys(("who", "attested by", "người xác nhận", "xác nhận bởi",
                     "người kiểm tra"), "who"),
    **dict.fromkeys(("province", "province code", "tỉnh", "mã tỉnh"), "province"),
}
REQUIRED = ("commune", "milestone", "date", "who")
MAX_WHO = 200


class AttestError(ValueError):
    """The file cannot be stored; ``problems`` are ``FILE:LINE: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def fold(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip().casefold()


def read_attestations(path: str, inventory: Inventory, now: float) -> list[Attestation]:
    """Every row of the file as an attestation (``recorded`` = ``now``); AttestError with
    every problem when any row is bad."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise AttestError([f"{path}: cannot read the file: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise AttestError([f"{path}: not UTF-8 text (save the sheet as CSV UTF-8)"]) from exc
    first_line = text.partition("\n")[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    heads = next(reader, None)
    if heads is None:
        raise AttestError([f"{path}:1: the file is empty (expected a heading row: "
                           "commune, milestone, date, who)"])
    columns, problems = _columns(path, heads)
    if problems:
        raise AttestError(problems)
    records, seen = [], set()
    today = local(now).date()
    for line, cells in _rows(reader):
        row = {name: cells[i].strip() if i < len(cells) else "" for name, i in columns.items()}
        try:
            record = _record(row, inventory, today, now)
        except ValueError as exc:
            problems.append(f"{path}:{line}: {exc}")
            continue
        if (record.key, record.milestone) in seen:
            problems.append(f"{path}:{line}: commune {record.key}, milestone "
                            f"{record.milestone}: listed twice")
        seen.add((record.key, record.milestone))
        records.append(record)
    if problems:
        raise AttestError(problems)
    if not records:
        raise AttestError([f"{path}:2: no rows under the headings"])
    return records


def _columns(path: str, heads: list[str]) -> tuple[dict[str, int], list[str]]:
    columns: dict[str, int] = {}
    for i, head in enumerate(heads):
        name = HEADINGS.get(fold(head))
        if name is not None and name not in columns:
            columns[name] = i
    missing = [name for name in REQUIRED if name not in columns]
    if not missing:
        return columns, []
    return columns, [f"{path}:1: missing column(s) {', '.join(missing)} (headings found: "
                     f"{', '.join(h.strip() for h in heads) or 'none'}; accepted: commune/mã xã, "
                     "milestone/mốc, date/ngày, who/người xác nhận)"]


def _rows(reader: _csv.Reader) -> Iterator[tuple[int, list[str]]]:
    """(line of the row's start, cells), blank rows skipped."""
    while True:
        start = reader.line_num + 1
        cells = next(reader, None)
        if cells is None:
            return
        if any(c.strip() for c in cells):
            yield start, cells


def _record(row: dict[str, str], inventory: Inventory, today: dt.date,
            now: float) -> Attestation:
    from monitor.present.availability import parse_day
    from monitor.store.ops_db import Attestation

    commune = _commune(row["commune"], row.get("province", ""), inventory)
    milestone = row["milestone"]
    known = [m.id for m in inventory.milestones]
    if milestone not in known:
        raise ValueError(f"milestone {milestone!r} is not in the inventory "
                         f"(milestones: {', '.join(known) or 'none'})")
    day = parse_day(row["date"], "date")
    if day > today:
        raise ValueError(f"date {day:%d/%m/%Y} is in the future")
    who = row["who"]
    if not who:
        raise ValueError("who: empty (the person who verified it)")
    if len(who) > MAX_WHO or any(unicodedata.category(ch) == "Cc" for ch in who):
        raise ValueError(f"who: at most {MAX_WHO} characters, no control characters")
    return Attestation(commune.province, commune.code, milestone, day, who, now)


def _commune(text: str, province: str, inventory: Inventory) -> Commune:
    if not text:
        raise ValueError("commune: empty")
    prov, _, code = text.rpartition("/")
    prov = prov or province
    found = [c for c in inventory.communes() if c.code == code and prov in ("", c.province)]
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(f"commune {text!r}: code in several provinces; write PROV/COMMUNE")
    where = f" of province {prov}" if prov else ""
    raise ValueError(f"commune {text!r}{where} is not in the inventory")
