"""Where the broker's CPU goes under W1 (point lookups): py-spy samples the
broker process of a local federation while clients ask W1 questions, and
this prints the functions holding the most samples (inclusive and self),
with the broker's CPU ms per query over the sampled window.

    .venv/bin/python bench/profile_w1.py [--seconds 20] [--concurrency 1]
        [--workload W1-crown] [--scale 0.01] [--raw /tmp/w1.txt]

Findings go to bench/results/profile-w1.md; the raw samples (``--raw``,
py-spy's collapsed stacks, flamegraph.pl input) are not committed.
"""

from __future__ import annotations

import argparse
import collections
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from accord.client import BrokerClient
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import generate, write_federation_data
from app.commands import init_certs
from app.launcher import LocalFederation
from bench.harness import bench_policies, cpu_seconds
from bench.workloads import WORKLOADS

LINE = re.compile(r":\d+\)")


def summarize(raw: Path, top: int) -> str:
    """Inclusive and self sample counts per function from collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        n = int(count)
        total += n
        frames = [LINE.sub(")", f) for f in stack.split(";")[1:]]  # [0] is the thread
        for frame in set(frames):
            inclusive[frame] += n
        if frames:
            own[frames[-1]] += n
    out = [f"{total} samples"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        out.append(f"--- {title}")
        out += [f"{c:6d} {100 * c / total:5.1f}%  {k[:140]}" for k, c in counter.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--workload", default="W1-crown")
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument(
        "--process", default="broker", help="the process sampled: broker, adapter-bc, ..."
    )
    args = parser.parse_args()
    workload = next(w for ws in WORKLOADS.values() for w in ws if w.name == args.workload)
    federation = load_federation(DEFAULT_FEDERATION)
    with tempfile.TemporaryDirectory(prefix="accord-profile-") as tmp:
        policies = bench_policies(DEFAULT_POLICIES, Path(tmp) / "policies", {workload.partner})
        workdir = Workdir(Path(tmp) / "work")
        init_certs(workdir, DEFAULT_FEDERATION, policies)
        write_federation_data(federation, workdir.path, seed=11, scale=args.scale)
        people = sorted(
            fps
            for tables in generate(federation, seed=11, scale=args.scale).values()
            for fps in tables["offenders"].column("fps_number").to_pylist()
            if fps
        )
        raw = args.raw or Path(tmp) / "w1.txt"
        with LocalFederation(workdir, DEFAULT_FEDERATION, policies) as launcher:
            pid = launcher.children[args.process].pid
            creds = workdir.partner_credentials(workload.partner)
            clients = [
                BrokerClient(
                    launcher.broker_address,
                    *creds,
                    purpose=workload.purpose,
                    case_ref=workload.case_ref,
                )
                for _ in range(args.concurrency)
            ]
            for client in clients:  # warm: channels, views, caches
                for fps in people[:20]:
                    workload.broker(client, fps)
            stop = threading.Event()
            asked = [0] * args.concurrency

            def ask(i: int) -> None:
                rng = random.Random(i)
                while not stop.is_set():
                    workload.broker(clients[i], rng.choice(people))
                    asked[i] += 1

            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(args.seconds),
                    "--format",
                    "raw",
                    "--threads",
                    "--nonblocking",
                    "-o",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
            threads = [threading.Thread(target=ask, args=(i,)) for i in range(args.concurrency)]
            for thread in threads:
                thread.start()
            spy.wait()
            stop.set()
            for thread in threads:
                thread.join()
            cpu, wall, n = cpu_seconds(pid) - cpu0, time.perf_counter() - wall0, sum(asked)
            for client in clients:
                client.close()
        found = summarize(raw, args.top)
    print(
        f"{workload.name} at concurrency {args.concurrency}: {n} queries in {wall:.1f} s "
        f"({n / wall:.0f} q/s), {args.process} CPU {cpu * 1000 / max(n, 1):.1f} ms/query"
    )
    print(found)


if __name__ == "__main__":
    main()
