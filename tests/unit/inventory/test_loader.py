"""Inventory validation: every rule reports its planted mistake once, at its line."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory import loader
from inventory.loader import (
    InventoryError,
    Problem,
    load,
    loads,
    parse_ip,
    parse_network,
    validate,
    validate_text,
)
from inventory.model import Contact, Defaults, Host, Snmp, WorkingHours, computer_expected
from monitor.cli import inventory as cli_inventory
from tests.support.inventory_texts import DONG_NAI_FIRST, FULL, SNMP_BLOCK

BASE = """\
version: 1
defaults:
  interval: 30s
  icmp: {count: 3, timeout: 1s}
  down_after: 3
  up_after: 2
  tcp_ports: [445, 3389]
targets:
  - name: congtaidaibieu
    url: https://congtaidaibieu.quochoi.vn/
    addresses: [198.18.100.10]
    ca_file: null
    verify_tls: true
    expected_first_hop: 198.18.1.1
milestones:
  - id: ip_installed
    title: "Cài đặt IP cho máy tính cập nhật dữ liệu"
    due: 2026-01-29
    requires: [ip_config, link]
""" + DONG_NAI_FIRST + """\
        circuit: "DNI-0001"
        subnet: 198.18.1.0/29
        gateway: 198.18.1.1
        backup_gateway: 198.18.1.6
        hosts:
          - name: may-01
            ip: 198.18.1.2
            mac: "02:00:00:00:01:02"
          - name: may-02
            ip: 198.18.1.3
            tcp_ports: [3389]
            inspection: {stamp: "CA-123", date: 2026-01-15}
      - code: 26068
        name: Phường Biên Hòa
        isp: Viettel
        subnet: 198.18.1.8/29
        gateway: 198.18.1.9
        tcp_ports: [445]
        hosts:
          - {name: may-01, ip: 198.18.1.10, mac: AA-BB-CC-DD-EE-0F}
          - {name: may-03, ip: 198.18.1.11}
  - code: 1
    name: Hà Nội
    communes:
      - code: 4
        name: Phường Ba Đình
        isp: VNPT
        subnet: 198.18.2.0/29
        gateway: 198.18.2.1
        hosts: [{name: may-a, ip: 198.18.2.2}, {name: may-b, ip: 198.18.2.3}]
maintenance:
  - scope: "75/26041"
    from: 2026-02-06T07:00:00+07:00
    to: 2026-02-06T12:00:00
