"""/metrics is stored once, gzipped, and rendered family by family into it."""

from __future__ import annotations

import gzip
from pathlib import Path

from inventory.loader import load
from monitor.decide.engine import StateEngine
from monitor.present.metrics import Exposition
from tests.support.agentlab import write_inventory


def test_the_text_and_its_gzip_are_one_render(tmp_path: Path) -> None:
    inventory = load(write_inventory(tmp_path / "inv.yaml", communes=3, hosts=3))
    engine = StateEngine(inventory, None)
    exposition = Exposition(process_metrics=False)
    exposition.update(inventory, engine.state)
    packed = exposition.body_gzip()
    text = exposition.body()
    assert gzip.decompress(packed) == text
    assert packed[:4] == b"\x1f\x8b\x08\x00"  # one gzip member, no file name
    assert text.endswith(b"tslcd_exposition_skipped_rows 0\n")
    assert text.count(b"# TYPE tslcd_host_up ") == 1
