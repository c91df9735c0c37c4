"""``accord bench``: the workloads of issue 14 against a local federation.

Generates the synthetic data at ``scale`` in a temporary work dir, starts
six adapters and a broker as processes (``LocalFederation``, real mTLS),
then runs each workload at concurrency 1 (one client, one channel reused)
and 32 (threads, each its own client and channel), and its baselines
(direct, single engine) at concurrency 1 in the same run. Broker CPU and
peak RSS come from its process (psutil; peak from /proc's VmHWM).
"""

from __future__ import annotations

import json
import os
import platform
import random
import signal
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.client import BrokerClient
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import generate, write_federation_data
from app.commands import init_certs
from app.launcher import LocalFederation
from bench.workloads import WORKLOADS, Direct, Single, Workload

if TYPE_CHECKING:
    from collections.abc import Callable

CONCURRENCY = (1, 32)
#: The bench's partners' quota: the default (4 at once per partner) would
#: refuse most of 32 threads of one partner; the bench measures the broker,
#: not its admission control.
BENCH_QUOTA = {"concurrent_queries": 64, "queries_per_second": 100000.0, "burst": 100000}


def bench_policies(target: Path, partners: set[str]) -> Path:
    """A copy of the policies whose ``partners`` have ``BENCH_QUOTA``."""
    import shutil

    import yaml

    shutil.copytree(DEFAULT_POLICIES, target)
    path = target / "partners.yaml"
    registry = yaml.safe_load(path.read_text())
    for name in partners:
        registry["partners"][name]["quota"] = dict(BENCH_QUOTA)
    path.write_text(yaml.safe_dump(registry, sort_keys=False))
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


def timed_serial(ask: Callable[[str], int], people: list[str]) -> tuple[list[float], int, float]:
    """(latencies ms, rows, wall s) of asking once per person in turn."""
    latencies, rows = [], 0
    started = time.perf_counter()
    for fps in people:
        t0 = time.perf_counter()
        rows += ask(fps)
        latencies.append((time.perf_counter() - t0) * 1000)
    return latencies, rows, time.perf_counter() - started


def run_broker(
    workload: Workload, workdir: Workdir, address: str, people: list[str], concurrency: int
) -> tuple[list[float], int, float, int]:
    """(latencies ms, rows, wall s, errors); each thread its own client."""
    ca, cert, key = workdir.partner_credentials(workload.partner)
    clients = [
        BrokerClient(address, ca, cert, key, purpose=workload.purpose, case_ref=workload.case_ref)
        for _ in range(concurrency)
    ]
    for client in clients:  # warm each channel: handshake outside the timing
        workload.broker(client, people[0])
    shares = [people[i::concurrency] for i in range(concurrency)]
    results: list[tuple[list[float], int]] = [([], 0)] * concurrency
    errors = [0] * concurrency
    start = threading.Barrier(concurrency + 1)

    def worker(i: int) -> None:
        latencies, rows = [], 0
        start.wait()
        for fps in shares[i]:
            t0 = time.perf_counter()
            try:
                rows += workload.broker(clients[i], fps)
            except Exception:  # counted: an overloaded broker refuses, that is a result
                errors[i] += 1
                continue
            latencies.append((time.perf_counter() - t0) * 1000)
        results[i] = (latencies, rows)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    for client in clients:
        client.close()
    latencies = [ms for lat, _ in results for ms in lat]
    return latencies, sum(r for _, r in results), wall, sum(errors)


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


def run(
    *, scale: float, queries: int, bulk_queries: int, names: list[str], seed: int = 11
) -> dict[str, Any]:
    federation = load_federation(DEFAULT_FEDERATION)
    machine = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "scale": scale,
    }
    report_quota = {"bench_partner_quota": BENCH_QUOTA}
    report: dict[str, Any] = {"machine": machine, **report_quota, "results": []}
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as tmp:
        partners = {w.partner for name in names for w in WORKLOADS[name]}
        policies = bench_policies(Path(tmp) / "policies", partners)
        workdir = Workdir(Path(tmp) / "work")
        init_certs(workdir, DEFAULT_FEDERATION, policies)
        write_federation_data(federation, workdir.path, seed=seed, scale=scale)
        generated = generate(federation, seed=seed, scale=scale)
        fps_numbers = sorted(
            {
                fps
                for tables in generated.values()
                for fps in tables["offenders"].column("fps_number").to_pylist()
                if fps
            }
        )
        rng = random.Random(seed)
        direct, single = Direct(federation, workdir.path), Single(generated)
        try:
            with LocalFederation(workdir, DEFAULT_FEDERATION, policies) as launcher:
                pid = launcher.children["broker"].pid
                for name in names:
                    for workload in WORKLOADS[name]:
                        count = queries if workload.per_person else bulk_queries
                        people = [rng.choice(fps_numbers) for _ in range(count)]
                        report["results"].extend(
                            measure(workload, workdir, launcher.broker_address, pid, people)
                        )
                        base = baselines(workload, direct, single, people)
                        for row in report["results"]:
                            if row["workload"] == workload.name:
                                row["baselines"] = base
                                row.update(ratios(row, base))
                report["broker_peak_rss_mb"] = round(peak_rss_mb(pid), 1)
        finally:
            direct.close()
            single.close()
    return report


