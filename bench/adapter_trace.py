"""What the adapters' own trails (``adapters.trace``) cost a query.

Two sets of the embedded federation's six adapters in this process, on the
same SQLite files: one writing each adapter's trail (two fsync-ed,
hash-chained records per scan, signed checkpoints) to the work dir's disk,
one with no trail. A broker over each (both writing the broker's own trail,
as in production); the same queries alternate between the two, so both see
the same machine load. A point query scans all six sources.

    .venv/bin/python bench/adapter_trace.py [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

from accord import tls
from accord.audit.keys import load_or_create_signing_key
from accord.audit.log import AuditLog
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.backends import open_backend
from adapters.datagen import write_federation_data
from adapters.server import create_server as create_adapter
from adapters.trace import ScanTrace
from app.commands import init_certs
from app.serve import open_adapter_audit
from bench.alternating import Timings, alternate
from broker.fanout import AdapterClients
from broker.pipeline import QueryPipeline
from broker.policy.store import PolicySet
from broker.server import create_server

#: (query name, variant) -> the round trips measured, in seconds

QUERIES = {
    "point lookup": "SELECT surname, given_names FROM offenders WHERE fps_number = '100042B'",
    "count by source": "SELECT source, count(*) AS n FROM offenders GROUP BY source",
}
VARIANTS = ("no adapter trail", "adapter trails")


def adapters(workdir: Workdir, traced: bool) -> tuple[dict[str, str], list[Any], list[AuditLog]]:
    """Six adapters on loopback (port 0), each with its trail or none."""
    federation = load_federation(DEFAULT_FEDERATION)
    pki = workdir.pki
    addresses, servers, trails = {}, [], []
    for code, source in federation.sources.items():
        trace = None
        if traced:
            trail = open_adapter_audit(workdir, code, f"adapter-{code}@bench")
            trails.append(trail)
            trace = ScanTrace(trail, code)
        cert, key = pki.adapter(code)
        running = create_adapter(
            federation,
            source,
            open_backend(source, workdir.path),
            ca=pki.ca_cert(),
            cert=cert,
            key=key,
            broker_certs=[pki.broker_client()[0]],
            trace=trace,
        )
        server, port = running.server, running.port
        servers.append(server)
        addresses[code] = f"localhost:{port}"
    return addresses, servers, trails


async def measure(workdir: Workdir, runs: int) -> Timings:
    pki = workdir.pki
    client_cert, client_key = pki.broker_client()
    server_cert, server_key = pki.broker_server()
    brokers, cleanup = {}, []
    for variant in VARIANTS:
        addresses, servers, trails = adapters(workdir, traced=variant == "adapter trails")
        federation = load_federation(DEFAULT_FEDERATION).with_endpoints(
            {c: (a,) for c, a in addresses.items()}
        )
        policy = PolicySet.load(DEFAULT_POLICIES, federation)
        name = variant.replace(" ", "-")
        audit = AuditLog(
            workdir.path / f"broker-{name}",
            load_or_create_signing_key(workdir.path / f"broker-{name}.key"),
        )
        clients = AdapterClients(federation, pki.ca_cert(), client_cert, client_key)
        pipeline = QueryPipeline(federation, clients, policy, workdir.mask_secret())
        server, port, readiness = await create_server(
            pipeline, tls.server_credentials(pki.ca_cert(), server_cert, server_key), audit=audit
        )
        brokers[variant] = port
        cleanup.append((server, readiness, clients, audit, servers, trails))
    partner = workdir.partner_credentials("crown_attorney")

    timings = await asyncio.to_thread(alternate, brokers, partner, QUERIES, runs, case_ref="B-1")
    for server, readiness, clients, audit, servers, trails in cleanup:
        await readiness.stop()
        await server.stop(None)
        await clients.close()
        audit.close()
        for adapter in servers:
            adapter.stop(None)
        for trail in trails:
            trail.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:  # the repository's disk
        workdir = Workdir(Path(tmp))
        init_certs(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES)
        write_federation_data(load_federation(DEFAULT_FEDERATION), workdir.path, scale=0.01)
        timings = asyncio.run(measure(workdir, args.runs))
    plain_name, traced_name = VARIANTS
    print(f"{args.runs} runs per query and variant, alternating; client round trips")
    print(
        f"{'query':<18}{'p50 before':>12}{'p50 after':>12}{'overhead':>12}"
        f"{'p90 before':>12}{'p90 after':>12}"
    )
    for q in QUERIES:
        plain = statistics.median(timings[q, plain_name]) * 1000
        traced = statistics.median(timings[q, traced_name]) * 1000
        p90s = [statistics.quantiles(timings[q, v], n=10)[-1] * 1000 for v in VARIANTS]
        print(
            f"{q:<18}{plain:>10.2f}ms{traced:>10.2f}ms{traced - plain:>+10.2f}ms"
            f"{p90s[0]:>10.2f}ms{p90s[1]:>10.2f}ms"
        )


if __name__ == "__main__":
    main()
