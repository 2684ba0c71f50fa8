"""Shared pytest fixtures, and each test marked by its lane (the folder it lies in).

Each helper's fixtures live in their own delimited section.
"""

from __future__ import annotations

# --- segment-and-target helper: free ports and namespace labs (begin) ---------------------
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.support import durations, require_real
from tests.support.lab import netns


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def netns_ready() -> Iterator[None]:
    """Namespaces usable (root, iproute2); sweeps this session's leftovers at the end."""
    require_real(*netns.netns_available())
    yield
    netns.sweep()


@pytest.fixture
def lab(netns_ready: None) -> Iterator[netns.Lab]:
    """A fresh namespace lab, removed after the test whatever its outcome."""
    with netns.Lab() as built:
        yield built


# --- segment-and-target helper (end) ------------------------------------------------------


# --- state-and-alerts helper: real broker and webhook receiver (begin) --------------------
@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """An anonymous mosquitto on a free loopback port (``.url``, ``.port``), stopped after.

    For passwords or ACLs use ``tests.support.servers.Mosquitto(tmp_path, users=..., acl=...)``.
    """
    from tests.support.servers import Mosquitto

    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


# --- state-and-alerts helper (end) --------------------------------------------------------


# --- lanes: tests/unit, tests/integration, tests/lab are also markers --------------------
LANES = ("unit", "integration", "lab")
TESTS = Path(__file__).parent


def lane_of(path: Path) -> str | None:
    """The lane folder a test file lies in (``tests/<lane>/...``), None outside them."""
    parts = path.relative_to(TESTS).parts if path.is_relative_to(TESTS) else ()
    return parts[0] if len(parts) > 1 and parts[0] in LANES else None


#: Fixture scopes whose value the tests of one worker share (session: each worker has its own).
SHARED_SCOPES = {"module", "class", "package"}


def shared_fixtures(item: pytest.Item) -> list[str]:
    """The module-, class- or package-scoped fixtures a test asks for, directly or through
    other fixtures (autouse ones aside: they are checks, not something to share)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    seen: set[str] = set()
    todo = list(info.argnames)
    while todo:
        name = todo.pop()
        defs = info.name2fixturedefs.get(name)
        if name in seen or not defs:
            continue
        seen.add(name)
        todo += defs[-1].argnames
    return sorted(n for n in seen if info.name2fixturedefs[n][-1].scope in SHARED_SCOPES)


def worker_group(item: pytest.Item, lane: str | None) -> str | None:
    """Which tests must run on one worker (``--dist loadgroup``): a file's tests, as they may
    share fixed loopback ports and module state, except in the lab lane, where each test
    builds its own namespaces: there only the tests asking for a module fixture (one lab built
    for the file) stay together, and the others spread over the workers."""
    where = item.nodeid.split("::")[0]
    return where if lane != "lab" or shared_fixtures(item) else None


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the groups off the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``pytest -m unit`` (or integration, lab) runs one lane, wherever the files are named;
    each test gets its worker group; the groups expected to take longest run first."""
    groups: dict[str, list[pytest.Item]] = {}
    for item in items:
        lane = lane_of(item.path)
        if lane is not None:
            item.add_marker(lane)
        group = worker_group(item, lane)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        groups.setdefault(group or item.nodeid, []).append(item)
    items[:] = durations.longest_first(list(groups.values()),
                                       expected_seconds(durations.read(DURATIONS)))


# --- order: the longest work first (tests/support/durations.py) --------------------------
DURATIONS = TESTS / "durations.json"
#: What a test missing from DURATIONS counts, by lane: a new lab test may well be long
#: (namespaces, processes, cycles), so it starts early rather than last; the unlisted
#: integration tests took 0.4 s on average (2026-12-03); a unit test is short.
UNLISTED = {"lab": 5.0, "integration": 0.5}
UNLISTED_UNIT = 0.05


def expected_seconds(recorded: Mapping[str, float]) -> Callable[[pytest.Item], float]:
    """A test's recorded seconds, or its lane's guess."""
    def seconds(item: pytest.Item) -> float:
        return recorded.get(item.nodeid) or UNLISTED.get(lane_of(item.path) or "",
                                                         UNLISTED_UNIT)
    return seconds


def pytest_configure(config: pytest.Config) -> None:
    """xdist (``--dist loadgroup``) takes the groups in the order of the collection, which
    ``longest_first`` made, not by how many tests each holds (its default); with
    ``--store-durations`` the run's times are recorded (by the controller, not a worker)."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    if config.getoption("store_durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(durations.Recorder(DURATIONS))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store-durations", action="store_true",
                     help=f"record each test's seconds in {DURATIONS.relative_to(TESTS.parent)}"
                          " (the tests run this time; the others keep theirs)")


# --- logging isolation -------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """A test that runs the CLI in-process configures logging; the next test starts clean."""
    import structlog

    yield
    structlog.reset_defaults()
