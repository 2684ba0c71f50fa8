"""Stopping the processes a test or a benchmark started: by their own pid, never by name."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable


def stop(processes: Iterable[subprocess.Popen[bytes] | None], timeout: float = 10.0) -> None:
    """SIGTERM every one still running, then wait for each; SIGKILL one that outlives
    ``timeout`` seconds. Ones already ended are only reaped; ``None`` is skipped."""
    running = [p for p in processes if p is not None and p.poll() is None]
    for process in running:
        process.terminate()
    for process in running:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
