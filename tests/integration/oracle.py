"""An independent oracle: what a principal is entitled to see, computed in
DuckDB straight from the generated logical data, without the broker's code.

1. ``raw.<table>``: every source's generated rows, filtered and projected by
   the source's release agreement, with a ``source`` column (written here
   from the federation config, not by the adapters). A table whose release
   ``follows`` the person file keeps only the rows of persons with a
   released row there, the person told apart by a tagged key (``F`` + FPS
   number, else ``L`` + the source's own id) rather than the adapters'
   physical semi-joins.
2. ``main.<table>``: the principal's entitled view: the role's row filter
   over raw rows (``principal.x`` replaced textually by the partner's
   value; ``person IN``/``file IN`` linkage written out by
   ``tests/linkage_oracle.py``), then each mask written out again here in
   plain SQL.

Running the caller's SQL on this connection gives the answer the broker
must give, row for row.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from tests import linkage_oracle
from tests.rewrite_oracle import city_of

if TYPE_CHECKING:
    from accord.federation import Federation
    from broker.identity import Partner
    from broker.policy.masks import Mask
    from broker.policy.model import Role


def raw_connection(
    federation: Federation, generated: dict[str, dict[str, pa.Table]]
) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    for name, logical in federation.tables.items():
        parts = []
        for code, tables in generated.items():
            release = federation.sources[code].release.get(name)
            if name not in tables or release is None:
                continue  # the jurisdiction does not share this table
            con.register("incoming", tables[name])
            select = ", ".join(
                c if c in release.columns else f"NULL::{t} AS {c}"
                for c, t in logical.columns.items()
            )
            conditions = [f"({release.row_filter})"] if release.row_filter else []
            if release.follows is not None:
                con.register("person_file", tables[release.follows])
                conditions.append(_released_person(federation, code, name, release.follows))
            where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            parts.append(
                con.sql(
                    f"SELECT {select}, '{code}' AS source FROM incoming{where}"
                ).to_arrow_table()
            )
            con.unregister("incoming")
        if parts:
            con.register(f"_{name}", pa.concat_tables(parts))
            con.execute(f"CREATE TABLE raw.{name} AS SELECT * FROM _{name}")
            con.unregister(f"_{name}")
    return con


def person_of(key: str) -> str:
    """A person inside one source: the FPS number, else the source's own id."""
    return (
        f"CASE WHEN {key} IS NOT NULL THEN 'F' || {key} "
        "WHEN source_person_id IS NOT NULL THEN 'L' || source_person_id END"
    )


def _released_person(federation: Federation, code: str, table: str, followed: str) -> str:
    """The row's person has a row of ``followed`` (registered as ``person_file``)
    that the source releases."""
    parent = federation.sources[code].release[followed]
    key = federation.tables[followed].person_key or "fps_number"
    own_key = federation.tables[table].person_key or "fps_number"
    where = f" WHERE {parent.row_filter}" if parent.row_filter else ""
    return (
        f"{person_of(own_key)} IN (SELECT {person_of(key)} FROM "
        f"(SELECT * FROM person_file{where}) AS released)"
    )


def entitled_connection(
    federation: Federation,
    generated: dict[str, dict[str, pa.Table]],
    role: Role,
    partner: Partner,
    key: bytes,
) -> duckdb.DuckDBPyConnection:
    con = raw_connection(federation, generated)
    register_hmac(con, key)
    register_cities(con, role)
    raw_tables = {
        r[0]
        for r in con.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw'"
        ).fetchall()
    }
    for table, grant in role.tables.items():
        if table not in raw_tables:
            continue
        released = federation.released_columns(table)
        columns = [c for c in released if c in grant.columns]
        if not columns:
            continue
        types = federation.tables[table].columns
        select = [f"{_mask_sql(grant.columns[c], c, types[c], key)} AS {c}" for c in columns]
        if "source" in grant.columns:  # granted like any column, else absent
            select.append("source")
        where = ""
        if grant.row_filter:
            linked = linkage_oracle.expand(grant.row_filter, table, table, federation)
            where = " WHERE " + _bind_text(_raw_tables(linked), partner)
        con.execute(
            f"CREATE VIEW main.{table} AS SELECT {', '.join(select)} "
            f"FROM raw.{table} AS {table}{where}"
        )
    return con


