"""The adapters' previous database reads, kept as the reference the new
drivers are compared with (tests/integration/test_driver_differential.py).

PostgreSQL: psycopg 3, ``COPY (SELECT ...) TO STDOUT`` as CSV parsed by
Arrow's CSV reader, literals bound by ``ClientCursor.mogrify``. It opens a connection per scan
(no pool, no cancellation): only the rows matter here.
"""

from __future__ import annotations

import io
import itertools
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv

from adapters.backends.base import Backend

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator


class LegacyPostgres(Backend):
    dialect = "postgres"

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn

    def execute(
        self,
        sql: str,
        params: list[Any],
        types: list[pa.DataType],
        *,
        batch_rows: int,
        token: str,
        timeout_s: float | None,
    ) -> Iterator[pa.RecordBatch]:
        import psycopg

        with psycopg.connect(self.dsn) as conn, conn.transaction():
            conn.execute("SET LOCAL DateStyle = ISO")
            query = psycopg.ClientCursor(conn).mogrify(sql, params)
            with conn.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
                yield from _read_csv_stream(copy, types, batch_rows)

    def _interrupt(self, handles: list[Any]) -> None:
        pass

    def check(self) -> None:
        pass

    def close(self) -> None:
        pass


def _read_csv_stream(
    chunks: Iterable[Any], types: list[pa.DataType], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    names = [f"c{i}" for i in range(len(types))]
    stream = iter(chunks)
    first = next(stream, None)
    if first is None:
        return
    first = bytes(first)
    reader = pacsv.open_csv(
        io.BufferedReader(_ChunkReader(itertools.chain([first], stream)), buffer_size=1 << 20),
        read_options=pacsv.ReadOptions(column_names=names, block_size=max(batch_rows * 128, 65536)),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=dict(zip(names, types, strict=True)),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )
    for batch in reader:
        for offset in range(0, batch.num_rows, batch_rows):
            yield batch.slice(offset, batch_rows)


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[Any]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(bytes(next(self._chunks)))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
