"""Importing the spreadsheet of assigned IPs: real .xlsx and .csv files as Excel writes them."""

from __future__ import annotations

import argparse
import datetime as dt
import unicodedata
from pathlib import Path

import openpyxl
import pytest

from inventory.importer import decode_excel_text, import_spreadsheet
from inventory.loader import dump, loads
from monitor.cli import inventory as cli_inventory

TITLE = ["DANH SÁCH ĐỊA CHỈ IP CẤP CHO CÁC XÃ, PHƯỜNG TỈNH ĐỒNG NAI"]
HEADER = ["STT", "Mã tỉnh", "Mã xã", "Tên xã", "Nhà mạng", "Mã đường truyền", "Dải IP",
          "Gateway", "Tên máy", "Địa chỉ IP", "Địa chỉ MAC", "Gateway dự phòng"]
#: A commune's columns (province to gateway), which each of its computers' rows repeats.
TRAN_BIEN = ["75", "26041", "Phường Trấn Biên", "VNPT", "DNI-0001", "198.18.1.0/29", "198.18.1.1"]
BIEN_HOA = ["75", "26068", "Phường Biên Hòa", "Viettel", "DNI-0002", "198.18.1.8/29", "198.18.1.9"]
BINH_PHUOC = ["75", "25195", "Phường Bình Phước", "Viettel", "", "198.18.1.16/29", "198.18.1.17"]
ROWS = [
    [number, *commune, *computer] for number, (commune, computer) in enumerate([
        (TRAN_BIEN, ["may-01", "198.18.1.2", "AA-BB-CC-DD-EE-01", ""]),
        (TRAN_BIEN, ["may-02", "198.18.1.3", "aabb.ccdd.ee02", "198.18.1.6"]),
        (BIEN_HOA, ["máy-chủ-tịch", "198.18.1.10", "", ""]),
        (BINH_PHUOC, ["may-01", "198.18.1.18", "", ""]),
        (BIEN_HOA, ["may-02", "198.18.1.11", "", ""]),
        (BINH_PHUOC, ["may-02", "198.18.1.19", "", ""]),
    ], start=1)
]
TONE_MARKS = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}


def to_cp1258(text: str) -> bytes:
    """Encode like Windows-1258: base letter (â, ơ, ư ...) then a combining tone mark."""
    out = bytearray()
    for char in text:
        decomposed = unicodedata.normalize("NFD", char)
        base = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in TONE_MARKS))
        tones = "".join(c for c in decomposed if c in TONE_MARKS)
        out += (base + tones).encode("cp1258")
    return bytes(out)


def csv_text(rows: list[list[object]], delimiter: str) -> str:
    return "\r\n".join(delimiter.join(str(c) for c in row) for row in rows) + "\r\n"


def write_xlsx(path: Path, rows: list[list[object]], *, before: list[list[object]] = ()) -> None:
    workbook = openpyxl.Workbook()
    notes = workbook.active
    notes.title = "Ghi chú"
    notes.append(["Bảng này không có tiêu đề cột"])
    sheet = workbook.create_sheet("Địa chỉ IP")
    for row in [*before, TITLE, [], HEADER, *rows]:
        sheet.append(list(row))
    workbook.save(path)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli_inventory.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.handler(args)


def check_imported(text: str | None) -> None:
    assert text is not None
    inventory = loads(text)
    trấn_biên = inventory.commune("75", "26041")
    biên_hòa = inventory.commune("75", "26068")
    assert trấn_biên is not None and biên_hòa is not None
    assert trấn_biên.name == "Phường Trấn Biên"
    assert biên_hòa.name == "Phường Biên Hòa"
    assert biên_hòa.hosts[0].name == "máy-chủ-tịch"
    assert [h.mac for h in trấn_biên.hosts] == ["aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:02"]
    assert str(trấn_biên.backup_gateway) == "198.18.1.6"
    assert (trấn_biên.isp, trấn_biên.circuit) == ("VNPT", "DNI-0001")
    assert inventory.provinces[0].name == "Đồng Nai"
    assert len(list(inventory.communes())) == 3
    assert "Ä" not in text and "Æ" not in text and "\ufffd" not in text  # no mojibake


