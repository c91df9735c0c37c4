"""PostgreSQL scan throughput: the adapter against a direct psycopg read.

Loads about 1,000,000 rows of OMS's ``sentences`` (its own physical schema:
codes, text dates) into a scratch PostgreSQL database, then in the same run:

1. direct: psycopg 3, server-side cursor, ``fetchmany`` of the same physical
   columns (the floor: the driver's own speed);
2. adapter in-process: ``adapters.server.scan`` (translation, streaming,
   logical Arrow conversion, IPC encoding), no network;
3. adapter over gRPC: a real adapter server on loopback with mTLS, a client
   decoding every Arrow batch (what the broker sees).

    .venv/bin/python bench/pg_scan.py [--rows 1000000] [--dsn postgresql://...]

Prints rows/s of each (best of --repeat interleaved runs: the machine has
two cores shared with PostgreSQL) and the ratios against the direct read.
Drops the scratch database afterwards. Not a timed test.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pyarrow as pa

from accord import ipc, tls
from accord.federation import load_federation
from accord.revocation import RevocationList
from accord.v1 import adapter_pb2, adapter_pb2_grpc
from accord.workdir import DEFAULT_FEDERATION
from adapters.backends.postgres import PostgresBackend
from adapters.datagen import generate, write_postgres
from adapters.server import create_server, scan
from certs import init_pki

if TYPE_CHECKING:
    from collections.abc import Callable

SOURCE = "CA-CSC"
TABLE = "sentences"


def load(dsn_server: str, name: str, rows: int) -> str:
    federation = load_federation(DEFAULT_FEDERATION)
    sample = generate(federation, seed=3, scale=0.5)[SOURCE][TABLE]
    copies = -(-rows // sample.num_rows)
    big = pa.concat_tables([sample] * copies).slice(0, rows)
    with psycopg.connect(f"{dsn_server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{dsn_server}/{name}"
    started = time.perf_counter()
    write_postgres(federation, SOURCE, {TABLE: big}, dsn)
    print(f"loaded {big.num_rows:,} rows in {time.perf_counter() - started:.1f} s")
    return dsn


def direct(dsn: str, columns: list[str], physical_table: str) -> tuple[int, float]:
    cols = ", ".join(f'"{c}"' for c in columns)
    started = time.perf_counter()
    count = 0
    with psycopg.connect(dsn) as conn, conn.cursor(name="bench") as cursor:
        cursor.itersize = ipc.BATCH_ROWS
        cursor.execute(f'SELECT {cols} FROM "{physical_table}"')
        while rows := cursor.fetchmany(ipc.BATCH_ROWS):
            count += len(rows)
    return count, time.perf_counter() - started


def in_process(dsn: str, columns: list[str]) -> tuple[int, float]:
    federation = load_federation(DEFAULT_FEDERATION)
    backend = PostgresBackend(SOURCE, dsn)
    request = adapter_pb2.ScanRequest(table=TABLE, columns=columns, query_id="bench")
    started = time.perf_counter()
    count = 0
    for message in scan(federation, federation.sources[SOURCE], backend, request, "b:1"):
        if message.WhichOneof("payload") == "arrow_batch":
            count += ipc.batch_from_bytes(message.arrow_batch).num_rows
    elapsed = time.perf_counter() - started
    backend.close()
    return count, elapsed


def over_grpc(dsn: str, columns: list[str]) -> tuple[int, float]:
    federation = load_federation(DEFAULT_FEDERATION)
    backend = PostgresBackend(SOURCE, dsn)
    with tempfile.TemporaryDirectory() as tmp:
        pki = init_pki(Path(tmp), partners={}, adapters=[SOURCE])
        cert, key = pki.adapter(SOURCE)
        running = create_server(
            federation,
            federation.sources[SOURCE],
            backend,
            ca=pki.ca_cert(),
            cert=cert,
            key=key,
            broker_certs=[pki.broker_client()[0]],
            revocations=RevocationList(pki.crl(), pki.ca_cert()),
        )
        server, port = running.server, running.port
        client_cert, client_key = pki.broker_client()
        channel = tls.channel_credentials(pki.ca_cert(), client_cert, client_key)
        import grpc

        with grpc.secure_channel(f"localhost:{port}", channel, options=tls.CHANNEL_OPTIONS) as ch:
            stub = adapter_pb2_grpc.AdapterStub(ch)
            request = adapter_pb2.ScanRequest(table=TABLE, columns=columns, query_id="bench")
            started = time.perf_counter()
            count = 0
            for message in stub.Scan(request, timeout=600):
                if message.WhichOneof("payload") == "arrow_batch":
                    count += ipc.batch_from_bytes(message.arrow_batch).num_rows
            elapsed = time.perf_counter() - started
        server.stop(None)
    backend.close()
    return count, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each read, interleaved; the best of each is reported",
    )
    parser.add_argument(
        "--dsn",
        default="postgresql://postgres@127.0.0.1:5432",
        help="server DSN without a database name",
    )
    args = parser.parse_args()
    name = f"accord_bench_{uuid.uuid4().hex[:8]}"
    federation = load_federation(DEFAULT_FEDERATION)
    mapping = federation.sources[SOURCE].tables[TABLE]
    columns = [c for c in federation.tables[TABLE].columns if c in mapping.columns]
    physical = [mapping.columns[c].physical for c in columns]
    dsn = load(args.dsn, name, args.rows)
    readers: dict[str, Callable[[], tuple[int, float]]] = {
        "direct psycopg": lambda: direct(dsn, physical, mapping.physical_table),
        "adapter (in-process)": lambda: in_process(dsn, columns),
        "adapter (gRPC + mTLS)": lambda: over_grpc(dsn, columns),
    }
    results: dict[str, tuple[int, float]] = {}
    try:
        for _ in range(args.repeat):  # interleaved, so load on the machine hits all alike
            for label, read in readers.items():
                rows, elapsed = read()
                best = results.get(label)
                results[label] = (rows, min(elapsed, best[1]) if best else elapsed)
    finally:
        with psycopg.connect(f"{args.dsn}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    base_rows, base_time = results["direct psycopg"]
    print(f"{len(columns)} columns of {TABLE}; {base_rows:,} rows")
    print(f"{'read':<24} {'seconds':>8} {'rows/s':>12} {'vs direct':>10}")
    for label, (rows, elapsed) in results.items():
        assert rows == base_rows, (label, rows, base_rows)
        rate = rows / elapsed
        print(f"{label:<24} {elapsed:>8.2f} {rate:>12,.0f} {rate / (base_rows / base_time):>9.2f}x")


if __name__ == "__main__":
    main()
