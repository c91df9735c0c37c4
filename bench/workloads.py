"""The workloads of ``accord bench`` (issue 14) and their baselines.

Each workload asks the broker one kind of question over real mTLS, and
answers the same question other ways on the same data, without policy:
*direct* (one sqlite3 connection per source file, the physical SQL written
once from the federation's mapping, rows merged in Python, or in DuckDB
where the question joins or aggregates) and *single* (one DuckDB holding
every source's logical tables). W2 has a second pair, ``*_linked``, that
reads what the broker's history reads (bench/results/bench-0.05.md's
note): the files by FPS number and each table's rows by it, then the files
born on the person's birth dates or their day/month swap (the linkage
block), then the records of the block's files without an FPS number that
share a surname with the person's, by system and file number (a stand-in
for the linkage model's score). W5's TPC-H and its baselines (*single*,
the *peer*) are in bench/tpch.py and bench/peer.py, the protocol floor in
bench/floor.py.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from accord.client import BrokerClient
    from accord.federation import ColumnMapping, Federation, Source

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
CHILD_TABLES = HISTORY_TABLES[1:]
#: W3: a cross-source join with GROUP BY (every system's files joined to
#: every system's sentences by FPS number), as provincial corrections; and
#: a statistics-role aggregate, released with noise, rounding and small
#: groups suppressed (policies/roles/statistics.yaml).
ANALYTICS_JOIN = (
    "SELECT o.supervising_jurisdiction, s.sentence_type, count(*) AS sentences, "
    "sum(s.length_days) AS days FROM offenders o JOIN sentences s "
    "ON s.fps_number = o.fps_number "
    "GROUP BY o.supervising_jurisdiction, s.sentence_type"
)
ANALYTICS_STATISTICS = (
    "SELECT offence_code, count(*) AS sentences, sum(length_days) AS days "
    "FROM sentences GROUP BY offence_code"
)
#: The logical columns each W3 question reads, by table (for *direct*).
ANALYTICS_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "W3-join": {
        "offenders": ("fps_number", "supervising_jurisdiction"),
        "sentences": ("fps_number", "sentence_type", "length_days"),
    },
    "W3-statistics": {"sentences": ("offence_code", "length_days")},
}
ANALYTICS_SQL = {"W3-join": ANALYTICS_JOIN, "W3-statistics": ANALYTICS_STATISTICS}


@dataclass(frozen=True)
class Workload:
    """One question: who asks it (partner, purpose) and how each way answers it.

    ``broker(client, fps)`` returns the number of rows of the answer;
    ``per_person``: each call takes another FPS number, else the same call
    repeats.
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
    "W3": [
        Workload(
            "W3-join",
            "cross-source join with GROUP BY, provincial corrections",
            "provincial_corrections",
            "sentence_management",
            "",
            lambda c, _fps: _query_rows(c, ANALYTICS_JOIN),
            per_person=False,
        ),
        Workload(
            "W3-statistics",
            "aggregate with suppression, statistics (CCJS)",
            "statistics",
            "annual_statistics",
            "",
            lambda c, _fps: _query_rows(c, ANALYTICS_STATISTICS),
            per_person=False,
        ),
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


def _physical(column: ColumnMapping) -> str:
    """A stored column as its logical value, in SQLite: codes decoded."""
    name = f'"{column.physical}"'
    if not column.codes:
        return name
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in column.codes.items())
    return f"CASE CAST({name} AS TEXT) {cases} END"


def _date_text(day: dt.date, column: ColumnMapping) -> str:
    return day.strftime(column.date_format) if column.date_format else day.isoformat()


def _parse_date(text: str | None, column: ColumnMapping) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.datetime.strptime(text, column.date_format or "%Y-%m-%d").date()
    except ValueError:
        return None


def swapped(day: dt.date) -> dt.date | None:
    """The date with day and month transposed, where that is another date
    (as the history's linkage block reads them)."""
    if day.day > 12 or day.day == day.month:
        return None
    return dt.date(day.year, day.day, day.month)


def block_dates(births: list[dt.date | None]) -> list[dt.date]:
    dates = {d for d in births if d is not None}
    return sorted(dates | {s for d in dates if (s := swapped(d)) is not None})


@dataclass
class _SqliteSource:
    code: str
    connection: sqlite3.Connection
    source: Source
    by_fps: dict[str, str]


