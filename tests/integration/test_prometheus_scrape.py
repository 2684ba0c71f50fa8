"""A real Prometheus scrapes the exposition and returns what we rendered, names and all."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.present.metrics import Exposition
from tests.support.populate import NOW, ODD_COMMUNE, ODD_HOST, odd_inventory, populated_state
from tests.support.prometheus import prometheus_binary, query_until, run_prometheus, serve_metrics

pytestmark = [pytest.mark.timeout(120)]
def by_host(result: list[dict]) -> dict[tuple[str, str, str], float]:
    return {
        (r["metric"]["province"], r["metric"]["commune"], r["metric"]["host"]): float(r["value"][1])
        for r in result
    }


async def test_prometheus_scrapes_host_up_and_vietnamese_labels(tmp_path: Path) -> None:
    binary = prometheus_binary()
    inventory = odd_inventory()
    state = populated_state(inventory, NOW)
    state.communes["79/26737"].hosts["may-01"].up = False
    expected = {
        (c.province, c.commune, h.name): float(h.up)
        for c in state.communes.values()
        for h in c.hosts.values()
    }
    exposition = Exposition()
    exposition.update(inventory, state)
    async with serve_metrics(exposition) as (metrics_port, served):
        with run_prometheus(binary, metrics_port, tmp_path) as port:
            result = await query_until(
                port, "tslcd_host_up", lambda r: len(r) == len(expected)
            )
            assert by_host(result) == expected
            info = await query_until(port, 'tslcd_commune_info{commune="26734"}', bool)
            assert info[0]["metric"]["commune_name"] == ODD_COMMUNE

            state.communes["79/26734"].hosts[ODD_HOST].up = False
            exposition.update(inventory, state)
            key = ("79", "26734", ODD_HOST)
            result = await query_until(
                port, "tslcd_host_up", lambda r: by_host(r).get(key) == 0.0
            )
            assert by_host(result) == expected | {key: 0.0}
    assert "gzip" in served  # Prometheus took the pre-compressed body
