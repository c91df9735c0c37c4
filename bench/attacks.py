"""What one hostile partner does to another: a victim partner's latency
during each attack, against its baseline in the same run.

Starts the demo federation (six adapters and the broker, synthetic data),
measures the victim's median and p95 latency with no attack, then during
each attack sent by another partner with a valid certificate, and prints
the attack's own statuses, the victim's statuses and the broker's RSS peak
(sampled every 20 ms). It measures; it does not assert: run it against any
revision to compare.

    .venv/bin/python bench/attacks.py [--scale 0.02] [--victim-runs 30]

The attacks (issue 11):

- breakers: six queries with ``timeout_ms=1``, then the victim's queries
- parse: a 23 KB pathological query (a 1,120-term OR), four at once
- cartesian: a join of offenders with itself and sentences (the result limit)
- slow readers: six clients open a large answer and never read it
- flood: 200 queries at concurrency 50
- cancellers: twenty clients at a time that cancel after the first rows,
  three rounds

Each attack gets a freshly started federation (the same data), so its RSS
peak is its own and not what an earlier attack left allocated. The broker is
killed if its RSS passes ``--max-rss-gb`` (the machine is shared); the row
then says so.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from accord import tls
from accord.federation import load_federation
from accord.v1 import broker_pb2, broker_pb2_grpc
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import write_federation_data
from app.commands import init_certs
from app.launcher import LocalFederation

if TYPE_CHECKING:
    from collections.abc import Callable

    Attack = Callable[[collections.Counter[str], threading.Event], None]

VICTIM = ("police", "investigation")
ATTACKER = ("crown_attorney", "bail_hearing")
VICTIM_SQL = "SELECT source, count(*) AS n FROM offenders GROUP BY source"
COUNT_SQL = "SELECT source, count(*) AS n FROM offenders GROUP BY source"
PARSE_SQL = "SELECT surname FROM offenders WHERE " + " OR ".join(
    f"surname = 's{i:04d}'" for i in range(1120)
)
CARTESIAN_SQL = (
    "SELECT a.surname, b.surname, s.offence_code FROM offenders a "
    "CROSS JOIN offenders b CROSS JOIN sentences s"
)
LARGE_SQL = "SELECT * FROM sentences"
ATTACK_TIMEOUT_S = 60.0


class Broker:
    """Raw stubs per partner, so every status (not only OK) is observed."""

    def __init__(self, workdir: Workdir, address: str) -> None:
        self.workdir = workdir
        self.address = address
        self._channels: list[grpc.Channel] = []

    def stub(self, partner: str) -> broker_pb2_grpc.BrokerStub:
        ca, cert, key = self.workdir.partner_credentials(partner)
        # A channel per stub: one stalled stream must not hold another's connection.
        channel = grpc.secure_channel(
            self.address, tls.channel_credentials(ca, cert, key), options=tls.CHANNEL_OPTIONS
        )
        self._channels.append(channel)
        return broker_pb2_grpc.BrokerStub(channel)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()


def request(purpose: str, sql: str, timeout_ms: int = 0) -> broker_pb2.QueryRequest:
    return broker_pb2.QueryRequest(
        sql=sql, purpose=purpose, case_ref="BENCH-1", timeout_ms=timeout_ms
    )


def run_query(stub: broker_pb2_grpc.BrokerStub, purpose: str, sql: str, timeout_ms: int = 0) -> str:
    """Reads a whole answer; its status name."""
    try:
        for _ in stub.Query(request(purpose, sql, timeout_ms), timeout=ATTACK_TIMEOUT_S):
            pass
    except grpc.RpcError as exc:
        return exc.code().name
    return "OK"


class RssPeak:
    """Samples a process's resident set size (VmRSS in /proc) in a thread;
    kills the process if it passes ``cap`` bytes."""

    def __init__(self, pid: int, cap: int) -> None:
        self.pid = pid
        self.cap = cap
        self.capped = False
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def rss(self) -> int:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except FileNotFoundError:  # killed at the cap
            return 0
        kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kb) * 1024

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.rss())
            if self.peak > self.cap and not self.capped:
                self.capped = True
                os.kill(self.pid, signal.SIGKILL)

    def __enter__(self) -> RssPeak:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    victim: collections.Counter[str] = field(default_factory=collections.Counter)
    attack: collections.Counter[str] = field(default_factory=collections.Counter)
    rss_before: int = 0
    rss_peak: int = 0
    capped: bool = False
    seconds: float = 0.0


def measure(
    broker: Broker,
    pid: int,
    name: str,
    attack: Attack | None,
    runs: int,
    cap: int,
) -> Result:
    """The victim's ``runs`` queries while ``attack`` runs in a thread (it
    is told to stop when they are done), and the broker's RSS peak."""
    result = Result(name)
    victim = broker.stub(VICTIM[0])
    run_query(victim, VICTIM[1], VICTIM_SQL)  # the channel is connected before timing
    done = threading.Event()
    started = time.perf_counter()
    with RssPeak(pid, cap) as rss:
        result.rss_before = rss.peak
        thread = None
        if attack is not None:
            thread = threading.Thread(target=attack, args=(result.attack, done), daemon=True)
            thread.start()
            time.sleep(0.2)  # the attack is under way before the victim asks
        for _ in range(runs):
            began = time.perf_counter()
            result.victim[run_query(victim, VICTIM[1], VICTIM_SQL)] += 1
            result.latencies.append(time.perf_counter() - began)
        done.set()
        if thread is not None:
            thread.join(ATTACK_TIMEOUT_S + 10)
        result.rss_peak, result.capped = rss.peak, rss.capped
    result.seconds = time.perf_counter() - started
    return result


