"""Reading an adapter's Scan answer in tests: header, Arrow batches, trailer.

Every scan answers in that order (``adapter.proto``); tests that call an
adapter directly read it here, so a change to the shape is one change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from accord import ipc

if TYPE_CHECKING:
    from collections.abc import Iterable

    from accord.v1 import adapter_pb2


@dataclass
class ScanAnswer:
    header: adapter_pb2.ScanHeader
    table: pa.Table
    trailer: adapter_pb2.ScanTrailer


def read_scan(responses: Iterable[adapter_pb2.ScanResponse]) -> ScanAnswer:
    """The whole answer of one scan, checking its shape on the way."""
    messages = list(responses)
    assert messages and messages[0].WhichOneof("payload") == "header", "a scan starts with a header"
    assert messages[-1].WhichOneof("payload") == "trailer", "a scan ends with its trailer"
    middle = messages[1:-1]
    assert all(m.WhichOneof("payload") == "arrow_batch" for m in middle), "batches in between"
    schema = ipc.schema_from_bytes(messages[0].header.arrow_schema)
    batches = [ipc.batch_from_bytes(m.arrow_batch, schema) for m in middle]
    return ScanAnswer(
        messages[0].header, pa.Table.from_batches(batches, schema=schema), messages[-1].trailer
    )