"""

# (replace this, with that, expected message fragment, line marker in the result)
# The marker is a substring of the line the problem must be reported at (default: `that`).
MISTAKES = {
    "malformed host ip": ("ip: 198.18.1.3", "ip: 198.18.1.300", "malformed IP", None),
    "malformed mac": ('"02:00:00:00:01:02"', '"02:00:00:00:01:0g"', "malformed MAC", None),
    "malformed subnet": ("198.18.1.8/29", "198.18.1.8/33", "malformed subnet", None),
    "subnet host bits": ("198.18.1.0/29", "198.18.1.1/29", "host bits set", None),
    "malformed duration": ("interval: 30s", "interval: 30x", "malformed duration", None),
    "zero duration": ("timeout: 1s", "timeout: 0ms", "more than zero", None),
    "host outside subnet": ("ip: 198.18.1.3", "ip: 198.18.9.3", "outside", None),
    "gateway outside subnet": ("gateway: 198.18.1.9", "gateway: 198.18.3.9", "outside", None),
    "backup on broadcast address": ("198.18.1.6", "198.18.1.7", "network or broadcast", None),
    "host on network address": ("ip: 198.18.1.3", "ip: 198.18.1.0", "network or broadcast", None),
    "ip used twice": ("ip: 198.18.1.10,", "ip: 198.18.1.9,", "already used (first at line 43)",
                      None),
    "ip used twice, reported at the second": ("backup_gateway: 198.18.1.6",
                                              "backup_gateway: 198.18.1.3",
                                              "already used (first at line 30)", "ip: 198.18.1.3"),
    "duplicate province": ("maintenance:", '  - code: "75"\n    communes: []\nmaintenance:',
                           "duplicate province 75 (first at line 21)", '- code: "75"\n    com'),
    "duplicate commune": ("code: 26068", "code: 26041", "duplicate commune 26041", None),
    "duplicate host": ("name: may-02", "name: may-01", "duplicate host 'may-01'",
                       "name: may-01\n            ip: 198.18.1.3"),
    "unknown province": ("code: 1\n", "code: 99\n", "unknown province code '99'", "code: 99"),
    "commune of another province": ("code: 4\n", "code: 25195\n", "belongs to province 75",
                                    "code: 25195"),
    "commune not in official list": ("code: 4\n", "code: 99999\n", "not in the official list",
                                     "code: 99999"),
    "unknown key top": ("defaults:", "defaultz:", "did you mean 'defaults'", None),
    "unknown key nested": ("interval: 30s", "intervall: 30s", "did you mean 'interval'", None),
    "unknown key host": ('mac: "02', 'mca: "02', "did you mean 'mac'", None),
    "duplicate key": ("isp: Viettel", "isp: Viettel\n        isp: VNPT",
                      "duplicate key 'isp'", "isp: VNPT\n        subnet: 198.18.1.8"),
    "wrong type int": ("down_after: 3", "down_after: three", "expected a whole number", None),
    "wrong type bool": ("verify_tls: true", 'verify_tls: "yes"', "expected true or false", None),
    "wrong type list": ("hosts: [{name: may-a, ip: 198.18.2.2}, {name: may-b, ip: 198.18.2.3}]",
                        "hosts: may-01", "expected a list", None),
    "wrong type mapping": ("icmp: {count: 3, timeout: 1s}", "icmp: 3", "expected a mapping",
                           None),
    "bad port": ("tcp_ports: [445]", "tcp_ports: [0]", "between 1 and 65535", None),
    "version": ("version: 1", "version: 2", "version: must be 1", None),
    "missing version": ("version: 1\n", "", "missing 'version'", "defaults:"),
    "unknown check": ("[ip_config, link]", "[ip_config, dns]", "unknown check 'dns'", None),
    "bad due date": ("due: 2026-01-29", "due: 2026-02-30", "expected a date", None),
    "duplicate milestone": ("provinces:", "  - {id: ip_installed, title: x, due: 2026-01-01, "
                            "requires: [link]}\nprovinces:", "duplicate milestone", "{id: ip_"),
    "maintenance unknown scope": ('scope: "75/26041"', 'scope: "75/26044"', "no province or "
                                  "commune '75/26044'", None),
    "maintenance end before start": ("to: 2026-02-06T12:00:00", "to: 2026-02-06T06:00:00",
                                     "end after it starts", None),
    "maintenance bad datetime": ("to: 2026-02-06T12:00:00", "to: soon", "date and time", None),
    "target url": ("url: https://congtaidaibieu.quochoi.vn/", "url: ftp://x/", "http:// or",
                   None),
    "target address": ("[198.18.100.10]", "[198.18.100]", "malformed IP", None),
    "target first hop": ("expected_first_hop: 198.18.1.1", "expected_first_hop: gw",
                         "malformed IP", None),
    "target ca_file type": ("ca_file: null", "ca_file: [a]", "expected text", None),
    "duplicate target": ("milestones:", "  - {name: congtaidaibieu, url: 'http://127.0.0.1/'}\n"
                         "milestones:", "duplicate target", "{name: congtaidaibieu"),
    "overlapping subnets": ("subnet: 198.18.2.0/29\n        gateway: 198.18.2.1\n        hosts: "
                            "[{name: may-a, ip: 198.18.2.2}, {name: may-b, ip: 198.18.2.3}]",
                            "subnet: 198.18.1.8/29\n        gateway: 198.18.1.14\n        hosts: "
                            "[{name: may-a, ip: 198.18.1.12}, {name: may-b, ip: 198.18.1.13}]",
                            "overlaps 198.18.1.8/29 of commune 75/26068 (line 42)",
                            "subnet: 198.18.1.8/29\n        gateway: 198.18.1.14"),
    "gateway missing": ("        gateway: 198.18.2.1\n", "", "gateway: missing", "code: 4"),
    "subnet missing with hosts": ("        subnet: 198.18.1.8/29\n", "", "subnet: missing",
                                  "code: 26068"),
    "unsafe milestone id": ("id: ip_installed", "id: ../ip_installed", "not a safe id", None),
    "milestone id with a space": ("id: ip_installed", 'id: "ip installed"', "not a safe id",
                                  None),
    "inspection without date": ("{stamp: \"CA-123\", date: 2026-01-15}", "{stamp: \"CA-123\"}",
                                "missing 'date'", None),
}


def mutate(old: str, new: str) -> str:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


def line_of(text: str, marker: str) -> int:
    assert text.count(marker) == 1, marker
    return text[: text.index(marker)].count("\n") + 1


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli_inventory.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.handler(args)


def test_base_inventory_is_valid_and_complete() -> None:
    inventory, problems = validate_text(BASE, "base.yaml")
    assert problems == []
    assert inventory is not None
    assert [p.code for p in inventory.provinces] == ["75", "01"]
    assert [c.key for c in inventory.communes()] == ["75/26041", "75/26068", "01/00004"]
    trấn_biên = inventory.commune("75", "26041")
    assert trấn_biên is not None and trấn_biên.subnet == ipaddress.ip_network("198.18.1.0/29")
    assert trấn_biên.backup_gateway == ipaddress.ip_address("198.18.1.6")
    may01, may02 = trấn_biên.hosts
    assert may01.mac == "02:00:00:00:01:02" and may01.line == 32
    assert may01.tcp_ports == (445, 3389)  # defaults
    assert may02.tcp_ports == (3389,)  # its own
    assert may02.inspection is not None and may02.inspection.date == dt.date(2026, 1, 15)
    biên_hòa = inventory.commune("75", "26068")
    assert biên_hòa is not None
    assert biên_hòa.hosts[0].tcp_ports == (445,)  # the commune's
    assert biên_hòa.hosts[0].mac == "aa:bb:cc:dd:ee:0f"
    assert inventory.targets[0].expected_first_hop == ipaddress.ip_address("198.18.1.1")
    assert inventory.milestones[0].requires == ("ip_config", "link")
    window = inventory.maintenance[0]
    assert window.scope == "75/26041"
    assert window.end == dt.datetime(2026, 2, 6, 5, 0, tzinfo=dt.UTC)  # naive = +07:00


@pytest.mark.parametrize("name", list(MISTAKES))
def test_planted_mistake_reported_once_at_its_line(name: str, tmp_path: Path, capsys) -> None:
    assert_reported_once_at_its_line(BASE, MISTAKES[name], tmp_path / "inventory.yaml", capsys)


def assert_reported_once_at_its_line(base: str, mistake: tuple[str, str, str, str | None],
                                     path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``mistake`` (old text, new text, message, marker) planted in ``base``: the file is
    refused with one error, at the marker's line (default: the new text's first), and
    ``inventory validate`` says it as FILE:LINE and exits 2."""
    old, new, message, marker = mistake
    assert base.count(old) == 1, old
    text = base.replace(old, new)
    path.write_text(text, encoding="utf-8")
    inventory, problems = validate(path)
    assert inventory is None  # never half-loaded
    found = errors(problems)
    assert len(found) == 1, "\n".join(map(str, problems))
    expected_line = line_of(text, marker or new.split("\n")[0])
    assert found[0].line == expected_line, str(found[0])
    assert message in found[0].message
    assert run_cli("inventory", "validate", str(path)) == 2
    assert f"{path}:{expected_line}: {found[0].message}" in capsys.readouterr().err.splitlines()


