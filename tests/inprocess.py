"""One query's whole path in the test process, without gRPC or adapters:
``prepare_query``, each planned scan run on small generated source rows
(``tests/rewrite_oracle.py``) with its pushed predicate and limit, the
broker's own merge (``broker.merge.Merger``) and, for aggregate-only roles,
the release (``broker.policy.disclosure``).

``oracle_answer`` gives what the caller's SQL gives over the role's view
built without ``broker.policy``, so the two can be compared.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from accord.catalog import SOURCE_COLUMN
from accord.federation import load_federation
from broker.identity import Principal
from broker.merge import Merger, aligned
from broker.policy.disclosure import release, release_key
from broker.policy.masks import partner_key
from broker.policy.store import PolicySet, default_policies_dir
from broker.prepare import prepare_query
from tests import rewrite_oracle as oracle
from tests.conftest import POLICY_FIXTURES, ROOT

if TYPE_CHECKING:
    from broker.planner import TableReference
    from broker.prepare import PreparedQuery

FEDERATION = load_federation(ROOT / "deploy" / "federation.yaml")
POLICIES = [PolicySet.load(d, FEDERATION) for d in (default_policies_dir(), POLICY_FIXTURES)]
DATA = oracle.source_data(FEDERATION)
RAW = oracle.raw_tables(FEDERATION, DATA)
MERGER = Merger(FEDERATION)
SECRET = b"in-process test secret"
#: Each source's rows, as "<source>.<table>", for the scans to run on.
_SOURCES = oracle.connect({f"{s}.{t}": rows for (s, t), rows in DATA.items()})

Rows = list[tuple[Any, ...]]


def principal(name: str) -> Principal:
    for policy in POLICIES:
        if name in policy.registry.partners:
            return Principal(policy.registry.partners[name], "", 0, dt.datetime.now(dt.UTC))
    raise KeyError(name)


def role_of(name: str) -> Any:
    for policy in POLICIES:
        if name in policy.registry.partners:
            return policy.roles[policy.registry.partners[name].role]
    raise KeyError(name)


def prepare(sql: str, partner: str) -> PreparedQuery:
    role = role_of(partner)
    return prepare_query(
        sql,
        principal(partner),
        role,
        FEDERATION,
        purpose=sorted(role.purposes)[0],
        case_ref="CASE-1",
    )


def _scanned(ref: TableReference) -> pa.Table:
    logical = FEDERATION.tables[ref.table]
    schema = logical.arrow_schema(ref.columns).append(pa.field(SOURCE_COLUMN, pa.string()))
    parts = []
    for spec in ref.scans:
        if (spec.source, ref.table) not in DATA:
            continue
        columns = ", ".join(f'"{c}"' for c in spec.columns)
        where = f" WHERE {spec.predicate}" if spec.predicate else ""
        limit = f" LIMIT {spec.limit}" if spec.limit else ""
        sent = _SOURCES.sql(
            f'SELECT {columns} FROM "{spec.source}.{ref.table}"{where}{limit}'
        ).to_arrow_table()
        parts.append(aligned(sent, spec.source, logical.arrow_schema(spec.columns), schema))
    return pa.concat_tables(parts) if parts else schema.empty_table()


def run_prepared(prepared: PreparedQuery, partner: str) -> tuple[list[str], Rows]:
    plan = prepared.plan
    tables = {ref.ref_id: _scanned(ref) for ref in plan.references}
    table, _ = MERGER.run(plan, tables, partner_key(SECRET, partner))
    if prepared.release is not None:
        key = release_key(SECRET, prepared.view.role.name)
        table, _ = release(table, prepared.release, key)
    columns = [c.to_pylist() for c in table.columns]
    return table.column_names, [tuple(_value(v) for v in r) for r in zip(*columns, strict=True)]


def broker_answer(sql: str, partner: str) -> tuple[list[str], Rows]:
    """The broker's answer, merged in process; raises what the broker raises."""
    return run_prepared(prepare(sql, partner), partner)


def oracle_answer(sql: str, partner: str) -> tuple[list[str], Rows]:
    """The caller's SQL over the role's views built independently (not for
    aggregate-only roles, whose answers the broker suppresses)."""
    relation = _oracle_connection(partner).sql(sql)
    rows = relation.fetchall()
    return relation.columns, [tuple(_value(v) for v in r) for r in rows]


@functools.cache
def _oracle_connection(partner: str) -> duckdb.DuckDBPyConnection:
    views = oracle.oracle_tables(
        FEDERATION, RAW, oracle.load_partner(partner), partner_key(SECRET, partner)
    )
    return oracle.connect(views)


def _value(value: Any) -> Any:
    return round(value, 9) if isinstance(value, float) else value
