"""What every lane of tests shares: real components, namespace labs, web helpers.

Tests import helpers from here only, never from another test module or from bench/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

#: The project's root (where pyproject.toml is).
ROOT = Path(__file__).resolve().parents[2]


def require_real(available: bool, reason: str) -> None:
    """Skip when a real component is missing, but fail under CI=true (it must be there)."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


def installed(*names: str) -> str:
    """The path of the first of these commands on PATH; the test is skipped without any (and
    failed under CI=true, where everything must be there)."""
    found = next((path for name in names if (path := shutil.which(name))), None)
    require_real(found is not None, f"{' or '.join(names)} is not installed")
    assert found is not None
    return found