def test_many_mistakes_all_reported_in_one_run(tmp_path: Path) -> None:
    chosen = ["malformed mac", "subnet host bits", "malformed duration", "duplicate host",
              "unknown province", "duplicate key", "wrong type bool", "unknown check",
              "maintenance end before start", "gateway outside subnet", "bad port"]
    text = BASE
    for name in chosen:
        old, new, _, _ = MISTAKES[name]
        assert text.count(old) == 1
        text = text.replace(old, new)
    path = tmp_path / "many.yaml"
    path.write_text(text, encoding="utf-8")
    inventory, problems = validate(path)
    assert inventory is None
    found = errors(problems)
    assert len(found) == len(chosen), "\n".join(map(str, found))
    for name in chosen:
        _, new, message, marker = MISTAKES[name]
        line = line_of(text, marker or new.split("\n")[0])
        assert any(p.line == line and message in p.message for p in found), name
    assert [p.line for p in problems] == sorted(p.line for p in problems)


def test_official_name_difference_is_a_warning_and_still_loads() -> None:
    text = mutate("name: Phường Biên Hòa", "name: Phường Biên Hoà")  # old-style tone placement
    inventory, problems = validate_text(text, "x.yaml")
    assert inventory is not None
    assert len(problems) == 1 and problems[0].severity == "warning"
    assert problems[0].line == line_of(text, "Biên Hoà")
    assert str(problems[0]).startswith(f"x.yaml:{problems[0].line}: warning: ")
    assert "Phường Biên Hòa" in problems[0].message


