"""The monitor's small YAML files (configuration, agents) read as the inventory is read.

An operator who starts the monitor with a broken file wants every mistake at once, each as
``FILE:LINE: message``, and never a traceback: so the file is composed into the inventory's
line-numbered nodes (:mod:`inventory.nodes`, which also refuses absurd nesting before
libyaml could crash on it) and checked with the inventory's own checks (types, unknown keys
with a "did you mean", duplicate keys).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from inventory import loader, nodes
from inventory.loader import Problem
from inventory.nodes import Node

#: Scalar tags whose text is taken as written where a path is expected: YAML reads
#: ``state: 2026-01-02`` as a date and ``state: 2026-13-45`` as a (broken) one.
PATH_TAGS = tuple(nodes.TAG + t for t in ("str", "int", "float", "timestamp"))


class FileProblems(Exception):
    """A file with errors: ``problems`` lists them all, the message has one per line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def read_tree(path: str | Path) -> tuple[Node | None, list[Problem]]:
    """The file's root node (None for an empty file), or the problem that stops reading."""
    source = str(path)
    text, problems = loader.read_text(path)
    if text is None:
        return None, problems
    try:
        return nodes.compose(text), []
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return None, [Problem(source, line, f"YAML syntax error: {exc.problem or exc.context}")]
    except (yaml.YAMLError, RecursionError) as exc:
        return None, [Problem(source, 1, f"YAML error: {exc}")]


class Checker(loader._Checker):
    """The inventory's checks (``fields``, ``text``, ``integer``, ``boolean`` …), each
    problem kept at its line, plus the few kinds of value the monitor's files have."""

    def path(self, node: Node, what: str) -> str | None:
        """A file or folder name, as written (also what YAML takes for a number or date)."""
        return self.text(node, what, PATH_TAGS)

    def section(self, fields: loader._Fields | None, key: str, known: tuple[str, ...],
                what: str | None = None) -> loader._Fields | None:
        """The nested mapping under ``key`` (None when absent, null or not a mapping)."""
        node = fields.given(key) if fields is not None else None
        return None if node is None else self.fields(node, what or key, known)

    def errors(self) -> list[Problem]:
        """Every problem, in file order, when at least one is an error; else none."""
        problems = sorted(self.problems, key=lambda p: p.line)
        return problems if loader.has_errors(problems) else []
