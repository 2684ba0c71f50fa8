"""The official list of administrative units (after the 2025 reorganisation: 34 provinces,
3,321 communes), from the ``vietnam-provinces`` package's bundled data.

Codes are strings, zero-padded as the General Statistics Office writes them: provinces
two digits ("01", "75"), communes five ("00004", "26041").
"""

from __future__ import annotations

import importlib.util
import json
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_TYPE_PREFIXES = ("thành phố ", "tỉnh ", "phường ", "xã ", "đặc khu ")


@dataclass(frozen=True, slots=True)
class OfficialCommune:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class OfficialProvince:
    code: str
    name: str
    communes: dict[str, OfficialCommune]


def province_code(value: object) -> str:
    """Normalise a province code as written in YAML or a spreadsheet ("1", 1, "01")."""
    return _pad(value, 2)


def commune_code(value: object) -> str:
    return _pad(value, 5)


def _pad(value: object, width: int) -> str:
    text = str(value).strip()
    if text.endswith(".0") and text[:-2].isdigit():  # spreadsheets store codes as floats
        text = text[:-2]
    return text.zfill(width) if text.isdigit() else text


@cache
def provinces() -> dict[str, OfficialProvince]:
    """Every province of the official list by code."""
    with open(_divisions_json(), encoding="utf-8") as f:
        raw = json.load(f)
    result = {}
    for p in raw:
        code = province_code(p["code"])
        communes = {
            commune_code(w["code"]): OfficialCommune(commune_code(w["code"]), nfc(w["name"]))
            for w in p["wards"]
        }
        result[code] = OfficialProvince(code, nfc(p["name"]), communes)
    return result


def _divisions_json() -> Path:
    """The package's data file, found without importing the package (its code tables take
    35 ms to import, which every ``check`` would pay for one file name)."""
    spec = importlib.util.find_spec("vietnam_provinces")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the vietnam-provinces package is not installed")
    return Path(spec.submodule_search_locations[0]) / "data" / "nested-divisions.json"


def nfc(text: str) -> str:
    # ASCII is its own NFC, and isascii() is a flag read: most of an inventory is ASCII
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """Diacritics-insensitive, case-insensitive key: "Biên Hòa" and "bien hoa" fold alike."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def same_name(given: str, official: str) -> bool:
    """Names match after NFC and case folding, with or without the unit's type prefix
    ("Đồng Nai" is "Tỉnh Đồng Nai"; "Trấn Biên" is "Phường Trấn Biên")."""
    if given == official:
        return True
    a, b = _plain(given), _plain(official)
    return a == b or _strip_prefix(a) == _strip_prefix(b)


def _plain(text: str) -> str:
    return " ".join(nfc(text).casefold().split())


def _strip_prefix(text: str) -> str:
    for prefix in _TYPE_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text
