"""dump() writes YAML that load() reads back equal; generator, demo and scaffold."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import ipaddress
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory import generate, loader, official
from inventory.loader import DEFAULT_TCP_PORTS, dump, loads, validate, validate_text
from inventory.model import (
    AUTH_PROTOCOLS,
    CHECKS,
    PRIV_PROTOCOLS,
    Commune,
    Contact,
    Defaults,
    Host,
    IcmpSettings,
    Inspection,
    Inventory,
    Maintenance,
    Milestone,
    Province,
    Snmp,
    Target,
    WorkingHours,
)
from inventory.scaffold import scaffold
from monitor.cli import inventory as cli_inventory

ports = st.lists(st.integers(1, 65535), max_size=3).map(tuple)
seconds = st.floats(min_value=0.001, max_value=1e6, allow_nan=False, allow_infinity=False)
names = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "M", "N", "Zs", "P")),
    min_size=1, max_size=20,
).map(lambda s: unicodedata.normalize("NFC", s).strip()).filter(bool)
# the loader's safe ids (inventory.loader.SAFE_ID, and no ".." anywhere)
identifiers = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True).filter(
    lambda text: ".." not in text)
macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
dates = st.dates(dt.date(2025, 1, 1), dt.date(2027, 12, 31))
phones = st.from_regex(r"(\+84 |0)[1-9][0-9]{2} [0-9]{3} [0-9]{3}", fullmatch=True)
contacts = st.builds(Contact, names, st.none() | names, st.none() | phones,
                     st.none() | identifiers.map(lambda s: f"{s}@example.gov.vn"))
key_files = identifiers.map(lambda s: f"/etc/tslcd/{s}.key")
snmp_v2c = st.builds(lambda c: Snmp("2c", community=c), names)
snmp_v3 = st.builds(
    lambda user, auth, auth_file, priv, priv_file: Snmp(
        "3", user=user, auth=auth, auth_key_file=auth_file if auth else None,
        priv=priv if auth else None, priv_key_file=priv_file if auth and priv else None),
    identifiers, st.none() | st.sampled_from(AUTH_PROTOCOLS), key_files,
    st.none() | st.sampled_from(PRIV_PROTOCOLS), key_files,
)
clock = st.times().map(lambda t: t.replace(second=0, microsecond=0))
working_hours = st.builds(
    lambda days, a, b: WorkingHours(tuple(sorted(days)), min(a, b), max(a, b)),
    st.sets(st.integers(0, 6), min_size=1), clock, clock,
).filter(lambda h: h.start < h.end)
moments = st.datetimes(dt.datetime(2025, 1, 1), dt.datetime(2027, 1, 1),
                       timezones=st.sampled_from([dt.UTC, loader.VIETNAM_TZ]))


#: Strategies built once, not at every draw (hypothesis validates each new strategy object,
#: which cost more than the dump and load under test); the same choices as before.
ISPS = st.sampled_from(["VNPT", "Viettel", "FPT Telecom"])
BACKUP_ISPS = st.none() | st.sampled_from(["VNPT", "Viettel"])
MAYBE_MAC = st.none() | macs
MAYBE_INSPECTION = st.none() | st.builds(Inspection, identifiers, dates)
CIRCUITS = st.none() | identifiers | st.just("12345")
MAYBE_IDENTIFIER = st.none() | identifiers
CONTACT_LISTS = st.lists(contacts, max_size=2).map(tuple)
HOST_COUNT = st.integers(0, 4)


@functools.cache
def commune_codes(province: str) -> st.SearchStrategy[list[str]]:
    """Up to three distinct communes of ``province`` (one strategy a province)."""
    unit = official.provinces()[province]
    return st.lists(st.sampled_from(sorted(unit.communes)), max_size=3, unique=True)


@functools.cache
def known_or_any_name(official_name: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(official_name), names)


@st.composite
def communes_of(draw: st.DrawFn, province: str, first_index: int, defaults: Defaults) -> tuple:
    unit = official.provinces()[province]
    tcp_ports = st.just(defaults.tcp_ports) | ports
    result = []
    for offset, code in enumerate(draw(commune_codes(province))):
        index = first_index + offset
        name = draw(known_or_any_name(unit.communes[code].name))
        if draw(st.booleans()):
            result.append(Commune(province, code, name, "", None, None, ()))
            continue
        subnet = ipaddress.ip_network(f"198.18.{index}.0/29")
        base = subnet.network_address
        inside_or_wan = st.just(base + 6) | st.just(ipaddress.ip_address(f"10.200.{index}.1"))
        hosts = tuple(
            Host(
                name=f"may-{n:02d}" if draw(st.booleans()) else f"{draw(identifiers)}-{n}",
                ip=base + 1 + n,
                mac=draw(MAYBE_MAC),
                tcp_ports=draw(tcp_ports),
                inspection=draw(MAYBE_INSPECTION),
                always_on=draw(st.booleans()),
            )
            for n in range(1, draw(HOST_COUNT) + 1)
        )
        result.append(Commune(
            province, code, name, draw(ISPS),
            subnet, base + 1, hosts, draw(CIRCUITS),
            draw(st.none() | inside_or_wan),
            backup_isp=draw(BACKUP_ISPS),
            backup_circuit=draw(MAYBE_IDENTIFIER),
            contacts=draw(CONTACT_LISTS),
            snmp=draw(commune_snmp(defaults.snmp, base + 1, base + 5)),
        ))
    return tuple(result)


def commune_snmp(
    inherited: Snmp | None, gateway: ipaddress.IPv4Address, other: ipaddress.IPv4Address
) -> st.SearchStrategy[Snmp | None]:
    """What the loader can give a commune: the defaults' on the gateway (or nothing without
    them), the defaults' on another address, or its own credentials on either."""
    address = st.sampled_from([gateway, other])
    own = st.builds(lambda s, a: replace(s, address=a), snmp_v2c | snmp_v3, address)
    if inherited is None:
        return st.none() | own
    return st.builds(lambda a: replace(inherited, address=a), address) | own


