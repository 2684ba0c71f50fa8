"""How an IP conflict shows in a router's table of one MAC per IP: a flip-flop across
reads (arpwatch), never a MAC replaced once."""

from __future__ import annotations

from probes.snmp import RouterArpEntry, RouterArpTable, flip_flops, replies

IP, OTHER_IP = "198.18.1.2", "198.18.1.3"
A, B = "02:00:00:00:01:01", "02:00:00:00:99:99"


def read(macs: dict[str, str | None], ok: bool = True) -> RouterArpTable:
    entries = {ip: RouterArpEntry(ip, mac, "dynamic" if mac else "invalid",
                                  "reachable" if mac else "incomplete")
               for ip, mac in macs.items()}
    return RouterArpTable("198.18.1.1", ok, 0.0, 0.0, entries if ok else {},
                          error=None if ok else "timeout")


def test_a_mac_that_comes_back_is_a_flip_flop() -> None:
    assert flip_flops([read({IP: A}), read({IP: B}), read({IP: A})]) == {IP: (A, B)}


def test_a_card_replaced_once_is_none() -> None:
    assert flip_flops([read({IP: A}), read({IP: B}), read({IP: B})]) == {}


def test_failed_reads_and_absent_rows_add_nothing() -> None:
    reads = [read({IP: A}), read({}, ok=False), read({IP: None}), read({IP: A})]
    assert flip_flops(reads) == {}


def test_replies_carry_every_mac_of_a_flip_flop_and_only_present_addresses() -> None:
    earlier = [read({IP: A, OTHER_IP: A}), read({IP: B, OTHER_IP: A})]
    assert sorted(replies(read({IP: A, OTHER_IP: None}), earlier)) == [(IP, A), (IP, B)]
    assert replies(read({IP: B}), earlier[1:]) == [(IP, B)]
