"""The one backoff: alert sinks' retries and every MQTT reconnect loop wait by it."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Bounded exponential backoff with jitter (half fixed, half random), so that thousands of
    agents cut off by one broker restart do not all come back in the same second.

    ``attempts`` bounds retries of one delivery (reconnect loops ignore it: they try forever).
    """

    attempts: int = 6
    base: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1 for the first)."""
        exponent = min(max(failures, 1) - 1, 62)  # 2**62 * base is past any cap
        ceiling = min(self.cap, self.base * 2 ** exponent)
        return ceiling / 2 + random.uniform(0, ceiling / 2)