def test_nfd_names_match_official_and_are_stored_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "Phường Trấn Biên")
    assert nfd != "Phường Trấn Biên"
    text = mutate('"Phường Trấn Biên"', f'"{nfd}"')
    inventory, problems = validate_text(text)
    assert problems == []
    assert inventory is not None
    commune = inventory.commune("75", "26041")
    assert commune is not None and commune.name == "Phường Trấn Biên"


def test_name_without_type_prefix_is_accepted() -> None:
    text = mutate('name: "Phường Trấn Biên"', 'name: "Trấn Biên"')
    assert validate_text(text)[1] == []


def test_codes_written_as_numbers_are_normalised() -> None:
    inventory = loads(BASE)
    assert inventory.province("01") is not None
    assert inventory.commune("01", "00004") is not None


def test_mac_formats_are_normalised() -> None:
    for written in ("AA:BB:CC:DD:EE:FF", "aa-bb-cc-dd-ee-ff", "aabb.ccdd.eeff"):
        inventory = loads(mutate('"02:00:00:00:01:02"', f'"{written}"'))
        commune = inventory.commune("75", "26041")
        assert commune is not None and commune.hosts[0].mac == "aa:bb:cc:dd:ee:ff"


@pytest.mark.parametrize(("written", "seconds"),
                         [("30s", 30.0), ("500ms", 0.5), ("1m", 60.0), ("1h", 3600.0),
                          ("45", 45.0), ("2.5", 2.5)])
def test_durations(written: str, seconds: float) -> None:
    assert loads(mutate("interval: 30s", f"interval: {written}")).defaults.interval == seconds


def test_commune_without_ips_yet_is_a_warning() -> None:
    text = mutate("""        isp: VNPT
        subnet: 198.18.2.0/29
        gateway: 198.18.2.1
        hosts: [{name: may-a, ip: 198.18.2.2}, {name: may-b, ip: 198.18.2.3}]
""", "        hosts: []\n")
    inventory, problems = validate_text(text)
    assert inventory is not None
    assert [p.severity for p in problems] == ["warning"]
    assert "no IPs assigned yet" in problems[0].message
    commune = inventory.commune("01", "00004")
    assert commune is not None and commune.subnet is None and commune.gateway is None


def test_missing_isp_is_a_warning() -> None:
    inventory, problems = validate_text(mutate("        isp: Viettel\n", ""))
    assert inventory is not None
    assert [p.severity for p in problems] == ["warning"]
    assert "isp" in problems[0].message


def test_yaml_syntax_error_at_its_line(tmp_path: Path) -> None:
    text = mutate("isp: Viettel", "isp: [Viettel")
    inventory, problems = validate_text(text, "s.yaml")
    assert inventory is None and len(problems) == 1
    assert "YAML syntax error" in problems[0].message
    assert line_of(text, "isp: [Viettel") <= problems[0].line <= line_of(text, "isp: [Viettel") + 2


def test_non_utf8_file_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(BASE.encode("utf-8").replace("Ba Đình".encode(), b"Ba \xd0\xecnh"))
    inventory, problems = validate(path)
    assert inventory is None and len(problems) == 1
    assert problems[0].line == line_of(BASE, "Phường Ba Đình")
    assert "UTF-8" in problems[0].message


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert validate(empty)[0] is None and "empty" in validate(empty)[1][0].message
    assert validate(tmp_path / "nope.yaml")[1][0].message.startswith("cannot read")


