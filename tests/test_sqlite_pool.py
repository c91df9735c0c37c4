"""The SQLite backend keeps the connections of scans that ran to their end
for the next scans (opening one costs a schema read), never one whose file
was replaced or removed since, nor one left mid-statement."""

from __future__ import annotations

import sqlite3
from collections.abc import Generator
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest

from accord.errors import SourceUnavailable
from adapters.backends import sqlite as backend

if TYPE_CHECKING:
    from pathlib import Path

SQL = "SELECT name FROM people WHERE name = ?"


def make(path: Path, names: list[str]) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.executemany("INSERT INTO people VALUES (?)", [(n,) for n in names])
    conn.commit()
    conn.close()


def scan(b: backend.SqliteBackend, name: str, token: str = "t") -> list[str]:
    batches = b.execute(SQL, [name], [pa.string()], batch_rows=10, token=token, timeout_s=5)
    return [v for batch in batches for v in batch.column(0).to_pylist()]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[sqlite3.Connection]:
    seen: list[sqlite3.Connection] = []
    real = backend.SqliteBackend._connect

    def counted(self: backend.SqliteBackend) -> sqlite3.Connection:
        seen.append(real(self))
        return seen[-1]

    monkeypatch.setattr(backend.SqliteBackend, "_connect", counted)
    return seen


def test_scans_reuse_one_connection(tmp_path: Path, opened: list[sqlite3.Connection]) -> None:
    path = tmp_path / "src.sqlite"
    make(path, ["ann", "bob"])
    b = backend.SqliteBackend("BC", path)
    assert [scan(b, n) for n in ["ann", "bob", "eve"]] == [["ann"], ["bob"], []]
    assert len(opened) == 1
    b.close()


def test_a_replaced_file_is_read_anew(tmp_path: Path, opened: list[sqlite3.Connection]) -> None:
    path = tmp_path / "src.sqlite"
    make(path, ["ann"])
    b = backend.SqliteBackend("BC", path)
    assert scan(b, "ann") == ["ann"]
    fresh = tmp_path / "new.sqlite"
    make(fresh, ["bob"])
    fresh.replace(path)  # another inode under the same name
    assert (scan(b, "ann"), scan(b, "bob")) == ([], ["bob"])
    assert len(opened) == 2
    path.unlink()
    with pytest.raises(SourceUnavailable, match="missing"):
        scan(b, "bob")
    b.close()


def test_a_scan_left_mid_read_closes_its_connection(
    tmp_path: Path, opened: list[sqlite3.Connection]
) -> None:
    path = tmp_path / "src.sqlite"
    make(path, ["ann"] * 50)
    b = backend.SqliteBackend("BC", path)
    batches = b.execute(SQL, ["ann"], [pa.string()], batch_rows=10, token="t", timeout_s=5)
    next(batches)
    assert isinstance(batches, Generator)
    batches.close()  # the caller went away after one batch
    assert scan(b, "ann") == ["ann"] * 50
    assert len(opened) == 2
    b.close()
