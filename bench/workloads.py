"""The workloads of ``accord bench`` (issue 14) and their two baselines.

Each workload asks the broker one kind of question over real mTLS, and
answers the same question two other ways on the same data, without policy:
*direct* (one sqlite3 connection per source file, the physical SQL written
once from the federation's mapping, rows merged in Python) and *single*
(one DuckDB holding every source's logical tables).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from accord.client import BrokerClient
    from accord.federation import Federation

CURRENT = ("IN_CUSTODY", "SUPERVISED", "UAL")
POINT_COLUMNS = ("surname", "given_names", "status")
BULK_COLUMNS = (
    "surname",
    "given_names",
    "gender",
    "birth_date",
    "birth_place",
    "address",
    "photo_ref",
    "warrant_expiry_date",
)
#: The tables a history reads (GetOffenderHistory), by FPS number.
HISTORY_TABLES = ("offenders", "aliases", "sentences", "releases", "incidents", "alerts")


@dataclass(frozen=True)
class Workload:
    """One question: who asks it (partner, purpose) and how each way answers it.

    ``broker(client, fps)``, ``direct(fps)`` and ``single(fps)`` return the
    number of rows of the answer; ``per_person``: each call takes another
    FPS number, else the same call repeats.
    """

    name: str
    description: str
    partner: str
    purpose: str
    case_ref: str
    broker: Callable[[BrokerClient, str], int]
    per_person: bool = True


def point_sql(fps: str) -> str:
    return f"SELECT {', '.join(POINT_COLUMNS)} FROM offenders WHERE fps_number = '{fps}'"


def bulk_sql() -> str:
    return f"SELECT {', '.join(BULK_COLUMNS)} FROM offenders"


def _query_rows(client: BrokerClient, sql: str) -> int:
    rows: int = client.query(sql).table.num_rows
    return rows


def _history_rows(client: BrokerClient, fps: str) -> int:
    return sum(part.rows for part in client.history(fps_number=fps).parts)


WORKLOADS: dict[str, list[Workload]] = {
    "W1": [
        Workload(
            "W1-police",
            "point lookup by FPS number, police",
            "police",
            "investigation",
            "",
            lambda c, fps: _query_rows(c, point_sql(fps)),
        ),
        Workload(
            "W1-crown",
            "point lookup by FPS number, Crown attorney",
            "crown_attorney",
            "bail_hearing",
            "R-BENCH-1",
            lambda c, fps: _query_rows(c, point_sql(fps)),
        ),
    ],
    "W2": [
        Workload(
            "W2-history",
            "one person's history by FPS number, Crown attorney",
            "crown_attorney",
            "bail_hearing",
            "R-BENCH-1",
            _history_rows,
        )
    ],
    "W4": [
        Workload(
            "W4-bulk",
            "all current offenders, Passport Canada",
            "passport_canada",
            "passport_decisions",
            "",
            lambda c, _fps: _query_rows(c, bulk_sql()),
            per_person=False,
        )
    ],
}


class Direct:
    """The hand-written script: one sqlite3 connection per source file."""

    def __init__(self, federation: Federation, root: Path) -> None:
        self.sources: list[tuple[sqlite3.Connection, dict[str, str]]] = []
        self._bulk: list[tuple[sqlite3.Connection, str, list[str]]] = []
        for source in federation.sources.values():
            if source.backend.kind != "sqlite" or source.backend.path is None:
                continue
            connection = sqlite3.connect(root / source.backend.path, check_same_thread=False)
            by_fps: dict[str, str] = {}
            for table, mapping in source.tables.items():
                columns = ", ".join(f'"{c.physical}"' for c in mapping.columns.values())
                fps = mapping.columns["fps_number"].physical
                by_fps[table] = (
                    f'SELECT {columns} FROM "{mapping.physical_table}" WHERE "{fps}" = ?'
                )
            self.sources.append((connection, by_fps))
            offenders = source.tables["offenders"]
            status = offenders.columns["status"]
            codes = [p for p, logical in status.codes.items() if logical in CURRENT] or list(
                CURRENT
            )
            wanted = ", ".join(
                f'"{offenders.columns[c].physical}"' if c in offenders.columns else "NULL"
                for c in BULK_COLUMNS
            )
            marks = ", ".join("?" * len(codes))
            self._bulk.append(
                (
                    connection,
                    f'SELECT {wanted} FROM "{offenders.physical_table}" '
                    f'WHERE "{status.physical}" IN ({marks})',
                    codes,
                )
            )

    def rows(self, table: str, fps: str) -> list[Any]:
        merged: list[Any] = []
        for connection, by_fps in self.sources:
            if table in by_fps:
                merged.extend(connection.execute(by_fps[table], (fps,)).fetchall())
        return merged

    def answer(self, workload: str, fps: str) -> int:
        if workload.startswith("W1"):
            return len(self.rows("offenders", fps))
        if workload.startswith("W2"):
            return sum(len(self.rows(table, fps)) for table in HISTORY_TABLES)
        return sum(len(c.execute(sql, codes).fetchall()) for c, sql, codes in self._bulk)

    def close(self) -> None:
        for connection, _ in self.sources:
            connection.close()


class Single:
    """Every source's logical tables in one in-process DuckDB."""

    def __init__(self, generated: dict[str, dict[str, pa.Table]]) -> None:
        self.db = duckdb.connect()
        tables: dict[str, list[pa.Table]] = {}
        for source, by_table in generated.items():
            for name, table in by_table.items():
                tables.setdefault(name, []).append(
                    table.append_column("source", pa.array([source] * table.num_rows))
                )
        for name, parts in tables.items():
            merged = pa.concat_tables(parts, promote_options="permissive")
            self.db.register(f"_{name}", merged)
            self.db.execute(f"CREATE TABLE {name} AS SELECT * FROM _{name}")
            self.db.unregister(f"_{name}")
        self.tables = set(tables)

    def answer(self, workload: str, fps: str) -> int:
        if workload.startswith("W1"):
            return len(self.db.execute(point_sql("?").replace("'?'", "?"), [fps]).fetchall())
        if workload.startswith("W2"):
            return sum(
                len(self.db.execute(f"SELECT * FROM {t} WHERE fps_number = ?", [fps]).fetchall())
                for t in HISTORY_TABLES
                if t in self.tables
            )
        marks = ", ".join("?" * len(CURRENT))
        return len(
            self.db.execute(f"{bulk_sql()} WHERE status IN ({marks})", list(CURRENT)).fetchall()
        )

    def close(self) -> None:
        self.db.close()
