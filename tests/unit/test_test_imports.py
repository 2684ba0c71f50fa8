"""Tests share helpers through tests/support only: no test module imports another test
module, and none imports bench/ (bench/ may import tests/support, never the other way).

A test module importing another one runs that module's fixtures and module-level setup in
the wrong place and ties two files' edits together; bench/ is not a library. Read with
``ast`` like the layer rule, plus code handed to a subprocess as a string (``python -c``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.imports import imports_of

SUPPORT = "tests.support"
#: An import written inside a string (a script run by ``python -c``).
IMPORT_IN_TEXT = re.compile(r"^\s*(?:from\s+(\S+)\s+import\s+(\S+)|import\s+(\S+))", re.M)


def inside(target: str, package: str) -> bool:
    return target == package or target.startswith(package + ".")


def forbidden(target: str) -> bool:
    """Anything under tests/ but the support package (a lane, a test module, a conftest),
    or bench/."""
    in_tests = target.startswith("tests.") and not inside(target, SUPPORT)
    return in_tests or inside(target, "bench")


def imports_in_strings(path: Path) -> list[tuple[int, str]]:
    """(line, module) for the imports in the file's string constants."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for match in IMPORT_IN_TEXT.finditer(node.value):
                base, name, plain = match.groups()
                found += [(node.lineno, plain)] if plain else \
                    [(node.lineno, base), (node.lineno, f"{base}.{name}")]
    return found


def offences(path: Path, package: str | None = None, strings: bool = True) -> list[str]:
    """Every forbidden import of one file, as ``line: imports X``."""
    found = imports_of(path, package) + (imports_in_strings(path) if strings else [])
    return [f"{line}: imports {target}" for line, target in found if forbidden(target)]


def python_files_under_tests() -> list[Path]:
    return sorted(p for p in (ROOT / "tests").rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", python_files_under_tests(),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_the_support_package(path: Path) -> None:
    # this file's own strings are the rule's examples below
    assert offences(path, strings=path != Path(__file__).resolve()) == []


def test_the_rule_sees_each_kind_of_forbidden_import(tmp_path: Path) -> None:
    """The checker is not vacuous: each way of importing a test module or bench is found."""
    sample = tmp_path / "test_sample.py"  # as if it lay in tests/unit
    sample.write_text(
        "from tests.integration.test_sinks import _receive\n"
        "import bench.bench_icmp\n"
        "from . import test_layers\n"
        "from tests.support import ROOT\n"
        "SCRIPT = '''\nfrom tests.lab import test_agent as t\n'''\n",
        encoding="utf-8",
    )
    assert offences(sample, package="tests.unit") == [
        "1: imports tests.integration.test_sinks",
        "1: imports tests.integration.test_sinks._receive",
        "2: imports bench.bench_icmp",
        "3: imports tests.unit",
        "3: imports tests.unit.test_layers",
        "5: imports tests.lab",
        "5: imports tests.lab.test_agent",
    ]
