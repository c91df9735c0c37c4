"""Arrow IPC messages as Flight ``FlightData``, and back.

An encapsulated IPC message is ``0xFFFFFFFF``, a little-endian int32 length,
the flatbuffer ``Message`` (padded to 8 bytes), then the body. FlightData
carries the flatbuffer in ``data_header`` (no continuation marker, no
length) and the body in ``data_body``; a stream is its schema message, then
its dictionary and record batch messages, without the end-of-stream marker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from accord.errors import InvalidQuery
from accord.flight import Flight_pb2

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

CONTINUATION = b"\xff\xff\xff\xff"
END_OF_STREAM = CONTINUATION + b"\x00\x00\x00\x00"


def _messages(data: pa.Buffer | bytes) -> Iterator[pa.ipc.Message]:
    reader = pa.ipc.MessageReader.open_stream(pa.py_buffer(data))
    while True:
        try:
            yield reader.read_next_message()
        except StopIteration:
            return


def as_flight_data(message: pa.ipc.Message) -> Flight_pb2.FlightData:
    body = message.body
    return Flight_pb2.FlightData(
        data_header=message.metadata.to_pybytes(),
        data_body=body.to_pybytes() if body is not None else b"",
    )


def schema_message(data: bytes) -> Flight_pb2.FlightData:
    """The FlightData of an encapsulated schema message (``accord.ipc.schema_to_bytes``)."""
    return as_flight_data(pa.ipc.read_message(pa.py_buffer(data)))


def batch_messages(stream: bytes) -> list[Flight_pb2.FlightData]:
    """The dictionary and record batch messages of a one-batch IPC stream
    (``accord.ipc.batch_to_bytes``), its schema message left out."""
    return [as_flight_data(m) for m in _messages(stream) if m.type != "schema"]


def table_messages(table: pa.Table) -> Iterator[Flight_pb2.FlightData]:
    """A whole table as a Flight stream: schema first, then its batches."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    for message in _messages(sink.getvalue()):
        yield as_flight_data(message)


def read_table(data: Iterable[Flight_pb2.FlightData]) -> pa.Table:
    """The table a client sent as FlightData (a prepared statement's
    parameters), or INVALID_ARGUMENT if it is not an Arrow stream."""
    framed = bytearray()
    for item in data:
        header = item.data_header
        if not header:
            continue  # app_metadata only
        padding = -len(header) % 8
        framed += CONTINUATION + (len(header) + padding).to_bytes(4, "little")
        framed += header + b"\x00" * padding + item.data_body
    framed += END_OF_STREAM
    try:
        return pa.ipc.open_stream(pa.py_buffer(bytes(framed))).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidQuery(
            f"the parameters sent are not an Arrow IPC stream: {exc}", field="parameters"
        ) from exc
