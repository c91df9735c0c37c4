"""What auditing costs a query.

Starts the embedded federation's adapters, then two brokers in this process
on the same adapters, policy and pipeline settings: one writing the audit
trail (one fsync-ed, hash-chained record per query, signed checkpoints) to
the work dir's disk, one with no trail. The same queries alternate between
the two, so both see the same machine load.

    .venv/bin/python bench/audit_overhead.py [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from accord import tls
from accord.audit.keys import load_or_create_signing_key
from accord.audit.log import AuditLog
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import write_federation_data
from app.commands import init_certs
from app.launcher import LocalFederation
from bench.alternating import Timings, alternate
from broker.fanout import AdapterClients
from broker.pipeline import QueryPipeline
from broker.policy.store import PolicySet
from broker.server import create_server

#: (query name, broker name) -> the round trips measured, in seconds

QUERIES = {
    "point lookup": "SELECT surname, given_names FROM offenders WHERE fps_number = '100042B'",
    "count by source": "SELECT source, count(*) AS n FROM offenders GROUP BY source",
}


async def measure(workdir: Workdir, launcher: LocalFederation, runs: int) -> Timings:
    federation = load_federation(DEFAULT_FEDERATION).with_endpoints(
        {c: (a,) for c, a in launcher.adapter_addresses.items()}
    )
    policy = PolicySet.load(DEFAULT_POLICIES, federation)
    pki = workdir.pki
    client_cert, client_key = pki.broker_client()
    server_cert, server_key = pki.broker_server()
    audit = AuditLog(
        workdir.path / "bench-audit", load_or_create_signing_key(workdir.path / "bench-audit.key")
    )
    brokers = {}
    for name, trail in (("audited", audit), ("no audit", None)):
        clients = AdapterClients(federation, pki.ca_cert(), client_cert, client_key)
        pipeline = QueryPipeline(federation, clients, policy, workdir.mask_secret())
        server, port, readiness = await create_server(
            pipeline, tls.server_credentials(pki.ca_cert(), server_cert, server_key), audit=trail
        )
        brokers[name] = (server, port, readiness, clients)
    partner = workdir.partner_credentials("crown_attorney")

    ports = {name: port for name, (_, port, _, _) in brokers.items()}
    timings = await asyncio.to_thread(alternate, ports, partner, QUERIES, runs, case_ref="BENCH-1")
    for server, _, readiness, clients in brokers.values():
        await readiness.stop()
        await server.stop(None)
        await clients.close()
    audit.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:  # the repository's disk
        workdir = Workdir(Path(tmp))
        init_certs(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES)
        write_federation_data(load_federation(DEFAULT_FEDERATION), workdir.path, scale=0.01)
        with LocalFederation(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES) as launcher:
            timings = asyncio.run(measure(workdir, launcher, args.runs))
    print(f"{args.runs} runs per query and broker, alternating; times are client round trips")
    print(f"{'query':<18}{'no audit':>12}{'audited':>12}{'overhead':>12}{'ratio':>8}")
    for q in QUERIES:
        plain = statistics.median(timings[q, "no audit"]) * 1000
        audited = statistics.median(timings[q, "audited"]) * 1000
        print(
            f"{q:<18}{plain:>10.2f}ms{audited:>10.2f}ms{audited - plain:>+10.2f}ms"
            f"{audited / plain:>7.2f}x"
        )


if __name__ == "__main__":
    main()
