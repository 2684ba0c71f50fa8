"""Importing the spreadsheet of assigned IPs (one row per computer) into an inventory.

Provinces and operators send the IP plan as an Excel workbook or a CSV saved from Excel.
Headers are found wherever they are (title rows above them are skipped) and matched in
Vietnamese or English, with or without diacritics. Cells merged over several rows of the same
commune (Excel's usual layout) are filled down. The resulting YAML is checked by the loader,
and every problem is reported at the spreadsheet row it comes from.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
import yaml
from openpyxl.utils.exceptions import InvalidFileException

from inventory import official
from inventory.loader import (
    Problem,
    dump,
    gc_paused,
    has_errors,
    official_province_of_commune,
    validate_text,
)

#: Column -> header names, as :func:`official.fold` writes them (no diacritics, lower case).
HEADERS: dict[str, tuple[str, ...]] = {
    "province": ("ma tinh", "ma tinh thanh pho", "ma tinh tp", "province code", "province"),
    "commune": ("ma xa", "ma xa phuong", "ma phuong xa", "ma don vi", "ma dvhc",
                "commune code", "ward code", "commune"),
    "name": ("ten xa", "ten xa phuong", "ten phuong xa", "ten don vi", "xa phuong",
             "commune name", "ward name", "ward"),
    "isp": ("nha mang", "don vi cung cap", "nha cung cap", "doanh nghiep", "isp", "operator",
            "provider"),
    "circuit": ("ma duong truyen", "ma kenh", "so hieu duong truyen", "circuit",
                "circuit id"),
    "subnet": ("dai ip", "dai dia chi ip", "dai dia chi", "lop mang", "subnet", "network"),
    "gateway": ("gateway", "cong mac dinh", "dia chi gateway", "ip gateway", "default gateway"),
    "backup_gateway": ("gateway du phong", "cong du phong", "backup gateway"),
    "host": ("ten may", "ten may tinh", "may tinh", "host", "host name", "hostname"),
    "ip": ("dia chi ip", "dia chi ip may tinh", "ip", "ip may", "ip may tinh", "host ip",
           "ip address"),
    "mac": ("dia chi mac", "mac", "mac address"),
}
_BY_HEADER = {name: column for column, names in HEADERS.items() for name in names}
#: Columns a sheet must have, with the header the operator should add.
REQUIRED = {"commune": "Mã xã", "subnet": "Dải IP", "gateway": "Gateway", "ip": "Địa chỉ IP"}
#: Per-commune values: every row of a commune must agree on them (or leave them empty).
COMMUNE_COLUMNS = ("province", "name", "isp", "circuit", "subnet", "gateway", "backup_gateway")
HEADER_SEARCH_ROWS = 30
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")


@dataclass
class _CommuneRows:
    """One commune gathered from its rows: each value with the row that gave it."""

    code: str
    row: int
    values: dict[str, tuple[str, int]] = field(default_factory=dict)
    hosts: list[tuple[dict[str, str], int]] = field(default_factory=list)


@dataclass
class _Sheet:
    label: str  # FILE or FILE:SHEET, as problems are reported
    rows: list[list[str]]  # every row from the first, cells as text


def import_spreadsheet(path: str | Path) -> tuple[str | None, list[Problem]]:
    """Inventory YAML from an .xlsx or .csv file; None (and the problems) when it has errors."""
    path = Path(path)
    try:
        sheets = list(_read_xlsx(path) if path.suffix.lower() in (".xlsx", ".xlsm")
                      else _read_csv(path))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, InvalidFileException) as exc:
        return None, [Problem(str(path), 1, f"cannot read the spreadsheet: {exc}")]
    for sheet in sheets:
        header = _find_header(sheet.rows)
        if header is not None:
            return _import_sheet(sheet, *header)
    expected = ", ".join(REQUIRED.values())
    return None, [Problem(str(path), 1, f"no header row found (expected columns like {expected})")]


def _import_sheet(
    sheet: _Sheet, header_row: int, columns: dict[str, int]
) -> tuple[str | None, list[Problem]]:
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        names = ", ".join(f"'{REQUIRED[c]}'" for c in missing)
        return None, [Problem(sheet.label, header_row, f"missing columns / thiếu cột: {names}")]
    problems: list[Problem] = []
    communes = _gather(sheet, header_row, columns, problems)
    if not communes:
        problems.append(Problem(sheet.label, header_row, "no data rows below the header"))
        return None, problems
    text, rows = _to_yaml(communes.values())
    inventory, found = validate_text(text, sheet.label, rows)
    problems = sorted(problems + found, key=lambda p: p.line)
    if inventory is None or has_errors(problems):
        return None, problems
    header = f"# Nhập từ / imported from {Path(sheet.label).name}\n"
    return header + dump(inventory), problems


# -- reading files ---------------------------------------------------------------------------


def _read_xlsx(path: Path) -> Iterator[_Sheet]:
    workbook = openpyxl.load_workbook(path, data_only=True)
    try:
        for ws in workbook.worksheets:
            cells = ws.iter_rows(min_row=1, values_only=True)  # row numbers as Excel shows
            rows = [[_cell_text(v) for v in row] for row in cells]
            yield _Sheet(f"{path}:{ws.title}", rows)
    finally:
        workbook.close()


def _read_csv(path: Path) -> Iterator[_Sheet]:
    text = decode_excel_text(path.read_bytes())
    sample = "\n".join(text.splitlines()[:HEADER_SEARCH_ROWS])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(sample))
    yield _Sheet(str(path), [[_cell_text(v) for v in row] for row in reader])


def decode_excel_text(data: bytes) -> str:
    """Text of a CSV as Excel saves it: UTF-8 (with or without BOM), Windows-1258, or
    UTF-16 ("Unicode Text").

    Windows-1258 writes most Vietnamese letters as a base letter plus a combining tone mark;
    NFC makes them the same precomposed characters as everywhere else.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return official.nfc(data.decode("utf-16"))
    try:
        return official.nfc(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        if _UTF8_SEQUENCE.search(data):
            raise ValueError(
                f"mixed encodings: partly UTF-8 but not at byte {exc.start}; "
                "save it again as 'CSV UTF-8' / hãy lưu lại dạng CSV UTF-8"
            ) from None
    return official.nfc(data.decode("cp1258"))


def _delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        return max(",;\t", key=sample.count)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return official.nfc(str(value)).strip()


# -- headers ---------------------------------------------------------------------------------


def _find_header(rows: Sequence[Sequence[str]]) -> tuple[int, dict[str, int]] | None:
    """The first row (1-based) naming enough known columns, and the column of each."""
    for number, row in enumerate(rows[:HEADER_SEARCH_ROWS], start=1):
        columns: dict[str, int] = {}
        for index, cell in enumerate(row):
            column = _BY_HEADER.get(_header_key(cell))
            if column is not None:
                columns.setdefault(column, index)
        if "commune" in columns and len(columns) >= 4:
            return number, columns
    return None


def _header_key(cell: str) -> str:
    """"Mã xã (*)", "MA_XA" and "mã  xã:" all become "ma xa"."""
    return " ".join(re.sub(r"\(.*?\)|[^0-9a-z]+", " ", official.fold(cell)).split())


# -- rows ------------------------------------------------------------------------------------


def _gather(
    sheet: _Sheet, header_row: int, columns: dict[str, int], problems: list[Problem]
) -> dict[str, _CommuneRows]:
    """Communes by code, each with its own values and its computers' rows."""
    communes: dict[str, _CommuneRows] = {}
    current: _CommuneRows | None = None
    for number, row in enumerate(sheet.rows[header_row:], start=header_row + 1):
        cells = {c: row[i] if i < len(row) else "" for c, i in columns.items()}
        if not any(cells.values()):
            continue
        if cells["commune"]:
            code = official.commune_code(cells["commune"])
            current = communes.setdefault(code, _CommuneRows(code, number))
        elif current is None:
            problems.append(Problem(sheet.label, number, "no commune code (Mã xã) in this row"))
            continue
        _merge_commune_values(current, cells, number, sheet.label, problems)
        host = {k: cells.get(k, "") for k in ("host", "ip", "mac")}
        if any(host.values()):
            current.hosts.append((host, number))
    return communes


def _merge_commune_values(
    commune: _CommuneRows, cells: dict[str, str], row: int, label: str, problems: list[Problem]
) -> None:
    for column in COMMUNE_COLUMNS:
        value = cells.get(column, "")
        if column == "province" and value:
            value = official.province_code(value)
        if not value:
            continue
        first = commune.values.setdefault(column, (value, row))
        if official.fold(first[0]) != official.fold(value):
            problems.append(Problem(
                label, row, f"commune {commune.code}: {column} '{value}' differs from "
                            f"'{first[0]}' (row {first[1]})"))


# -- output ----------------------------------------------------------------------------------


def _to_yaml(communes: Iterable[_CommuneRows]) -> tuple[str, dict[int, int]]:
    """Inventory YAML of the communes, and which spreadsheet row each line of it comes from."""
    provinces: dict[str, list[_CommuneRows]] = {}
    for commune in communes:
        given = commune.values.get("province")
        code = given[0] if given else official_province_of_commune().get(commune.code, "")
        provinces.setdefault(code, []).append(commune)
    data = {
        "version": 1,
        "provinces": [_province_data(code, members) for code, members in provinces.items()],
    }
    with gc_paused():
        text = yaml.dump(data, Dumper=yaml.CSafeDumper, allow_unicode=True, sort_keys=False,
                         default_flow_style=None, width=1000)
        return text, _line_rows(text, list(provinces.values()))


def _province_data(code: str, communes: list[_CommuneRows]) -> dict[str, Any]:
    data: dict[str, Any] = {"code": code}
    unit = official.provinces().get(code)
    if unit is not None:
        data["name"] = unit.name
    data["communes"] = [_commune_data(c) for c in communes]
    return data


def _commune_data(commune: _CommuneRows) -> dict[str, Any]:
    data: dict[str, Any] = {"code": commune.code}
    for column in ("name", "isp", "circuit", "subnet", "gateway", "backup_gateway"):
        if column in commune.values:
            data[column] = commune.values[column][0]
    data["hosts"] = [
        {"name": host["host"] or None, "ip": host["ip"] or None,
         **({"mac": host["mac"]} if host["mac"] else {})}
        for host, _ in commune.hosts
    ]
    return data


def _line_rows(text: str, provinces: list[list[_CommuneRows]]) -> dict[int, int]:
    """Map each line of the generated YAML to the spreadsheet row its value came from."""
    root = yaml.compose(text, Loader=yaml.CSafeLoader)
    rows: dict[int, int] = {}
    province_nodes = dict((k.value, v) for k, v in root.value)["provinces"].value
    for p_node, communes in zip(province_nodes, provinces, strict=True):
        p_fields = {k.value: v for k, v in p_node.value}
        for key_node, _ in p_node.value:
            rows[key_node.start_mark.line + 1] = communes[0].row
        for c_node, commune in zip(p_fields["communes"].value, communes, strict=True):
            for key_node, value_node in c_node.value:
                given = commune.values.get(key_node.value)
                rows[key_node.start_mark.line + 1] = given[1] if given else commune.row
                if key_node.value == "hosts":
                    for h_node, (_, row) in zip(value_node.value, commune.hosts, strict=True):
                        rows[h_node.start_mark.line + 1] = row
    return rows
