"""Importing the spreadsheet of assigned IPs (one row per computer) into an inventory.

Provinces and operators send the IP plan as an Excel workbook or a CSV saved from Excel.
Headers are found wherever they are (title rows above them are skipped) and matched in
Vietnamese or English, with or without diacritics. Cells merged over several rows of the same
commune (Excel's usual layout) are filled down. The resulting YAML is checked by the loader,
and every problem is reported at the spreadsheet row it comes from.

Besides the addressing, a sheet may carry each computer's inspection stamp and its date,
the commune's contacts (name, role, phone, e-mail: one per row, repeated rows counted once)
and its backup line (operator, circuit, router). A subnet may be written as a network
address with a dotted mask in a column of its own ("Subnet mask": 255.255.255.248), as
provincial sheets often do; a network address with neither a prefix nor a mask is an error
naming its cell, never a silent /32.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import ipaddress
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
import yaml
from openpyxl.utils import get_column_letter
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
    "subnet_mask": ("subnet mask", "mat na mang", "mat na", "mat na subnet", "netmask", "mask"),
    "gateway": ("gateway", "cong mac dinh", "dia chi gateway", "ip gateway", "default gateway"),
    "backup_gateway": ("gateway du phong", "cong du phong", "router du phong", "backup gateway",
                       "backup router"),
    "backup_isp": ("nha mang du phong", "nha cung cap du phong", "backup isp",
                   "backup operator"),
    "backup_circuit": ("ma duong truyen du phong", "ma kenh du phong", "backup circuit",
                       "backup circuit id"),
    "contact": ("nguoi lien he", "can bo phu trach", "ho ten can bo", "contact",
                "contact name"),
    "role": ("chuc vu", "vai tro", "role", "contact role"),
    "phone": ("so dien thoai", "dien thoai", "sdt", "phone", "phone number", "contact phone"),
    "email": ("email", "e mail", "thu dien tu", "contact email"),
    "stamp": ("so tem", "tem", "ma tem", "so tem kiem dinh", "stamp", "inspection stamp"),
    "stamp_date": ("ngay dan tem", "ngay kiem dinh", "stamp date", "inspection date"),
    "host": ("ten may", "ten may tinh", "may tinh", "host", "host name", "hostname"),
    "ip": ("dia chi ip", "dia chi ip may tinh", "ip", "ip may", "ip may tinh", "host ip",
           "ip address"),
    "mac": ("dia chi mac", "mac", "mac address"),
}
_BY_HEADER = {name: column for column, names in HEADERS.items() for name in names}
#: Columns a sheet must have, with the header the operator should add.
REQUIRED = {"commune": "Mã xã", "subnet": "Dải IP", "gateway": "Gateway", "ip": "Địa chỉ IP"}
#: Per-commune values: every row of a commune must agree on them (or leave them empty).
COMMUNE_COLUMNS = ("province", "name", "isp", "circuit", "subnet", "subnet_mask", "gateway",
                   "backup_gateway", "backup_isp", "backup_circuit")
#: Per-computer values.
HOST_COLUMNS = ("host", "ip", "mac", "stamp", "stamp_date")
#: A contact per row (the same person on several rows counts once).
CONTACT_COLUMNS = ("contact", "role", "phone", "email")
_DAY_FIRST = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})")
HEADER_SEARCH_ROWS = 30
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")


@dataclass
class _CommuneRows:
    """One commune gathered from its rows: each value with the row that gave it."""

    code: str
    row: int
    values: dict[str, tuple[str, int]] = field(default_factory=dict)
    hosts: list[tuple[dict[str, str], int]] = field(default_factory=list)
    contacts: list[tuple[dict[str, str], int]] = field(default_factory=list)


@dataclass
class _Sheet:
    label: str  # FILE or FILE:SHEET, as problems are reported
    rows: list[list[str]]  # every row from the first, cells as text
    lettered: bool = False  # columns named as Excel does (D7), else by number

    def cell(self, row: int, index: int, header_row: int) -> str:
        """How a message names a cell: "cell D7 (Dải IP)" or "column 4 (Dải IP)"."""
        where = (f"cell {get_column_letter(index + 1)}{row}" if self.lettered
                 else f"column {index + 1}")
        header = self.rows[header_row - 1]
        return f"{where} ({header[index]})" if index < len(header) else where


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
    for code in [c.code for c in communes.values()
                 if not _resolve_subnet(c, sheet, header_row, columns, problems)]:
        del communes[code]  # (its addresses cannot be placed: the one error says why)
    if not communes and has_errors(problems):
        return None, problems
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
            yield _Sheet(f"{path}:{ws.title}", rows, lettered=True)
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
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date().isoformat()  # a date cell (openpyxl reads dates as datetimes)
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
    with_contacts = not columns.keys().isdisjoint(CONTACT_COLUMNS)
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
        host = {k: cells.get(k, "") for k in HOST_COLUMNS}
        if any(host.values()):
            current.hosts.append((host, number))
        if with_contacts:
            _add_contact(current, {k: cells.get(k, "") for k in CONTACT_COLUMNS}, number)
    return communes


def _add_contact(commune: _CommuneRows, contact: dict[str, str], row: int) -> None:
    """A row's contact, unless the commune has it already (it is often on every row)."""
    if any(contact.values()) and not any(
        official.fold(contact["contact"]) == official.fold(c["contact"])
        for c, _ in commune.contacts
    ):
        commune.contacts.append((contact, row))


