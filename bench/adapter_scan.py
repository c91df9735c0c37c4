"""Adapter scan throughput per backend: rows/s of one Scan, in-process and over gRPC.

Loads about ``--rows`` rows of OMS's ``sentences`` (its own physical schema:
codes, text dates, CA-CSC) into a scratch SQLite file, PostgreSQL database
and MariaDB database, then, interleaved so the machine's load hits all alike:

1. in-process: ``adapters.server.scan`` (translation, driver, logical Arrow
   conversion, IPC encoding), no network;
2. over gRPC: a real adapter server on loopback with mTLS and a client
   decoding every Arrow batch (what the broker sees).

    .venv/bin/python -m bench.adapter_scan [--rows 1000000] [--backends sqlite,postgresql,mysql]
    .venv/bin/python -m bench.adapter_scan --rows 300000 --backends mysql --profile

``--profile`` runs one in-process scan per backend under pyinstrument and
prints where its time goes (pyinstrument must be installed; it is not a
dependency). Drops the scratch databases afterwards. Not a timed test.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pyarrow as pa

from accord import ipc, tls
from accord.federation import Backend as BackendConfig
from accord.federation import load_federation
from accord.revocation import RevocationList
from accord.v1 import adapter_pb2, adapter_pb2_grpc
from accord.workdir import DEFAULT_FEDERATION
from adapters.backends.registry import backend_type
from adapters.datagen import generate, write_mysql, write_postgres, write_sqlite
from adapters.server import create_server, scan
from certs import init_pki

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from accord.federation import Federation, Source
    from adapters.backends.base import Backend

SOURCE = "CA-CSC"
TABLE = "sentences"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
MARIADB_SERVER = "mysql://root@127.0.0.1:3306"


def big_sample(federation: Federation, rows: int) -> pa.Table:
    sample = generate(federation, seed=3, scale=0.5)[SOURCE][TABLE]
    copies = -(-rows // sample.num_rows)
    return pa.concat_tables([sample] * copies).slice(0, rows)


@contextlib.contextmanager
def loaded(kind: str, federation: Federation, data: pa.Table, tmp: Path) -> Iterator[Source]:
    """The CA-CSC source re-pointed at a scratch database of ``kind`` holding ``data``."""
    source = federation.sources[SOURCE]
    name = f"accord_scan_{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    if kind == "sqlite":
        write_sqlite(federation, SOURCE, {TABLE: data}, tmp / f"{name}.sqlite")
        yield replace(source, backend=BackendConfig(kind="sqlite", path=f"{name}.sqlite"))
        return
    if kind == "postgresql":
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            write_postgres(federation, SOURCE, {TABLE: data}, f"{PG_SERVER}/{name}")
            print(f"loaded postgresql in {time.perf_counter() - started:.1f} s")
            yield replace(source, backend=BackendConfig(kind=kind, dsn=f"{PG_SERVER}/{name}"))
        finally:
            with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        return
    import mysql.connector

    mysql_admin = mysql.connector.connect(host="127.0.0.1", port=3306, user="root", password="")
    cursor = mysql_admin.cursor()
    cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        write_mysql(federation, SOURCE, {TABLE: data}, f"{MARIADB_SERVER}/{name}")
        print(f"loaded mysql in {time.perf_counter() - started:.1f} s")
        yield replace(source, backend=BackendConfig(kind=kind, dsn=f"{MARIADB_SERVER}/{name}"))
    finally:
        cursor.execute(f"DROP DATABASE `{name}`")
        mysql_admin.close()


def request(columns: list[str]) -> adapter_pb2.ScanRequest:
    return adapter_pb2.ScanRequest(table=TABLE, columns=columns, query_id="bench")


def in_process(
    federation: Federation, source: Source, backend: Backend, columns: list[str]
) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    for message in scan(federation, source, backend, request(columns), "b:1", timeout_s=600):
        if message.WhichOneof("payload") == "arrow_batch":
            count += ipc.batch_from_bytes(message.arrow_batch).num_rows
    return count, time.perf_counter() - started


class OverGrpc:
    """One adapter server and one broker channel to it, kept across runs."""

    def __init__(
        self, federation: Federation, source: Source, backend: Backend, pki_dir: Path
    ) -> None:
        pki = init_pki(pki_dir, partners={}, adapters=[SOURCE])
        cert, key = pki.adapter(SOURCE)
        self.running = create_server(
            federation,
            source,
            backend,
            ca=pki.ca_cert(),
            cert=cert,
            key=key,
            broker_certs=[pki.broker_client()[0]],
            revocations=RevocationList(pki.crl(), pki.ca_cert()),
        )
        client_cert, client_key = pki.broker_client()
        credentials = tls.channel_credentials(pki.ca_cert(), client_cert, client_key)
        self.channel = grpc.secure_channel(
            f"localhost:{self.running.port}", credentials, options=tls.CHANNEL_OPTIONS
        )
        self.stub = adapter_pb2_grpc.AdapterStub(self.channel)

    def read(self, columns: list[str]) -> tuple[int, float]:
        started = time.perf_counter()
        count = 0
        for message in self.stub.Scan(request(columns), timeout=600):
            if message.WhichOneof("payload") == "arrow_batch":
                count += ipc.batch_from_bytes(message.arrow_batch).num_rows
        return count, time.perf_counter() - started

    def close(self) -> None:
        self.channel.close()
        self.running.server.stop(None)


def profile(label: str, read: Callable[[], Any]) -> None:
    from pyinstrument import Profiler  # optional: pip install pyinstrument

    profiler = Profiler(interval=0.0005)
    with profiler:
        read()
    print(f"--- {label}")
    print(profiler.output_text(unicode=False, color=False, show_all=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs; best reported")
    parser.add_argument("--backends", default="sqlite,postgresql,mysql")
    parser.add_argument("--profile", action="store_true", help="pyinstrument one scan each")
    args = parser.parse_args()
    federation = load_federation(DEFAULT_FEDERATION)
    mapping = federation.sources[SOURCE].tables[TABLE]
    columns = [c for c in federation.tables[TABLE].columns if c in mapping.columns]
    data = big_sample(federation, args.rows)
    kinds = args.backends.split(",")
    results: dict[str, tuple[int, float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        readers: dict[str, Callable[[], tuple[int, float]]] = {}
        for kind in kinds:
            source = stack.enter_context(loaded(kind, federation, data, work))
            backend = backend_type(kind).opener(source, work)
            stack.callback(backend.close)
            served = OverGrpc(federation, source, backend, work / f"pki-{kind}")
            stack.callback(served.close)
            readers[f"{kind} in-process"] = functools.partial(
                in_process, federation, source, backend, columns
            )
            readers[f"{kind} gRPC + mTLS"] = functools.partial(served.read, columns)
        if args.profile:
            for label, read in readers.items():
                if "in-process" in label:
                    profile(label, read)
            return
        for _ in range(args.repeat):
            for label, read in readers.items():
                cpu = time.process_time()
                rows, elapsed = read()
                cpu = time.process_time() - cpu
                best = results.get(label)
                if best is None or elapsed < best[1]:
                    results[label] = (rows, elapsed, cpu)
    print(f"{len(columns)} columns of {TABLE} (CA-CSC physical schema); best of {args.repeat}")
    # CPU: this process's (adapter and client alike), not the database's;
    # on a shared machine rows per CPU second varies less than rows/s.
    print(
        f"{'scan':<28} {'rows':>10} {'seconds':>8} {'rows/s':>12} {'CPU s':>6} {'rows/CPU s':>11}"
    )
    for label, (rows, elapsed, cpu) in results.items():
        assert rows == data.num_rows, (label, rows, data.num_rows)
        print(
            f"{label:<28} {rows:>10,} {elapsed:>8.2f} {rows / elapsed:>12,.0f} "
            f"{cpu:>6.2f} {rows / cpu:>11,.0f}"
        )


if __name__ == "__main__":
    main()
