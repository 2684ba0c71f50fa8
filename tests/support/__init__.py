"""What every lane of tests shares: real components, namespace labs, web helpers.

Tests import helpers from here only, never from another test module or from bench/.
"""

from __future__ import annotations

import os
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
