"""The configuration file: every problem as FILE:LINE in one run, exit 2 from the commands,
never a traceback; secrets in URLs never repeated in a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.common import config
from monitor.common.config import Config, ConfigError, WebhookConfig
from tests.support import problem_files

GOOD = """\
listen: "[::1]:9751"
state: /var/lib/tslcd/state.db
inventory: 2026-01-02   # YAML's date: a file name here
alerts:
  webhooks:
    - url: https://alerts.example.vn/hook?token=abc
  mqtt: {url: "mqtt://127.0.0.1:1883"}
  escalation:
    webhooks: [{url: "http://127.0.0.1:9/esc"}]
    mqtt: {url: "mqtts://broker.example.vn", topic: tslcd/v1/esc}
reports: {schedule: "0 7 * * 1", dir: out, webhook: "https://so-noi-vu.example.vn/in"}
web: {tokens_file: tokens.yaml, tls_cert: c.pem, tls_key: k.pem}
"""

BAD = """\
listen: "localhost:99999"
state: 2026-13-45
inventory: [a]
lisen: x
alerts:
  webhooks:
    - url: ftp://x?token=SECRET-IN-QUERY
    - {uri: http://a}
  mqtt: {url: "http://u:SECRET-PASSWORD@h"}
  escalation:
    mqtt: {topic: "a/#"}
reports:
  schedule: "every monday"
  webhook: yes
web:
  tls_cert: c.pem
  tokens_file: {a: 1}
"""


def write(tmp_path: Path, text: str) -> Path:
    return problem_files.write(tmp_path, "monitor.yaml", text)


def problems(path: Path) -> list[str]:
    return problem_files.problems(config.load, ConfigError, path)


def test_a_full_configuration_loads(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, GOOD)) == Config(
        listen="[::1]:9751", state="/var/lib/tslcd/state.db", inventory="2026-01-02",
        webhooks=(WebhookConfig("https://alerts.example.vn/hook?token=abc"),),
        alerts_mqtt_url="mqtt://127.0.0.1:1883",
        escalation_webhooks=(WebhookConfig("http://127.0.0.1:9/esc"),),
        escalation_mqtt_url="mqtts://broker.example.vn", escalation_mqtt_topic="tslcd/v1/esc",
        report_schedule="0 7 * * 1", report_dir="out",
        report_webhook="https://so-noi-vu.example.vn/in", tokens_file="tokens.yaml",
        tls_cert="c.pem", tls_key="k.pem")


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "listen: null\n"])
def test_an_empty_configuration_is_the_defaults(tmp_path: Path, text: str) -> None:
    assert config.load(write(tmp_path, text)) == Config()


def test_every_problem_is_reported_at_its_line_in_one_run(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    found = problems(path)
    assert all(p.startswith(f"{path}:") for p in found)
    by_line = {int(p.split(":")[1]): p.split(": ", 1)[1] for p in found}
    assert sorted(by_line) == [1, 3, 4, 7, 8, 9, 11, 13, 14, 16, 17]
    assert "expected HOST:PORT, PORT 1-65535" in by_line[1]
    assert by_line[3] == "inventory: expected text, got a list"
    assert by_line[4] == "unknown key 'lisen' (did you mean 'listen'?)"
    assert "expected an http:// or https:// URL" in by_line[7]
    assert "must be mqtt:// or mqtts://" in by_line[9]
    assert "MQTT topic" in by_line[11]
    assert "'every monday' is not a cron expression" in by_line[13]
    assert by_line[14] == "reports.webhook: expected text, got true/false"
    assert "tls_cert and tls_key go together" in by_line[16]
    assert by_line[17] == "web.tokens_file: expected text, got a mapping"
    assert "SECRET" not in "\n".join(found)  # URLs with credentials are never repeated


@pytest.mark.parametrize(("text", "line", "message"), [
    ("listen: " + "[" * 10_000 + "]" * 10_000 + "\n", 1, "nested more than 500 levels"),
    ("web:\n  tls_cert: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n", 2, "nested more"),
    ("- " * 10_000 + "x\n", 1, "nested more than 500 levels"),
    ("- listen\n", 1, "configuration: expected a mapping"),
    ("listen: '127.0.0.1:9750\n", 2, "YAML syntax error"),
    ("listen: 1.2.3.4.5:80\n", 1, "neither an IP address nor a host name"),
    ("listen: '[nope]:80'\n", 1, "neither an IP address nor a host name"),
    ("listen: 9750\n", 1, "expected text, got a number"),
    ("listen: '127.0.0.1:" + "9" * 5000 + "'\n", 1, "expected HOST:PORT"),
    ("reports: {schedule: '61 7 * * 1'}\n", 1, "not a cron expression"),
    ("reports: {schedule: '0 7 * *'}\n", 1, "not a cron expression"),
    ("alerts: {webhooks: {url: x}}\n", 1, "alerts.webhooks: expected a list"),
    ("alerts: {escalation: {mqtt: {url: mqtt://h, qos: 1}}}\n", 1, "unknown key 'qos'"),
    ("state: true\n", 1, "state: expected text, got true/false"),
])
def test_malformed_values_give_one_clear_problem(tmp_path: Path, text: str, line: int,
                                                message: str) -> None:
    found = problems(write(tmp_path, text))
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'monitor.yaml'}:{line}: ") and message in found[0]
    assert len(found[0]) < 300


def test_a_date_like_state_path_is_a_file_name_not_a_crash(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, "state: 2026-13-45\n")).state == "2026-13-45"


@pytest.mark.parametrize(("listen", "pair"), [
    ("127.0.0.1:9750", ("127.0.0.1", 9750)), ("[::1]:80", ("::1", 80)),
    (":9750", ("127.0.0.1", 9750)), ("monitor.tinh.vn:443", ("monitor.tinh.vn", 443)),
])
def test_listen_addresses(listen: str, pair: tuple[str, int]) -> None:
    assert config.parse_listen(listen) == pair


@pytest.mark.parametrize("command", [["run"], ["collector", "--mqtt", "mqtt://127.0.0.1:1"]])
def test_the_commands_exit_2_with_every_line_and_no_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    path = write(tmp_path, "lisen: x\nstate: [a]\nreports: {schedule: nope}\n")
    code = main([*command, "--config", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        f"{path}:1: unknown key 'lisen' (did you mean 'listen'?)",
        f"{path}:2: state: expected text, got a list",
        f"{path}:3: reports.schedule: 'nope' is not a cron expression (e.g. '0 7 * * 1': "
        "every Monday at 07:00, Vietnam time)"]
