"""Starting the monitor inside a province lab and watching it (test-only).

:func:`start_monitor` runs a webhook receiver and :mod:`tests.support.lab.lab_monitor` in the lab's
core namespace (the monitor's HTTP-free twin of ``run``, with a vantage in every commune
router) and returns a :class:`LabMonitor` that reads alerts, cycles and metrics from files.
Both processes belong to the lab, which kills them (by pid) when it closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tests.support.lab import observe
from tests.support.lab.province import ProvinceLab

ROOT = Path(__file__).resolve().parents[3]
WEBHOOK_PORT = 19000  # on the core namespace's own loopback


@dataclass
class LabMonitor:
    province: ProvinceLab
    process: subprocess.Popen[bytes]
    webhook: Path
    log: Path
    metrics_file: Path
    down_after: int

    def events(self) -> list[dict]:
        return observe.events(self.webhook)

    def cycles(self) -> int:
        return observe.cycles(self.log)

    def wait_cycles(self, count: int) -> int:
        self.assert_alive()
        return observe.wait_cycles(self.log, count)

    def metrics(self) -> observe.Samples:
        return observe.metrics(self.metrics_file)

    def metric(self, name: str, *keys: str) -> dict[tuple[str, ...], float]:
        return observe.by_label(self.metrics(), name, *keys)

    def assert_alive(self) -> None:
        assert self.process.poll() is None, observe.lines(self.log)[-20:]

    def wait_all_up(self) -> None:
        """Every commune judged and OK (status 0): the quiet baseline a fault departs from."""
        expected = {c.code for c in self.province.communes}

        def all_ok() -> bool:
            status = self.metric("tslcd_commune_status", "commune")
            return {k[0] for k, v in status.items() if v == 0} >= expected

        observe.wait_until(all_ok, "every commune up")


def start_monitor(province: ProvinceLab, workdir: Path, files: list[BinaryIO],
                  **defaults: object) -> LabMonitor:
    """Write the lab's inventory (``defaults`` override its defaults), start the receiver
    and the monitor, and wait for the first cycles. ``files`` collects the open log files
    (the caller closes them)."""
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = province.write_inventory(workdir / "inventory.yaml", **defaults)
    vantages = workdir / "vantages.json"
    vantages.write_text(json.dumps(province.vantages()), encoding="utf-8")
    config = workdir / "config.yaml"
    config.write_text(
        f"alerts:\n  webhooks:\n    - url: http://127.0.0.1:{WEBHOOK_PORT}/hook\n",
        encoding="utf-8")
    webhook, log = workdir / "webhook.jsonl", workdir / "monitor.common.log"
    core = province.core
    receiver_log = open(workdir / "webhook.log", "wb")  # noqa: SIM115 - closed by the caller
    files.append(receiver_log)
    core.popen(sys.executable, "-m", "tests.support.lab.webhook_file", "--port", str(WEBHOOK_PORT),
               "--out", str(webhook), cwd=str(ROOT), stderr=receiver_log)
    log_file = open(log, "wb")  # noqa: SIM115 - closed by the caller
    files.append(log_file)
    process = core.popen(
        sys.executable, "-m", "tests.support.lab.lab_monitor", "--inventory", str(inventory),
        "--config", str(config), "--state", str(workdir / "state.db"),
        "--vantages", str(vantages), "--metrics", str(workdir / "metrics.prom"),
        cwd=str(ROOT), stderr=log_file)
    down_after = int(defaults.get("down_after", province.inventory.defaults.down_after))
    run = LabMonitor(province, process, webhook, log, workdir / "metrics.prom", down_after)
    run.wait_cycles(2)
    return run
