"""The inventory file in force: reloaded on SIGHUP or when it changes, by run and collector."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import structlog

from inventory.loader import InventoryError, load
from inventory.model import Inventory

log = structlog.get_logger("watch")


@dataclass
class InventoryWatch:
    """Reloads the inventory on SIGHUP or when its file changes; a broken file is reported
    and the inventory in force stays."""

    path: Path
    mtime: float = 0.0
    requested: bool = False
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mtime = self._stat()

    def _stat(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return self.mtime

    def poll(self) -> Inventory | None:
        mtime = self._stat()
        if not self.requested and mtime == self.mtime:
            return None
        self.requested, self.mtime = False, mtime
        try:
            inventory = load(self.path)
        except InventoryError as exc:
            self.errors = [str(p) for p in exc.problems]
            log.error("inventory_reload_failed", path=str(self.path), problems=self.errors)
            return None
        self.errors = []
        log.info("inventory_reloaded", path=str(self.path), communes=sum(1 for _ in
                 inventory.communes()))
        return inventory
