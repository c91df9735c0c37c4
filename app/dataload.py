"""Loading a federation's data from Parquet files instead of generating it.

``accord datagen --data DIR`` (and ``accord demo --data DIR``) read one
``<table>.parquet`` per logical table (e.g. ``tpchgen-cli parquet``'s
output), cast it to the logical schema, split it over the sources that hold
the table and write each source's share in its own physical schema with the
datagen writers, as the synthetic data is written. A table held by one
source goes there whole; a table held by several needs a shards file that
gives each of them a DuckDB predicate over the logical columns::

    lineitem:
      ORDERDESK: l_orderkey < 20000
      ARCHIVE: l_orderkey >= 20000

and every row must match exactly one source's predicate (else the load is
refused: a row on two sources would be counted twice, a row on none lost).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from accord.errors import ConfigError
from adapters.datagen.targets import write_sources

if TYPE_CHECKING:
    from pathlib import Path

    from accord.federation import Federation, LogicalTable


def read_logical(directory: Path, table: LogicalTable) -> pa.Table:
    """``directory/<table>.parquet`` with exactly the logical columns and types."""
    path = directory / f"{table.name}.parquet"
    if not path.is_file():
        raise ConfigError(f"no {path} for logical table {table.name}")
    try:
        raw = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    missing = [c for c in table.columns if c not in raw.column_names]
    if missing:
        raise ConfigError(f"{path} lacks the logical columns {missing}")
    schema = table.arrow_schema()
    try:
        return pa.Table.from_arrays(
            [raw.column(f.name).cast(f.type) for f in schema], schema=schema
        )
    except pa.ArrowException as exc:
        raise ConfigError(f"{path}: cannot cast to the logical types: {exc}") from exc


def load_shards(path: Path | None) -> dict[str, dict[str, str]]:
    """table -> source code -> predicate, from a shards file (none: {})."""
    if path is None:
        return {}
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read shards file: {exc}") from exc
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ConfigError(f"{path}: expected table: {{SOURCE: predicate, ...}}")
    return {str(t): {str(s): str(p) for s, p in v.items()} for t, v in raw.items()}


def split(
    federation: Federation, data: dict[str, pa.Table], shards: dict[str, dict[str, str]]
) -> dict[str, dict[str, pa.Table]]:
    """source code -> logical table -> the rows that source holds."""
    unknown = sorted(set(shards) - set(federation.tables))
    if unknown:
        raise ConfigError(f"the shards name tables {unknown} the logical model lacks")
    out: dict[str, dict[str, pa.Table]] = {code: {} for code in federation.sources}
    con = duckdb.connect()
    for name, table in data.items():
        holders = [c for c, s in federation.sources.items() if name in s.tables]
        predicates = shards.get(name, {})
        if len(holders) == 1 and not predicates:
            out[holders[0]][name] = table
            continue
        if set(predicates) != set(holders):
            raise ConfigError(
                f"table {name} is held by {holders}: the shards file must give a predicate "
                f"for each of them (it gives {sorted(predicates)})"
            )
        con.register("t", table)
        try:
            matches = " + ".join(
                f"CAST(coalesce(({p}), false) AS INTEGER)" for p in predicates.values()
            )
            ((bad,),) = con.sql(f"SELECT count(*) FROM t WHERE {matches} <> 1").fetchall()
            if bad:
                raise ConfigError(f"table {name}: {bad} rows match no shard or more than one")
            for code, predicate in predicates.items():
                out[code][name] = con.sql(f"SELECT * FROM t WHERE {predicate}").to_arrow_table()
        except duckdb.Error as exc:
            raise ConfigError(f"table {name}: a shard predicate fails: {exc}") from exc
        finally:
            con.unregister("t")
    return out


def load_federation_files(
    federation: Federation, directory: Path, workdir: Path, shards: Path | None = None
) -> dict[str, dict[str, int]]:
    """Reads, splits and writes every source's share; source -> table -> rows."""
    held = [n for n in federation.tables if any(n in s.tables for s in federation.sources.values())]
    data = {name: read_logical(directory, federation.tables[name]) for name in held}
    return write_sources(federation, split(federation, data, load_shards(shards)), workdir)
