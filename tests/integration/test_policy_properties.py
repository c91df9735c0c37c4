"""Property: whatever a partner asks over the catalog, the broker either
refuses (and the query did name something the role may not see, or is
invalid for the oracle too), or answers exactly what the same SQL gives on
the partner's entitled view (``running.oracle(partner)``).

Queries are generated over ALL logical columns of a table the role can see,
denied ones included, with WHERE conjuncts whose literals come from the
generated data, optional ORDER BY ALL / LIMIT, and optionally a self-join or
a UNION with another visible table.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from decimal import Decimal
from typing import TYPE_CHECKING

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import rows

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from accord.client import BrokerClient
    from broker.policy.model import Role
    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

CASE_REF = "R-2026-0042"
REFUSALS = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)


class Catalog:
    """What the generator needs, computed once from the running federation."""

    def __init__(self, running: Running) -> None:
        self.running = running
        policy = running.policy
        self.partners = sorted(
            name
            for name, partner in policy.registry.partners.items()
            if name == partner.role
            and not policy.roles[partner.role].aggregate_only
            and policy.roles[partner.role].tables
        )
        self.clients: dict[str, BrokerClient] = {}

    def role(self, partner: str) -> Role:
        return self.running.policy.roles[self.running.policy.registry.partners[partner].role]

    def visible(self, partner: str, table: str) -> list[str]:
        grant = self.role(partner).tables.get(table)
        if grant is None:
            return []
        released = self.running.federation.released_columns(table)
        visible = [c for c in released if c in grant.columns]
        return [*visible, "source"] if visible and "source" in grant.columns else visible

    def tables(self, partner: str) -> list[str]:
        return [t for t in self.role(partner).tables if self.visible(partner, t)]

    def columns(self, table: str) -> list[str]:
        return [*self.running.federation.tables[table].columns, "source"]

    def column(self, partner: str, table: str) -> st.SearchStrategy[str]:
        """Any logical column, visible ones about nine times in ten."""
        visible = self.visible(partner, table)
        return st.one_of(*[st.sampled_from(visible)] * 9, st.sampled_from(self.columns(table)))

    def type_of(self, table: str, column: str) -> str:
        return (
            "VARCHAR"
            if column == "source"
            else self.running.federation.tables[table].columns[column]
        )

    def client(self, partner: str) -> BrokerClient:
        if partner not in self.clients:
            self.clients[partner] = self.running.client(
                partner,
                end_user="property-test",
                purpose=sorted(self.role(partner).purposes)[0],
                case_ref=CASE_REF if self.role(partner).case_reference_required else "",
            )
        return self.clients[partner]

    def values(self, table: str, column: str) -> list[object]:
        """Generated values of one column, over every source that has the table."""
        found: list[object] = []
        for code, tables in self.running.generated.items():
            if table not in tables:
                continue
            if column == "source":
                found.append(code)
            elif column in tables[table].column_names:
                found += tables[table].column(column).to_pylist()[:400]
        return found or [None]


@pytest.fixture(scope="module")
def catalog(running: Running) -> Iterator[Catalog]:
    c = Catalog(running)
    yield c
    for client in c.clients.values():
        client.close()


def literal(value: object, type_name: str) -> str:
    if value is None:
        return "NULL"
    if type_name == "DATE":
        return f"DATE '{value.isoformat() if isinstance(value, dt.date) else value}'"
    if type_name in ("BIGINT", "DOUBLE"):
        return str(value)
    if type_name == "BOOLEAN":
        return "TRUE" if value else "FALSE"
    return "'" + str(value).replace("'", "''") + "'"


@st.composite
def conjunct(
    draw: st.DrawFn, catalog: Catalog, partner: str, table: str, alias: str = ""
) -> tuple[str, set[str]]:
    column = draw(catalog.column(partner, table))
    type_name = catalog.type_of(table, column)
    ref = f"{alias}.{column}" if alias else column
    value = draw(st.sampled_from(catalog.values(table, column)))
    ops = ["=", "<>", "<", ">=", "IS NULL", "IS NOT NULL", "IN"]
    if type_name == "VARCHAR":
        ops.append("LIKE")
    op = draw(st.sampled_from(ops))
    if op in ("IS NULL", "IS NOT NULL"):
        return f"{ref} {op}", {column}
    if value is None:
        return f"{ref} IS NULL", {column}
    if op == "IN":
        other = draw(st.sampled_from(catalog.values(table, column)))
        items = ", ".join(literal(v, type_name) for v in {value, other} if v is not None)
        return f"{ref} IN ({items})", {column}
    if op == "LIKE":
        return f"{ref} LIKE {literal(str(value)[:3] + '%', 'VARCHAR')}", {column}
    return f"{ref} {op} {literal(value, type_name)}", {column}


@st.composite
def queries(draw: st.DrawFn, catalog: Catalog) -> tuple[str, str, set[tuple[str, str]], bool]:
    """(partner, sql, referenced {(table, column)}, ordered)."""
    partner = draw(st.sampled_from(catalog.partners))
    table = draw(st.sampled_from(catalog.tables(partner)))
    shape = draw(st.sampled_from(["plain", "plain", "self_join", "union"]))
    columns = draw(st.lists(catalog.column(partner, table), min_size=1, max_size=4, unique=True))
    used = {(table, c) for c in columns}
    where = draw(
        st.lists(conjunct(catalog, partner, table, "a" if shape == "self_join" else ""), max_size=3)
    )
    for _, cols in where:
        used |= {(table, c) for c in cols}
    glue = draw(st.sampled_from([" AND ", " OR "]))
    where_sql = f" WHERE {glue.join(f'({w})' for w, _ in where)}" if where else ""
    ordered = draw(st.booleans())
    limit = draw(st.sampled_from([None, 1, 7, 50]))

    if shape == "plain":
        sql = f"SELECT {', '.join(columns)} FROM {table}{where_sql}"
    elif shape == "self_join":
        keys = [
            k for k in ("fps_number", "source_person_id") if k in catalog.visible(partner, table)
        ] or ["fps_number"]
        key = draw(
            st.one_of(
                *[st.sampled_from(keys)] * 3, st.sampled_from(["fps_number", "source_person_id"])
            )
        )
        other = draw(catalog.column(partner, table))
        used |= {(table, key), (table, other)}
        select = ", ".join([*(f"a.{c}" for c in columns), f"b.{other}"])
        side = draw(st.sampled_from(["JOIN", "LEFT JOIN", "FULL JOIN"]))
        sql = f"SELECT {select} FROM {table} a {side} {table} b ON a.{key} = b.{key}{where_sql}"
        ordered, limit = True, limit or 200  # a join can be large: always a page
    else:
        second = draw(st.sampled_from(catalog.tables(partner)))
        others = draw(
            st.lists(catalog.column(partner, second), min_size=len(columns), max_size=len(columns))
        )
        used |= {(second, c) for c in others}
        second_where = draw(st.lists(conjunct(catalog, partner, second), max_size=1))
        for _, cols in second_where:
            used |= {(second, c) for c in cols}
        operator = draw(st.sampled_from(["UNION", "UNION ALL", "EXCEPT", "INTERSECT"]))
        left = ", ".join(f"CAST({c} AS VARCHAR)" for c in columns)
        right = ", ".join(f"CAST({c} AS VARCHAR)" for c in others)
        right_where = f" WHERE {second_where[0][0]}" if second_where else ""
        sql = (
            f"SELECT {left} FROM {table}{where_sql} {operator} "
            f"SELECT {right} FROM {second}{right_where}"
        )
    if ordered:
        sql += " ORDER BY ALL"
    if limit is not None and ordered:
        sql += f" LIMIT {limit}"
    return partner, sql, used, ordered


def _norm(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else round(float(value), 9)
    if isinstance(value, float):
        return round(value, 9)
    return value


def _same(
    got: Iterable[Sequence[object]], expected: Iterable[Sequence[object]], ordered: bool
) -> bool:
    mine = [tuple(_norm(v) for v in r) for r in got]
    theirs = [tuple(_norm(v) for v in r) for r in expected]
    if ordered:
        return mine == theirs
    return Counter(map(repr, mine)) == Counter(map(repr, theirs))


#: Longer hunts: ACCORD_PROPERTY_EXAMPLES=2000 pytest tests/integration/test_policy_properties.py
EXAMPLES = int(os.environ.get("ACCORD_PROPERTY_EXAMPLES", "60"))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_answer_is_a_refusal_or_the_entitled_view(catalog, data):
    partner, sql, used, ordered = data.draw(queries(catalog), label="query")
    denied = sorted({(t, c) for t, c in used if c not in catalog.visible(partner, t)})
    try:
        result = catalog.client(partner).query(sql)
    except grpc.RpcError as error:
        details = error.details() or ""
        event(f"refused: {error.code().name}")
        assert error.code() in REFUSALS, f"{partner}: {sql}\n -> {error.code()}: {details}"
        if error.code() == grpc.StatusCode.PERMISSION_DENIED:
            assert denied, f"{partner} refused a query over visible columns: {sql}\n{details}"
            assert any(f"column {c} is not available" in details for _, c in denied), details
        elif not denied:
            # Invalid for the broker: it must be invalid on the entitled view as well.
            with pytest.raises(Exception):  # noqa: B017 - any DuckDB error
                catalog.running.oracle(partner).sql(sql).fetchall()
        return
    assert not denied, f"LEAK? {partner} was answered over denied {denied}: {sql}"
    got = rows(result.table)
    event("answered, empty" if not got else "answered, rows")
    expected = catalog.running.oracle(partner).sql(sql).fetchall()
    assert _same(got, expected, ordered), (
        f"{partner}: {sql}\n broker {len(got)}: {got[:5]}\n oracle {len(expected)}: {expected[:5]}"
    )


def test_generator_catalog_matches_get_catalog(catalog):
    """The generator's idea of what each partner sees is the broker's catalog."""
    for partner in catalog.partners:
        served = {
            t.name: [c.name for c in t.columns] for t in catalog.client(partner).catalog().tables
        }
        assert served == {t: catalog.visible(partner, t) for t in catalog.tables(partner)}, partner
