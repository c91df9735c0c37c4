"""deploy/: the Prometheus config, the alert rules and their unit tests, and
the Grafana dashboard are valid, and read only metrics that Accord exports.

These run promtool (Debian package prometheus) but start no server.
"""

from __future__ import annotations

import doctest
import json
import shutil
import subprocess
from collections import Counter

import pytest
import yaml

from adapters.metrics import AdapterMetrics
from app.launcher import write_prometheus_targets
from broker.metrics import BrokerMetrics
from tests import monitoring
from tests.monitoring import (
    ALERT_TESTS,
    ALERTS,
    DEPLOY,
    PROMETHEUS_CONFIG,
    alert_rules,
    dashboard,
    dashboard_panels,
    dashboard_queries,
    exported_names,
    metric_names,
    require_promtool,
)


def run_promtool(*args: str, cwd=DEPLOY) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_promtool(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return (
        exported_names(BrokerMetrics().registry)
        | exported_names(AdapterMetrics("BC").registry)
        | {"up"}
    )


def test_helpers_doctests():
    assert doctest.testmod(monitoring).failed == 0


# -- prometheus.yml ---------------------------------------------------------


def test_prometheus_config_is_valid():
    assert_ok(run_promtool("check", "config", PROMETHEUS_CONFIG.name))


def test_prometheus_config_reads_the_targets_accord_writes(tmp_path):
    """The file_sd files `accord demo --serve` writes, where the config looks."""
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    for path in (PROMETHEUS_CONFIG, ALERTS):
        shutil.copy(path, deploy)
    write_prometheus_targets(
        tmp_path / ".accord" / "run" / "prometheus",
        "127.0.0.1:9100",
        {"BC": "127.0.0.1:9101", "ON": "127.0.0.1:9102"},
    )
    result = run_promtool("check", "config", "prometheus.yml", cwd=deploy)
    assert_ok(result)
    assert "WARNING" not in result.stdout + result.stderr

    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"accord-broker", "accord-adapter"}
    assert config["rule_files"] == ["alerts.yml"]


# -- alerts.yml and alerts.test.yml -----------------------------------------


def test_alert_rules_are_valid():
    assert_ok(run_promtool("check", "rules", ALERTS.name))


def test_alert_unit_tests_pass():
    assert_ok(run_promtool("test", "rules", ALERT_TESTS.name))


def test_every_alert_is_labelled_and_annotated():
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


@pytest.mark.parametrize("fires", [True, False], ids=["fires", "stays quiet"])
def test_every_alert_has_a_test_case_where_it(fires):
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    shown = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", ())
        if bool(case.get("exp_alerts")) == fires
    }
    missing = {rule["alert"] for rule in alert_rules()} - shown
    verb = "fire" if fires else "stay quiet"
    assert not missing, f"alerts never shown to {verb} in {ALERT_TESTS.name}: {missing}"


@pytest.mark.parametrize(
    ("alert", "old", "new"),
    [
        ("AccordQueryErrorRatioHigh", ") > 0.05", ") > 0.1"),
        ("AccordSourceFailing", 'outcome!~"ok|cancelled"', 'outcome!="ok"'),
        ("AccordCertificateExpiringSoon", "< 30 * 86400", "< 10 * 86400"),
        ("AccordBrokerAbsent", 'absent(up{job="accord-broker"})', 'up{job="accord-broker"} == 0'),
        ("AccordReloadFailed", 'accord_reloads_total{outcome="failed"}', "accord_reloads_total"),
        ("AccordHandshakesRefused", "[10m])) > 10", "[10m])) > 100"),
    ],
)
def test_a_wrong_alert_fails_its_unit_tests(tmp_path, alert, old, new):
    """The unit tests catch a changed threshold or filter."""
    text = ALERTS.read_text()
    assert text.count(old) == 1, old
    (tmp_path / ALERTS.name).write_text(text.replace(old, new))
    shutil.copy(ALERT_TESTS, tmp_path)
    result = run_promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr


def test_alerts_read_only_exported_metrics(exported):
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exported, f"{rule['alert']} reads {names - exported}"


# -- grafana/accord.json ----------------------------------------------------


def test_dashboard_is_well_formed():
    board = dashboard()
    assert board["uid"] == "accord-broker"
    assert board["title"] == "Accord broker"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    panels = list(dashboard_panels())
    ids = Counter(panel["id"] for panel in panels)
    assert not [i for i, n in ids.items() if n > 1], f"duplicate panel ids: {ids}"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        targets = panel.get("targets", [])
        assert targets, panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        for target in targets:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == panel["datasource"], panel["title"]


def test_dashboard_queries_are_valid_promql(tmp_path):
    queries = dashboard_queries("1m")
    assert queries
    for _, expr in queries:
        assert "$" not in expr, expr
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": expr}
                    for i, (_, expr) in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    assert_ok(run_promtool("check", "rules", str(path)))


def test_dashboard_reads_only_exported_metrics(exported):
    for title, expr in dashboard_queries():
        names = metric_names(expr)
        assert names, f"{title}: {expr}"
        assert names <= exported, f"{title} reads {names - exported}"


def test_dashboard_queries_include_nested_panels(monkeypatch):
    nested = {
        "panels": [
            {
                "type": "row",
                "title": "r",
                "id": 1,
                "collapsed": True,
                "panels": [
                    {
                        "type": "stat",
                        "title": "inner",
                        "id": 2,
                        "targets": [{"refId": "A", "expr": "rate(up[$__rate_interval])"}],
                    }
                ],
            }
        ]
    }
    monkeypatch.setattr(monitoring, "dashboard", lambda: json.loads(json.dumps(nested)))
    assert monitoring.dashboard_queries("2m") == [("inner", "rate(up[2m])")]