class Direct:
    """The hand-written script: one sqlite3 connection per source file."""

    def __init__(self, federation: Federation, root: Path) -> None:
        self.sources: list[_SqliteSource] = []
        self._bulk: list[tuple[sqlite3.Connection, str, list[str]]] = []
        self.engine = duckdb.connect()
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
            self.sources.append(_SqliteSource(source.code, connection, source, by_fps))
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
        for s in self.sources:
            if table in s.by_fps:
                merged.extend(s.connection.execute(s.by_fps[table], (fps,)).fetchall())
        return merged

    def logical(self, table: str, columns: tuple[str, ...]) -> pa.Table:
        """``columns`` of ``table`` from every source holding them all, codes decoded."""
        parts = []
        for s in self.sources:
            mapping = s.source.tables.get(table)
            if mapping is None or not set(columns) <= set(mapping.columns):
                continue
            select = ", ".join(_physical(mapping.columns[c]) for c in columns)
            fetched = s.connection.execute(
                f'SELECT {select} FROM "{mapping.physical_table}"'
            ).fetchall()
            values = list(zip(*fetched, strict=True)) if fetched else [()] * len(columns)
            parts.append(pa.table({c: list(v) for c, v in zip(columns, values, strict=True)}))
        return pa.concat_tables(parts, promote_options="permissive")

    def analytics(self, workload: str) -> list[tuple[Any, ...]]:
        """The W3 question: each table fetched per source, joined and grouped in DuckDB."""
        tables = {t: self.logical(t, c) for t, c in ANALYTICS_COLUMNS[workload].items()}
        for name, table in tables.items():
            self.engine.register(name, table)
        try:
            return self.engine.execute(ANALYTICS_SQL[workload]).fetchall()
        finally:
            for name in tables:
                self.engine.unregister(name)

    def history_linked(self, fps: str) -> int:
        """What the broker's history reads (the module's docstring)."""
        read = 0
        births: list[dt.date | None] = []
        surnames: set[str] = set()
        for s in self.sources:
            offenders = s.source.tables["offenders"]
            born = offenders.columns["birth_date"]
            got = s.connection.execute(s.by_fps["offenders"], (fps,)).fetchall()
            read += len(got)
            names = list(offenders.columns)
            for row in got:
                births.append(_parse_date(row[names.index("birth_date")], born))
                surnames.add(row[names.index("surname")])
        read += sum(len(self.rows(table, fps)) for table in CHILD_TABLES)
        dates = block_dates(births)
        if not dates:
            return read
        for s in self.sources:
            offenders = s.source.tables["offenders"]
            c = offenders.columns
            texts = [_date_text(d, c["birth_date"]) for d in dates]
            block = s.connection.execute(
                f'SELECT "{c["fps_number"].physical}", "{c["surname"].physical}", '
                f'"{c["source_person_id"].physical}", '
                + ", ".join(f'"{m.physical}"' for m in c.values())
                + f' FROM "{offenders.physical_table}" '
                f'WHERE "{c["birth_date"].physical}" IN ({", ".join("?" * len(texts))})',
                texts,
            ).fetchall()
            read += len(block)
            linked = [pid for f, name, pid, *_ in block if f is None and name in surnames]
            for table in CHILD_TABLES:
                mapping = s.source.tables.get(table)
                if mapping is None or not linked or "source_person_id" not in mapping.columns:
                    continue
                pid = mapping.columns["source_person_id"].physical
                columns = ", ".join(f'"{m.physical}"' for m in mapping.columns.values())
                marks = ", ".join("?" * len(linked))
                read += len(
                    s.connection.execute(
                        f'SELECT {columns} FROM "{mapping.physical_table}" '
                        f'WHERE "{pid}" IN ({marks})',
                        linked,
                    ).fetchall()
                )
        return read

    def answer(self, workload: str, fps: str) -> int:
        if workload.startswith("W1"):
            return len(self.rows("offenders", fps))
        if workload.startswith("W2"):
            return sum(len(self.rows(table, fps)) for table in HISTORY_TABLES)
        if workload.startswith("W3"):
            return len(self.analytics(workload))
        return sum(len(c.execute(sql, codes).fetchall()) for c, sql, codes in self._bulk)

    def close(self) -> None:
        for s in self.sources:
            s.connection.close()
        self.engine.close()


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

    def history_linked(self, fps: str) -> int:
        """What the broker's history reads (the module's docstring)."""
        anchors = self.db.execute(
            "SELECT birth_date, surname FROM offenders WHERE fps_number = ?", [fps]
        ).fetchall()
        read = len(anchors) + sum(
            len(self.db.execute(f"SELECT * FROM {t} WHERE fps_number = ?", [fps]).fetchall())
            for t in CHILD_TABLES
            if t in self.tables
        )
        dates = block_dates([born for born, _ in anchors])
        if not dates:
            return read
        marks = ", ".join("?" * len(dates))
        block = self.db.execute(
            f"SELECT fps_number, surname, source, source_person_id, * FROM offenders "
            f"WHERE birth_date IN ({marks})",
            dates,
        ).fetchall()
        read += len(block)
        surnames = {name for _, name in anchors}
        linked = [(src, pid) for f, name, src, pid, *_ in block if f is None and name in surnames]
        for table in CHILD_TABLES:
            if table not in self.tables or not linked:
                continue
            pairs = ", ".join("(?, ?)" for _ in linked)
            read += len(
                self.db.execute(
                    f"SELECT * FROM {table} WHERE (source, source_person_id) IN (VALUES {pairs})",
                    [v for pair in linked for v in pair],
                ).fetchall()
            )
        return read

    def analytics(self, workload: str) -> list[tuple[Any, ...]]:
        return self.db.execute(ANALYTICS_SQL[workload]).fetchall()

    def answer(self, workload: str, fps: str) -> int:
        if workload.startswith("W1"):
            return len(self.db.execute(point_sql("?").replace("'?'", "?"), [fps]).fetchall())
        if workload.startswith("W2"):
            return sum(
                len(self.db.execute(f"SELECT * FROM {t} WHERE fps_number = ?", [fps]).fetchall())
                for t in HISTORY_TABLES
                if t in self.tables
            )
        if workload.startswith("W3"):
            return len(self.analytics(workload))
        marks = ", ".join("?" * len(CURRENT))
        return len(
            self.db.execute(f"{bulk_sql()} WHERE status IN ({marks})", list(CURRENT)).fetchall()
        )

    def close(self) -> None:
        self.db.close()


def engines(workload: str, direct: Direct, single: Single) -> dict[str, Callable[[str], int]]:
    """The baselines of one workload (W1-W4): name -> answer(fps) -> rows."""
    out: dict[str, Callable[[str], int]] = {
        "direct": lambda fps: direct.answer(workload, fps),
        "single": lambda fps: single.answer(workload, fps),
    }
    if workload.startswith("W2"):
        out["direct_linked"] = direct.history_linked
        out["single_linked"] = single.history_linked
    return out
