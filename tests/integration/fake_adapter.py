"""A misbehaving adapter for fault-injection tests: a real gRPC server over
mutual TLS, with the adapter certificate of one source, that answers Scan
wrongly on purpose.

    python -m tests.integration.fake_adapter --mode MODE --source CODE \
        --workdir DIR --port-file FILE [--port N] [--federation FILE] [--scan-log FILE]

With ``--scan-log``, every Scan that arrives appends a line (its table) to
FILE before anything else happens, so a test can wait for "the scan is in
flight" instead of sleeping and hoping.

Modes:
  hang              Scan sends nothing and waits until the call ends.
  malformed         a valid header with the requested schema, then
                    ``arrow_batch=b"garbage"``.
  wrong_schema      a header whose Arrow schema differs from the requested one.
  crash_mid_stream  a header and one real batch, then ``os._exit(1)``.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pyarrow as pa

from accord import ipc, tls
from accord.federation import load_federation
from accord.metadata import ADAPTER_ERROR_METADATA
from accord.v1 import adapter_pb2, adapter_pb2_grpc
from accord.workdir import DEFAULT_FEDERATION, Workdir
from app.serve import write_address

if TYPE_CHECKING:
    from collections.abc import Iterator

    from accord.federation import Federation

MODES = ("hang", "malformed", "wrong_schema", "crash_mid_stream", "oversized", "refuse")
#: Rows in the one batch crash_mid_stream sends before dying.
CRASH_BATCH_ROWS = 3


def sample_batch(schema: pa.Schema, rows: int) -> pa.RecordBatch:
    """A batch of ``rows`` plausible values (strings, dates, numbers) in ``schema``."""
    arrays = []
    for f in schema:
        values: list[object]
        if pa.types.is_string(f.type):
            values = [f"FAKE-{i}" for i in range(rows)]
        elif pa.types.is_date(f.type):
            values = [pa.scalar(19000 + i, pa.int32()).cast(f.type).as_py() for i in range(rows)]
        elif pa.types.is_integer(f.type) or pa.types.is_floating(f.type):
            values = list(range(rows))
        else:
            values = [None] * rows
        arrays.append(pa.array(values, type=f.type))
    if not arrays:
        return pa.RecordBatch.from_pylist([{}] * rows, schema=schema)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class FakeAdapter(adapter_pb2_grpc.AdapterServicer):
    def __init__(
        self, federation: Federation, source: str, mode: str, scan_log: Path | None = None
    ) -> None:
        self.federation = federation
        self.source = source
        self.mode = mode
        self.scan_log = scan_log
        self._log_lock = threading.Lock()

    def _arrived(self, request) -> None:
        if self.scan_log is None:
            return
        with self._log_lock, self.scan_log.open("a") as log:
            log.write(f"{request.table}\n")

    def _header(self, schema: pa.Schema) -> adapter_pb2.ScanResponse:
        return adapter_pb2.ScanResponse(
            header=adapter_pb2.ScanHeader(
                source=self.source,
                arrow_schema=ipc.schema_to_bytes(schema),
                physical_sql="-- fake",
                dialect="sqlite",
            )
        )

    def Scan(
        self, request: adapter_pb2.ScanRequest, context: grpc.ServicerContext
    ) -> Iterator[adapter_pb2.ScanResponse]:
        self._arrived(request)
        schema = self.federation.tables[request.table].arrow_schema(list(request.columns))
        if self.mode == "hang":
            ended = threading.Event()
            if context.add_callback(ended.set):  # False: the call has ended already
                ended.wait()
            return
        if self.mode == "malformed":
            yield self._header(schema)
            yield adapter_pb2.ScanResponse(arrow_batch=b"garbage")
        elif self.mode == "wrong_schema":
            wrong = pa.schema([*schema, pa.field("not_requested", pa.string())])
            yield self._header(wrong)
            yield adapter_pb2.ScanResponse(arrow_batch=ipc.batch_to_bytes(sample_batch(wrong, 2)))
        elif self.mode == "oversized":  # one message over the broker's receive limit
            yield self._header(schema)
            yield adapter_pb2.ScanResponse(arrow_batch=b"x" * (20 * 1024 * 1024))
        elif self.mode == "refuse":
            # As a real adapter does: the refusal is its own (accord.metadata).
            context.set_trailing_metadata(((ADAPTER_ERROR_METADATA, "1"),))
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "source BC does not release that")
        elif self.mode == "crash_mid_stream":
            yield self._header(schema)
            yield adapter_pb2.ScanResponse(
                arrow_batch=ipc.batch_to_bytes(sample_batch(schema, CRASH_BATCH_ROWS))
            )
            # Let the two messages reach the broker, then die mid-stream.
            threading.Timer(0.3, os._exit, args=(1,)).start()
            time.sleep(60)

    def Describe(
        self, request: adapter_pb2.DescribeRequest, context: grpc.ServicerContext
    ) -> adapter_pb2.DescribeResponse:
        return adapter_pb2.DescribeResponse(source=self.source)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--federation", type=Path, default=DEFAULT_FEDERATION)
    parser.add_argument("--scan-log", type=Path, default=None)
    args = parser.parse_args(argv)

    workdir = Workdir(args.workdir)
    federation = load_federation(args.federation)
    cert, key = workdir.pki.adapter(args.source)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=tls.SERVER_OPTIONS)
    adapter_pb2_grpc.add_AdapterServicer_to_server(
        FakeAdapter(federation, args.source, args.mode, args.scan_log), server
    )
    port = server.add_secure_port(
        f"{args.host}:{args.port}", tls.server_credentials(workdir.pki.ca_cert(), cert, key)
    )
    if port == 0:
        raise SystemExit(f"cannot listen on {args.host}:{args.port}")
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    write_address(args.port_file, args.host, port)
    stop.wait()
    server.stop(0)
    os._exit(0)  # do not wait on handler threads still sleeping


if __name__ == "__main__":
    main()
