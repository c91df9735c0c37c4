"""The *protocol floor*: an echo broker fanning out to echo adapters.

What the broker's answer to a point lookup costs with no SQL, no policy,
no database and no audit: the same mTLS gRPC (the federation's certificates,
the broker's server pair, its client pair towards the adapters, each
adapter's own pair and name), the same proto messages, and Arrow IPC
batches of the shape of W1's answer. Like the real federation, each echo
adapter is its own process and so is the echo broker.

An echo adapter answers every ``Scan`` with a header, one batch of the
columns asked (``rows`` rows of text, the first adapter one row, the others
none: a point lookup finds the person in one system) and a trailer. The
echo broker answers every ``Query`` (and ``GetCatalog``, empty, the
harness's first call on a channel) by scanning each adapter at once,
decoding their batches, concatenating them into one table and sending it
back as a header, one batch and a trailer. ``python -m bench.floor adapter
...`` and ``... broker ...`` run one of each and print ``PORT n`` once
listening; :class:`Floor` starts them all and stops them.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import grpc
import pyarrow as pa

from accord import ipc, tls
from accord.v1 import adapter_pb2, adapter_pb2_grpc, broker_pb2, broker_pb2_grpc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from accord.federation import Federation
    from accord.workdir import Workdir

#: The columns and table of W1's scans (bench/workloads.py POINT_COLUMNS and
#: the FPS number its predicate names).
FLOOR_TABLE = "offenders"
FLOOR_COLUMNS = ("surname", "given_names", "status", "fps_number")
FLOOR_ANSWER = ("surname", "given_names", "status")


def echo_batch(columns: Sequence[str], rows: int) -> pa.RecordBatch:
    return pa.record_batch(
        [pa.array([f"{c}-{i}" for i in range(rows)], pa.string()) for c in columns],
        names=list(columns),
    )


class EchoAdapter(adapter_pb2_grpc.AdapterServicer):
    def __init__(self, source: str, rows: int) -> None:
        self.source, self.rows = source, rows

    async def Scan(
        self, request: adapter_pb2.ScanRequest, context: Any
    ) -> AsyncIterator[adapter_pb2.ScanResponse]:
        batch = echo_batch(request.columns, self.rows)
        yield adapter_pb2.ScanResponse(
            header=adapter_pb2.ScanHeader(
                source=self.source, arrow_schema=ipc.schema_to_bytes(batch.schema)
            )
        )
        yield adapter_pb2.ScanResponse(arrow_batch=ipc.batch_to_bytes(batch))
        yield adapter_pb2.ScanResponse(trailer=adapter_pb2.ScanTrailer())


class EchoBroker(broker_pb2_grpc.BrokerServicer):
    def __init__(self, stubs: dict[str, adapter_pb2_grpc.AdapterStub]) -> None:
        self.stubs = stubs
        self.number = 0

    async def _scan(self, stub: adapter_pb2_grpc.AdapterStub, query_id: str) -> pa.Table:
        request = adapter_pb2.ScanRequest(
            table=FLOOR_TABLE, columns=FLOOR_COLUMNS, query_id=query_id
        )
        schema: pa.Schema | None = None
        batches = []
        async for message in stub.Scan(request, timeout=30):
            kind = message.WhichOneof("payload")
            if kind == "header":
                schema = ipc.schema_from_bytes(message.header.arrow_schema)
            elif kind == "arrow_batch":
                batches.append(ipc.batch_from_bytes(message.arrow_batch, schema))
        return pa.Table.from_batches(batches, schema=schema)

    async def GetCatalog(
        self, request: broker_pb2.CatalogRequest, context: Any
    ) -> broker_pb2.CatalogResponse:
        return broker_pb2.CatalogResponse()  # the harness's warm-up call: nothing to list

    async def Query(
        self, request: broker_pb2.QueryRequest, context: Any
    ) -> AsyncIterator[broker_pb2.QueryResponse]:
        self.number += 1
        query_id = f"floor-{self.number}"
        parts = await asyncio.gather(*(self._scan(s, query_id) for s in self.stubs.values()))
        table = pa.concat_tables(parts).select(list(FLOOR_ANSWER))
        batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
        yield broker_pb2.QueryResponse(
            header=broker_pb2.QueryHeader(
                query_id=query_id, arrow_schema=ipc.schema_to_bytes(table.schema)
            )
        )
        if batch is not None:
            yield broker_pb2.QueryResponse(arrow_batch=ipc.batch_to_bytes(batch))
        yield broker_pb2.QueryResponse(
            trailer=broker_pb2.QueryTrailer(query_id=query_id, rows=table.num_rows)
        )


async def _serve(servicer: Any, add: Any, ca: str, cert: str, key: str) -> None:
    from pathlib import Path

    server = grpc.aio.server(options=tls.SERVER_OPTIONS)
    add(servicer, server)
    port = server.add_secure_port(
        "127.0.0.1:0", tls.server_credentials(Path(ca), Path(cert), Path(key))
    )
    await server.start()
    print(f"PORT {port}", flush=True)
    await server.wait_for_termination()


async def _broker(args: argparse.Namespace) -> None:
    from pathlib import Path

    credentials = tls.channel_credentials(
        Path(args.ca), Path(args.client_cert), Path(args.client_key)
    )
    stubs = {}
    for entry in args.adapter:
        code, address, identity = entry.split(",")
        channel = grpc.aio.secure_channel(
            address,
            credentials,
            options=[*tls.CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", identity)],
        )
        stubs[code] = adapter_pb2_grpc.AdapterStub(channel)
    await _serve(
        EchoBroker(stubs),
        broker_pb2_grpc.add_BrokerServicer_to_server,
        args.ca,
        args.cert,
        args.key,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    sub = parser.add_subparsers(dest="role", required=True)
    for role in ("adapter", "broker"):
        p = sub.add_parser(role)
        p.add_argument("--ca", required=True)
        p.add_argument("--cert", required=True)
        p.add_argument("--key", required=True)
    adapter = sub.choices["adapter"]
    adapter.add_argument("--source", required=True)
    adapter.add_argument("--rows", type=int, default=1)
    broker = sub.choices["broker"]
    broker.add_argument("--client-cert", required=True)
    broker.add_argument("--client-key", required=True)
    broker.add_argument("--adapter", action="append", default=[], help="CODE,ADDRESS,IDENTITY")
    args = parser.parse_args(argv)
    if args.role == "adapter":
        echo = EchoAdapter(args.source, args.rows)
        add = adapter_pb2_grpc.add_AdapterServicer_to_server
        asyncio.run(_serve(echo, add, args.ca, args.cert, args.key))
    else:
        asyncio.run(_broker(args))
    return 0


class Floor:
    """The echo adapters (one per source of ``federation``) and the echo
    broker, as processes; ``address`` is the broker's, ``pid`` its process."""

    def __init__(self, workdir: Workdir, federation: Federation) -> None:
        pki = workdir.pki
        self._ca_path = pki.ca_cert()
        self.processes: list[subprocess.Popen[str]] = []
        try:
            adapters = []  # all started before any is waited for: they start in parallel
            for i, (code, source) in enumerate(federation.sources.items()):
                cert, key = pki.adapter(code)
                rows = str(int(i == 0))
                extra = ("--source", code, "--rows", rows)
                adapters.append((code, source.identity, self._spawn("adapter", cert, key, extra)))
            entries = []
            for code, identity, process in adapters:
                port = self._port("adapter", process)
                entries += ["--adapter", f"{code},127.0.0.1:{port},{identity}"]
            cert, key = pki.broker_server()
            client_cert, client_key = pki.broker_client()
            client = ("--client-cert", str(client_cert), "--client-key", str(client_key))
            broker = self._spawn("broker", cert, key, (*client, *entries))
            self.address = f"127.0.0.1:{self._port('broker', broker)}"
            self.pid = broker.pid
        except BaseException:
            self.close()
            raise

    def _spawn(
        self, role: str, cert: Path, key: Path, extra: Sequence[str]
    ) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "bench.floor", role, "--ca", str(self._ca_path)]
        command += ["--cert", str(cert), "--key", str(key), *extra]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.processes.append(process)
        return process

    @staticmethod
    def _port(role: str, process: subprocess.Popen[str]) -> int:
        assert process.stdout is not None
        line = process.stdout.readline()  # "PORT n" once it listens, "" if it died
        if not line.startswith("PORT "):
            raise RuntimeError(f"the echo {role} did not start (exit {process.wait()})")
        return int(line.split()[1])

    def __enter__(self) -> Floor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


if __name__ == "__main__":
    sys.exit(main())
