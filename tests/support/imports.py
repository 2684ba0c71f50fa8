"""What a Python file imports, read from its source with ``ast`` (an import inside a function
counts as much as one at the top): the layer rule and the test-import rule both read it here."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT


def module_name(path: Path) -> str:
    """The dotted name of a file under the project's root (a package's ``__init__`` is it)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package: str | None = None) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, relative ones resolved against
    ``package`` (by default the file's own, from where it lies under the root).

    ``from a import b`` yields both ``a`` and ``a.b``: ``b`` may be a module.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    if package is None:
        package = module_name(path).rpartition(".")[0] if path.name != "__init__.py" \
            else module_name(path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found
