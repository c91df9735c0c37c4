"""Latency of ``GetOffenderHistory`` by FPS number and by name.

A whole federation on loopback as ``accord demo`` runs it (six adapter
processes on their SQLite files, the broker process, real mTLS), the
synthetic data at ``--scale``; a Crown attorney asks for the histories of
people drawn from the data, by FPS number and by surname, given names and
birth date, one at a time. Reported: p50 and p95 of the client's round trip
and of the broker's own ``elapsed_ms``, and how many parts a history ran.

    .venv/bin/python bench/history_latency.py [--scale 0.005] [--runs 100]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from accord.client import BrokerClient
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import generate, write_federation_data
from app.commands import init_certs
from app.launcher import LocalFederation

if TYPE_CHECKING:
    from collections.abc import Callable

    from accord.v1 import broker_pb2


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(label: str, wall: list[float], tail: str = "") -> None:
    print(
        f"{label:<14} n={len(wall):<4} round trip p50 {percentile(wall, 0.5):6.1f} ms "
        f"p95 {percentile(wall, 0.95):6.1f} ms {tail}"
    )


def cpu_ms(processes: list[psutil.Process]) -> float:
    """User + system CPU of ``processes`` so far, in ms."""
    return float(sum(t.user + t.system for t in (p.cpu_times() for p in processes)) * 1000)


def timed(
    ask: Callable[[dict[str, Any]], Any],
    sample: list[dict[str, Any]],
    broker: psutil.Process,
    adapters: list[psutil.Process],
) -> tuple[list[float], list[Any], str]:
    """Each answer's round trip (ms), the answers, and the CPU per answer
    (ms) of the broker and of the six adapters together: the measures that
    hold on a loaded machine."""
    wall, answers = [], []
    before = cpu_ms([broker]), cpu_ms(adapters)
    for row in sample:
        t0 = time.perf_counter()
        answers.append(ask(row))
        wall.append((time.perf_counter() - t0) * 1000)
    n = max(len(sample), 1)
    spent = (cpu_ms([broker]) - before[0]) / n, (cpu_ms(adapters) - before[1]) / n
    return wall, answers, f"broker CPU {spent[0]:5.1f} ms, adapters {spent[1]:5.1f} ms each"


def measure(
    client: BrokerClient,
    sample: list[dict[str, Any]],
    broker: psutil.Process,
    adapters: list[psutil.Process],
) -> None:
    for row in sample[:5]:  # warm the connections and caches
        client.history(fps_number=row["fps_number"])
    wall, _, cpu = timed(
        lambda r: client.query(
            "SELECT surname, given_names, status FROM offenders "
            f"WHERE fps_number = '{r['fps_number']}'"
        ),
        sample,
        broker,
        adapters,
    )
    report("point query", wall, f"| {cpu} (one ordinary query over six sources, for reference)")
    asks: dict[str, Callable[[dict[str, Any]], broker_pb2.HistoryResponse]] = {
        "by FPS number": lambda r: client.history(fps_number=r["fps_number"]),
        "by name": lambda r: client.history(
            surname=r["surname"],
            given_names=r["given_names"],
            birth_date=r["birth_date"].isoformat(),
        ),
    }
    for label, ask in asks.items():
        wall, histories, cpu = timed(ask, sample, broker, adapters)
        server = [h.elapsed_ms for h in histories]
        parts = statistics.mean(len(h.parts) for h in histories)
        found = sum(h.found for h in histories)
        report(
            label,
            wall,
            f"| broker p50 {percentile(server, 0.5):6.1f} ms p95 {percentile(server, 0.95):6.1f} "
            f"ms | {cpu} | {parts:.1f} parts, {found} found",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--scale", type=float, default=0.005, help="0.005: the test federation")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    federation = load_federation(DEFAULT_FEDERATION)
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as tmp:
        workdir = Workdir(Path(tmp))
        init_certs(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES)
        started = time.monotonic()
        write_federation_data(federation, workdir.path, seed=args.seed, scale=args.scale)
        generated = generate(federation, seed=args.seed, scale=args.scale)
        files = sum(t["offenders"].num_rows for t in generated.values())
        print(
            f"scale {args.scale}: {files} person files in 6 systems "
            f"({time.monotonic() - started:.0f} s to generate); load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        people = [
            row
            for tables in generated.values()
            for row in tables["offenders"].to_pylist()
            if row["fps_number"] and row["given_names"] and row["birth_date"]
        ]
        sample = random.Random(args.seed).sample(people, min(args.runs, len(people)))
        with LocalFederation(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES) as launcher:
            ca, cert, key = workdir.partner_credentials("crown_attorney")
            with BrokerClient(
                launcher.broker_address, ca, cert, key, purpose="bail_hearing", case_ref="R-BENCH-1"
            ) as client:
                children = launcher.children
                adapters = [psutil.Process(c.pid) for n, c in children.items() if n != "broker"]
                measure(client, sample, psutil.Process(children["broker"].pid), adapters)


if __name__ == "__main__":
    main()
