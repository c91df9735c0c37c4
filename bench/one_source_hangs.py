"""Time to answer when one of six sources hangs.

Starts the embedded federation (six adapters and the broker), replaces one
adapter with one that never answers, and times partial-answer queries with a
given client deadline against the same queries when all six answer.

    .venv/bin/python bench/one_source_hangs.py [--timeout 3] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from accord.client import BrokerClient
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import write_federation_data
from app.commands import init_certs
from app.launcher import LocalFederation

SQL = "SELECT source, count(*) FROM offenders GROUP BY source"
HANGING = "BC"


def timed(client: BrokerClient, timeout: float) -> tuple[float, int]:
    started = time.perf_counter()
    result = client.query(SQL, timeout=timeout, allow_partial=True)
    return time.perf_counter() - started, result.table.num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Workdir(Path(tmp))
        init_certs(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES)
        write_federation_data(load_federation(DEFAULT_FEDERATION), workdir.path, scale=0.01)
        with LocalFederation(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES) as launcher:
            ca, cert, key = workdir.partner_credentials("crown_attorney")
            client = BrokerClient(
                launcher.broker_address, ca, cert, key, purpose="bail_hearing", case_ref="BENCH-1"
            )
            healthy = [timed(client, args.timeout) for _ in range(args.runs)]
            port = launcher.adapter_addresses[HANGING].rsplit(":", 1)[1]
            launcher.processes[f"adapter-{HANGING.lower()}"].kill()
            fake = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.fake_adapter",
                    "--mode",
                    "hang",
                    "--source",
                    HANGING,
                    "--workdir",
                    str(workdir.path),
                    "--port",
                    port,
                    "--port-file",
                    str(workdir.run / "fake.addr"),
                ]
            )
            try:
                while not (workdir.run / "fake.addr").exists():
                    time.sleep(0.05)
                hanging = [timed(client, args.timeout) for _ in range(args.runs)]
            finally:
                fake.kill()
                client.close()
    print(f"client deadline {args.timeout:.1f} s, {args.runs} runs each")
    print(
        f"all six answer:   median {statistics.median(t for t, _ in healthy):.3f} s, "
        f"{healthy[0][1]} sources in the answer"
    )
    print(
        f"{HANGING} hangs:          median {statistics.median(t for t, _ in hanging):.3f} s, "
        f"{hanging[0][1]} sources in the answer (partial)"
    )


if __name__ == "__main__":
    main()
