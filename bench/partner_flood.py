"""One partner floods, another waits: admission on vs. off; and what
never-reading clients cost the broker.

Flood: starts the embedded federation (six adapters and the broker) with
every role's quota set very high (admission off), then times another
partner's queries alone and while partner ``police`` sends ``--flood``
queries at ``--concurrency`` (refused ones are sent again after the
RetryInfo delay, until every one is answered); then reloads the shipped policy (the default
quota: admission on, same processes, same data) and does it again.

Slow readers (``--slow-readers``): ``--readers`` clients each open a large
answer, read its header and stop; the broker's RSS (and its peak, VmHWM)
is sampled, with ``ACCORD_SLOW_READER_S`` set to ``--bound`` and then to
1000 s (no bound within the run), each in a federation of its own.

    .venv/bin/python bench/partner_flood.py [--flood 200] [--concurrency 50] [--heavy]
        [--police-quota 'concurrent_queries: 2']
    .venv/bin/python bench/partner_flood.py --slow-readers [--readers 6] [--bound 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from accord import tls
from accord.audit.search import search
from accord.client import BrokerClient, retry_after
from accord.federation import load_federation
from accord.v1 import broker_pb2, broker_pb2_grpc
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import write_federation_data
from app.commands import init_certs
from app.launcher import LocalFederation

OTHER_SQL = "SELECT source, count(*) AS n FROM offenders GROUP BY source"
#: What the flood sends: the other partner's kind of query, or a join that
#: keeps a core busy for ~0.3 s each.
LIGHT_SQL = "SELECT source, count(*) AS n FROM offenders GROUP BY source"
HEAVY_SQL = (
    "SELECT o.surname, count(*) AS n FROM offenders o JOIN releases r "
    "ON o.fps_number = r.fps_number GROUP BY o.surname ORDER BY n DESC"
)
LARGE_SQL = (
    "SELECT a.surname, a.given_names, b.surname AS s2 FROM offenders a, offenders b LIMIT 1500000"
)
CROWN = {"purpose": "bail_hearing", "case_ref": "BENCH-1"}
UNLIMITED = (
    "quota: {concurrent_queries: 100000, queries_per_second: 1000000, "
    "burst: 1000000, bytes_in_flight_mb: 1000000}\n"
)


def policies_copy(root: Path, unlimited: bool, police_quota: str = "") -> Path:
    target = root / "policies"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(DEFAULT_POLICIES, target)
    if unlimited:
        for role in (target / "roles").glob("*.yaml"):
            role.write_text(role.read_text() + UNLIMITED)
    elif police_quota:
        police = target / "roles" / "police.yaml"
        police.write_text(police.read_text() + f"quota: {{{police_quota}}}\n")
    return target


def channel(workdir: Workdir, address: str, partner: str) -> grpc.Channel:
    ca, cert, key = workdir.partner_credentials(partner)
    return grpc.secure_channel(
        address, tls.channel_credentials(ca, cert, key), options=tls.CHANNEL_OPTIONS
    )


def percentiles(latencies: list[float]) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"median {statistics.median(ms):7.1f} ms  p95 {p95:7.1f} ms  (n={len(ms)})"


def other_partner(client: BrokerClient, stop: threading.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        client.query(OTHER_SQL)
        latencies.append(time.perf_counter() - started)


def flood(workdir: Workdir, address: str, sql: str, n: int, concurrency: int) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    with channel(workdir, address, "police") as ch:
        stub = broker_pb2_grpc.BrokerStub(ch)
        request = broker_pb2.QueryRequest(sql=sql, purpose="investigation")

        def one(_: int) -> None:
            # A greedy client that still honours RetryInfo: every query is
            # answered in the end, the broker decides the pace.
            while True:
                try:
                    list(stub.Query(request, timeout=120))
                    key = "OK"
                except grpc.RpcError as exc:
                    key = exc.code().name
                    delay = retry_after(exc)
                with lock:
                    outcomes[key] = outcomes.get(key, 0) + 1
                if key != "RESOURCE_EXHAUSTED" or delay is None:
                    return
                time.sleep(delay)

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(n)))
    return outcomes


def measure_flood(launcher: LocalFederation, workdir: Workdir, args: Any, label: str) -> None:
    ca, cert, key = workdir.partner_credentials("ontario_courts_crown")
    with BrokerClient(launcher.broker_address, ca, cert, key, **CROWN) as client:
        for _ in range(5):
            client.query(OTHER_SQL)  # warm
        alone = []
        for _ in range(40):
            started = time.perf_counter()
            client.query(OTHER_SQL)
            alone.append(time.perf_counter() - started)
        during: list[float] = []
        stop = threading.Event()
        waiter = threading.Thread(target=other_partner, args=(client, stop, during))
        waiter.start()
        started = time.perf_counter()
        sql = HEAVY_SQL if args.heavy else LIGHT_SQL
        outcomes = flood(workdir, launcher.broker_address, sql, args.flood, args.concurrency)
        elapsed = time.perf_counter() - started
        stop.set()
        waiter.join()
    print(f"[{label}] other partner alone:        {percentiles(alone)}")
    print(f"[{label}] other partner during flood: {percentiles(during)}")
    print(
        f"[{label}] flood: {args.flood} queries at {args.concurrency} "
        f"in {elapsed:.1f} s: {outcomes}"
    )


def reload(launcher: LocalFederation, workdir: Workdir) -> None:
    def reloads() -> int:
        return sum(1 for r in search(workdir.audit_dir()) if r.get("event") == "policy_reload")

    seen = reloads()
    launcher.processes["broker"].send_signal(signal.SIGHUP)
    while reloads() == seen:
        time.sleep(0.05)


def run_flood(args: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        workdir = Workdir(root / "work")
        policies = policies_copy(root, unlimited=True)
        init_certs(workdir, DEFAULT_FEDERATION, policies)
        write_federation_data(load_federation(DEFAULT_FEDERATION), workdir.path, scale=args.scale)
        with LocalFederation(workdir, DEFAULT_FEDERATION, policies) as launcher:
            measure_flood(launcher, workdir, args, "admission off")
            # the shipped policy (default quotas), or police held to --police-quota
            policies_copy(root, unlimited=False, police_quota=args.police_quota)
            reload(launcher, workdir)
            measure_flood(launcher, workdir, args, "admission on ")


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        fields[name] = rest.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def run_slow_readers(args: Any) -> None:
    for bound in (args.bound, 1000.0):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            workdir = Workdir(root / "work")
            policies = policies_copy(root, unlimited=False)
            init_certs(workdir, DEFAULT_FEDERATION, policies)
            write_federation_data(
                load_federation(DEFAULT_FEDERATION), workdir.path, scale=args.scale
            )
            os.environ["ACCORD_SLOW_READER_S"] = str(bound)
            with LocalFederation(workdir, DEFAULT_FEDERATION, policies) as launcher:
                pid = launcher.processes["broker"].pid
                idle, _ = rss_kb(pid)
                channels, calls = [], []
                partners = ["crown_attorney", "ontario_courts_crown", "quebec_dpcp"]
                started = time.monotonic()
                for i in range(args.readers):
                    ch = channel(workdir, launcher.broker_address, partners[i % 3])
                    stub = broker_pb2_grpc.BrokerStub(ch)
                    call = stub.Query(
                        broker_pb2.QueryRequest(
                            sql=LARGE_SQL, purpose=CROWN["purpose"], case_ref=CROWN["case_ref"]
                        ),
                        timeout=120,
                    )
                    next(call)  # the header: the answer is under way; then no more reads
                    channels.append(ch)
                    calls.append(call)
                samples = []
                while time.monotonic() - started < args.watch:
                    samples.append((time.monotonic() - started, *rss_kb(pid)))
                    time.sleep(0.5)
                slow = sum(
                    1 for r in search(workdir.audit_dir()) if "too slowly" in r.get("error", "")
                )
                _, peak = rss_kb(pid)
                for call in calls:
                    call.cancel()
                for ch in channels:
                    ch.close()
            label = f"ACCORD_SLOW_READER_S={bound:g}"
            print(
                f"[{label}] {args.readers} never-reading clients: "
                f"broker RSS idle {idle / 1024:.0f} MB, "
                f"peak (VmHWM) {peak / 1024:.0f} MB; answers cancelled as too slow: {slow}"
            )
            marks = [s for s in samples if int(s[0] * 2) % 4 == 0]
            print(
                "    t(s)  RSS(MB): " + "  ".join(f"{t:4.1f}:{r / 1024:5.0f}" for t, r, _ in marks)
            )
    os.environ.pop("ACCORD_SLOW_READER_S", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flood", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--heavy", action="store_true", help="flood with a CPU-heavy join")
    parser.add_argument(
        "--police-quota", default="", help="e.g. 'concurrent_queries: 2' (default: the shipped)"
    )
    parser.add_argument("--slow-readers", action="store_true")
    parser.add_argument("--readers", type=int, default=6)
    parser.add_argument("--bound", type=float, default=2.0)
    parser.add_argument("--watch", type=float, default=12.0, help="seconds of RSS samples")
    args = parser.parse_args()
    if args.slow_readers:
        run_slow_readers(args)
    else:
        run_flood(args)


if __name__ == "__main__":
    main()
