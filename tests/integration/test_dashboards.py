"""Rules, Alertmanager example and Grafana dashboards: valid, tested, and about real metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web

from monitor.present.metrics import CycleStats, Exposition
from tests.support import installed as tool
from tests.support.populate import NOW, ODD_COMMUNE, ODD_PROVINCE, odd_inventory, populated_state
from tests.support.prometheus import prometheus_binary, query_until, run_prometheus, serve_metrics
from tests.support.servers import daemon, free_tcp_port, serving

ROOT = Path(__file__).resolve().parents[2] / "dashboards"
RULES = ROOT / "prometheus" / "rules.yml"
RULES_TEST = ROOT / "prometheus" / "rules_test.yml"
ALERTMANAGER = ROOT / "alertmanager" / "alertmanager.yml"
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
PROVISIONING = ROOT / "grafana" / "provisioning"
#: Values the Grafana variables take when a query is checked outside Grafana.
VARIABLES = {"$province": "79", "$commune": "26734", "$isp": "Viettel"}
NAMES = {"79": ODD_PROVINCE, "26734": ODD_COMMUNE}  # what the variables must show for them
QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def run_tool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def rules() -> list[dict]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def alert_names() -> set[str]:
    return {r["alert"] for r in rules() if "alert" in r}


def walk_panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def dashboard_queries(board: dict) -> list[str]:
    """Every PromQL query of a dashboard: panel targets and the variables' inner queries."""
    queries = [t["expr"] for p in walk_panels(board["panels"]) for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        query = variable["query"]["query"]
        inner = re.fullmatch(r"(?:query_result|label_values)\((.*)\)", query)
        assert inner, query
        queries.append(inner.group(1).rsplit(",", 1)[0] if "label_values" in query else inner[1])
    return queries


def substitute(query: str) -> str:
    for name, value in VARIABLES.items():
        query = query.replace(name, value)
    return query


def metric_names(expr: str) -> set[str]:
    """The tslcd metric and recording-rule names an expression refers to."""
    return {t for t in IDENTIFIER.findall(QUOTED.sub('""', expr)) if "tslcd_" in t}


def exposed_names() -> set[str]:
    """Family and sample names of a rendered, fully populated exposition."""
    inventory = odd_inventory()
    exposition = Exposition(process_metrics=False)
    stats = CycleStats(duration=5.0, probes={("icmp", "ok"): 1}, agents={"79/26734": NOW})
    exposition.update(inventory, populated_state(inventory, NOW), stats)
    names = set()
    for line in exposition.body().decode().splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_promtool_checks_rules() -> None:
    done = run_tool(tool("promtool"), "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    done = run_tool(tool("promtool"), "test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert fires == alert_names() and quiet == alert_names()


def test_unit_tested_alerts_carry_routing_labels() -> None:
    """Severity always; operator and province on every alert about a commune or its hosts."""
    tests = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))["tests"]
    alerts = [
        alert["exp_labels"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        for alert in case.get("exp_alerts", [])
    ]
    assert alerts and all(a["severity"] in {"critical", "warning"} for a in alerts)
    communes = [a for a in alerts if "commune" in a]
    assert communes and all({"isp", "province"} <= a.keys() for a in communes)


def test_amtool_accepts_alertmanager_example() -> None:
    done = run_tool(tool("amtool"), "check-config", str(ALERTMANAGER))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (("isp=VNPT", "province=75", "alertname=host_down", "severity=warning"), "vnpt-dong-nai"),
        (("isp=VNPT", "province=01", "alertname=host_down", "severity=warning"), "vnpt"),
        (("isp=Viettel", "province=79", "alertname=commune_down", "severity=critical"),
         "viettel-ho-chi-minh,trung-tam"),
        (("alertname=agent_silent", "province=75", "severity=warning"), "trung-tam"),
        (("alertname=deadline", "isp=VNPT", "province=75", "severity=warning"), "trung-tam"),
    ],
)
def test_alertmanager_routes_by_operator_and_province(
    labels: tuple[str, ...], receivers: str
) -> None:
    done = run_tool(
        tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == receivers


def test_alertmanager_example_sends_only_to_loopback() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    urls = [w["url"] for r in config["receivers"] for w in r.get("webhook_configs", [])]
    assert urls and all(u.startswith("http://127.0.0.1:") for u in urls)


def test_dashboards_are_valid_json_with_unique_ids() -> None:
    assert {p.name for p in DASHBOARDS} == {"overview.json", "commune.json", "operator.json"}
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        ids = [p["id"] for p in walk_panels(board["panels"])]
        assert len(ids) == len(set(ids)), path.name
        assert board["uid"] not in uids
        uids.add(board["uid"])


def test_dashboards_have_their_variables() -> None:
    wanted = {
        "overview.json": {"province"},
        "commune.json": {"province", "commune"},
        "operator.json": {"isp", "province"},
    }
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        names = {v["name"] for v in board["templating"]["list"]}
        assert wanted[path.name] <= names, path.name


def test_dashboards_use_the_provisioned_datasource() -> None:
    sources = yaml.safe_load((PROVISIONING / "datasources.yml").read_text(encoding="utf-8"))
    uid = sources["datasources"][0]["uid"]
    providers = yaml.safe_load((PROVISIONING / "dashboards.yml").read_text(encoding="utf-8"))
    assert providers["providers"][0]["type"] == "file"
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in walk_panels(board["panels"]):
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == uid, (path.name, panel["title"])


def test_every_referenced_metric_exists() -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    known = exposed_names() | recorded
    referenced = {name: "rules.yml" for r in rules() for name in metric_names(r["expr"])}
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        for query in dashboard_queries(board):
            referenced.update(dict.fromkeys(metric_names(query), path.name))
    missing = {name: where for name, where in referenced.items() if name not in known}
    assert not missing
    assert "tslcd_host_up" in referenced and "province:tslcd_communes_by_status:count" in referenced


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses every dashboard query (as a recording rule, the only offline parser)."""
    queries = [substitute(q) for path in DASHBOARDS for q in dashboard_queries(json.loads(
        path.read_text(encoding="utf-8")))]
    group = {"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)
    ]}
    check = tmp_path / "queries.yml"
    check.write_text(yaml.safe_dump({"groups": [group]}, allow_unicode=True), encoding="utf-8")
    done = run_tool(tool("promtool"), "check", "rules", str(check))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.timeout(180)
async def test_rules_and_dashboards_on_a_real_scrape(tmp_path: Path) -> None:
    """A real Prometheus with our rules scrapes a rendered state: alerts go pending for the
    down commune, and every dashboard query evaluates without error (joins included)."""
    binary = prometheus_binary()
    fast_rules = tmp_path / "rules.yml"
    fast_rules.write_text(
        RULES.read_text(encoding="utf-8").replace("interval: 30s", "interval: 1s"),
        encoding="utf-8",
    )
    inventory = odd_inventory()
    state = populated_state(inventory, NOW)
    down = state.communes["79/26734"]
    down.status = down.status.DOWN
    exposition = Exposition()
    stats = CycleStats(duration=4.0, probes={("icmp", "ok"): 9}, agents={"79/26734": NOW})
    exposition.update(inventory, state, stats)
    async with serve_metrics(exposition) as (metrics_port, _):
        with run_prometheus(binary, metrics_port, tmp_path, (fast_rules,)) as port:
            pending = await query_until(port, 'ALERTS{alertname="commune_down"}', bool)
            assert [(a["metric"]["commune"], a["metric"]["isp"]) for a in pending] == [
                ("26734", "Viettel")
            ]
            # Rates need two scrapes, and the recording rules one evaluation after them.
            await query_until(port, "province:tslcd_icmp_rtt_seconds:p95_5m", bool)
            await check_dashboard_queries(port)


def grafana_variable_values(result: list[dict], regex: str) -> dict[str, str]:
    """value -> text of a query_result variable, formatted and matched the way Grafana does."""
    pattern = re.compile(regex.strip("/").replace("(?<", "(?P<"))
    values = {}
    for series in result:
        text = "{" + ",".join(f'{k}="{v}"' for k, v in series["metric"].items()) + "}"
        if found := pattern.search(text):
            values[found["value"]] = found["text"]
    return values


async def check_dashboard_queries(port: int) -> None:
    url = f"http://127.0.0.1:{port}/api/v1/query"
    empty = []
    async with aiohttp.ClientSession() as session:
        for path in DASHBOARDS:
            board = json.loads(path.read_text(encoding="utf-8"))
            for query in dashboard_queries(board):
                async with session.get(url, params={"query": substitute(query)}) as response:
                    answer = await response.json()
                assert answer["status"] == "success", (path.name, query, answer)
                if not answer["data"]["result"]:
                    empty.append(query)
                for variable in board["templating"]["list"]:
                    if variable.get("regex") and query in variable["query"]["query"]:
                        values = grafana_variable_values(
                            answer["data"]["result"], variable["regex"]
                        )
                        wanted = VARIABLES["$" + variable["name"]]
                        assert values.get(wanted) == NAMES[wanted], (query, values)
    # Only queries about what this state has none of may be empty.
    allowed = ("topk(10, tslcd_host_packet_loss_ratio", "tslcd_commune_on_backup == 1")
    unexpected = [q for q in empty if not any(a in q for a in allowed)]
    assert unexpected == [], "\n".join(unexpected)


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[tuple[int, dict[str, list[dict]]]]:
    """A loopback webhook endpoint recording every Alertmanager notification by path."""
    received: dict[str, list[dict]] = {}

    async def record(request: web.Request) -> web.Response:
        received.setdefault(request.path, []).append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/{tail:.*}", record)
    async with serving(app) as port:
        yield port, received


@contextlib.contextmanager
def run_alertmanager(binary: str, hook_port: int, workdir: Path) -> Iterator[int]:
    """The example config with its receivers on ``hook_port`` and no waiting; stopped after."""
    config = workdir / "alertmanager.yml"
    text = ALERTMANAGER.read_text(encoding="utf-8")
    text = text.replace("http://127.0.0.1:9101/", f"http://127.0.0.1:{hook_port}/")
    config.write_text(text.replace("group_wait: 30s", "group_wait: 1s"), encoding="utf-8")
    port = free_tcp_port()
    with daemon(
        [binary, f"--config.file={config}", f"--storage.path={workdir / 'am'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        workdir / "alertmanager.log",
    ):
        yield port


def am_alert(name: str, severity: str, isp: str, province: str, commune: str, **extra: str) -> dict:
    labels = {"alertname": name, "severity": severity, "isp": isp, "province": province,
              "commune": commune, **extra}
    return {"labels": labels, "annotations": {"summary": name}}


async def poll(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.timeout(120)
async def test_alertmanager_example_routes_and_inhibits(tmp_path: Path) -> None:
    """A real Alertmanager with the example config: operators' receivers get their lines'
    alerts, and a down commune holds back its hosts' host_down."""
    binary = tool("prometheus-alertmanager")
    alerts = [
        am_alert("commune_down", "critical", "VNPT", "75", "26041"),
        am_alert("host_down", "warning", "VNPT", "75", "26041", host="may-01"),
        am_alert("host_down", "warning", "VNPT", "75", "26044", host="may-02"),
        am_alert("unknown_device", "critical", "Viettel", "79", "26734"),
    ]
    async with webhook_receiver() as (hook_port, received):
        with run_alertmanager(binary, hook_port, tmp_path) as port:
            api = f"http://127.0.0.1:{port}/api/v2"
            async with aiohttp.ClientSession() as session:

                async def posted() -> bool:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.post(f"{api}/alerts", json=alerts) as response:
                            return response.status == 200
                    return False

                async def inhibited() -> bool:
                    async with session.get(f"{api}/alerts") as response:
                        states = {
                            (a["labels"]["alertname"], a["labels"]["commune"]): a["status"]
                            for a in await response.json()
                        }
                    held = states.get(("host_down", "26041"), {})
                    return bool(held.get("inhibitedBy")) and len(states) == len(alerts)

                async def delivered() -> bool:
                    return {"/alerts/vnpt/75", "/alerts/viettel/79", "/alerts/trung-tam"} <= set(
                        received
                    ) and len(received["/alerts/vnpt/75"]) >= 2

                await poll(posted, "Alertmanager to accept alerts")
                await poll(inhibited, "host_down of the down commune to be inhibited")
                await poll(delivered, "notifications to the operators' receivers")

    def names(path: str) -> set[tuple[str, str]]:
        return {
            (a["labels"]["alertname"], a["labels"]["commune"])
            for notification in received.get(path, [])
            for a in notification["alerts"]
        }

    assert names("/alerts/vnpt/75") == {("commune_down", "26041"), ("host_down", "26044")}
    assert names("/alerts/viettel/79") == {("unknown_device", "26734")}
    assert ("unknown_device", "26734") in names("/alerts/trung-tam")  # critical: centre too
    assert ("host_down", "26041") not in set().union(*(names(p) for p in received))