def measure(
    workload: Workload, workdir: Workdir, address: str, pid: int, people: list[str]
) -> list[dict[str, Any]]:
    rows_out = []
    for concurrency in CONCURRENCY:
        cpu_before = cpu_seconds(pid)
        latencies, rows, wall, errors = run_broker(workload, workdir, address, people, concurrency)
        cpu = cpu_seconds(pid) - cpu_before
        asked = len(latencies) + errors + concurrency  # the warm-up calls count too
        rows_out.append(
            {
                "workload": workload.name,
                "description": workload.description,
                "concurrency": concurrency,
                **summary(latencies, rows, wall),
                "errors": errors,
                "cpu_ms_per_query": round(cpu * 1000 / asked, 2),
                "rss_mb": round(peak_rss_mb(pid), 1),
            }
        )
    return rows_out


def baselines(
    workload: Workload, direct: Direct, single: Single, people: list[str]
) -> dict[str, dict[str, float]]:
    out = {}
    engines: dict[str, Callable[[str, str], int]] = {
        "direct": direct.answer,
        "single": single.answer,
    }
    for label, answer in engines.items():
        answer(workload.name, people[0])  # warm
        latencies, rows, wall = timed_serial(partial(answer, workload.name), people)
        out[label] = summary(latencies, rows, wall)
    return out


def ratios(row: dict[str, Any], base: dict[str, dict[str, float]]) -> dict[str, Any]:
    """How many times slower the broker is than each baseline (run at
    concurrency 1): by p50 at concurrency 1; by queries/s at more, the
    baseline's one thread against the broker's many."""
    if row["concurrency"] == 1:
        out = {k: row["p50_ms"] / v["p50_ms"] for k, v in base.items() if v["p50_ms"]}
        basis = "p50 broker / p50 baseline"
    else:
        out = {k: v["qps"] / row["qps"] for k, v in base.items() if row["qps"]}
        basis = "q/s baseline (1 thread) / q/s broker"
    return {"ratios": {k: round(v, 1) for k, v in out.items()}, "ratio_basis": basis}


def table(report: dict[str, Any]) -> str:
    """The results as a markdown table."""
    note = (
        "Ratios: broker p50 over baseline p50 at concurrency 1; at 32, the baseline's "
        "one-thread q/s over the broker's. Baselines run at concurrency 1.\n"
    )
    head = (
        "| workload | conc | n | p50 ms | p95 ms | p99 ms | q/s | rows/s | CPU ms/q | RSS MB "
        "| direct p50 | single p50 | broker/direct | broker/single | errors |"
    )
    lines = [note, head, "|" + "---|" * 15]
    for r in report["results"]:
        b, ratio = r["baselines"], r["ratios"]
        lines.append(
            f"| {r['workload']} | {r['concurrency']} | {r['queries']} | {r['p50_ms']:.1f} "
            f"| {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['qps']:.0f} | {r['rows_per_s']:.0f} "
            f"| {r['cpu_ms_per_query']:.1f} | {r['rss_mb']:.0f} | {b['direct']['p50_ms']:.2f} "
            f"| {b['single']['p50_ms']:.2f} | {ratio.get('direct')}x | {ratio.get('single')}x "
            f"| {r['errors']} |"
        )
    return "\n".join(lines)


def main(
    *, quick: bool, scale: float | None, out: Path | None, workloads: str, queries: int | None
) -> int:
    names = [w.strip().upper() for w in workloads.split(",") if w.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown or not names:
        from accord.errors import ConfigError

        raise ConfigError(
            f"unknown workload {', '.join(unknown) or '(none)'}; known: {', '.join(WORKLOADS)}"
        )
    # A SIGTERM ends the run through the context managers: the adapters and
    # the broker stop with it instead of outliving it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen_scale = scale if scale is not None else (0.002 if quick else 0.05)
    n = queries or (32 if quick else 640)
    report = run(scale=chosen_scale, queries=n, bulk_queries=max(n // 8, 32), names=names)
    m = report["machine"]
    print(
        f"scale {m['scale']}, {m['cpu_count']} cores, Python {m['python']}, {m['platform']}, "
        f"load {m['load_average_at_start']}; baselines at concurrency 1"
    )
    print(table(report))
    if out is not None:
        out.write_text(json.dumps(report, indent=2) + "\n")
    return 0