ICMP_COUNTS = st.integers(1, 100)
CYCLE_COUNTS = st.integers(1, 10)
MAYBE_WORKING_HOURS = st.none() | working_hours
HOLIDAYS = st.sets(dates, max_size=3).map(sorted).map(tuple)
DEFAULT_SNMP = st.none() | snmp_v2c | snmp_v3
UPSTREAM = st.lists(st.ip_addresses(v=4), max_size=2).map(tuple)
PROVINCE_CODES = st.lists(st.sampled_from(sorted(official.provinces())), max_size=3, unique=True)
WINDOW_COUNT = st.integers(0, 2)
WINDOW_SECONDS = st.integers(1, 10**6)
DISTINCT_IDENTIFIERS = st.lists(identifiers, max_size=2, unique=True)
MILESTONE_IDS = st.lists(identifiers, max_size=3, unique=True)
TARGET_ADDRESSES = st.lists(st.ip_addresses(v=4), max_size=2).map(tuple)
MAYBE_NAME = st.none() | names
MAYBE_ADDRESS = st.none() | st.ip_addresses()
REQUIRED_CHECKS = st.lists(st.sampled_from(CHECKS), min_size=1, unique=True).map(tuple)


@st.composite
def inventories(draw: st.DrawFn) -> Inventory:
    defaults = Defaults(
        interval=draw(seconds), icmp=IcmpSettings(draw(ICMP_COUNTS), draw(seconds)),
        down_after=draw(CYCLE_COUNTS), up_after=draw(CYCLE_COUNTS),
        tcp_ports=draw(ports), retry_interval=draw(seconds),
        working_hours=draw(MAYBE_WORKING_HOURS),
        holidays=draw(HOLIDAYS),
        snmp=draw(DEFAULT_SNMP),
        upstream=draw(UPSTREAM),
    )
    provinces = []
    for i, code in enumerate(draw(PROVINCE_CODES)):
        name = draw(known_or_any_name(official.provinces()[code].name))
        provinces.append(Province(code, name, draw(communes_of(code, i * 3, defaults))))
    scopes = [p.code for p in provinces] + [c.key for p in provinces for c in p.communes]
    maintenance = []
    for _ in range(draw(WINDOW_COUNT) if scopes else 0):
        start = draw(moments)
        end = start + dt.timedelta(seconds=draw(WINDOW_SECONDS))
        maintenance.append(Maintenance(draw(st.sampled_from(scopes)), start, end))
    targets = tuple(
        Target(name, f"https://{name.lower().strip('.-_') or 'x'}.example.vn/",
               draw(TARGET_ADDRESSES), draw(MAYBE_NAME), draw(st.booleans()),
               draw(MAYBE_ADDRESS))
        for name in draw(DISTINCT_IDENTIFIERS)
    )
    milestones = tuple(
        Milestone(ident, draw(names), draw(dates), draw(REQUIRED_CHECKS))
        for ident in draw(MILESTONE_IDS)
    )
    return Inventory(1, defaults, tuple(provinces), targets, milestones, tuple(maintenance))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inventories())
