"""The router's ARP table over SNMP: real snmpd in a lab router namespace, read from the core.

Lab: a ``core`` namespace (the central monitor) and a commune router ``rtr`` joined by a
WAN link; behind the router the commune's /29 with a good computer, one with a wrong MAC,
two machines claiming one IP, an unknown device at a free address and a listed computer
that is missing. net-snmp's snmpd runs in ``rtr`` on its WAN address with a v2c community
and a v3 authPriv SHA/AES user; the probe runs in ``core``. No SNMP mocks anywhere.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from probes import snmp
from tests.support import require_real
from tests.support.lab import netns
from tests.support.lab.snmpd import Snmpd, V3User, free_udp_port, probe_in, snmpd_available

ROUTER = "198.18.0.1"
CORE = "198.18.0.2"
SUBNET = "198.18.1.0/29"
GOOD = ("198.18.1.2", "02:00:00:00:01:02")
WRONG = ("198.18.1.3", "02:00:00:00:01:33")  # the inventory expects ...:01:03 there
EXPECTED_AT_WRONG = "02:00:00:00:01:03"
CONFLICT_IP = "198.18.1.4"
CONFLICT_MACS = ("02:00:00:00:01:04", "02:00:00:00:01:44")
UNKNOWN = ("198.18.1.5", "02:00:00:00:01:05")  # answers at an address nobody was given
MISSING = "198.18.1.6"  # listed, no machine
LISTED = {GOOD[0]: GOOD[1], WRONG[0]: EXPECTED_AT_WRONG, CONFLICT_IP: None, MISSING: None}
COMMUNITY = "lab-community-x9"
USER = V3User("tslcd-mon", auth_key="lab-auth-key-7q", priv_key="lab-priv-key-3z")
SECRETS = (COMMUNITY, USER.auth_key, USER.priv_key)
ROOT = Path(__file__).resolve().parents[2]
FAST = {"timeout": 0.3, "retries": 1}  # a failure must come back within about a second


@dataclass
class SnmpLab:
    lab: netns.Lab
    core: netns.Node
    router: netns.Node
    conflict: tuple[netns.Node, netns.Node]
    workdir: Path
    agents: list[Snmpd]

    def agent(self, name: str, **kwargs: Any) -> Snmpd:
        """A started snmpd in the router namespace on the WAN address, stopped at teardown."""
        agent = Snmpd(
            self.workdir / name, ROUTER, community=COMMUNITY, user=USER,
            exec_prefix=tuple(self.router.exec_args()), **kwargs,
        )
        self.agents.append(agent)
        return agent.start()

    def read(self, credentials: dict[str, str], port: int = 161, **options: Any) -> Any:
        request = {"router": ROUTER, "scope": [SUBNET], "credentials": credentials,
                   "port": port, **options}
        return probe_in(self.core, request)

    def sweep(self) -> None:
        """Ping the /29 from the router (as the monitor's sweep does): its ARP table fills."""
        hosts = [f"198.18.1.{n}" for n in range(2, 7)]
        self.router.run("fping", "-q", "-c1", "-t300", *hosts, check=False)

    def use_conflict_machine(self, index: int) -> None:
        """Only machine ``index`` of the two claiming CONFLICT_IP is on; the router forgets
        the old entry (as it would on ageing out) so the next sweep learns the other one."""
        on, off = self.conflict[index], self.conflict[1 - index]
        off.ip("link", "set", "eth0", "down")
        on.ip("link", "set", "eth0", "up")
        self.router.ip("neigh", "flush", "to", CONFLICT_IP, check=False)


V2C = {"community": COMMUNITY}
V3 = {"user": USER.name, "auth_key": USER.auth_key, "priv_key": USER.priv_key}


@pytest.fixture(scope="module")
def snmp_lab(netns_ready: None) -> Iterator[SnmpLab]:
    require_real(*snmpd_available())
    with netns.Lab() as lab, tempfile.TemporaryDirectory(prefix="tslcd-snmp-") as tmp:
        core, router = lab.node("core"), lab.router("rtr")
        wan, lan = lab.segment("wan", "198.18.0.0/29"), lab.segment("lan", SUBNET)
        wan.attach(core, CORE)
        wan.attach(router, ROUTER)
        lan.attach(router, "198.18.1.1")
        lan.add_host("good", *GOOD)
        lan.add_host("wrongmac", *WRONG)
        first = lan.add_host("claim1", CONFLICT_IP, CONFLICT_MACS[0])
        second = lan.add_host("claim2", CONFLICT_IP, CONFLICT_MACS[1])
        lan.add_host("unknown", *UNKNOWN)
        built = SnmpLab(lab, core, router, (first, second), Path(tmp), [])
        built.agent("main")
        try:
            yield built
        finally:
            for agent in built.agents:
                agent.stop()


# --- the segment, read from the center -------------------------------------------------------


@pytest.mark.parametrize("credentials", [V2C, V3], ids=["v2c", "v3-authPriv"])
def test_every_segment_case_is_in_the_routers_table(
    snmp_lab: SnmpLab, credentials: dict[str, str]
) -> None:
    snmp_lab.use_conflict_machine(0)
    snmp_lab.sweep()
    table = snmp_lab.read(credentials)
    assert table.ok and table.error is None and table.table == "ipNetToPhysicalTable"
    assert set(table.entries) <= {f"198.18.1.{n}" for n in range(8)}  # not the core's address
    assert table.rows > len(table.entries)  # the WAN neighbour (core) was read, then dropped
    results = snmp.arp_results(table, LISTED)
    assert results[GOOD[0]].ok and results[GOOD[0]].detail.macs == (GOOD[1],)
    assert not results[WRONG[0]].ok
    wrong = f"wrong MAC: {WRONG[1]} answered, expected {EXPECTED_AT_WRONG}"
    assert results[WRONG[0]].error == wrong
    assert results[CONFLICT_IP].detail.macs == (CONFLICT_MACS[0],)
    missing = table.entries.get(MISSING)
    assert missing is None or (not missing.present and missing.state in snmp.ABSENT_STATES)
    assert not results[MISSING].ok and results[MISSING].detail.macs == ()
    assert "absent" in results[MISSING].error
    assert snmp.unknown_devices(table, LISTED) == (UNKNOWN,)
    assert {r.kind for r in results.values()} == {"arp"}


def test_conflict_shows_as_a_flip_flop_across_polls(snmp_lab: SnmpLab) -> None:
    tables = []
    for machine in (0, 1, 0):
        snmp_lab.use_conflict_machine(machine)
        snmp_lab.sweep()
        tables.append(snmp_lab.read(V2C))
    assert [t.present()[CONFLICT_IP] for t in tables] == [
        CONFLICT_MACS[0], CONFLICT_MACS[1], CONFLICT_MACS[0]
    ]
    assert snmp.flip_flops(tables[:2]) == {}  # one change: maybe a new card, no conflict
    history = snmp.flip_flops(tables)
    assert history == {CONFLICT_IP: CONFLICT_MACS}  # the MAC came back: a conflict
    heard = snmp.replies(tables[-1], tables[:-1])
    assert (CONFLICT_IP, CONFLICT_MACS[1]) in heard and (GOOD[0], GOOD[1]) in heard


def test_missing_computer_is_incomplete_right_after_the_sweep(snmp_lab: SnmpLab) -> None:
    """net-snmp lists INCOMPLETE rows when it loads the kernel's table (later it follows
    netlink events, which it keeps only for resolved rows): an agent started after the
    sweep, while the router still resolves (30 tries a second apart here), shows the row."""
    router = snmp_lab.router
    router.sysctl("net.ipv4.neigh.eth1.mcast_solicit", 30)
    try:
        router.ip("neigh", "del", MISSING, "dev", "eth1", check=False)  # FAILED before
        snmp_lab.sweep()
        assert "INCOMPLETE" in router.ip("neigh", "show", MISSING)
        agent = snmp_lab.agent("fresh", port=1165)
        entry = snmp_lab.read(V2C, port=agent.port).entries[MISSING]
        assert entry.mac is None and entry.state == "incomplete" and entry.type == "invalid"
        assert not entry.present
    finally:
        router.sysctl("net.ipv4.neigh.eth1.mcast_solicit", 3)


def test_rfc1213_table_is_the_fallback(snmp_lab: SnmpLab) -> None:
    agent = snmp_lab.agent("media", port=1161, view=(".1.3.6.1.2.1.4.22",))
    snmp_lab.use_conflict_machine(0)
    snmp_lab.sweep()
    table = snmp_lab.read(V3, port=agent.port)
    assert table.ok and table.table == "ipNetToMediaTable"
    assert table.present()[GOOD[0]] == GOOD[1] and table.present()[WRONG[0]] == WRONG[1]
    assert all(entry.state is None for entry in table.entries.values())


# --- an agent that does not give the table is never an empty segment ----------------------


def assert_failed_quickly(table: snmp.RouterArpTable, kind: str) -> None:
    assert not table.ok and table.error == kind and table.entries == {}
    # bounded by the read's own timeout and retries (0.6 s here), not by a default or a
    # hang; the margin is for a loaded machine (this is not a timing test)
    assert table.duration < 10.0, table.duration
    with pytest.raises(ValueError):
        snmp.arp_results(table, LISTED)  # a failed read is no evidence of absence
    text = repr(table) + repr(snmp.table_to_dict(table))
    assert not any(secret in text for secret in SECRETS)


def test_wrong_community_is_a_timeout(snmp_lab: SnmpLab) -> None:
    table = snmp_lab.read({"community": "not-the-community"}, **FAST)
    assert_failed_quickly(table, "timeout")
    assert "community" in table.message


def test_wrong_v3_auth_key_is_an_auth_error(snmp_lab: SnmpLab) -> None:
    table = snmp_lab.read({**V3, "auth_key": "wrong-auth-key-1"}, **FAST)
    assert_failed_quickly(table, "auth")


def test_unknown_v3_user_is_an_auth_error(snmp_lab: SnmpLab) -> None:
    table = snmp_lab.read({**V3, "user": "nobody"}, **FAST)
    assert_failed_quickly(table, "auth")


def test_wrong_v3_privacy_key_is_a_timeout(snmp_lab: SnmpLab) -> None:
    table = snmp_lab.read({**V3, "priv_key": "wrong-priv-key-1"}, **FAST)
    assert_failed_quickly(table, "timeout")
    assert "privacy key" in table.message


def test_dead_snmpd_is_a_timeout(snmp_lab: SnmpLab) -> None:
    agent = snmp_lab.agent("dead", port=1162)
    assert snmp_lab.read(V2C, port=agent.port).ok  # it answered while it lived
    agent.stop()
    assert_failed_quickly(snmp_lab.read(V2C, port=agent.port, **FAST), "timeout")


def test_tables_outside_the_view_are_no_such_object(snmp_lab: SnmpLab) -> None:
    agent = snmp_lab.agent("noview", port=1163, view=(".1.3.6.1.2.1.1",))
    assert_failed_quickly(snmp_lab.read(V2C, port=agent.port), "no_such_object")


def test_tables_without_rows_are_empty(snmp_lab: SnmpLab) -> None:
    """The columns are in the view but no row is (ifIndex 0 never exists): an empty table."""
    view = (".1.3.6.1.2.1.4.35.1.4.0", ".1.3.6.1.2.1.4.22.1.2.0")
    agent = snmp_lab.agent("empty", port=1164, view=view)
    table = snmp_lab.read(V2C, port=agent.port)
    assert_failed_quickly(table, "empty")
    assert "empty" in table.message


def test_many_routers_at_once_keep_order_and_kinds(snmp_lab: SnmpLab) -> None:
    """The batch: one good, one wrong community, one dead port, results in request order."""
    script = (
        "import asyncio, json, sys\n"
        "from probes import snmp\n"
        f"good = snmp.V2c({COMMUNITY!r})\n"
        "reqs = [snmp.RouterRequest('198.18.0.1', good, ('198.18.1.0/29',)),\n"
        "        snmp.RouterRequest('198.18.0.1', snmp.V2c('bad'), ('198.18.1.0/29',)),\n"
        "        snmp.RouterRequest('198.18.0.1', good, ('198.18.1.0/29',), port=1199)] * 5\n"
        "out = asyncio.run(snmp.poll_routers(reqs, timeout=0.3, retries=0, concurrency=4))\n"
        "print(json.dumps([[t.ok, t.error] for t in out]))\n"
    )
    started = time.monotonic()
    proc = snmp_lab.core.run(sys.executable, "-c", script, cwd=ROOT)
    kinds = json.loads(proc.stdout)
    assert kinds == [[True, None], [False, "timeout"], [False, "timeout"]] * 5
    assert time.monotonic() - started < 10


# --- without a network ---------------------------------------------------------------------


def test_credentials_never_show_in_repr() -> None:
    assert COMMUNITY not in repr(snmp.V2c(COMMUNITY))
    v3 = snmp.V3(USER.name, auth_key=USER.auth_key, priv_key=USER.priv_key)
    assert USER.name in repr(v3) and not any(key in repr(v3) for key in SECRETS)
    request = snmp.RouterRequest(ROUTER, v3, (SUBNET,))
    assert not any(key in repr(request) for key in SECRETS)


def test_table_round_trips_through_json() -> None:
    entry = snmp.RouterArpEntry("198.18.1.2", "02:00:00:00:01:02", "dynamic", "stale")
    table = snmp.RouterArpTable(
        "198.18.0.1", True, 1.0, 0.1, {entry.ip: entry}, "ipNetToPhysicalTable", 3
    )
    assert snmp.table_from_dict(snmp.table_to_dict(table)) == table
    assert snmp.format_mac(bytes(6)) is None
    assert snmp.format_mac(b"\x02\xab" * 3) == "02:ab:02:ab:02:ab"


async def test_malformed_scope_is_the_callers_bug_raised_before_sending() -> None:
    with pytest.raises(ValueError):
        await snmp.poll_router("127.0.0.1", snmp.V2c("x"), ["not-an-address"], timeout=0.1)


# --- on loopback: the asyncio loop keeps running, engines are kept --------------------------


async def test_a_silent_router_never_blocks_the_loop() -> None:
    """Waiting for a router that never answers is a timer, not a stall of the monitor."""
    silent_port = free_udp_port()  # nothing listens there (bound a moment ago, then closed)
    worst, stop = 0.0, asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.01)
            worst = max(worst, time.monotonic() - before - 0.01)

    ticking = asyncio.create_task(ticker())
    tables = await snmp.poll_routers(
        [snmp.RouterRequest("127.0.0.1", snmp.V2c(COMMUNITY), ("127.0.0.0/8",), port=silent_port)]
        * 4, timeout=1.5, retries=1,
    )
    stop.set()
    await ticking
    assert [t.error for t in tables] == ["timeout"] * 4
    assert all(2.5 < t.duration < 8.0 for t in tables)  # two tries of 1.5 s, side by side
    # A blocking wait would stall the loop for at least one whole try (>= 1.5 s). The tries are
    # long so that a shared, loaded machine's hiccups (0.75 s seen in CI) stay well below that.
    assert worst < 1.0, worst


async def test_poller_keeps_one_engine_per_credentials_across_cycles(tmp_path: Path) -> None:
    require_real(*snmpd_available())
    port = free_udp_port()
    with Snmpd(tmp_path, "127.0.0.1", community=COMMUNITY, user=USER, port=port):
        v2c, v3 = snmp.V2c(COMMUNITY), snmp.V3(USER.name, USER.auth_key, USER.priv_key)
        requests = [snmp.RouterRequest("127.0.0.1", c, ("127.0.0.0/8",), port=port)
                    for c in (v2c, v3, v2c)]
        poller = snmp.Poller(timeout=1.0, retries=1)
        try:
            first = await poller.poll(requests)
            engines = (poller.engine(v2c), poller.engine(v3))
            second = await poller.poll(requests)
            assert (poller.engine(v2c), poller.engine(v3)) == engines
            assert engines[0] is not engines[1]
        finally:
            poller.close()
    # the root namespace's table may be empty: read and typed either way, never a timeout
    assert {t.error for t in first + second} <= {None, "empty"}
