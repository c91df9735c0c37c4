"""What reading gRPC core's log costs the broker (accord.corelog).

Starts two `accord serve broker` processes on copies of one work dir (no
adapters: a handshake needs none): one as shipped, reading core's stderr
through a pipe with the handshaker tracer on; one with the capture switched
off (the internal handoff variable set empty, so it neither re-executes nor
reads). The same connections alternate between the two, so both see the
same machine load. Each connection is a new mTLS channel and one health
check (a full handshake: where the tracer writes); a refused one uses a
certificate from another CA. Prints the client's median and p95 per
connection and each broker's CPU seconds over the run.

    PYTHONPATH=. .venv/bin/python bench/core_log_capture.py [--connections 300]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from accord import tls
from accord.corelog import HANDOFF_ENV
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from app.commands import init_certs
from tests.pki import create_rogue_ca_client


def start(workdir: Workdir, capture: bool) -> tuple[subprocess.Popen[bytes], str]:
    port_file = workdir.run / "broker.addr"
    env = dict(os.environ)
    if not capture:
        env[HANDOFF_ENV] = ""  # present but empty: no re-exec, no reader
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "broker", "--workdir", str(workdir.path),
         "--federation", str(DEFAULT_FEDERATION), "--policies", str(DEFAULT_POLICIES),
         "--port", "0", "--port-file", str(port_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not port_file.is_file():
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit("a broker did not start")
        time.sleep(0.05)
    return process, port_file.read_text().strip()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect(address: str, credentials: grpc.ChannelCredentials) -> float:
    started = time.perf_counter()
    # A refused connection fails its check, as it should.
    with grpc.secure_channel(address, credentials) as channel, contextlib.suppress(grpc.RpcError):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="accord-corelog-") as tmp:
        base = Workdir(Path(tmp) / "base")
        init_certs(base, DEFAULT_FEDERATION, DEFAULT_POLICIES)
        _, rogue_cert, rogue_key = create_rogue_ca_client(Path(tmp) / "rogue", "police", "X")
        ca = base.pki.ca_cert()
        cert, key = base.pki.partner("police")
        kinds = {
            "accepted": tls.channel_credentials(ca, cert, key),
            "refused": tls.channel_credentials(ca, rogue_cert, rogue_key),
        }
        brokers = {}
        for name, capture in (("captured", True), ("plain", False)):
            workdir = Workdir(Path(tmp) / name)
            shutil.copytree(base.path / "certs", workdir.path / "certs")
            brokers[name] = start(workdir, capture)
        try:
            for kind, credentials in kinds.items():
                times: dict[str, list[float]] = {name: [] for name in brokers}
                cpu = {name: cpu_seconds(p.pid) for name, (p, _) in brokers.items()}
                for _ in range(args.connections):
                    for name, (_, address) in brokers.items():
                        times[name].append(connect(address, credentials))
                for name, (process, _) in brokers.items():
                    spent = cpu_seconds(process.pid) - cpu[name]
                    ms = sorted(t * 1000 for t in times[name])
                    print(
                        f"{kind:8} {name:8} median {statistics.median(ms):6.2f} ms  "
                        f"p95 {ms[int(len(ms) * 0.95)]:6.2f} ms  broker CPU {spent:5.2f} s "
                        f"for {args.connections} connections"
                    )
        finally:
            for process, _ in brokers.values():
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)


if __name__ == "__main__":
    main()
