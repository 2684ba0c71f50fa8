"""The block reader against libyaml: the same nodes (kinds, tags, values, lines) or a hand-over.

The inventory's fast reader must never read a document differently from libyaml. Documents
are generated from the pieces inventories are made of, plus the awkward ones (quotes, colons,
hashes, flow collections, odd indentation, YAML 1.1 booleans and numbers, anchors, tags,
multi-line scalars), and mutated copies of real inventories; for each, either both readers
give the same tree, or the block reader hands the text to libyaml.
"""

from __future__ import annotations

import functools
import random
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from inventory import generate, nodes
from inventory.loader import demo_path

ROOT = Path(__file__).resolve().parents[3]


def libyaml(text: str) -> nodes.Node | str | None:
    try:
        return nodes.from_yaml(yaml.compose(text, Loader=nodes._Loader))
    except yaml.YAMLError:
        return "error"


def block(text: str) -> nodes.Node | str | None:
    try:
        return nodes._BlockReader(text).document()
    except nodes._NotBlockStyle:
        return "handed over"


def as_data(node: nodes.Node | str | None) -> object:
    """A node tree as plain nested data, for comparison and readable failures."""
    if node is None or isinstance(node, str):
        return node
    if isinstance(node, nodes.Scalar):
        return ("scalar", node.tag, node.value, node.line)
    if isinstance(node, nodes.Mapping):
        return ("map", node.tag, node.line, [(as_data(k), as_data(v)) for k, v in node.value])
    return ("seq", node.tag, node.line, [as_data(i) for i in node.value])


def assert_same_or_handed_over(text: str) -> str:
    fast = block(text)
    if fast == "handed over":
        return "handed over"
    assert as_data(fast) == as_data(libyaml(text)), text
    return "read"


KEYS = ["name", "ip", "code", "a b", "kết nối", "<<", "~", "yes", "1", "x:y", "k#1", "on"]
SCALARS = [
    "", "may-01", "198.18.1.2", "'01'", "00008", "'00004'", "Phường Trấn Biên", "Xã Ea H'leo",
    "VNPT", "30s", "1s", "3", "-1", "+1", "0o17", "0x1F", "1_000", "1:20", "1.5", "1e3", ".inf",
    ".NaN", "yes", "No", "on", "OFF", "y", "~", "null", "NULL", "true", "2026-01-29",
    "2026-02-06T07:00:00+07:00", "https://congtaidaibieu.quochoi.vn/", "a: b", "a:", "a #b",
    "a#b", "'it''s'", "'a", '"quoted"', '"esc\\"aped"', "\"'\"", "[445, 3389]", "[]", "{}",
    "{name: may-01, ip: 198.18.1.2}", "{count: 3, timeout: 1s}", "[a, [b]]", "{a: {b: 1}}",
    "[a,b]", "[a, b,]", "{a: 1,b: 2}", "{a}", "&anchor x", "*anchor", "!!str 5", "|", ">-",
    "? x", "@x", "`x`", "%x", "x  ", "  x", "fe80::1", "::1", "=", "<<", "- x", "-", "a - b",
    "a, b", "a]", "{a: 'b, c'}", "['x: y']", "# comment", "x # comment", "\t", "x\ty", "…",
]



def _plain_value(text: str) -> bool:
    try:
        yaml.safe_load(f"k: {text}\n")
    except yaml.YAMLError:
        return False
    return not text.startswith(("&", "*", "!", "|", ">"))


#: the scalars that are fine as a value on their own line
USUAL = [s for s in SCALARS if _plain_value(s)]


#: Strategies built once, not at every draw: hypothesis validates each new strategy object,
#: which cost more than the readers themselves (the same choices, drawn three times faster).
KEY = st.sampled_from(KEYS)
SCALAR = st.sampled_from(SCALARS)
LINE_INDENT = st.sampled_from([" " * n for n in (0, 0, 0, 1, 2, 2, 2, 3, 4, 4, 6)])
LINE_SHAPE = st.sampled_from(["key", "key", "key:", "dash", "dash key", "dash key:", "dash-",
                              "comment", "blank", "bare", "dash dash"])
LINE_TAIL = st.sampled_from(["", "", "", "  ", " # c", "#c"])
LINE_COUNT = st.integers(1, 14)
DOCUMENT_END = st.sampled_from(["\n", "", "\n\n", "\n# end\n"])


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(LINE_COUNT)):
        indent, shape = draw(LINE_INDENT), draw(LINE_SHAPE)
        key, value = draw(KEY), draw(SCALAR)
        line = {
            "key": f"{key}: {value}", "key:": f"{key}:", "dash": f"- {value}",
            "dash key": f"- {key}: {value}", "dash key:": f"- {key}:", "dash-": "-",
            "comment": "# note", "blank": "", "bare": value, "dash dash": f"- - {value}",
        }[shape]
        lines.append(indent + line + draw(LINE_TAIL))
    return "\n".join(lines) + draw(DOCUMENT_END)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_generated_lines_read_alike_or_handed_over(text: str) -> None:
    """Lines of every shape in any order: mostly not YAML, which must be handed over."""
    assert_same_or_handed_over(text)


