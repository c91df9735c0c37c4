"""A real Prometheus scrapes a running federation.

Prometheus (Debian's package) runs on loopback with deploy/prometheus.yml,
changed only where a test must: a 1 s scrape interval, and absolute paths to
the targets this federation wrote and to deploy/alerts.yml. After a mix of
queries (answered, refused, suppressed), every PromQL expression of the
Grafana dashboard must return data through Prometheus's HTTP API, every
alert rule must evaluate, and ``promtool check metrics`` must pass on what
the broker and each adapter expose.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import yaml

from tests.monitoring import (
    ALERTS,
    PROMETHEUS_CONFIG,
    dashboard_queries,
    require_prometheus,
    require_promtool,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

SCRAPE_S = 1
#: Rate windows of the dashboard, in the test: a few scrapes wide.
RATE_WINDOW = "30s"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def prometheus_config(targets_dir: Path, tmp_path: Path) -> Path:
    """deploy/prometheus.yml, pointed at this federation and scraping every second."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval=f"{SCRAPE_S}s", evaluation_interval=f"{SCRAPE_S}s")
    config["rule_files"] = [str(ALERTS)]
    for job in config["scrape_configs"]:
        for sd in job["file_sd_configs"]:
            sd["files"] = [str(targets_dir / name.rsplit("/", 1)[-1]) for name in sd["files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def prometheus(running, tmp_path_factory):
    binary = require_prometheus()
    tmp = tmp_path_factory.mktemp("prometheus")
    config = prometheus_config(running.workdir.prometheus_targets_dir(), tmp)
    port = free_port()
    log = (tmp / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prometheus did not start; see {tmp / 'prometheus.log'}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_for(check, within_s: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"timed out waiting for {what}"
            return result
        time.sleep(0.25)


def wait_for_scrapes(prometheus: str, count: int, expected: int) -> None:
    """Returns once every one of the ``expected`` targets has been scraped
    ``count`` more times, so each counter has a sample from now on."""
    for _ in range(count):
        since = time.time()

        def scraped_since(since: float = since) -> bool:
            stamps = api(prometheus, "query", query="timestamp(up)")["result"]
            return len(stamps) == expected and all(float(s["value"][1]) > since for s in stamps)

        wait_for(scraped_since, what=f"{expected} targets scraped")


QUERIES_OK = 'accord_queries_total{role="crown_attorney",outcome="ok"}'
DENIED = 'accord_policy_denials_total{role="crown_attorney",reason="column"}'
SUPPRESSED = 'accord_suppressed_groups_total{role="statistics"}'
BC_SCANS = 'accord_adapter_scans_total{source="BC",outcome="ok"}'
#: The counters the traffic is measured by.
SEEN = (QUERIES_OK, DENIED, SUPPRESSED, BC_SCANS)


def total(prometheus: str, expr: str) -> float:
    return sum(float(s["value"][1]) for s in api(prometheus, "query", query=expr)["result"])


def send_traffic(running, rounds: int) -> None:
    """Queries of every kind: answered, refused, suppressed."""
    with running.client("crown_attorney", purpose="bail_hearing", case_ref="R-2026-0042") as crown:
        for _ in range(rounds):
            crown.query("SELECT source, count(*) AS n FROM offenders GROUP BY source")
            crown.query("SELECT fps_number, surname FROM offenders WHERE source = 'BC'")
            with pytest.raises(grpc.RpcError):
                crown.query("SELECT address FROM offenders")  # a column the role may not see
    with running.client("statistics", purpose="annual_statistics") as statistics:
        result = statistics.query(
            "SELECT gender, status, supervising_jurisdiction, security_level, count(*) AS n "
            "FROM offenders GROUP BY gender, status, supervising_jurisdiction, security_level"
        )
        # groups withheld: counted in the metrics, never told to the partner
        assert result.trailer.suppressed_groups == 0


@pytest.fixture(scope="module")
def traffic(running, prometheus):
    """Every target up; one round of every kind of query, so every series
    exists and has samples before the traffic (whatever ran before this
    module); then the traffic, and two scrapes more. Returns Prometheus's
    address and what the traffic added to each expression of SEEN."""
    expected = 1 + len(running.federation.sources)

    def all_up() -> bool:
        targets = api(prometheus, "targets")["activeTargets"]
        return len(targets) == expected and all(t["health"] == "up" for t in targets)

    wait_for(all_up, what=f"{expected} targets up")
    send_traffic(running, rounds=1)
    wait_for_scrapes(prometheus, 2, expected)  # counters have a sample before the traffic
    before = {expr: total(prometheus, expr) for expr in SEEN}
    send_traffic(running, rounds=3)
    wait_for(
        lambda: total(prometheus, QUERIES_OK) >= before[QUERIES_OK] + 6,
        what="the queries in Prometheus",
    )
    wait_for_scrapes(prometheus, 2, expected)  # two samples after: rate() sees the traffic
    added = {expr: total(prometheus, expr) - before[expr] for expr in SEEN}
    return prometheus, added


QUERIES = dashboard_queries(RATE_WINDOW)


@pytest.mark.parametrize(("title", "expr"), QUERIES, ids=[f"{t}: {e}" for t, e in QUERIES])
def test_every_dashboard_query_returns_data(traffic, title, expr):
    prometheus, _ = traffic
    # A scrape that timed out on a loaded machine leaves a target's series
    # stale until the next one (each second): wait for data, not for a time.
    data = wait_for(
        lambda: (found := api(prometheus, "query", query=expr))["result"] and found,
        within_s=15,
        what=f"panel {title!r}: data for {expr}",
    )
    values = [float(series["value"][1]) for series in data["result"]]
    assert any(math.isfinite(v) for v in values), f"panel {title!r}: only NaN for {expr}"


def test_the_dashboard_sees_what_happened(traffic):
    """What the traffic added, not the totals (other tests query the same broker)."""
    prometheus, added = traffic
    assert added[QUERIES_OK] == 6 and added[DENIED] == 3, added
    assert added[SUPPRESSED] >= 1, added
    assert added[BC_SCANS] >= 6, added  # two of the three queries of a round scan BC
    assert total(prometheus, 'up{job="accord-adapter"}') == 6
    # alerts name the system
    assert total(prometheus, 'up{job="accord-adapter",adapter="CA-CSC"}') == 1
    assert total(prometheus, 'up{job="accord-broker"}') == 1


def test_every_alert_rule_evaluates_and_none_fires(traffic):
    prometheus, _ = traffic

    def evaluated():
        groups = api(prometheus, "rules", type="alert")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return (
            rules
            if rules
            and all(
                r.get("lastEvaluation", "").startswith("20") and r["health"] == "ok" for r in rules
            )
            else None
        )

    rules = wait_for(evaluated, what="every alert rule evaluated")
    names = {r["name"] for r in rules}
    assert {"AccordBrokerDown", "AccordAuditWriteFailures", "AccordCircuitOpen"} <= names
    # A healthy federation with fresh certificates raises no alert.
    firing = [r["name"] for r in rules if r["state"] != "inactive"]
    assert firing == []


@pytest.mark.parametrize("process", ["broker", "adapter-bc", "adapter-ca-csc"])
def test_promtool_accepts_the_exposed_metrics(traffic, running, process):
    promtool = require_promtool()
    address = running.workdir.metrics_address_file(process).read_text().strip()
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        exposed = response.read()
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposed, capture_output=True, timeout=30, check=False
    )
    report = (checked.stdout + checked.stderr).decode()
    assert checked.returncode == 0, report