def test_load_raises_with_all_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(mutate("version: 1", "version: 3"), encoding="utf-8")
    with pytest.raises(InventoryError) as caught:
        load(path)
    assert len(caught.value.problems) == 1
    assert str(caught.value) == f"{path}:1: version: must be 1, not '3'"


def test_cli_validate_accepts_warnings_with_exit_0(tmp_path: Path, capsys) -> None:
    path = tmp_path / "warn.yaml"
    path.write_text(mutate("        isp: Viettel\n", ""), encoding="utf-8")
    assert run_cli("inventory", "validate", str(path)) == 0
    captured = capsys.readouterr()
    assert ": warning: " in captured.err
    assert "3 xã / communes" in captured.out


def test_demo_inventory_is_valid_dong_nai() -> None:
    inventory, problems = validate(loader.demo_path())
    assert problems == []
    assert inventory is not None
    (province,) = inventory.provinces
    assert (province.code, province.name, len(province.communes)) == ("75", "Đồng Nai", 95)
    assert all(len(c.hosts) == 2 for c in province.communes)
    assert {h.name for _, h in inventory.hosts()} == {"may-01", "may-02"}
    assert all(h.ip.is_loopback for _, h in inventory.hosts())
    assert [t.url for t in inventory.targets] == ["https://127.75.255.254:8443/"]  # stand-in
    assert {m.id for m in inventory.milestones} == {"ip_installed", "line_installed", "connected"}
    assert inventory.defaults.interval == 30.0


def test_yaml_merge_keys_share_commune_settings() -> None:
    text = mutate("""      - code: 26068
        name: Phường Biên Hòa
        isp: Viettel
""", """      - <<: {isp: Viettel, circuit: "DNI-0002"}
        code: 26068
        name: Phường Biên Hòa
""")
    inventory, problems = validate_text(text)
    assert problems == []
    assert inventory is not None
    commune = inventory.commune("75", "26068")
    assert commune is not None and (commune.isp, commune.circuit) == ("Viettel", "DNI-0002")


def test_empty_host_name_is_an_error() -> None:
    text = mutate("name: may-02", 'name: ""')
    inventory, problems = validate_text(text)
    assert inventory is None
    assert [(p.line, p.message) for p in problems] == [(35, "host name: empty")]


def test_console_entry_point_runs_validate(tmp_path: Path, capsys) -> None:
    from monitor.cli.main import main

    assert main(["inventory", "validate", str(loader.demo_path())]) == 0
    assert "95 xã / communes, 190 máy / hosts" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(mutate("version: 1", "version: 2"), encoding="utf-8")
    assert main(["inventory", "validate", str(bad)]) == 2
    assert capsys.readouterr().err == f"{bad}:1: version: must be 1, not '2'\n"


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789.x+- ", max_size=17))
def test_fast_ip_parsing_accepts_exactly_what_ipaddress_does(text: str) -> None:
    assert parsed(parse_ip, text) == parsed(ipaddress.ip_address, text)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(
    st.text(alphabet="0123456789./x+- ", max_size=20),
    st.builds("{}.{}.{}.{}/{}".format, *[st.integers(0, 255)] * 4, st.integers(0, 40)),
))
def test_fast_subnet_parsing_accepts_exactly_what_ipaddress_does(text: str) -> None:
    """Strict: a subnet with host bits set is refused by both, anything else alike."""
    assert parsed(parse_network, text) == parsed(ipaddress.ip_network, text)


def parsed(parse: Callable[[str], object], text: str) -> object:
    """What ``parse`` makes of ``text``, None where it refuses it (ValueError)."""
    try:
        return parse(text)
    except ValueError:
        return None


# -- the fields of contract §2 added with working hours, SNMP, backup lines and contacts --------