def test_dump_then_load_gives_the_same_inventory(inventory: Inventory) -> None:
    text = dump(inventory)
    again, problems = validate_text(text)
    assert again is not None, "\n".join(map(str, problems))
    assert again == inventory
    assert dump(again) == text  # load, dump, load is stable


def test_demo_round_trips() -> None:
    demo = loader.load(loader.demo_path())
    assert loads(dump(demo)) == demo


def test_committed_demo_is_what_the_generator_writes() -> None:
    assert loader.demo_path().read_text(encoding="utf-8") == generate.demo()


def test_national_inventory_has_every_commune(tmp_path: Path) -> None:
    path = tmp_path / "national.yaml"
    assert run_cli("inventory", "generate", "-o", str(path)) == 0
    inventory, problems = validate(path)
    assert problems == []
    assert inventory is not None
    assert len(inventory.provinces) == 34
    communes = list(inventory.communes())
    assert len(communes) == 3321
    assert inventory.host_count == 3 * 3321
    official_names = {c.code: c.name for p in official.provinces().values()
                      for c in p.communes.values()}
    assert {c.code: c.name for c in communes} == official_names
    assert all(h.ip.is_loopback for _, h in inventory.hosts())
    dong_nai = inventory.province("75")
    assert dong_nai is not None
    first, second = dong_nai.communes[:2]
    assert str(first.subnet) == "127.75.0.0/29" and str(second.subnet) == "127.75.0.8/29"
    assert (first.isp, second.isp, first.circuit) == ("VNPT", "Viettel", "75-0001")
    assert str(dong_nai.communes[32].subnet) == "127.75.1.0/29"


def test_generate_one_province_with_n_hosts(tmp_path: Path) -> None:
    path = tmp_path / "hn.yaml"
    assert run_cli("inventory", "generate", "-o", str(path), "--province", "1",
                   "--hosts-per-commune", "5") == 0
    inventory = loader.load(path)
    assert [p.code for p in inventory.provinces] == ["01"]
    assert {len(c.hosts) for c in inventory.communes()} == {5}
    assert inventory.defaults.tcp_ports == DEFAULT_TCP_PORTS


def test_generate_rejects_more_hosts_than_a_slash_29_holds(tmp_path: Path, capsys) -> None:
    assert run_cli("inventory", "generate", "-o", str(tmp_path / "x.yaml"),
                   "--hosts-per-commune", "6") == 2
    assert "0..5" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown province"):
        generate.province("99")


@pytest.mark.parametrize("code", sorted(official.provinces()))
def test_scaffold_validates_with_warnings_only(code: str) -> None:
    text = scaffold(int(code))
    assert text.startswith("# Danh sách giám sát")
    inventory, problems = validate_text(text, "scaffold.yaml")
    assert inventory is not None
    assert {p.severity for p in problems} <= {"warning"}
    (province,) = inventory.provinces
    assert len(province.communes) == len(official.provinces()[code].communes)
    assert len(problems) == len(province.communes)  # one "no IPs yet" per commune,
    assert {p.message for p in problems} == {loader.NO_IPS_YET}  # not "fewer than two hosts"
    assert all(c.subnet is None and not c.hosts for c in province.communes)


def test_scaffold_cli(tmp_path: Path, capsys) -> None:
    path = tmp_path / "dn.yaml"
    assert run_cli("inventory", "scaffold", "--province", "75", "-o", str(path)) == 0
    assert "Phường Trấn Biên" in path.read_text(encoding="utf-8")
    assert run_cli("inventory", "scaffold", "--province", "76", "-o", str(path)) == 2
    assert "unknown province code '76'" in capsys.readouterr().err


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli_inventory.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.handler(args)