def _resolve_subnet(
    commune: _CommuneRows, sheet: _Sheet, header_row: int, columns: dict[str, int],
    problems: list[Problem],
) -> bool:
    """The commune's subnet as ``address/prefix``, from its own prefix or the mask column.
    False (and the error, naming the cell) when it cannot be told."""
    given, mask = commune.values.get("subnet"), commune.values.get("subnet_mask")
    if given is None:
        return True
    text, row = given
    prefix = None
    if mask is not None:
        prefix = _prefix_of_mask(mask[0])
        if prefix is None:
            problems.append(Problem(sheet.label, mask[1], (
                f"{sheet.cell(mask[1], columns['subnet_mask'], header_row)}: '{mask[0]}' is not "
                "a subnet mask (e.g. 255.255.255.248 or /29) / mặt nạ mạng không hợp lệ")))
            return False
    address, slash, length = text.partition("/")
    if slash and prefix is not None and _prefix_of_mask(length) != prefix:
        problems.append(Problem(sheet.label, row, (
            f"{sheet.cell(row, columns['subnet'], header_row)}: '{text}' disagrees with the "
            f"subnet mask '{mask[0]}' (row {mask[1]}) / dải IP và mặt nạ mạng không khớp")))
        return False
    if not slash and prefix is None:
        problems.append(Problem(sheet.label, row, (
            f"{sheet.cell(row, columns['subnet'], header_row)}: '{text}' has no prefix length "
            "and there is no subnet mask: write the prefix (e.g. 198.18.1.0/29) or add a "
            "'Mặt nạ mạng' (Subnet mask) column / thiếu độ dài tiền tố hoặc mặt nạ mạng")))
        return False
    if not slash:
        commune.values["subnet"] = (f"{address}/{prefix}", row)
    return True


def _prefix_of_mask(text: str) -> int | None:
    """29 for "255.255.255.248", "/29" or "29"; None for what is not a (contiguous) mask."""
    text = text.strip().removeprefix("/")
    if text.isdigit():
        return int(text) if int(text) <= 128 else None
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{text}").prefixlen
    except ValueError:
        return None


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
    for column in ("name", "isp", "circuit", "subnet", "gateway", "backup_gateway",
                   "backup_isp", "backup_circuit"):
        if column in commune.values:
            data[column] = commune.values[column][0]
    if commune.contacts:
        data["contacts"] = [_contact_data(c) for c, _ in commune.contacts]
    data["hosts"] = [_host_data(host) for host, _ in commune.hosts]
    return data


def _host_data(host: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {"name": host["host"] or None, "ip": host["ip"] or None}
    if host["mac"]:
        data["mac"] = host["mac"]
    if host["stamp"] or host["stamp_date"]:  # (one without the other: the loader says which)
        data["inspection"] = {"stamp": host["stamp"] or None,
                              "date": _iso_date(host["stamp_date"]) or None}
    return data


def _contact_data(contact: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {"name": contact["contact"] or None}
    if contact["role"]:
        data["role"] = contact["role"]
    if contact["phone"]:
        data["phone"] = _phone(contact["phone"])
    if contact["email"]:
        data["email"] = contact["email"]
    return data


def _iso_date(text: str) -> str:
    """"15/01/2026" (day first, as Vietnam writes dates) as 2026-01-15; other text as is."""
    match = _DAY_FIRST.fullmatch(text.strip())
    if match is None:
        return text
    day, month, year = (int(g) for g in match.groups())
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return text  # (the loader reports it at its row)


def _phone(text: str) -> str:
    """A number Excel stored as a number lost its leading 0 (912345678): give it back.
    Vietnamese numbers are 10 digits (mobile) or 11 (landline) with it."""
    if text.isdigit() and len(text) in (9, 10) and not text.startswith(("0", "84")):
        return "0" + text
    return text


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
                if key_node.value in ("hosts", "contacts"):
                    items = commune.hosts if key_node.value == "hosts" else commune.contacts
                    for h_node, (_, row) in zip(value_node.value, items, strict=True):
                        # every line of the entry: a host with an inspection spans several
                        end = h_node.end_mark
                        for line in range(h_node.start_mark.line,
                                          end.line + (1 if end.column else 0)):
                            rows[line + 1] = row
    return rows
