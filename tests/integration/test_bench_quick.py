"""``accord bench --quick``: every workload measured, with its baselines and
ratios, in the JSON (no thresholds: the numbers are the machine's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.workloads import WORKLOADS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_reports_every_workload_and_ratio(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert {"cpu_count", "python", "platform", "scale"} <= set(report["machine"])
    rows = {(r["workload"], r["concurrency"]): r for r in report["results"]}
    expected = {(w.name, c) for ws in WORKLOADS.values() for w in ws for c in (1, 32)}
    assert set(rows) == expected
    for row in rows.values():
        assert row["errors"] == 0, row
        assert row["queries"] > 0
        for key in ("p50_ms", "p95_ms", "p99_ms", "qps", "rows_per_s", "cpu_ms_per_query"):
            assert row[key] >= 0
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["rss_mb"] > 0
        assert set(row["baselines"]) == set(row["ratios"]) == {"direct", "single"}
    # All current offenders: Passport Canada's row filter is the status, so the
    # broker, the direct script and the single engine count the same rows.
    bulk = rows[("W4-bulk", 1)]
    assert bulk["rows"] > 0
    assert (
        bulk["rows"] == bulk["baselines"]["direct"]["rows"] == bulk["baselines"]["single"]["rows"]
    )
    assert "| W4-bulk | 32 |" in done.stdout
