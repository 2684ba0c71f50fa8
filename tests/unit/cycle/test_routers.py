"""The router vantage's pacing, sweep and credentials (monitor.cycle.routers), on inventory
values and key files of the test's own."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from inventory.model import Commune, Snmp
from monitor.cycle.routers import credentials, due, sweep_addresses
from probes import snmp
from tests.support.engine_sim import make_commune

V2C = Snmp("2c", community="lab-community")


def with_snmp(code: str, settings: Snmp | None = V2C) -> Commune:
    commune = make_commune(code)
    snmp_ = None if settings is None else dataclasses.replace(settings, address=commune.gateway)
    return dataclasses.replace(commune, snmp=snmp_)


def test_the_nation_is_read_in_equal_slices_each_router_once_every_n_cycles() -> None:
    communes = [dataclasses.replace(with_snmp("26041"), code=f"{i:05d}") for i in range(25)]
    communes.append(with_snmp("26044", None))  # no snmp: never read
    slices = [due(communes, cycle, 10) for cycle in range(10)]
    assert sorted(c.code for s in slices for c in s) == [f"{i:05d}" for i in range(25)]
    assert {len(s) for s in slices} == {2, 3}
    assert due(communes, 13, 10) == slices[3]  # the same turn ten cycles later
    assert len(due(communes, 0, 1)) == 25


def test_the_sweep_covers_the_subnet_but_the_routers_own_address() -> None:
    commune = with_snmp("26041")
    swept = sweep_addresses(commune)
    assert commune.gateway not in swept
    assert len(swept) == 13 and all(ip in commune.subnet for ip in swept)  # a /28
    wide = dataclasses.replace(commune, subnet=ipaddress.ip_network("198.18.0.0/22"))
    assert sweep_addresses(wide) == [h.ip for h in commune.hosts]


def test_v3_keys_are_read_from_their_files_and_never_shown(tmp_path: Path) -> None:
    auth, priv = tmp_path / "auth.key", tmp_path / "priv.key"
    auth.write_text("lab-auth-key-7q\n", encoding="utf-8")
    priv.write_text("lab-priv-key-3z\n", encoding="utf-8")
    v3 = Snmp("3", user="tslcd-mon", auth="SHA-256", auth_key_file=str(auth), priv="AES-256",
              priv_key_file=str(priv))
    login = credentials(v3)
    assert login == snmp.V3("tslcd-mon", "lab-auth-key-7q", "lab-priv-key-3z", "SHA-256",
                            "AES-256")
    assert "lab-auth" not in repr(login) and "lab-priv" not in repr(login)
    assert credentials(V2C) == snmp.V2c("lab-community")


def test_a_missing_or_short_key_file_names_the_file_not_a_key(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_text("abc", encoding="utf-8")
    v3 = Snmp("3", user="u", auth_key_file=str(short), priv_key_file=str(tmp_path / "none"))
    with pytest.raises(ValueError, match=r"short\.key"):
        credentials(v3)
    with pytest.raises(OSError):
        credentials(dataclasses.replace(v3, auth_key_file=str(tmp_path / "none")))
