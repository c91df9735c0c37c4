"""``accord bench``: the workloads of issue 14 against local federations.

W1-W4 run on the synthetic offender data at ``scale``, generated in a
temporary work dir: six adapters and a broker as processes
(``LocalFederation``, real mTLS). W5 runs the TPC-H queries on a second
federation, TPC-H at ``tpch_scale`` sharded over PostgreSQL, MariaDB and
SQLite (bench/tpch.py). Each workload runs at concurrency 1 (one client,
one channel reused) and 32 (threads, each its own client and channel);
W5 runs each query at concurrency 1 and the mix of them at 32.

Baselines, in the same run: *direct* and *single* (bench/workloads.py) at
concurrency 1; the *protocol floor* (bench/floor.py) for W1, measured like
the broker at 1 and 32; *single* and the *peer* (bench/peer.py) for W5 at
concurrency 1. Broker CPU and peak RSS come from its process (psutil; peak
from /proc's VmHWM), the floor's from the echo broker's.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from accord.client import BrokerClient
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import generate, write_federation_data
from app.commands import init_certs
from app.launcher import LocalFederation
from bench import tpch
from bench.floor import Floor
from bench.workloads import WORKLOADS, Direct, Single, Workload, engines

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb

    from accord.federation import Federation
    from bench.peer import Peer

CONCURRENCY = (1, 32)
#: The bench's partners' quota: the default (4 at once per partner) would
#: refuse most of 32 threads of one partner; the bench measures the broker,
#: not its admission control.
BENCH_QUOTA = {"concurrent_queries": 64, "queries_per_second": 100000.0, "burst": 100000}
#: The statistics role's privacy budget in the bench's policies: its 10 a
#: year would refuse the 21st new answer; the bench measures the broker, not
#: the budget (a repeated W3 query is free anyway once answered).
BENCH_EPSILON_PER_YEAR = 1e9
#: W5 at concurrency 32: each query this many times (all 22: 44 queries).
MIX_ROUNDS = 2
#: W5 in --quick: a handful of the 22 (a scan, joins, a subquery).
QUICK_TPCH = (1, 3, 6, 13)


def bench_policies(source: Path, target: Path, partners: set[str]) -> Path:
    """A copy of the policies in ``source`` whose ``partners`` have
    ``BENCH_QUOTA`` and whose privacy budgets do not run out."""
    shutil.copytree(source, target)
    path = target / "partners.yaml"
    registry = yaml.safe_load(path.read_text())
    for name in partners:
        registry["partners"][name]["quota"] = dict(BENCH_QUOTA)
    path.write_text(yaml.safe_dump(registry, sort_keys=False))
    for role_file in sorted((target / "roles").glob("*.yaml")):
        role = yaml.safe_load(role_file.read_text())
        if isinstance(role, dict) and isinstance(role.get("privacy"), dict):
            role["privacy"]["epsilon_per_year"] = BENCH_EPSILON_PER_YEAR
            role_file.write_text(yaml.safe_dump(role, sort_keys=False))
    return target


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def peak_rss_mb(pid: int) -> float:
    import psutil

    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def timed_serial(ask: Callable[[str], int], items: list[str]) -> tuple[list[float], int, float]:
    """(latencies ms, rows, wall s) of asking once per item in turn."""
    latencies, rows = [], 0
    started = time.perf_counter()
    for item in items:
        t0 = time.perf_counter()
        rows += ask(item)
        latencies.append((time.perf_counter() - t0) * 1000)
    return latencies, rows, time.perf_counter() - started


@dataclass(frozen=True)
class Target:
    """A broker (or the echo broker) to measure: its address, its process,
    and the work dir holding the partners' credentials."""

    address: str
    pid: int
    workdir: Workdir


def run_broker(
    workload: Workload, target: Target, items: list[str], concurrency: int
) -> tuple[list[float], int, float, int, float]:
    """(latencies ms, rows, wall s, errors, CPU s of the target's process);
    each thread its own client, its channel warmed first (the handshake and
    a catalog call), and the workload asked once before, untimed and outside
    the CPU count (the first query of a kind opens the sources' connections)."""
    ca, cert, key = target.workdir.partner_credentials(workload.partner)
    clients = [
        BrokerClient(
            target.address, ca, cert, key, purpose=workload.purpose, case_ref=workload.case_ref
        )
        for _ in range(concurrency)
    ]
    for client in clients:
        client.catalog()
    workload.broker(clients[0], items[0])
    shares = [items[i::concurrency] for i in range(concurrency)]
    results: list[tuple[list[float], int]] = [([], 0)] * concurrency
    errors = [0] * concurrency
    start = threading.Barrier(concurrency + 1)

    def worker(i: int) -> None:
        latencies, rows = [], 0
        start.wait()
        for item in shares[i]:
            t0 = time.perf_counter()
            try:
                rows += workload.broker(clients[i], item)
            except Exception:  # counted: an overloaded broker refuses, that is a result
                errors[i] += 1
                continue
            latencies.append((time.perf_counter() - t0) * 1000)
        results[i] = (latencies, rows)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    cpu_before = cpu_seconds(target.pid)
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    cpu = cpu_seconds(target.pid) - cpu_before
    for client in clients:
        client.close()
    latencies = [ms for lat, _ in results for ms in lat]
    return latencies, sum(r for _, r in results), wall, sum(errors), cpu