def test_xlsx_with_title_rows_and_numeric_codes(tmp_path: Path) -> None:
    path = tmp_path / "ip.xlsx"
    numeric = [[r[0], float(r[1]), int(r[2]), *r[3:]] for r in ROWS]  # Excel keeps numbers
    write_xlsx(path, numeric)
    text, problems = import_spreadsheet(path)
    assert problems == []
    check_imported(text)


def test_xlsx_merged_commune_cells_are_filled_down(tmp_path: Path) -> None:
    path = tmp_path / "merged.xlsx"
    second = ["", "", "", "", "", "", "", "", "may-02", "198.18.1.3", "aabb.ccdd.ee02",
              "198.18.1.6"]
    write_xlsx(path, [ROWS[0], second, *ROWS[2:]])
    text, problems = import_spreadsheet(path)
    assert problems == []
    check_imported(text)


@pytest.mark.parametrize(("encoding", "delimiter"),
                         [("utf-8", ","), ("utf-8-sig", ";"), ("cp1258", ";"), ("cp1258", "\t"),
                          ("utf-8-sig", "\t"), ("utf-16", "\t")])
def test_csv_encodings_keep_diacritics(tmp_path: Path, encoding: str, delimiter: str) -> None:
    text = csv_text([TITLE, HEADER, *ROWS], delimiter)
    path = tmp_path / "ip.csv"
    data = to_cp1258(text) if encoding == "cp1258" else text.encode(encoding)
    path.write_bytes(data)
    result, problems = import_spreadsheet(path)
    assert problems == []
    check_imported(result)


def test_cp1258_really_uses_combining_marks() -> None:
    raw = to_cp1258("Phường Trấn Biên")
    assert b"\xcc" in raw or b"\xec" in raw  # a combining tone mark byte
    assert decode_excel_text(raw) == "Phường Trấn Biên"


def test_english_headers_without_diacritics(tmp_path: Path) -> None:
    header = ["Province code", "Commune code", "Commune name", "ISP", "Circuit", "Subnet",
              "Gateway", "Host name", "IP address", "MAC address"]
    rows = [r[1:11] for r in ROWS]
    path = tmp_path / "en.csv"
    path.write_text(csv_text([header, *rows], ","), encoding="utf-8")
    text, problems = import_spreadsheet(path)
    assert problems == []
    assert text is not None and loads(text).commune("75", "26068") is not None


def test_unaccented_vietnamese_headers(tmp_path: Path) -> None:
    header = ["MA TINH", "ma_xa", "Ten xa", "Don vi cung cap", "Ma kenh", "Dai IP",
              "Cong mac dinh", "Ten may", "Dia chi IP", "Dia chi MAC"]
    path = tmp_path / "plain.csv"
    path.write_text(csv_text([header, *[r[1:11] for r in ROWS]], ","), encoding="utf-8")
    text, problems = import_spreadsheet(path)
    assert problems == []
    assert text is not None


def test_bad_rows_reported_at_sheet_and_row(tmp_path: Path) -> None:
    rows = [list(r) for r in ROWS]
    # two empty rows, title, empty row, header (row 5), then data from row 6
    rows[1][9] = "198.18.1.300"  # malformed IP, row 7
    rows[3][6] = rows[5][6] = "198.18.1.17/29"  # host bits set, row 9 (and 11, agreeing)
    conflict = list(ROWS[0])
    conflict[6], conflict[8], conflict[9] = "198.18.9.0/29", "may-03", "198.18.1.4"  # row 12
    path = tmp_path / "bad.xlsx"
    write_xlsx(path, [*rows, conflict], before=[[], []])
    text, problems = import_spreadsheet(path)
    assert text is None
    lines = [str(p) for p in problems]
    prefix = f"{path}:Địa chỉ IP"
    assert any(line.startswith(f"{prefix}:7: ") and "malformed IP" in line for line in lines)
    assert any(line.startswith(f"{prefix}:9: ") and "host bits" in line for line in lines)
    assert any(line.startswith(f"{prefix}:12: ") and "subnet '198.18.9.0/29' differs" in line
               for line in lines), lines
    assert len(problems) == 3, lines


