"""How well a merge is bounded: memory under the cartesian attack, and how
long a merge past its deadline keeps computing.

    python -m bench.merge_bounds [--old /work/main] [--rows 5831]

Each measurement runs in a fresh process (so its peak RSS is its own) with
the code of one tree on ``sys.path``: this one, and with ``--old`` another
checkout (the code before bounded merges). The merge stage runs as the
pipeline calls it in that version: before, ``wait_for(to_thread(run))`` and
the result limit checked on the whole answer; after, ``Merger.merge``.

- cartesian: ``SELECT a.surname, b.given_names FROM t a, t b`` over
  ``--rows`` rows (5,831² ≈ 34 million answer rows), plain and with
  ORDER BY, under the default limits (2 million rows, 30 s): the process's
  peak RSS above its baseline, and what the caller got.
- deadline: a merge of ~15 s of DuckDB work with a 1 s deadline: when the
  caller got its error, and how long the merge kept its thread after the
  deadline (the merge function's own end, in its thread).

Before/after on the 2-core dev box (1 December 2026; defaults: 2 million
rows, 512 MB per merge, 4 merge threads):

    cartesian          before: RESOURCE_EXHAUSTED after 7.7 s, once all
                               34,000,561 rows were built: RSS +2,175 MB
                       after:  RESOURCE_EXHAUSTED (rows) after 0.7 s,
                               RSS +163 MB
    cartesian_ordered  before: DEADLINE_EXCEEDED at 30 s; the sort went on
                               ~200 s more (asyncio.run waited for it),
                               RSS +4,140 MB
                       after:  RESOURCE_EXHAUSTED (memory: the top-N of
                               2,000,001 rows needs more than 512 MB) after
                               2.6 s, RSS +513 MB
    deadline (1 s)     before: the merge's thread busy 10.2 s past the deadline
                       after:  0.2 s past it
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

CHILD = r"""
import asyncio, json, resource, sys, threading, time
import pyarrow as pa, sqlglot
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION
from broker.merge import Merger
from broker.planner import QueryPlan
from broker.settings import load_limits

scenario, rows = sys.argv[1], int(sys.argv[2])
names = [f"Name{i:06d}-Tremblay-Ostrowski" for i in range(rows)]
t = pa.table({"surname": names, "given_names": names[::-1], "x": list(range(rows))})
limits = load_limits({})
federation = load_federation(DEFAULT_FEDERATION)
new = hasattr(Merger, "merge")
merger = Merger(federation, limits) if new else Merger(federation)
ended = threading.Event()
inner = "_run_on" if new else "run"
original = getattr(Merger, inner)
def timed(self, *args, **kwargs):
    try:
        return original(self, *args, **kwargs)
    finally:
        ended.set()
setattr(Merger, inner, timed)

async def merge(sql, timeout):
    plan = QueryPlan(references=[], merge=sqlglot.parse_one(sql, dialect="duckdb"))
    if new:
        table, _ = await merger.merge(plan, {"t": t}, b"", time.monotonic() + timeout)
        return table
    try:
        work = asyncio.to_thread(merger.run, plan, {"t": t}, b"")
        table, _ = await asyncio.wait_for(work, timeout)
    except TimeoutError:
        raise RuntimeError("DEADLINE_EXCEEDED") from None
    if table.num_rows > limits.max_result_rows or table.nbytes > limits.max_result_bytes:
        raise RuntimeError(f"RESOURCE_EXHAUSTED after {table.num_rows} rows were built")
    return table

# (what the caller got, after how many seconds), timed on the loop:
# asyncio.run then waits for the default executor's threads, a caller does not.
async def attempt(sql, timeout):
    began = time.monotonic()
    try:
        got = f"answered {(await merge(sql, timeout)).num_rows} rows"
    except Exception as exc:
        got = f"{type(exc).__name__}: {str(exc)[:90]}"
    return got, round(time.monotonic() - began, 2)

base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.monotonic()
report = {"scenario": scenario}
if scenario.startswith("cartesian"):
    sql = "SELECT a.surname, b.given_names FROM t AS a, t AS b"
    if scenario == "cartesian_ordered":
        sql += " ORDER BY 1, 2"
    report["outcome"], report["caller_s"] = asyncio.run(attempt(sql, 30.0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["rss_peak_mb"], report["rss_above_baseline_mb"] = round(peak), round(peak - base)
else:
    sql = ("SELECT count(*) FROM t AS a, t AS b "
           "WHERE strpos(a.surname || b.given_names, 'zz') > 0")
    report["outcome"], report["caller_s"] = asyncio.run(attempt(sql, 1.0))
    finished = ended.wait(300)
    report["thread_busy_after_deadline_s"] = (
        round(time.monotonic() - started - 1.0, 2) if finished else ">300")
print(json.dumps(report))
"""

SCENARIOS = ("cartesian", "cartesian_ordered", "deadline")


def measure(code: Path, scenario: str, rows: int, deadline_rows: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    env = {k: v for k, v in env.items() if not k.startswith("ACCORD_")}  # the defaults
    n = deadline_rows if scenario == "deadline" else rows
    done = subprocess.run(
        [sys.executable, "-c", CHILD, scenario, str(n)],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", type=Path, help="a checkout of the code before")
    parser.add_argument("--rows", type=int, default=5831, help="rows of the cartesian table")
    parser.add_argument(
        "--deadline-rows", type=int, default=9000, help="rows of the deadline workload's table"
    )
    args = parser.parse_args(argv)
    trees = [("before", args.old)] if args.old else []
    trees.append(("after", HERE))
    for scenario in SCENARIOS:
        for label, code in trees:
            result = measure(code, scenario, args.rows, args.deadline_rows)
            print(f"{label:6} {json.dumps(result)}", flush=True)


if __name__ == "__main__":
    main()