NEW_MISTAKES = {
    "drill id with a slash": ("id: dien-tap.1", "id: ../dien-tap", "not a safe id", None),
    "drill id with CR LF": ("id: dien-tap.1", 'id: "dien\\r\\ntap"', "not a safe id", None),
    "period id with a quote": ("id: bau-cu_2026", "id: bau'cu", "not a safe id", None),
    "period id with a space": ("id: bau-cu_2026", "id: bau cu", "not a safe id", None),
    "id too long": ("id: dien-tap.1", "id: " + "d" * 65, "not a safe id", None),
    "retry_interval": ("retry_interval: 5s", "retry_interval: soon", "malformed duration", None),
    "unknown day": ("days: [mon, tue,", "days: [mon, tues,", "unknown day 'tues'", None),
    "no days": ("days: [mon, tue, wed, thu, fri]", "days: []", "at least one day", None),
    "clock": ('to: "17:30"', 'to: "5pm"', "time of day", None),
    "hours over midnight": ('to: "17:30"', 'to: "06:00"', "must be after 'from'", None),
    "working hours without to": ('    to: "17:30"\n', "", "missing 'to'", "days: [mon"),
    "holiday": ("2026-04-30]", "2026-04-31]", "expected a date", "holidays:"),
    "duplicate holiday": ("[2026-02-17, 2026-04-30]", "[2026-02-17, 2026-02-17]",
                          "duplicate date 2026-02-17", "holidays:"),
    "upstream": ("[198.19.255.1, 198.19.255.2]", "[198.19.255.1, 198.19.255]", "malformed IP",
                 None),
    "snmp version": ("{version: 2c,", "{version: 1,", "is not 2c or 3", None),
    "snmp 2c without community": ('{version: 2c, community: "s3cret-community"}',
                                  "{version: 2c}", "missing 'community'", None),
    "snmp community with v3": ('{version: 2c, community: "s3cret-community"}',
                               "{version: 3, user: u, community: x}",
                               "community: only for SNMP version 2c", None),
    "snmp user with 2c": ('{version: 2c, community: "s3cret-community"}',
                          "{version: 2c, community: x, user: u}", "only for SNMP version 3",
                          None),
    "snmp auth protocol": ("auth: sha256", "auth: sha999", "unknown protocol 'sha999'", None),
    "snmp priv protocol": ("priv: AES\n", "priv: blowfish\n", "unknown protocol 'blowfish'",
                           None),
    "snmp auth without key file": ("    auth_key_file: /etc/tslcd/auth.key\n", "",
                                   "missing 'auth_key_file'", "version: 3"),
    "snmp priv without auth": ("    auth: sha256\n    auth_key_file: /etc/tslcd/auth.key\n", "",
                               "needs 'auth' too", "priv: AES"),
    "snmp without user": ("    user: tslcd\n", "", "missing 'user'", "version: 3"),
    "snmp unknown key": ("{address: 198.18.1.6}", "{adress: 198.18.1.6}",
                         "did you mean 'address'", None),
    "snmp address": ("{address: 198.18.1.6}", "{address: 198.18.1.666}", "malformed IP", None),
    "contact without name": ('{name: "Trần Thị B", email:', "{email:", "missing 'name'", None),
    "contact phone": ('"0912 345 678"', '"gọi xã"', "not a phone number", None),
    "contact email": ("email: b@example.gov.vn", "email: b-at-example", "not an e-mail", None),
    "contact unknown key": ("role: ", "rolle: ", "did you mean 'role'", None),
    "always_on not a bool": ("always_on: true", 'always_on: "có"', "expected true or false",
                             None),
    "backup gateway used twice": ("backup_gateway: 198.19.200.1", "backup_gateway: 198.18.1.10",
                                  "already used", "ip: 198.18.1.10"),
    "backup gateway on the subnet's broadcast": ("backup_gateway: 198.19.200.1",
                                                 "backup_gateway: 198.18.1.7",
                                                 "network or broadcast", None),
    "primary gateway outside": ("gateway: 198.18.1.17", "gateway: 198.19.200.17", "outside", None),
}


def full(old: str, new: str) -> str:
    assert FULL.count(old) == 1, old
    return FULL.replace(old, new)