def test_duplicate_ip_across_rows_names_the_first_row(tmp_path: Path) -> None:
    rows = [list(r) for r in ROWS]
    rows[1][9] = "198.18.1.2"  # the same IP as row 1 of data
    path = tmp_path / "dup.csv"
    path.write_text(csv_text([HEADER, *rows], ","), encoding="utf-8")
    text, problems = import_spreadsheet(path)
    assert text is None
    assert [str(p) for p in problems] == [
        f"{path}:3: ip: IP 198.18.1.2 already used (first at row 2)"
    ]


def test_commune_not_in_province_reported_at_its_row(tmp_path: Path) -> None:
    rows = [list(r) for r in ROWS]
    for row in rows[3], rows[5]:
        row[2], row[3] = "00004", "Phường Ba Đình"  # Ba Đình, Hà Nội, under province 75
    path = tmp_path / "prov.csv"
    path.write_text(csv_text([HEADER, *rows], ","), encoding="utf-8")
    text, problems = import_spreadsheet(path)
    assert text is None
    assert len(problems) == 1 and problems[0].line == 5
    assert "belongs to province 01" in problems[0].message


def test_province_taken_from_official_list_when_column_missing(tmp_path: Path) -> None:
    header = [h for h in HEADER if h != "Mã tỉnh"]
    rows = [[c for i, c in enumerate(r) if i != 1] for r in ROWS]
    path = tmp_path / "noprov.csv"
    path.write_text(csv_text([header, *rows], ";"), encoding="utf-8")
    text, problems = import_spreadsheet(path)
    assert problems == []
    assert text is not None and loads(text).province("75") is not None


def test_missing_required_column_named_in_vietnamese(tmp_path: Path) -> None:
    header = [h for h in HEADER if h != "Dải IP"]
    path = tmp_path / "nosubnet.csv"
    path.write_text(csv_text([TITLE, header], ","), encoding="utf-8")
    text, problems = import_spreadsheet(path)
    assert text is None
    assert [str(p) for p in problems] == [f"{path}:2: missing columns / thiếu cột: 'Dải IP'"]


def test_no_header_found(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    text, problems = import_spreadsheet(path)
    assert text is None and "no header row" in problems[0].message


def test_garbage_xlsx_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"not a zip")
    text, problems = import_spreadsheet(path)
    assert text is None and problems[0].message.startswith("cannot read")


def test_cli_import(tmp_path: Path, capsys) -> None:
    source, target = tmp_path / "ip.xlsx", tmp_path / "out.yaml"
    write_xlsx(source, ROWS)
    assert run_cli("inventory", "import", str(source), "-o", str(target)) == 0
    check_imported(target.read_text(encoding="utf-8"))
    bad = [list(r) for r in ROWS]
    bad[0][10] = "not-a-mac"
    write_xlsx(source, bad)
    target.unlink()
    assert run_cli("inventory", "import", str(source), "-o", str(target)) == 2
    assert "malformed MAC" in capsys.readouterr().err
    assert not target.exists()


# -- stamps, contacts, backup lines and subnet masks (issue 17 item 6, issue 16 item 7) -------

NEW_HEADER = ["Mã xã", "Nhà mạng", "Dải IP", "Mặt nạ mạng", "Gateway", "Gateway dự phòng",
              "Nhà mạng dự phòng", "Mã đường truyền dự phòng", "Tên máy", "Địa chỉ IP",
              "Số tem", "Ngày dán tem", "Người liên hệ", "Số điện thoại"]
ENGLISH_HEADER = ["Commune code", "ISP", "Subnet", "Subnet mask", "Gateway", "Backup gateway",
                  "Backup ISP", "Backup circuit", "Host", "IP address", "Stamp", "Stamp date",
                  "Contact", "Phone"]
ALTERNATIVE_HEADER = ["MÃ XÃ", "Nhà mạng", "Dải IP", "Subnet mask", "Gateway", "Gateway dự phòng",
                      "Nha mang du phong", "Ma duong truyen du phong", "Tên máy", "Địa chỉ IP",
                      "Tem", "Ngày kiểm định", "Cán bộ phụ trách", "Điện thoại"]