TREE_KIND = st.sampled_from(["scalar", "map", "list"])
ROOT_KIND = st.sampled_from(["map", "list"])
ANY_SCALAR_ODDS = st.integers(0, 3)
USUAL_SCALAR = st.sampled_from(USUAL)
NOTE = st.sampled_from(["", "", "", "  ", " # note"])
STEP = st.sampled_from([1, 2, 2, 4])
COMMENT_ODDS = st.integers(0, 9)
COMMENT_LINE = st.sampled_from(["", "# comment", "  # deeper"])
TREE_END = st.sampled_from(["\n", ""])


@functools.cache
def trees(depth: int = 0) -> st.SearchStrategy[object]:
    """Nested mappings and lists with the scalars above (texts as they are written); the
    root (depth 0) is a mapping or a list. One strategy a depth, built once."""
    return _tree(depth)


@st.composite
def _tree(draw: st.DrawFn, depth: int) -> object:
    kind = "scalar" if depth == 3 else draw(ROOT_KIND if depth == 0 else TREE_KIND)
    if kind == "scalar":  # mostly what inventories hold, sometimes anything
        return draw(SCALAR if draw(ANY_SCALAR_ODDS) == 0 else USUAL_SCALAR)
    size = draw(st.integers(0 if depth else 1, 4))
    if kind == "map":
        return {"map": [(draw(KEY), draw(trees(depth + 1))) for _ in range(size)]}
    return {"list": [draw(trees(depth + 1)) for _ in range(size)]}


@st.composite
def block_documents(draw: st.DrawFn) -> str:
    """A tree written in block style, each choice YAML allows drawn anew: indentation
    width, lists at their key's column or further in, "- key:" entries, comments."""
    lines: list[str] = []

    def note() -> str:
        return draw(NOTE)

    def write(node: object, column: int, lead: str) -> None:
        """``lead``: what opens the line of the node's first entry ("- " or "")."""
        if isinstance(node, str):
            raise AssertionError("scalars are written by their parent")
        kind, entries = next(iter(node.items()))  # type: ignore[attr-defined]
        step = draw(STEP)
        for i, entry in enumerate(entries):
            prefix = lead if i == 0 else " " * len(lead)
            pad = " " * column
            if draw(COMMENT_ODDS) == 0:
                comment = draw(COMMENT_LINE)
                lines.append(pad + comment if comment.startswith(" ") else comment)
            if kind == "map":
                key, value = entry
                head = f"{pad}{prefix}{key}:"
                if isinstance(value, str) or not next(iter(value.values())):
                    text = value if isinstance(value, str) else (
                        "{}" if "map" in value else "[]")
                    lines.append(f"{head} {text}{note()}" if text else head + note())
                elif "list" in value and draw(st.booleans()):
                    lines.append(head + note())  # the list at the key's column
                    write(value, column + len(prefix), "- ")
                else:
                    lines.append(head + note())
                    write(value, column + len(prefix) + step, "")
            else:
                if isinstance(entry, str) or not next(iter(entry.values())):
                    text = entry if isinstance(entry, str) else (
                        "{}" if "map" in entry else "[]")
                    lines.append(f"{pad}{prefix}- {text}".rstrip() + note())
                elif "map" in entry and draw(st.booleans()):
                    write(entry, column + len(prefix), "- ")  # "- key: value"
                else:
                    lines.append(f"{pad}{prefix}-" + note())
                    write(entry, column + len(prefix) + step, "")
            lead = "" if kind == "map" or prefix == lead else lead

    write(draw(trees()), 0, "")
    return "\n".join(lines) + draw(TREE_END)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(block_documents())
def test_generated_block_documents_read_alike_or_handed_over(text: str) -> None:
    assert_same_or_handed_over(text)


def _mutations(text: str, rng: random.Random, count: int) -> list[str]:
    lines = text.split("\n")
    out = []
    pieces = [" ", "  ", ":", "- ", "#", "'", '"', "[", "]", "{", "}", ",", "*", "&", "!",
              "|", "\t", "\r", "x", "ế", ": ", " #", "?", "%", "---"]
    for _ in range(count):
        copy = list(lines)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(copy))
            what = rng.random()
            if what < 0.25:
                copy[i] = " " * rng.randint(0, 3) + copy[i]
            elif what < 0.4:
                copy[i] = copy[i][rng.randint(0, 2):]
            elif what < 0.8:
                at = rng.randint(0, len(copy[i]))
                copy[i] = copy[i][:at] + rng.choice(pieces) + copy[i][at:]
            elif what < 0.9:
                copy.insert(i, copy[rng.randrange(len(copy))])
            else:
                del copy[i]
        out.append("\n".join(copy))
    return out


