"""The peer a user would pick, run in its own environment (bench/peer.py).

DuckDB federating the sources through its own scanner extensions
(postgres_scanner, mysql_scanner, sqlite_scanner), loaded from their PyPI
packages, with no policy: each logical table is a view, the UNION ALL of
its sources' physical tables with the federation's renames, codes and date
formats written out, as a user would write them. A cast is added only where
the attached column's type differs from the logical one, so DuckDB can push
filters on the stored columns.

Runs with only the standard library, duckdb and pyarrow (not the project's
packages: its DuckDB version may differ). One JSON object per line on stdin,
one answer per line on stdout:
``{"op": "setup", "attach": [...], "views": {...}}`` -> ``{"ok": true, ...}``;
``{"op": "query", "sql": "..."}`` -> ``{"rows": n}`` or ``{"error": "..."}``.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import duckdb

#: The extension each attached database type needs (its PyPI package is
#: duckdb-extension-<name>, with a dash for the underscore).
EXTENSIONS = {"postgres": "postgres_scanner", "mysql": "mysql_scanner", "sqlite": "sqlite_scanner"}


def load_extension(con: duckdb.DuckDBPyConnection, kind: str) -> None:
    name = EXTENSIONS[kind]
    module = importlib.import_module(f"duckdb_extension_{name}")
    assert module.__file__ is not None
    path = next(Path(module.__file__).parent.glob(f"extensions/*/{name}.duckdb_extension"))
    con.execute(f"LOAD '{path}'")


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def column_sql(column: dict[str, Any], stored_type: str) -> str:
    """One logical column of one source, from its stored column."""
    stored, logical = quote(column["physical"]), column["type"]
    if column.get("codes"):
        cases = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in column["codes"].items())
        expression = f"CASE CAST({stored} AS VARCHAR) {cases} END"
    elif column.get("date_format"):
        fmt = literal(column["date_format"])
        expression = f"CAST(try_strptime(CAST({stored} AS VARCHAR), {fmt}) AS DATE)"
    elif stored_type.upper() == logical.upper():
        return f"{stored} AS {quote(column['logical'])}"
    else:
        expression = f"CAST({stored} AS {logical})"
    return f"{expression} AS {quote(column['logical'])}"


def setup(con: duckdb.DuckDBPyConnection, spec: dict[str, Any]) -> dict[str, Any]:
    for kind in sorted({a["type"] for a in spec["attach"]}):
        load_extension(con, kind)
    for name, value in spec.get("settings", {}).items():
        con.execute(f"SET {name} = {value}")
    for attach in spec["attach"]:
        con.execute(
            f"ATTACH {literal(attach['dsn'])} AS {quote(attach['alias'])} "
            f"(TYPE {attach['type']}, READ_ONLY)"
        )
    for view, parts in spec["views"].items():
        selects = []
        for part in parts:
            table = f"{quote(part['alias'])}.{quote(part['table'])}"
            described = con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()
            stored = {row[0]: str(row[1]) for row in described}
            columns = ", ".join(
                column_sql(c, stored.get(c["physical"], "")) for c in part["columns"]
            )
            selects.append(f"SELECT {columns} FROM {table}")
        con.execute(f"CREATE VIEW {quote(view)} AS " + " UNION ALL ".join(selects))
    return {"ok": True, "duckdb": duckdb.__version__, "views": sorted(spec["views"])}


def main() -> int:
    con = duckdb.connect()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "setup":
                answer = setup(con, request)
            else:
                answer = {"rows": con.sql(request["sql"]).to_arrow_table().num_rows}
        except Exception as exc:  # reported to the harness, which fails the run
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
