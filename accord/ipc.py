"""Arrow IPC framing for protobuf ``bytes`` fields.

Each message carries one self-contained IPC stream, so a receiver can decode
any message on its own and a malformed one is an error for that message only.
"""

from __future__ import annotations

import pyarrow as pa

from accord.errors import AccordError

#: Rows per batch on the wire. Batches stay well under gRPC's 4 MiB default
#: receive limit for the logical model's row sizes.
BATCH_ROWS = 8192


def schema_to_bytes(schema: pa.Schema) -> bytes:
    return bytes(schema.serialize())


def schema_from_bytes(data: bytes) -> pa.Schema:
    try:
        return pa.ipc.read_schema(pa.py_buffer(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise AccordError(f"malformed Arrow schema: {exc}") from exc


def batch_to_bytes(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue())


def batch_from_bytes(data: bytes, schema: pa.Schema | None = None) -> pa.RecordBatch:
    """Decodes one batch; when ``schema`` is given the batch must match it exactly."""
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(data))
        batches = list(reader)
    except (pa.ArrowInvalid, OSError) as exc:
        raise AccordError(f"malformed Arrow batch: {exc}") from exc
    if len(batches) != 1:
        raise AccordError(f"expected one Arrow batch per message, got {len(batches)}")
    batch = batches[0]
    if schema is not None and not batch.schema.equals(schema):
        raise AccordError(f"Arrow batch schema {batch.schema} does not match {schema}")
    return batch
