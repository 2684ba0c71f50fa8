"""The house's one rule of imports: the flow runs one way, from the ground up.

inventory -> probes -> monitor/common -> cycle -> alerts -> store -> decide -> present ->
service -> remote -> cli. A module may import its own room and the rooms below it, never one
above (docs/architecture.md tells why each room is where it is). Read from the source with
``ast``, so an import inside a function counts as much as one at the top.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.imports import imports_of, module_name

#: Rooms from the ground up; a module's room is the longest prefix of its dotted name here.
LAYERS = (
    "inventory",
    "probes",
    "monitor.common",
    "monitor.cycle",
    "monitor.alerts",
    "monitor.store",
    "monitor.decide",
    "monitor.present",
    "monitor.service",
    "monitor.remote",
    "monitor.cli",
)


#: Imports that still run back up, being taken down (each one's room is being moved);
#: an entry that no longer occurs fails test_known_upward_imports_still_exist, so this list
#: only ever shrinks.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def room(module: str) -> int | None:
    """The layer of a dotted module name, None for anything outside the project."""
    best = None
    for index, prefix in enumerate(LAYERS):
        inside = module == prefix or module.startswith(prefix + ".")
        if inside and (best is None or len(prefix) > len(LAYERS[best])):
            best = index
    return best


def source_files() -> list[Path]:
    tops = ("inventory", "probes", "monitor")
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py"))


def test_every_module_has_a_room() -> None:
    homeless = [module_name(p) for p in source_files() if room(module_name(p)) is None
                and module_name(p) not in ("monitor",)]
    assert homeless == []


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_runs_back_up(path: Path) -> None:
    own = room(module_name(path))
    if own is None:
        return
    upward = []
    for line, target in imports_of(path):
        layer = room(target)
        known = (str(path.relative_to(ROOT)), target) in KNOWN_UPWARD or \
            (str(path.relative_to(ROOT)), target.rpartition(".")[0]) in KNOWN_UPWARD
        if layer is not None and layer > own and not known:
            upward.append(f"{path.relative_to(ROOT)}:{line}: imports {target} "
                          f"({LAYERS[layer]} is above {LAYERS[own]})")
    assert upward == []


def test_known_upward_imports_still_exist() -> None:
    """The allowance list holds only what is still there: fixing one means deleting it."""
    for path, target in KNOWN_UPWARD:
        assert any(found == target for _, found in imports_of(ROOT / path)), (path, target)


def test_the_rule_itself_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker is not vacuous: an upward import is found."""
    assert room("monitor.cli.main") > room("monitor.decide.engine")  # type: ignore[operator]
    assert room("probes.icmp") < room("monitor.common.log")  # type: ignore[operator]
    assert room("os") is None