#: The example of the contract (CONTRACT.md section 2, with working hours, SNMP, backup lines
#: and contacts), as operators will copy it.
CONTRACT_EXAMPLE = """\
version: 1
defaults:                 # optional; every key has a sane default
  interval: 30s           # probe cycle
  icmp: {count: 3, timeout: 1s}
  down_after: 3           # consecutive failed cycles before a host is down
  up_after: 2             # consecutive good cycles before it is up again
  tcp_ports: [445, 3389]  # liveness by TCP connect too (Windows drops ICMP); per commune/host as well
  retry_interval: 2s      # (default 2s) a failing host/gateway/target is re-probed this often until down_after
                          # failures confirm it (or up_after successes clear it), instead of waiting
                          # whole intervals (Nagios' retry_interval)
  working_hours:          # when commune computers are expected to answer (Vietnam time); outside
    days: [mon, tue, wed, thu, fri]   # them a silent computer is "off": no alert, not an outage.
    from: "07:00"         # Drills and `periods` count as working hours; gateways (the line) are
    to: "17:00"           # expected always; a host with `always_on: true` too
  holidays: []            # dates without working hours (Tết, 30/4, 1/5, 2/9, …)
                          # (no working_hours key: computers are expected always. Metrics stay
                          # facts: tslcd_host_up is 0 for a silent computer at any hour; the
                          # expectation shapes status, alerts and availability)
  snmp: null              # {version: 2c, community: "…"} or {version: 3, user: …, auth: SHA,
                          #  auth_key_file: …, priv: AES, priv_key_file: …}: read the line's
                          # router's ARP table (IP-MIB) from the central vantage after a sweep of
                          # the commune's subnet: the segment view without software on the PCs.
                          # Per commune too, with `address` (default: the gateway)
  upstream: []            # addresses every commune's path from the central vantage depends on
                          # (the monitor's own uplink, the core router): when all fail, ONE
                          # vantage_isolated alert replaces the per-commune alerts
targets:                  # the election system, checked from every vantage point
  - name: congtaidaibieu
    url: https://congtaidaibieu.quochoi.vn/
    addresses: [203.0.113.10]   # optional: what the name must resolve to on the network
    ca_file: null               # optional: the network's own CA bundle
    verify_tls: true            # false only when explicitly set
milestones:               # optional: deadlines the communes are reported against
  - id: ip_installed
    title: "Cài đặt IP cho máy tính cập nhật dữ liệu"
    due: 2026-01-29
    requires: [ip_config, link]   # checks that must all have passed at least once:
                                  # link (hosts up), ip_config, target (election system reached)
provinces:
  - code: "75"            # official province code
    name: "Đồng Nai"
    communes:
      - code: "26041"     # official commune (xã/phường) code
        name: "Phường Trấn Biên"
        isp: VNPT         # operator of the line: VNPT, Viettel, or another name
        circuit: "DNI-0001"       # operator's line id, optional
        subnet: 198.18.1.0/29     # block assigned to the commune
        gateway: 198.18.1.1       # the line's router (CPE)
        backup_gateway: null      # optional second line
        backup_isp: null          # its operator and circuit, when they differ from the primary's
        backup_circuit: null
        contacts:                 # optional: who to call; shown in alerts and on the page
          - {name: "Nguyễn Văn A", role: "cán bộ CNTT xã", phone: "0912 345 678"}
        hosts:
          - name: may-01
            ip: 198.18.1.2
            mac: "02:00:00:00:01:02"   # optional expected MAC
          - name: may-02
            ip: 198.18.1.3
maintenance:              # optional: no alerts inside these windows
  - scope: "75/26041"
    from: 2026-02-06T07:00:00+07:00
    to: 2026-02-06T12:00:00+07:00
"""  # noqa: E501 (copied verbatim from the contract)


@pytest.mark.parametrize("source", ["demo", "province", "contract", "readme"])
def test_mutated_inventories_read_alike_or_handed_over(source: str) -> None:
    text = {
        "demo": lambda: demo_path().read_text(encoding="utf-8"),
        "province": lambda: generate.province("75", hosts_per_commune=2)[:6000],
        "contract": lambda: CONTRACT_EXAMPLE,
        "readme": _readme_inventory,
    }[source]()
    rng = random.Random(f"tslcd-{source}")
    outcomes = {assert_same_or_handed_over(m) for m in _mutations(text, rng, 800)}
    # both readers were exercised (the README's example is all libyaml's: see below)
    assert outcomes == ({"handed over"} if source == "readme" else {"read", "handed over"})