def breakers(broker: Broker) -> Attack:
    def attack(statuses: collections.Counter[str], done: threading.Event) -> None:
        stub = broker.stub(ATTACKER[0])
        with ThreadPoolExecutor(6) as pool:
            for status in pool.map(
                lambda _: run_query(stub, ATTACKER[1], COUNT_SQL, timeout_ms=1), range(6)
            ):
                statuses[status] += 1

    return attack


def concurrent(broker: Broker, sql: str, total: int, workers: int) -> Attack:
    def attack(statuses: collections.Counter[str], done: threading.Event) -> None:
        stubs = [broker.stub(ATTACKER[0]) for _ in range(workers)]
        with ThreadPoolExecutor(workers) as pool:
            for status in pool.map(
                lambda i: run_query(stubs[i % workers], ATTACKER[1], sql), range(total)
            ):
                statuses[status] += 1

    return attack


def slow_readers(broker: Broker) -> Attack:
    """Six streams of a large answer that read the header and stop reading;
    held open until the victim is done, then cancelled."""

    def attack(statuses: collections.Counter[str], done: threading.Event) -> None:
        calls = []
        for _ in range(6):
            call = broker.stub(ATTACKER[0]).Query(
                request(ATTACKER[1], LARGE_SQL), timeout=ATTACK_TIMEOUT_S
            )
            calls.append(call)
        for call in calls:
            try:
                next(call)
                statuses["open, not reading"] += 1
            except grpc.RpcError as exc:
                statuses[exc.code().name] += 1
            except StopIteration:
                statuses["ended"] += 1
        done.wait(ATTACK_TIMEOUT_S)
        for call in calls:
            call.cancel()

    return attack


def cancellers(broker: Broker) -> Attack:
    """Clients that cancel once the first rows arrive: three rounds of twenty."""

    def one(stub: broker_pb2_grpc.BrokerStub) -> str:
        call = stub.Query(request(ATTACKER[1], LARGE_SQL), timeout=ATTACK_TIMEOUT_S)
        try:
            for message in call:
                if message.WhichOneof("payload") == "arrow_batch":
                    call.cancel()
                    return "cancelled after the first rows"
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                return "cancelled after the first rows"
            return exc.code().name
        return "OK (no rows)"

    def attack(statuses: collections.Counter[str], done: threading.Event) -> None:
        stubs = [broker.stub(ATTACKER[0]) for _ in range(20)]
        with ThreadPoolExecutor(20) as pool:
            for _ in range(3):
                for status in pool.map(one, stubs):
                    statuses[status] += 1

    return attack


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(results: list[Result]) -> None:
    base = results[0]
    base_median = statistics.median(base.latencies)
    base_p95 = percentile(base.latencies, 0.95)
    print(f"victim: {VICTIM[0]} running {VICTIM_SQL!r}; attacker: {ATTACKER[0]}")
    print(
        f"{'attack':<14}{'median':>10}{'ratio':>8}{'p95':>10}{'ratio':>8}"
        f"{'RSS before':>12}{'RSS peak':>10}  victim statuses / attack statuses"
    )
    for r in results:
        median, p95 = statistics.median(r.latencies), percentile(r.latencies, 0.95)
        victim = ", ".join(f"{n} {s}" for s, n in r.victim.most_common())
        attack = ", ".join(f"{n} {s}" for s, n in r.attack.most_common()) or "-"
        print(
            f"{r.name:<14}{median * 1000:>8.0f}ms{median / base_median:>7.1f}x"
            f"{p95 * 1000:>8.0f}ms{p95 / base_p95:>7.1f}x"
            f"{r.rss_before / 2**20:>10.0f}MB{r.rss_peak / 2**20:>8.0f}MB"
            f"  {victim} / {attack}{' (broker killed at the RSS cap)' if r.capped else ''}"
        )


ATTACKS: dict[str, Callable[[Broker], Attack] | None] = {
    "none": None,
    "breakers": breakers,
    "parse 23 KB": lambda b: concurrent(b, PARSE_SQL, total=4, workers=4),
    "cartesian": lambda b: concurrent(b, CARTESIAN_SQL, total=1, workers=1),
    "slow readers": slow_readers,
    "flood 200/50": lambda b: concurrent(b, COUNT_SQL, total=200, workers=50),
    "cancellers": cancellers,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=0.02, help="synthetic data scale")
    parser.add_argument("--victim-runs", type=int, default=30, help="victim queries per attack")
    parser.add_argument("--max-rss-gb", type=float, default=6.0, help="kill the broker beyond")
    parser.add_argument("--only", nargs="*", default=[], help="attacks to run (and none)")
    args = parser.parse_args()
    cap = int(args.max_rss_gb * 2**30)
    chosen = {n: a for n, a in ATTACKS.items() if n == "none" or not args.only or n in args.only}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Workdir(Path(tmp))
        init_certs(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES)
        write_federation_data(load_federation(DEFAULT_FEDERATION), workdir.path, scale=args.scale)
        for name, make in chosen.items():
            with LocalFederation(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES) as launcher:
                broker = Broker(workdir, launcher.broker_address)
                pid = launcher.processes["broker"].pid
                try:
                    attack = make(broker) if make is not None else None
                    results.append(measure(broker, pid, name, attack, args.victim_runs, cap))
                finally:
                    broker.close()
            print(f"  {name}: {results[-1].seconds:.1f} s", flush=True)
    print(f"{len(PARSE_SQL) / 1024:.0f} KB parse query; scale {args.scale}")
    report(results)


if __name__ == "__main__":
    main()