_STARTED = time.monotonic()


def progress(message: str) -> None:
    """What the run is doing, with the time since it started (on stderr)."""
    print(f"[{time.monotonic() - _STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


def summary(latencies: list[float], rows: int, wall: float) -> dict[str, float]:
    n = len(latencies)
    return {
        "queries": n,
        "rows": rows,
        "p50_ms": round(percentile(latencies, 0.50), 3),
        "p95_ms": round(percentile(latencies, 0.95), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "qps": round(n / wall, 1) if wall else 0.0,
        "rows_per_s": round(rows / wall, 1) if wall else 0.0,
    }


def measure(
    workload: Workload, target: Target, items: list[str], concurrency: int, label: str = ""
) -> dict[str, Any]:
    """One row of the results: ``workload`` against ``target`` at ``concurrency``."""
    what = label or workload.name
    progress(f"{what} at concurrency {concurrency}, {len(items)} queries")
    latencies, rows, wall, errors, cpu = run_broker(workload, target, items, concurrency)
    asked = max(1, len(latencies) + errors)
    return {
        "workload": workload.name,
        "description": workload.description,
        "concurrency": concurrency,
        **summary(latencies, rows, wall),
        "errors": errors,
        "cpu_ms_per_query": round(cpu * 1000 / asked, 2),
        "rss_mb": round(peak_rss_mb(target.pid), 1),
        "latencies_ms": latencies,  # dropped from the JSON; pooled for W5-all
        "cpu_s": cpu,
        "wall_s": wall,
    }


def serial_baselines(
    answers: dict[str, Callable[[str], int]], items: list[str]
) -> dict[str, dict[str, float]]:
    out = {}
    for label, answer in answers.items():
        answer(items[0])  # warm
        latencies, rows, wall = timed_serial(answer, items)
        out[label] = summary(latencies, rows, wall)
    return out


def ratios(row: dict[str, Any], base: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How many times slower the broker is than each baseline: by p50 at
    concurrency 1; at more, by queries/s: the baseline's one thread against
    the broker's many, except a baseline measured at the same concurrency
    (the floor), which is compared at it."""
    out: dict[str, float] = {}
    for name, b in base.items():
        if row["concurrency"] == 1:
            if b["p50_ms"]:
                out[name] = row["p50_ms"] / b["p50_ms"]
        elif row["qps"]:
            out[name] = b["qps"] / row["qps"]
    basis = (
        "p50 broker / p50 baseline"
        if row["concurrency"] == 1
        else "q/s baseline / q/s broker (baseline at concurrency 1, the floor at 32)"
    )
    return {"ratios": {k: round(v, 2) for k, v in out.items()}, "ratio_basis": basis}


def _machine(scale: float, tpch_scale: float) -> dict[str, Any]:
    import psutil

    return {
        "cpu_count": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "scale": scale,
        "tpch_scale": tpch_scale,
    }


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    scale: float
    tpch_scale: float
    queries: int
    bulk_queries: int
    names: list[str]
    tpch_queries: list[int]
    tpch_repeats: int
    peer: bool
    peer_skip_reason: str = ""
    seed: int = 11


def run(plan: Plan) -> dict[str, Any]:
    report: dict[str, Any] = {
        "machine": _machine(plan.scale, plan.tpch_scale),
        "bench_partner_quota": BENCH_QUOTA,
        "bench_epsilon_per_year": BENCH_EPSILON_PER_YEAR,
        "results": [],
        "skipped": [],
    }
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as tmp:
        offender_names = [n for n in plan.names if n != "W5"]
        if offender_names:
            run_offenders(plan, offender_names, Path(tmp), report)
        if "W5" in plan.names:
            run_tpch(plan, Path(tmp), report)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["summary"] = headline(report)
    for row in report["results"]:
        for key in ("latencies_ms", "cpu_s", "wall_s"):
            row.pop(key, None)
    return report


def run_offenders(plan: Plan, names: list[str], tmp: Path, report: dict[str, Any]) -> None:
    """W1-W4 on the synthetic offender data, with their baselines."""
    federation = load_federation(DEFAULT_FEDERATION)
    partners = {w.partner for name in names for w in WORKLOADS[name]}
    policies = bench_policies(DEFAULT_POLICIES, tmp / "policies", partners)
    workdir = Workdir(tmp / "work")
    init_certs(workdir, DEFAULT_FEDERATION, policies)
    write_federation_data(federation, workdir.path, seed=plan.seed, scale=plan.scale)
    generated = generate(federation, seed=plan.seed, scale=plan.scale)
    fps_numbers = sorted(
        {
            fps
            for tables in generated.values()
            for fps in tables["offenders"].column("fps_number").to_pylist()
            if fps
        }
    )
    rng = random.Random(plan.seed)
    direct, single = Direct(federation, workdir.path), Single(generated)
    try:
        with LocalFederation(workdir, DEFAULT_FEDERATION, policies) as launcher:
            broker = Target(launcher.broker_address, launcher.children["broker"].pid, workdir)
            for name in names:
                for workload in WORKLOADS[name]:
                    count = plan.queries if workload.per_person else plan.bulk_queries
                    people = [rng.choice(fps_numbers) for _ in range(count)]
                    rows = [measure(workload, broker, people, c) for c in CONCURRENCY]
                    base = serial_baselines(engines(workload.name, direct, single), people)
                    floor = (
                        measure_floor(workload, workdir, federation, people)
                        if (name == "W1")
                        else {}
                    )
                    for row in rows:
                        extra = floor.get(row["concurrency"], {}) if name == "W1" else {}
                        row["baselines"] = {**base, **extra}
                        row.update(ratios(row, row["baselines"]))
                    report["results"].extend(rows)
            report["broker_peak_rss_mb"] = round(peak_rss_mb(broker.pid), 1)
    finally:
        direct.close()
        single.close()


def measure_floor(
    workload: Workload, workdir: Workdir, federation: Federation, people: list[str]
) -> dict[int, dict[str, dict[str, Any]]]:
    """The protocol floor for a W1 workload, at each concurrency."""
    out: dict[int, dict[str, dict[str, Any]]] = {}
    with Floor(workdir, federation) as floor:
        target = Target(floor.address, floor.pid, workdir)
        for concurrency in CONCURRENCY:
            row = measure(workload, target, people, concurrency, label="protocol floor")
            keep = ("queries", "rows", "p50_ms", "p95_ms", "p99_ms", "qps", "rows_per_s")
            measured = {k: row[k] for k in (*keep, "errors", "cpu_ms_per_query", "rss_mb")}
            measured["concurrency"] = concurrency
            out[concurrency] = {"floor": measured}
    return out


def tpch_workloads(numbers: list[int]) -> dict[int, Workload]:
    queries = tpch.load_queries()

    def asker(sql: str) -> Callable[[BrokerClient, str], int]:
        return lambda client, _item: int(client.query(sql, timeout=600).table.num_rows)

    return {
        n: Workload(
            f"W5-Q{n:02d}",
            f"TPC-H Q{n}, sharded PostgreSQL/MariaDB/SQLite",
            tpch.PARTNER,
            tpch.PURPOSE,
            "",
            asker(queries[n]),
            per_person=False,
        )
        for n in numbers
    }


def run_tpch(plan: Plan, tmp: Path, report: dict[str, Any]) -> None:
    """W5: each TPC-H query at concurrency 1 against *single* and the *peer*,
    then the mix of them at concurrency 32."""
    from bench.peer import Peer, PeerError, ensure_env, spec

    queries = tpch.load_queries()
    workloads = tpch_workloads(plan.tpch_queries)
    policies = bench_policies(tpch.POLICIES, tmp / "tpch-policies", {tpch.PARTNER})
    with (
        tpch.tpch_federation(tmp / "tpch", plan.tpch_scale, policies) as loaded,
        LocalFederation(loaded.workdir, tpch.FEDERATION, policies) as launcher,
    ):
        report["tpch_rows_loaded"] = loaded.loaded
        broker = Target(launcher.broker_address, launcher.children["broker"].pid, loaded.workdir)
        reference = loaded.reference()
        peer = None
        if plan.peer:
            try:
                peer = Peer(ensure_env(), spec(loaded.federation, loaded.workdir.path))
            except (PeerError, OSError) as exc:  # no PyPI, say: the rest is still measured
                reason = f"the peer could not start: {exc}"
                print(f"the peer baseline is skipped: {reason}")
                report["skipped"].append({"baseline": "peer", "reason": reason})
            else:
                report["peer"] = {"duckdb": peer.version, "settings": spec_settings()}
        else:
            report["skipped"].append({"baseline": "peer", "reason": plan.peer_skip_reason})
        per_query = []
        try:
            for n, workload in workloads.items():
                items = [str(n)] * plan.tpch_repeats
                row = measure(workload, broker, items, 1)
                answers: dict[str, Callable[[str], int]] = {
                    "single": partial(_reference_rows, reference, queries[n])
                }
                if peer is not None:
                    answers["peer"] = partial(_peer_rows, peer, queries[n])
                row["baselines"] = serial_baselines(answers, items)
                row.update(ratios(row, row["baselines"]))
                per_query.append(row)
            report["results"].extend(per_query)
            report["results"].extend(tpch_mix(plan, workloads, broker, per_query))
        finally:
            if peer is not None:
                peer.close()
            reference.close()
        report["tpch_broker_peak_rss_mb"] = round(peak_rss_mb(broker.pid), 1)


def _reference_rows(reference: duckdb.DuckDBPyConnection, sql: str, _item: str) -> int:
    return int(reference.sql(sql).to_arrow_table().num_rows)


def _peer_rows(peer: Peer, sql: str, _item: str) -> int:
    return peer.answer(sql)


def spec_settings() -> dict[str, str]:
    from bench.peer import PEER_SETTINGS

    return dict(PEER_SETTINGS)


def tpch_mix(
    plan: Plan, workloads: dict[int, Workload], broker: Target, per_query: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """W5-all: the per-query runs pooled (concurrency 1) and the mix at 32."""
    queries = tpch.load_queries()
    pooled = [ms for row in per_query for ms in row["latencies_ms"]]
    wall = sum(row["wall_s"] for row in per_query)
    asked = max(1, sum(row["queries"] + row["errors"] for row in per_query))
    one = {
        "workload": "W5-all",
        "description": f"TPC-H Q{','.join(map(str, workloads))}: per-query runs pooled",
        "concurrency": 1,
        **summary(pooled, sum(row["rows"] for row in per_query), wall),
        "errors": sum(row["errors"] for row in per_query),
        "cpu_ms_per_query": round(sum(r["cpu_s"] for r in per_query) * 1000 / asked, 2),
        "rss_mb": round(peak_rss_mb(broker.pid), 1),
    }
    one["baselines"] = {
        name: pooled_baseline([row["baselines"][name] for row in per_query])
        for name in per_query[0]["baselines"]
    }
    one.update(ratios(one, one["baselines"]))
    one["median_query_ratios"] = {
        name: round(statistics.median(row["ratios"][name] for row in per_query), 2)
        for name in one["baselines"]
        if all(name in row["ratios"] for row in per_query)
    }
    items = [str(n) for _ in range(MIX_ROUNDS) for n in workloads]
    mix = Workload(
        "W5-all",
        f"TPC-H Q{','.join(map(str, workloads))}: the mix, {len(items)} queries",
        tpch.PARTNER,
        tpch.PURPOSE,
        "",
        lambda client, n: int(client.query(queries[int(n)], timeout=900).table.num_rows),
        per_person=False,
    )
    many = measure(mix, broker, items, CONCURRENCY[-1])
    many["baselines"] = one["baselines"]
    many.update(ratios(many, many["baselines"]))
    return [one, many]


def pooled_baseline(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A baseline over several queries: total queries and rows over total time;
    the percentiles are those of the queries' medians (the raw latencies of
    the baselines are not kept)."""
    wall = sum(p["queries"] / p["qps"] for p in parts if p["qps"])
    medians = [p["p50_ms"] for p in parts]
    queries, rows = sum(p["queries"] for p in parts), sum(p["rows"] for p in parts)
    return {
        "queries": queries,
        "rows": rows,
        "p50_ms": round(percentile(medians, 0.50), 3),
        "p95_ms": round(percentile(medians, 0.95), 3),
        "p99_ms": round(percentile(medians, 0.99), 3),
        "qps": round(queries / wall, 1) if wall else 0.0,
        "rows_per_s": round(rows / wall, 1) if wall else 0.0,
    }


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """Every ratio, by workload and concurrency: what the closing note quotes."""
    return {
        f"{r['workload']}@{r['concurrency']}": r["ratios"]
        | ({"median_query": r["median_query_ratios"]} if "median_query_ratios" in r else {})
        for r in report["results"]
    }


def _cell(b: dict[str, Any] | None, ratio: float | None, concurrency: int) -> str:
    if b is None:
        return "-"
    value = f"{b['p50_ms']:.2f} ms" if concurrency == 1 else f"{b['qps']:.0f} q/s"
    return f"{value} ({ratio}x)" if ratio is not None else value


BASELINES = ("direct", "single", "direct_linked", "single_linked", "floor", "peer")


def table(report: dict[str, Any]) -> str:
    """The results as a markdown table."""
    note = (
        "Baseline cells: at concurrency 1 the baseline's p50 (broker p50 / baseline p50); "
        "at 32 the baseline's q/s (baseline q/s / broker q/s), at concurrency 1 except "
        "the floor, measured at 32 too. '-': not a baseline of that workload.\n"
    )
    shown = [b for b in BASELINES if any(b in r["baselines"] for r in report["results"])]
    head = (
        "| workload | conc | n | p50 ms | p95 ms | p99 ms | q/s | rows/s | CPU ms/q | RSS MB "
        "| errors | " + " | ".join(shown) + " |"
    )
    lines = [note, head, "|" + "---|" * (11 + len(shown))]
    for r in report["results"]:
        cells = [_cell(r["baselines"].get(b), r["ratios"].get(b), r["concurrency"]) for b in shown]
        lines.append(
            f"| {r['workload']} | {r['concurrency']} | {r['queries']} | {r['p50_ms']:.1f} "
            f"| {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['qps']:.1f} | {r['rows_per_s']:.0f} "
            f"| {r['cpu_ms_per_query']:.1f} | {r['rss_mb']:.0f} | {r['errors']} | "
            + " | ".join(cells)
            + " |"
        )
    for r in report["results"]:
        if "median_query_ratios" in r:
            lines.append(
                f"\n{r['workload']}: median over the queries of broker p50 / baseline p50: "
                + ", ".join(f"{k} {v}x" for k, v in r["median_query_ratios"].items())
            )
            break
    for skipped in report["skipped"]:
        lines.append(f"\nskipped: {skipped['baseline']}: {skipped['reason']}")
    return "\n".join(lines)


def main(
    *,
    quick: bool,
    scale: float | None,
    out: Path | None,
    workloads: str,
    queries: int | None,
    tpch_scale: float | None = None,
    tpch_queries: str | None = None,
    tpch_repeats: int | None = None,
    peer: bool | None = None,
) -> int:
    import logging

    from accord.errors import ConfigError

    # The MariaDB driver logs each connection at INFO while W5 loads its data.
    logging.getLogger("mysql.connector").setLevel(logging.WARNING)
    names = [w.strip().upper() for w in workloads.split(",") if w.strip()]
    known = [*WORKLOADS, "W5"]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(
            f"unknown workload {', '.join(unknown) or '(none)'}; known: {', '.join(known)}"
        )
    numbers = (
        [int(n) for n in tpch_queries.split(",") if n.strip()]
        if tpch_queries
        else list(QUICK_TPCH if quick else range(1, 23))
    )
    if not numbers or any(n not in range(1, 23) for n in numbers):
        raise ConfigError("--tpch-queries: numbers from 1 to 22, comma-separated")
    with_peer = (not quick) if peer is None else peer
    reason = (
        "--quick: the peer needs its own environment (DuckDB 1.5.5 and its scanners from "
        "PyPI, about 150 MB); --peer measures it"
        if quick
        else "--no-peer"
    )
    # A SIGTERM ends the run through the context managers: the adapters and
    # the broker stop with it instead of outliving it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    n = queries or (8 if quick else 640)
    plan = Plan(
        scale=scale if scale is not None else (0.002 if quick else 0.05),
        tpch_scale=tpch_scale if tpch_scale is not None else (0.002 if quick else 0.05),
        queries=n,
        bulk_queries=max(n // 8, 8 if quick else 32),
        names=names,
        tpch_queries=numbers,
        tpch_repeats=tpch_repeats or (1 if quick else 3),
        peer=with_peer,
        peer_skip_reason="" if with_peer else reason,
    )
    if not with_peer and "W5" in names:
        print(f"the peer baseline is skipped: {reason}")
    report = run(plan)
    m = report["machine"]
    print(
        f"scale {m['scale']} (TPC-H {m['tpch_scale']}), {m['cpu_count']} cores, "
        f"Python {m['python']}, {m['platform']}, load {m['load_average_at_start']}"
    )
    print(table(report))
    if out is not None:
        out.write_text(json.dumps(report, indent=2) + "\n")
    return 0