def _raw_tables(sql: str) -> str:
    """Points every table in a filter's subqueries at the raw data."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    tree = tree.transform(
        lambda n: (
            exp.Table(this=n.this, db=exp.to_identifier("raw"), alias=n.args.get("alias"))
            if isinstance(n, exp.Table)
            else n
        )
    )
    return tree.sql("duckdb")


def _bind_text(sql: str, partner: Partner) -> str:
    values = {
        "name": partner.name,
        "organization": partner.organization,
        "role": partner.role,
        "jurisdiction": partner.jurisdiction,
        **partner.attributes,
    }

    def literal(value: object) -> str:
        if isinstance(value, list):
            return ", ".join(literal(v) for v in value) if value else "NULL"
        if isinstance(value, (int, float)):
            return str(value)
        return "'" + str(value).replace("'", "''") + "'"

    return re.sub(r"\bprincipal\.(\w+)", lambda m: literal(values[m.group(1)]), sql)


def _mask_sql(mask: Mask | None, column: str, logical_type: str, key: bytes) -> str:
    if mask is None:
        return column
    if mask.kind == "null":
        return f"NULL::{mask.output_type(logical_type)}"
    if mask.kind == "redact":
        value = "NULL" if mask.value is None else "'" + mask.value.replace("'", "''") + "'"
        out = mask.output_type(logical_type)
        return f"CASE WHEN {column} IS NULL THEN NULL ELSE {value}::{out} END"
    if mask.kind == "year_only":
        return f"CAST(EXTRACT(year FROM {column}) AS BIGINT)"
    if mask.kind == "partial":
        first, last = mask.keep_first, mask.keep_last
        n = f"length({column})"
        keep_last = f"substr({column}, {n} - {last} + 1)" if last else "''"
        return (
            f"CASE WHEN {column} IS NULL THEN NULL WHEN {n} <= {first + last} "
            f"THEN repeat('*', {n}) ELSE substr({column}, 1, {first}) || "
            f"repeat('*', {n} - {first + last}) || {keep_last} END"
        )
    if mask.kind == "keyed_hash":
        return f"oracle_hmac(CAST({column} AS VARCHAR))"
    if mask.kind == "city":
        return f"(SELECT __city FROM oracle_city WHERE __stored = {column})"
    if mask.kind == "expression":
        return f"({mask.expression})"
    raise AssertionError(mask.kind)


def register_cities(con: duckdb.DuckDBPyConnection, role: Role) -> None:
    """``oracle_city(__stored, __city)``: each raw value of a column the role
    masks with ``city``, and its city as ``tests.rewrite_oracle.city_of``
    (string methods, not the broker's regular expression) reads it."""
    values: set[str] = set()
    for table, grant in role.tables.items():
        for column, mask in grant.columns.items():
            if mask is not None and mask.kind == "city":
                found = con.sql(f"SELECT DISTINCT {column} FROM raw.{table}").fetchall()
                values |= {str(r[0]) for r in found if r[0] is not None}
    pairs = [{"__stored": v, "__city": city_of(v)} for v in sorted(values)]
    schema = pa.schema([("__stored", pa.string()), ("__city", pa.string())])
    con.register("_cities", pa.Table.from_pylist(pairs, schema=schema))
    con.execute("CREATE TABLE oracle_city AS SELECT * FROM _cities")
    con.unregister("_cities")


def register_hmac(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """HMAC-SHA256 as a SQL macro over precomputed pads (RFC 2104)."""
    block = key.ljust(64, b"\0")
    ipad = bytes(b ^ 0x36 for b in block).hex()
    opad = bytes(b ^ 0x5C for b in block).hex()
    con.execute(
        f"CREATE MACRO oracle_hmac(v) AS sha256(unhex('{opad}') || "
        f"unhex(sha256(unhex('{ipad}') || encode(v))))"
    )
    assert (
        con.sql("SELECT oracle_hmac('x')").fetchall()[0][0]
        == hmac.new(key, b"x", hashlib.sha256).hexdigest()
    )