def _readme_inventory() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(r"```yaml\n(# inventory.yaml\n.*?)```", readme, re.S).group(1)


@pytest.mark.parametrize("text", [
    pytest.param(lambda: demo_path().read_text(encoding="utf-8"), id="demo"),
    pytest.param(lambda: generate.national(hosts_per_commune=2), id="nationwide"),
    pytest.param(lambda: CONTRACT_EXAMPLE, id="contract"),
])
def test_the_inventories_we_write_and_document_take_the_fast_path(text) -> None:
    """Speed, not correctness: these must not fall back to libyaml. (The README's
    example has flow mappings over two lines and nested: libyaml's.)"""
    assert assert_same_or_handed_over(text()) == "read"


def test_an_empty_value_is_null_on_its_key_line_as_libyaml_0_2_5_says() -> None:
    text = "a:\nb:\n  c:\n- x\n"
    assert block(text) == "handed over"  # (a list at column 0 after a mapping: an error)
    text = "a:\n\n# x\nb: 1\nc:\n"
    tree = block(text)
    assert as_data(tree) == as_data(libyaml(text))
    assert [(v.tag.rsplit(":", 1)[1], v.line) for _, v in tree.value] == [
        ("null", 1), ("int", 4), ("null", 5)]


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789.-+_:eExXoObB~nNuUlLtTrRfFaAsSyYiI<=,T ", max_size=12))
def test_tags_resolve_as_pyyaml_resolves_them(value: str) -> None:
    assert nodes.resolve(value) == Resolver().resolve(ScalarNode, value, (True, False))


def test_what_libyaml_rejects_is_rejected_with_its_line() -> None:
    with pytest.raises(yaml.MarkedYAMLError) as caught:
        nodes.compose("a: 1\nb: [1, 2\nc: 3\n")
    assert caught.value.problem_mark is not None


def test_absurdly_deep_brackets_are_an_error_with_a_line_not_a_crash() -> None:
    """libyaml's composer recurses in C: 50,000 nested lists crashed the process."""
    from inventory.loader import validate_text

    for deep in ("[" * 50_000 + "]" * 50_000, "\n  " + "- " * 50_000 + "x"):
        inventory, problems = validate_text(f"version: 1\nprovinces: {deep}\n", "deep.yaml")
        assert inventory is None
        assert [str(p) for p in problems] == [
            f"deep.yaml:{2 + deep.startswith(chr(10))}: YAML syntax error: nested more than "
            f"{nodes.MAX_NESTING} levels deep"]


def test_libyaml_nodes_convert_once_per_node_aliases_included() -> None:
    text = "a: &x [1, {b: c}]\nd: *x\n"
    tree = nodes.compose(text)
    (_, first), (_, second) = tree.value
    assert first is second and as_data(first) == ("seq", nodes.SEQ, 1, [
        ("scalar", "tag:yaml.org,2002:int", "1", 1),
        ("map", nodes.MAP, 1, [(("scalar", nodes.STR, "b", 1), ("scalar", nodes.STR, "c", 1))]),
    ])


def test_contract_example_validates_with_its_new_fields() -> None:
    """The new keys of section 2 (working hours, SNMP, backup line, contacts) go through the
    fast reader and the validator as the contract writes them."""
    from inventory.loader import validate_text

    inventory, problems = validate_text(CONTRACT_EXAMPLE, "contract.yaml")
    assert [p for p in problems if p.severity == "error"] == []
    assert inventory is not None
    hours = inventory.defaults.working_hours
    assert hours is not None and hours.days == (0, 1, 2, 3, 4)
    assert (hours.start.hour, hours.end.hour) == (7, 17)
    assert inventory.defaults.retry_interval == 2.0
    (commune,) = inventory.communes()
    assert commune.contacts[0].name == "Nguyễn Văn A"
    assert commune.contacts[0].phone == "0912 345 678"


def test_new_keys_as_we_write_and_document_them_take_the_fast_path() -> None:
    """Working hours (an unquoted 07:00 is a YAML 1.1 number: both readers must agree),
    holidays, SNMP, upstream, backup line, contacts and always_on, as ``dump`` writes them
    and as people write them: read alike, without handing over to libyaml."""
    from inventory.loader import dump, loads
    from tests.support.inventory_texts import FULL

    # (its milestone, drill and period are one-line flow mappings with a list inside: libyaml's)
    new_keys = FULL.split("milestones:")[0] + "provinces:" + FULL.split("provinces:")[1]
    assert assert_same_or_handed_over(new_keys) == "read"
    written = dump(loads(new_keys))
    assert "always_on: true" in written and "working_hours:" in written
    assert assert_same_or_handed_over(written) == "read"
    rng = random.Random("tslcd-new-keys")
    outcomes = {assert_same_or_handed_over(m) for m in _mutations(written, rng, 300)}
    assert outcomes == {"read", "handed over"}
