"""Helpers for the tests of deploy/: Prometheus config, alert rules and the
Grafana dashboard. Plain functions; the tests are in test_monitoring_config.py
and tests/integration/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from prometheus_client import CollectorRegistry

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus.yml"
ALERTS = DEPLOY / "alerts.yml"
ALERT_TESTS = DEPLOY / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "accord.json"

#: Grafana's interval variables, all replaced by one window in tests.
_INTERVAL_VARIABLES = re.compile(
    r"\$(?:__rate_interval|__interval|__range)\b"
    r"|\$\{(?:__rate_interval|__interval|__range)\}"
)
#: Metric names in PromQL: Accord's own and `up`. String literals are
#: removed first, so label values such as "accord-broker" never count.
_METRIC_NAME = re.compile(r"(?<![\w:])(accord_\w+|up)(?![\w:])")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
#: Sample suffixes of each metric family type (prometheus_client names a
#: counter's family without its ``_total``).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gauge": ("",),
    "unknown": ("",),
}


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path is not None:
        return path
    message = f"{binary} not installed (Debian package prometheus)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def promtool() -> str | None:
    return shutil.which("promtool")


def require_promtool() -> str:
    """promtool's path; skips the test without it, fails it on CI."""
    return _require("promtool")


def require_prometheus() -> str:
    """prometheus's path; skips the test without it, fails it on CI."""
    return _require("prometheus")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_panels(
    panels: Iterable[dict[str, Any]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels nested in collapsed rows included."""
    for panel in dashboard()["panels"] if panels is None else panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", ()))


def substitute(expr: str, rate_interval: str = "1m") -> str:
    """``expr`` with Grafana's interval variables replaced by ``rate_interval``."""
    return _INTERVAL_VARIABLES.sub(rate_interval, expr)


def dashboard_queries(rate_interval: str = "1m") -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, variables substituted."""
    return [
        (panel.get("title", ""), substitute(target["expr"], rate_interval))
        for panel in dashboard_panels()
        for target in panel.get("targets", ())
        if target.get("expr")
    ]


def alert_rules() -> list[dict[str, Any]]:
    """The alerting rules of alerts.yml (recording rules left out)."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def metric_names(expr: str) -> set[str]:
    """The Accord metric names (and ``up``) that a PromQL expression reads.

    >>> sorted(metric_names('sum(rate(accord_queries_total{job="accord-broker"}[5m])) + up'))
    ['accord_queries_total', 'up']
    """
    return set(_METRIC_NAME.findall(_STRING.sub('""', expr)))


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name ``registry`` can expose, including those of labelled
    metrics that have no child yet (and so no sample)."""
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in _SUFFIXES.get(family.type, ("",))
    }