def test_full_inventory_loads_every_new_field() -> None:
    inventory, problems = validate_text(FULL, "full.yaml")
    assert problems == []
    assert inventory is not None
    d = inventory.defaults
    assert d.retry_interval == 5.0
    assert d.working_hours == WorkingHours((0, 1, 2, 3, 4), dt.time(7), dt.time(17, 30))
    assert d.holidays == (dt.date(2026, 2, 17), dt.date(2026, 4, 30))
    assert d.upstream == (ipaddress.ip_address("198.19.255.1"),
                          ipaddress.ip_address("198.19.255.2"))
    assert d.snmp == Snmp("3", user="tslcd", auth="SHA-256", auth_key_file="/etc/tslcd/auth.key",
                          priv="AES", priv_key_file="/etc/tslcd/priv.key")
    trấn_biên, biên_hòa, third = inventory.communes()
    assert trấn_biên.backup_gateway == ipaddress.ip_address("198.19.200.1")  # outside: allowed
    assert (trấn_biên.backup_isp, trấn_biên.backup_circuit) == ("Viettel", "VT-DNI-9")
    assert trấn_biên.contacts == (
        Contact("Nguyễn Văn A", role="cán bộ CNTT xã", phone="0912 345 678"),
        Contact("Trần Thị B", email="b@example.gov.vn"),
    )
    assert [h.always_on for h in trấn_biên.hosts] == [True, False]
    # only an address: the defaults' credentials, asked of that address
    assert trấn_biên.snmp == replace(d.snmp, address=ipaddress.ip_address("198.18.1.6"))
    # its own credentials, asked of the gateway
    assert biên_hòa.snmp is not None and biên_hòa.snmp.version == "2c"
    assert biên_hòa.snmp.community == "s3cret-community"
    assert biên_hòa.snmp.address == biên_hòa.gateway
    # nothing of its own: the defaults', asked of the gateway
    assert third.snmp == replace(d.snmp, address=third.gateway)
    assert [drill.id for drill in inventory.drills] == ["dien-tap.1"]
    assert [period.id for period in inventory.periods] == ["bau-cu_2026"]


def test_defaults_of_the_new_fields() -> None:
    inventory = loads(BASE)
    d = inventory.defaults
    assert (d.retry_interval, d.working_hours, d.holidays, d.snmp, d.upstream) == (
        2.0, None, (), None, ())
    commune = inventory.commune("75", "26041")
    assert commune is not None
    assert (commune.backup_isp, commune.backup_circuit, commune.contacts, commune.snmp) == (
        None, None, (), None)
    assert not any(h.always_on for _, h in inventory.hosts())


@pytest.mark.parametrize("name", list(NEW_MISTAKES))
def test_new_field_mistake_reported_once_at_its_line(name: str, tmp_path: Path, capsys) -> None:
    assert_reported_once_at_its_line(FULL, NEW_MISTAKES[name], tmp_path / "full.yaml", capsys)


@pytest.mark.parametrize(("written", "canonical"), [
    ("SHA", "SHA"), ("sha1", "SHA"), ("SHA-512", "SHA-512"), ("sha_384", "SHA-384"),
    ("md5", "MD5"),
])
def test_snmp_auth_protocol_names_are_normalised(written: str, canonical: str) -> None:
    inventory = loads(full("auth: sha256", f"auth: {written}"))
    assert inventory.defaults.snmp is not None
    assert inventory.defaults.snmp.auth == canonical


def test_snmp_v3_without_privacy_and_key_files_as_paths_only() -> None:
    text = full("    priv: AES\n    priv_key_file: /etc/tslcd/priv.key\n", "")
    inventory, problems = validate_text(text)
    assert problems == [], problems
    assert inventory is not None and inventory.defaults.snmp is not None
    snmp = inventory.defaults.snmp
    assert (snmp.priv, snmp.priv_key_file) == (None, None)
    assert snmp.auth_key_file == "/etc/tslcd/auth.key"  # a path, never read at validation


def test_snmp_community_is_kept_out_of_repr_and_str() -> None:
    inventory = loads(FULL)
    commune = inventory.commune("75", "26068")
    assert commune is not None and commune.snmp is not None
    for text in (repr(commune), str(commune), repr(commune.snmp), repr(inventory)):
        assert "s3cret-community" not in text
    assert "user='tslcd'" in repr(inventory.defaults)