NEW_ROWS = [
    ["26041", "VNPT", "198.18.1.0", "255.255.255.248", "198.18.1.1", "198.19.200.1", "Viettel",
     "VT-DNI-9", "may-01", "198.18.1.2", "CA-0001", "15/01/2026", "Nguyễn Văn A", "0912 345 678"],
    ["26041", "VNPT", "198.18.1.0", "255.255.255.248", "198.18.1.1", "198.19.200.1", "Viettel",
     "VT-DNI-9", "may-02", "198.18.1.3", "CA-0002", "16/01/2026", "Nguyễn Văn A", "0912 345 678"],
    ["26041", "", "", "", "", "", "", "", "", "", "", "", "Trần Thị Bình", "0283 822 1234"],
    ["26068", "Viettel", "198.18.1.8", "/29", "198.18.1.9", "", "", "", "may-01", "198.18.1.10",
     "", "", "", ""],
    ["26068", "Viettel", "198.18.1.8", "/29", "198.18.1.9", "", "", "", "may-02", "198.18.1.11",
     "", "", "", ""],
]


def write_sheet(path: Path, header: list[str], rows: list[list[object]]) -> None:
    """A workbook with one sheet, header in row 1 (data from row 2), or a CSV."""
    if path.suffix == ".csv":
        path.write_text(csv_text([header, *rows], ","), encoding="utf-8")
        return
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Sheet1"
    for row in [header, *rows]:
        sheet.append(row)
    workbook.save(path)


def check_new_columns(text: str | None, problems: list) -> None:
    assert problems == [], [str(p) for p in problems]
    assert text is not None
    inventory = loads(text)
    trấn_biên = inventory.commune("75", "26041")
    biên_hòa = inventory.commune("75", "26068")
    assert trấn_biên is not None and biên_hòa is not None
    assert str(trấn_biên.subnet) == "198.18.1.0/29"  # from the mask column, not a /32
    assert str(biên_hòa.subnet) == "198.18.1.8/29"  # "/29" in the mask column
    assert str(trấn_biên.backup_gateway) == "198.19.200.1"  # the WAN side: outside, allowed
    assert (trấn_biên.backup_isp, trấn_biên.backup_circuit) == ("Viettel", "VT-DNI-9")
    assert [(c.name, c.phone) for c in trấn_biên.contacts] == [
        ("Nguyễn Văn A", "0912 345 678"), ("Trần Thị Bình", "0283 822 1234")]
    assert [(h.inspection.stamp, h.inspection.date) for h in trấn_biên.hosts
            if h.inspection] == [("CA-0001", dt.date(2026, 1, 15)),
                                 ("CA-0002", dt.date(2026, 1, 16))]
    assert all(h.inspection is None for h in biên_hòa.hosts)
    assert biên_hòa.contacts == () and biên_hòa.backup_gateway is None


@pytest.mark.parametrize("header", [NEW_HEADER, ENGLISH_HEADER, ALTERNATIVE_HEADER],
                         ids=["vietnamese", "english", "alternative"])
@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_stamps_contacts_backup_line_and_mask_columns(
    tmp_path: Path, header: list[str], suffix: str
) -> None:
    path = tmp_path / f"plan{suffix}"
    write_sheet(path, header, NEW_ROWS)
    check_new_columns(*import_spreadsheet(path))


def test_excel_dates_and_numbers_as_excel_stores_them(tmp_path: Path) -> None:
    """A date cell is a datetime in openpyxl; a phone typed as a number lost its 0."""
    rows = [list(r) for r in NEW_ROWS]
    rows[0][11] = dt.datetime(2026, 1, 15)
    rows[1][11] = dt.date(2026, 1, 16)
    rows[0][13] = rows[1][13] = 912345678
    rows[2][13] = "0283 822 1234"
    path = tmp_path / "typed.xlsx"
    write_sheet(path, NEW_HEADER, rows)
    text, problems = import_spreadsheet(path)
    assert problems == [], [str(p) for p in problems]
    commune = loads(text).commune("75", "26041")
    assert commune is not None
    assert commune.contacts[0].phone == "0912345678"
    assert [h.inspection.date for h in commune.hosts if h.inspection] == [
        dt.date(2026, 1, 15), dt.date(2026, 1, 16)]


