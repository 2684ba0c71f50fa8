"""A file written for a loader that reports every problem at once (the configuration, the
agents file), and the problems it reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(load: Callable[[Path], object], error: type[Exception], path: Path) -> list[str]:
    """Each problem ``load`` raises ``error`` with for ``path``, as its text ("FILE:LINE:
    message"); the error's own message is the same texts, one a line."""
    with pytest.raises(error) as caught:
        load(path)
    found = [str(p) for p in caught.value.problems]  # type: ignore[attr-defined]
    assert str(caught.value) == "\n".join(found)
    return found
