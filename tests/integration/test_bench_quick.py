"""``accord bench --quick``: every workload measured, with its baselines and
ratios, in the JSON (no thresholds: the numbers are the machine's); where
the broker and a baseline answer the same question, the same rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.harness import QUICK_TPCH
from bench.workloads import WORKLOADS
from tests.integration.servers import require_servers

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
#: The baselines each workload is measured against (the peer: not in --quick).
BASELINES = {
    "W1": {"direct", "single", "floor"},
    "W2": {"direct", "single", "direct_linked", "single_linked"},
    "W3": {"direct", "single"},
    "W4": {"direct", "single"},
    "W5": {"single"},
}


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    require_servers()  # W5's TPC-H sources
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text()), done.stdout


def _rows(report: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["workload"], r["concurrency"]): r for r in report["results"]}


def test_quick_bench_reports_every_workload_and_ratio(quick: tuple[dict[str, Any], str]) -> None:
    report, stdout = quick
    assert {"cpu_count", "python", "platform", "scale", "tpch_scale"} <= set(report["machine"])
    rows = _rows(report)
    expected = {(w.name, c) for ws in WORKLOADS.values() for w in ws for c in (1, 32)}
    expected |= {(f"W5-Q{n:02d}", 1) for n in QUICK_TPCH} | {("W5-all", 1), ("W5-all", 32)}
    assert set(rows) == expected
    for (name, _), row in rows.items():
        assert row["errors"] == 0, row
        assert row["queries"] > 0
        for key in ("p50_ms", "p95_ms", "p99_ms", "qps", "rows_per_s", "cpu_ms_per_query"):
            assert row[key] >= 0
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["rss_mb"] > 0
        assert set(row["baselines"]) == set(row["ratios"]) == BASELINES[name[:2]], name
    assert "| W4-bulk | 32 |" in stdout
    assert "| W5-all | 32 |" in stdout


def test_the_peer_is_skipped_in_quick_with_its_reason(quick: tuple[dict[str, Any], str]) -> None:
    report, stdout = quick
    assert [s["baseline"] for s in report["skipped"]] == ["peer"]
    assert "the peer baseline is skipped: --quick" in stdout
    assert "skipped: peer: --quick" in stdout


def test_the_broker_and_the_baselines_count_the_same_rows(
    quick: tuple[dict[str, Any], str],
) -> None:
    rows = _rows(quick[0])
    # All current offenders: Passport Canada's row filter is the status, so
    # the broker, the direct script and the single engine count the same rows.
    # The cross-source join as provincial corrections (no row filter on these
    # tables): the same groups, however each joins.
    for name in ("W4-bulk", "W3-join"):
        row = rows[(name, 1)]
        assert row["rows"] > 0
        base = row["baselines"]
        assert row["rows"] == base["direct"]["rows"] == base["single"]["rows"], name
    # The statistics role withholds small groups: never more than the exact answer.
    statistics = rows[("W3-statistics", 1)]
    assert 0 < statistics["rows"] <= statistics["baselines"]["single"]["rows"]
    assert statistics["baselines"]["direct"]["rows"] == statistics["baselines"]["single"]["rows"]
    # A point lookup and a history read the same rows by either baseline.
    pairs = {
        "W1-crown": [("direct", "single")],
        "W2-history": [("direct", "single"), ("direct_linked", "single_linked")],
    }
    for name, compared in pairs.items():
        base = rows[(name, 1)]["baselines"]
        for a, b in compared:
            assert base[a]["rows"] == base[b]["rows"], (name, a, b)
    # TPC-H: the broker's answer has the reference's rows (test_tpch.py
    # checks the values).
    for n in QUICK_TPCH:
        row = rows[(f"W5-Q{n:02d}", 1)]
        assert row["rows"] == row["baselines"]["single"]["rows"], n