@pytest.mark.parametrize(("suffix", "where"), [
    (".xlsx", "Sheet1:5: cell C5 (Dải IP)"), (".csv", ":5: column 3 (Dải IP)"),
])
def test_subnet_without_prefix_or_mask_is_an_error_naming_the_cell(
    tmp_path: Path, suffix: str, where: str
) -> None:
    rows = [list(r) for r in NEW_ROWS]
    rows[3][3] = rows[4][3] = ""  # 26068: "198.18.1.8", no mask
    path = tmp_path / f"plan{suffix}"
    write_sheet(path, NEW_HEADER, rows)
    text, problems = import_spreadsheet(path)
    assert text is None  # never a silent /32
    (problem,) = problems
    assert str(problem).startswith(f"{path}{'' if suffix == '.csv' else ':'}{where}: "
                                   "'198.18.1.8' has no prefix length"), str(problem)


def test_subnet_without_prefix_and_no_mask_column(tmp_path: Path) -> None:
    header = [h for h in NEW_HEADER if h != "Mặt nạ mạng"]
    rows = [[c for i, c in enumerate(r) if i != 3] for r in NEW_ROWS]
    path = tmp_path / "nomask.csv"
    write_sheet(path, header, rows)
    text, problems = import_spreadsheet(path)
    assert text is None
    assert [(p.line, "has no prefix length" in p.message) for p in problems] == [
        (2, True), (5, True)]


def test_bad_mask_and_disagreeing_prefix_name_their_cells(tmp_path: Path) -> None:
    rows = [list(r) for r in NEW_ROWS]
    rows[0][3] = rows[1][3] = "255.255.0.255"  # not contiguous
    rows[3][2] = rows[4][2] = "198.18.1.8/28"  # but the mask column says /29
    path = tmp_path / "masks.xlsx"
    write_sheet(path, NEW_HEADER, rows)
    text, problems = import_spreadsheet(path)
    assert text is None
    assert [str(p).split(": ", 1)[0].rsplit(":", 1)[1] for p in problems] == ["2", "5"]
    assert "cell D2 (Mặt nạ mạng): '255.255.0.255' is not a subnet mask" in problems[0].message
    assert "cell C5 (Dải IP): '198.18.1.8/28' disagrees with the subnet mask '/29'" in (
        problems[1].message)


def test_stamp_without_date_reported_at_the_computers_row(tmp_path: Path) -> None:
    rows = [list(r) for r in NEW_ROWS]
    rows[1][11] = ""  # may-02's stamp date, row 3
    rows[0][11] = "31/02/2026"  # not a date, row 2
    path = tmp_path / "stamps.csv"
    write_sheet(path, NEW_HEADER, rows)
    text, problems = import_spreadsheet(path)
    assert text is None
    assert [(p.line, p.message) for p in problems] == [
        (2, "inspection date: expected a date like 2026-01-29, got '31/02/2026'"),
        (3, "inspection: missing 'date'"),
    ]


def test_bad_phone_and_fewer_than_two_computers_at_their_rows(tmp_path: Path) -> None:
    rows = [list(r) for r in NEW_ROWS][:4]  # 26068 keeps one computer (row 5)
    rows[2][13] = "gọi UBND xã"  # row 4
    path = tmp_path / "contacts.xlsx"
    write_sheet(path, NEW_HEADER, rows)
    text, problems = import_spreadsheet(path)
    assert text is None
    assert [(p.line, p.severity) for p in problems] == [(4, "error"), (5, "warning")]
    assert "contact phone: 'gọi UBND xã' is not a phone number" in problems[0].message
    assert "commune 26068: 1 computer(s)" in problems[1].message


def test_imported_new_fields_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "plan.xlsx"
    write_sheet(path, NEW_HEADER, NEW_ROWS)
    text, _ = import_spreadsheet(path)
    assert text is not None
    body = text.split("\n", 1)[1]  # after the "imported from" comment
    assert dump(loads(text)) == body
    assert loads(dump(loads(text))) == loads(text)