def test_commune_snmp_with_only_an_address_needs_defaults() -> None:
    text = full(SNMP_BLOCK, "")
    inventory, problems = validate_text(text, "x.yaml")
    assert inventory is None
    (problem,) = errors(problems)
    assert problem.line == line_of_text(text, "snmp: {address: 198.18.1.6}")
    assert "no credentials in defaults.snmp" in problem.message


def line_of_text(text: str, marker: str) -> int:
    assert text.count(marker) == 1, marker
    return text[: text.index(marker)].count("\n") + 1


def test_fewer_than_two_computers_is_a_warning_at_the_commune() -> None:
    text = full("          - {name: may-02, ip: 198.18.1.19}\n", "")
    inventory, problems = validate_text(text, "x.yaml")
    assert inventory is not None  # a warning: it still loads
    (problem,) = problems
    assert problem.severity == "warning"
    assert problem.line == line_of_text(text, 'code: "25195"')
    assert str(problem).startswith(f"x.yaml:{problem.line}: warning: commune 25195: 1 computer")
    no_hosts = full("""          - {name: may-01, ip: 198.18.1.18}
          - {name: may-02, ip: 198.18.1.19}
""", "").replace("198.18.1.17\n        hosts:\n", "198.18.1.17\n        hosts: []\n")
    _, problems = validate_text(no_hosts)
    assert [(p.severity, "0 computer(s)" in p.message) for p in problems] == [("warning", True)]


def test_scaffold_commune_without_subnet_gets_no_computer_warning() -> None:
    """A commune whose IPs are not assigned yet has its own warning; counting its computers
    would only repeat it (the scaffold writes 3,321 of them)."""
    text = full("""        subnet: 198.18.1.16/29
        gateway: 198.18.1.17
        hosts:
          - {name: may-01, ip: 198.18.1.18}
          - {name: may-02, ip: 198.18.1.19}
""", "        hosts: []\n")
    inventory, problems = validate_text(text)
    assert inventory is not None
    assert [p.message for p in problems] == [loader.NO_IPS_YET]


# -- when a computer is expected to answer -----------------------------------------------------

HOURS = Defaults(working_hours=WorkingHours((0, 1, 2, 3, 4), dt.time(7), dt.time(17, 30)),
                 holidays=(dt.date(2026, 4, 30),))
OFFICE_PC = Host("may-01", ipaddress.ip_address("198.18.1.2"))
SERVER = Host("may-02", ipaddress.ip_address("198.18.1.3"), always_on=True)


@pytest.mark.parametrize(("at", "expected"), [
    (dt.datetime(2026, 2, 4, 9, 0), True),  # a Wednesday morning
    (dt.datetime(2026, 2, 4, 7, 0), True),  # "from" included
    (dt.datetime(2026, 2, 4, 17, 30), False),  # "to" excluded
    (dt.datetime(2026, 2, 4, 6, 59), False),
    (dt.datetime(2026, 2, 4, 21, 0), False),  # evening
    (dt.datetime(2026, 2, 7, 10, 0), False),  # Saturday
    (dt.datetime(2026, 4, 30, 10, 0), False),  # a holiday (Thursday)
    (dt.datetime(2026, 2, 4, 2, 0, tzinfo=dt.UTC), True),  # 09:00 in Vietnam
    (dt.datetime(2026, 2, 4, 12, 0, tzinfo=dt.UTC), False),  # 19:00 in Vietnam
    (dt.datetime(2026, 4, 29, 23, 0, tzinfo=dt.UTC), False),  # 06:00 on the holiday
    (dt.datetime(2026, 4, 30, 1, 0, tzinfo=dt.UTC), False),  # 08:00 on the holiday
])
def test_office_computer_expected_only_in_working_hours(at: dt.datetime, expected: bool) -> None:
    assert computer_expected(HOURS, OFFICE_PC, at) is expected
    assert computer_expected(HOURS, SERVER, at) is True  # always_on
    assert computer_expected(Defaults(), OFFICE_PC, at) is True  # no working_hours: always
    assert computer_expected(HOURS, OFFICE_PC, at, in_window=True) is True  # a drill, a period
