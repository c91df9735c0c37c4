"""Attacks on the release of aggregate-only answers (issue 19), run as each
aggregate-only partner over the real federation.

The four ways the suppression was undone: differencing two broad cells, a
HAVING oracle, telling an empty cell from a small one (to bisect one
person's attributes), and counting the withheld groups. Each test shows
that what the answer gives stays within the role's documented bound
(``broker.policy.disclosure``, ``broker.policy.privacy``): a released value
within :func:`tolerance` of the truth (b-1 of rounding, plus the noise of a
private role at a one-in-a-billion tail), a difference within twice that, a
withheld cell never distinguishable from an empty one. The averaging of
many distinct pairs, which no per-answer bound stops, is cut off by the
budget: ``tests/integration/test_privacy_budget.py``.

The session raises every private role's yearly budget
(``conftest.session_policies``): these tests ask far more than a year's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.errors import without_query_id
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES
from broker.policy.store import PolicySet
from tests.disclosure_bounds import tolerance
from tests.integration.conftest import rows

if TYPE_CHECKING:
    from accord.client import BrokerClient, QueryResult
    from broker.policy.model import Role
    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

_POLICY = PolicySet.load(DEFAULT_POLICIES, load_federation(DEFAULT_FEDERATION))
#: One partner of every aggregate-only role.
PARTNERS = sorted(
    {
        _POLICY.roles[p.role].name: name
        for name, p in _POLICY.registry.partners.items()
        if _POLICY.roles[p.role].aggregate_only
    }.values()
)
PERSON = "coalesce(fps_number, source || ':' || source_person_id)"
REFUSALS = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)


def role_of(running: Running, partner: str) -> Role:
    return running.policy.roles[running.policy.registry.partners[partner].role]


def text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def truth(running: Running, partner: str, sql: str) -> list[tuple[Any, ...]]:
    """``sql`` on the raw released rows (the role has no row filter)."""
    found: list[tuple[Any, ...]] = running.oracle(partner).sql(sql).fetchall()
    return found


def clear_dimensions(role: Role, table: str) -> list[str]:
    """Dimensions shown unmasked: the same predicate reads the raw rows."""
    grant = role.tables[table]
    return sorted(c for c in grant.dimensions if grant.columns[c] is None)


def tables_with_two_dimensions(role: Role) -> list[str]:
    return [t for t in sorted(role.tables) if len(clear_dimensions(role, t)) >= 2]


def public(result: QueryResult) -> tuple[Any, ...]:
    """All an answer says, but its query id and timings."""
    trailer = result.trailer
    sources = [
        (s.source, s.state, s.rows, s.bytes, s.error, s.scans, s.bad_values)
        for s in trailer.sources
    ]
    schema = [(f.name, str(f.type)) for f in result.table.schema]
    return (
        schema,
        rows(result.table),
        trailer.rows,
        trailer.suppressed_groups,
        trailer.partial,
        sources,
    )


@pytest.fixture(scope="module")
def clients(running: Running) -> Any:
    opened: dict[str, BrokerClient] = {}
    for partner in PARTNERS:
        purpose = sorted(role_of(running, partner).purposes)[0]
        opened[partner] = running.client(partner, end_user="analyst-1", purpose=purpose)
    yield opened
    for client in opened.values():
        client.close()


def narrow_cell(running: Running, partner: str, table: str) -> tuple[str, str, str, str, int]:
    """(d1, v1, d2, v2, rows): a cell d1 = v1 AND d2 = v2 of 1..k-1 persons
    whose row count is no multiple of the base, inside a broad cell d1 = v1
    that stays released without it."""
    role = role_of(running, partner)
    k, base = role.min_group_size, role.rounding_base
    dims = clear_dimensions(role, table)
    for d1 in dims:
        for d2 in (d for d in dims if d != d1):
            cells = truth(
                running,
                partner,
                f"SELECT {d1}, {d2}, count(*), count(DISTINCT {PERSON}) AS p FROM raw.{table} "
                f"WHERE {d1} IS NOT NULL AND {d2} IS NOT NULL GROUP BY ALL "
                f"HAVING p < {k} AND count(*) % {base} <> 0 ORDER BY 1, 2",
            )
            for v1, v2, n, _ in cells:
                (rest,) = truth(
                    running,
                    partner,
                    f"SELECT count(DISTINCT {PERSON}) FROM raw.{table} WHERE {d1} = {text(v1)} "
                    f"AND ({d2} <> {text(v2)} OR {d2} IS NULL)",
                )
                if rest[0] >= k:
                    return d1, v1, d2, v2, n
    pytest.fail(f"no narrow cell in {table} to attack; generate other data")


def released(client: BrokerClient, sql: str) -> list[tuple[Any, ...]]:
    return rows(client.query(sql).table)


# --------------------------------------------------------------------------- differencing


@pytest.mark.parametrize("partner", PARTNERS)
def test_differencing_two_broad_cells_stays_within_the_bound(running, clients, partner):
    """The issue's attack: count(d1 = v) minus count(d1 = v AND d2 <> w) once
    gave the withheld cell exactly; now the difference of two released
    counts, a multiple of the base, within twice the tolerance of the truth
    (2(b-1) for rounding alone), and never the cell exactly without noise."""
    role, client = role_of(running, partner), clients[partner]
    base = role.rounding_base
    for table in tables_with_two_dimensions(role):
        d1, v1, d2, v2, n = narrow_cell(running, partner, table)
        cell = f"{d1} = {text(v1)} AND {d2} = {text(v2)}"
        assert released(client, f"SELECT count(*) FROM {table} WHERE {cell}") == []
        broad = released(client, f"SELECT count(*) FROM {table} WHERE {d1} = {text(v1)}")
        rest = released(
            client,
            f"SELECT count(*) FROM {table} WHERE {d1} = {text(v1)} "
            f"AND ({d2} <> {text(v2)} OR {d2} IS NULL)",
        )
        difference = broad[0][0] - rest[0][0]
        assert broad[0][0] % base == 0 and rest[0][0] % base == 0
        assert abs(difference - n) <= 2 * tolerance(role, table), (table, difference, n)
        assert difference != n  # n is no multiple of the base: never recovered exactly


@pytest.mark.parametrize("partner", PARTNERS)
def test_differencing_sums_stays_within_the_measure_bound(running, clients, partner):
    role, client = role_of(running, partner), clients[partner]
    measured = [t for t in tables_with_two_dimensions(role) if role.tables[t].measures]
    if not measured:
        pytest.skip(f"role {role.name} has no measure on a table with two dimensions")
    for table in measured:
        d1, v1, d2, v2, _ = narrow_cell(running, partner, table)
        for measure, base in sorted(role.tables[table].measures.items()):
            where = f"{d1} = {text(v1)}"
            rest = f"{where} AND ({d2} <> {text(v2)} OR {d2} IS NULL)"
            ((true_cell,),) = truth(
                running,
                partner,
                f"SELECT coalesce(sum({measure}), 0) FROM raw.{table} "
                f"WHERE {d1} = {text(v1)} AND {d2} = {text(v2)}",
            )
            ((a,),) = released(client, f"SELECT sum({measure}) FROM {table} WHERE {where}")
            ((b,),) = released(client, f"SELECT sum({measure}) FROM {table} WHERE {rest}")
            assert a % base == 0 and b % base == 0
            bound = 2 * tolerance(role, table, measure)
            assert abs((a - b) - true_cell) <= bound, (measure, a - b, true_cell)


@pytest.mark.parametrize("partner", PARTNERS)
def test_the_same_cell_asked_again_gets_the_same_answer(running, clients, partner):
    """Repeating a query draws the same values: nothing to average. A
    rounding-only role gives the same draw to the cell however it is
    phrased (reordered or redundant filters, a grouped query holding it); a
    private role identifies a cell by its query (``broker.policy.privacy``:
    by its persons, a differencing pair would answer alike exactly when the
    cell between them is empty), so a rephrasing is a fresh draw it pays for,
    within the tolerance of the truth."""
    role, client = role_of(running, partner), clients[partner]
    for table in tables_with_two_dimensions(role):
        d1, v1, d2, _, _ = narrow_cell(running, partner, table)
        asked = [
            f"SELECT count(*) FROM {table} WHERE {d1} = {text(v1)}",
            f"SELECT count(*) AS n FROM {table} WHERE {d1} = {text(v1)}",
            f"SELECT count(*) FROM {table} WHERE {d1} IN ({text(v1)}) "
            f"AND ({d2} IS NULL OR {d2} IS NOT NULL)",
            f"SELECT count(*) FROM {table} WHERE NOT ({d1} <> {text(v1)}) AND {d1} = {text(v1)}",
        ]
        for sql in asked:
            assert len({released(client, sql)[0][0] for _ in range(3)}) == 1, sql
        answers = {released(client, sql)[0][0] for sql in asked}
        grouped = released(client, f"SELECT {d1}, count(*) FROM {table} GROUP BY {d1}")
        answers |= {n for v, n in grouped if v == v1}
        if role.privacy is None:
            assert len(answers) == 1, answers
        (true,) = truth(
            running, partner, f"SELECT count(*) FROM raw.{table} WHERE {d1} = {text(v1)}"
        )
        assert all(abs(a - true[0]) <= tolerance(role, table) for a in answers), answers


# --------------------------------------------------------------------------- HAVING and kin


@pytest.mark.parametrize("partner", PARTNERS)
def test_having_probes_are_refused_alike_for_every_n(running, clients, partner):
    """``HAVING count(*) = n`` once answered INTERNAL for every n but the true
    count; now refused, with one status and one message for every n."""
    role, client = role_of(running, partner), clients[partner]
    for table in tables_with_two_dimensions(role):
        d1, v1, d2, v2, _ = narrow_cell(running, partner, table)
        seen = set()
        for n in range(role.min_group_size + 2):
            sql = (
                f"SELECT {d1}, count(*) FROM {table} WHERE {d1} = {text(v1)} AND "
                f"{d2} = {text(v2)} GROUP BY {d1} HAVING count(*) = {n}"
            )
            with pytest.raises(grpc.RpcError) as caught:
                client.query(sql)
            seen.add((caught.value.code(), without_query_id(caught.value.details() or "")))
        assert len(seen) == 1, seen
        ((code, details),) = seen
        assert code in REFUSALS and "HAVING" in details


@pytest.mark.parametrize(
    "shape",
    [
        "SELECT {d1}, count(*) % 5 FROM {t} WHERE {cell} GROUP BY {d1}",
        "SELECT {d1}, count(*) = 3 FROM {t} WHERE {cell} GROUP BY {d1}",
        "SELECT {d1}, count(*) FROM {t} WHERE {cell} GROUP BY {d1} ORDER BY count(*)",
        "SELECT {d1}, count(*) FROM {t} WHERE {cell} GROUP BY {d1} ORDER BY 2 LIMIT 1",
    ],
)
@pytest.mark.parametrize("partner", PARTNERS)
def test_computing_on_exact_aggregates_is_refused(running, clients, partner, shape):
    role, client = role_of(running, partner), clients[partner]
    for table in tables_with_two_dimensions(role):
        d1, v1, d2, v2, _ = narrow_cell(running, partner, table)
        cell = f"{d1} = {text(v1)} AND {d2} = {text(v2)}"
        with pytest.raises(grpc.RpcError) as caught:
            client.query(shape.format(d1=d1, t=table, cell=cell))
        assert caught.value.code() in REFUSALS, caught.value.details()


# --------------------------------------------------------------------------- empty or small


def lone_person_cell(running: Running, partner: str, table: str) -> tuple[str, str, str, str]:
    """(d1, v1, d2, v2): a cell that holds exactly one person."""
    dims = clear_dimensions(role_of(running, partner), table)
    for d1 in dims:
        for d2 in (d for d in dims if d != d1):
            found = truth(
                running,
                partner,
                f"SELECT {d1}, {d2} FROM raw.{table} WHERE {d1} IS NOT NULL AND "
                f"{d2} IS NOT NULL GROUP BY ALL HAVING count(DISTINCT {PERSON}) = 1 ORDER BY 1, 2",
            )
            if found:
                return d1, found[0][0], d2, found[0][1]
    pytest.fail(f"no one-person cell in {table}")


@pytest.mark.parametrize("partner", PARTNERS)
def test_one_persons_attributes_cannot_be_bisected(running, clients, partner):
    """The issue's bisection: narrowing a one-person cell by a third
    dimension once answered "suppressed" for the person's value and
    INTERNAL for the others. Now every value, the person's or not, and a
    value nobody has, gets the same answer, grouped or not."""
    role, client = role_of(running, partner), clients[partner]
    for table in tables_with_two_dimensions(role):
        d1, v1, d2, v2 = lone_person_cell(running, partner, table)
        cell = f"{d1} = {text(v1)} AND {d2} = {text(v2)}"
        for d3 in [d for d in clear_dimensions(role, table) if d not in (d1, d2)] or [d2]:
            values = [
                v for (v,) in truth(running, partner, f"SELECT DISTINCT {d3} FROM raw.{table}")
            ]
            probes = [f"{d3} = {text(v)}" for v in values if v is not None]
            probes += [f"{d3} = 'NO SUCH VALUE'", f"{d3} IS NULL", f"{d3} IS NOT NULL"]
            answers = set()
            for probe in probes:
                for sql in (
                    f"SELECT count(*), count(DISTINCT {d3}) FROM {table} WHERE {cell} AND {probe}",
                    f"SELECT {d3}, count(*) FROM {table} WHERE {cell} AND {probe} GROUP BY {d3}",
                ):
                    answers.add((sql.split(" FROM")[0], repr(public(client.query(sql)))))
            assert len(answers) == 2, sorted(answers)  # one answer per query shape


@pytest.mark.parametrize("partner", PARTNERS)
def test_withheld_groups_are_not_counted(running, clients, partner):
    """Grouping a withheld cell by near-unique dimensions once returned no
    rows with ``suppressed_groups`` = its persons. The trailer now says the
    same for that cell as for an empty one."""
    role, client = role_of(running, partner), clients[partner]
    for table in tables_with_two_dimensions(role):
        d1, v1, d2, v2, _ = narrow_cell(running, partner, table)
        dims = ", ".join(sorted(role.tables[table].dimensions))
        answers = []
        for v in (v2, "NO SUCH VALUE"):
            sql = (
                f"SELECT {dims}, count(*) FROM {table} WHERE {d1} = {text(v1)} AND "
                f"{d2} = {text(v)} GROUP BY {dims}"
            )
            result = client.query(sql)
            assert result.trailer.suppressed_groups == 0 and rows(result.table) == []
            answers.append(public(result))
        assert answers[0] == answers[1]


# --------------------------------------------------------------------------- property


@pytest.mark.parametrize("partner", PARTNERS)
def test_overlapping_filters_never_recover_a_withheld_cell(running, clients, partner):
    """Random pairs A = (d1 = v), B = (d1 = v AND d2 <> w): when the cell
    A minus B is withheld (fewer than k persons), the released A - B stays a
    multiple of the base within twice the tolerance of the truth; every released value
    is within the tolerance of its truth, every withheld one covers fewer
    than k."""
    role, client = role_of(running, partner), clients[partner]
    k, base = role.min_group_size, role.rounding_base
    tables = tables_with_two_dimensions(role)
    values: dict[tuple[str, str], list[str]] = {}
    for table in tables:
        for d in clear_dimensions(role, table):
            found = truth(running, partner, f"SELECT DISTINCT {d} FROM raw.{table} ORDER BY 1")
            values[table, d] = [v for (v,) in found if v is not None]

    @st.composite
    def pairs(draw: st.DrawFn) -> tuple[str, str, str]:
        table = draw(st.sampled_from(tables))
        d1, d2 = draw(st.permutations(clear_dimensions(role, table)))[:2]
        v = draw(st.sampled_from(values[table, d1]))
        w = draw(st.sampled_from(values[table, d2]))
        return (
            table,
            f"{d1} = {text(v)}",
            f"{d1} = {text(v)} AND ({d2} <> {text(w)} OR {d2} IS NULL)",
        )

    def answer(table: str, where: str) -> int | None:
        got = released(client, f"SELECT count(*) FROM {table} WHERE {where}")
        ((n, persons),) = truth(
            running,
            partner,
            f"SELECT count(*), count(DISTINCT {PERSON}) FROM raw.{table} WHERE {where}",
        )
        if persons < k:
            assert got == [], (where, got)
            return None
        assert got[0][0] % base == 0, (where, got)
        assert abs(got[0][0] - n) <= tolerance(role, table), (where, got, n)
        return int(got[0][0])

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(pairs())
    def check(pair: tuple[str, str, str]) -> None:
        table, a_where, b_where = pair
        a, b = answer(table, a_where), answer(table, b_where)
        ((cell, persons),) = truth(
            running,
            partner,
            f"SELECT count(*), count(DISTINCT {PERSON}) FROM raw.{table} "
            f"WHERE ({a_where}) AND NOT ({b_where})",
        )
        if a is None or b is None or persons >= k:
            return
        assert (a - b) % base == 0, (pair, a - b)
        assert abs((a - b) - cell) <= 2 * tolerance(role, table), (pair, a - b, cell)

    check()


RISKY = [
    "CAST({d} AS INTEGER) = 1",
    "{d} = 1",
    "{d} > DATE '2000-01-01'",
    "length({d}) / 0 = 1",
    "CAST({d} AS DATE) IS NOT NULL",
]


@pytest.mark.parametrize("risky", RISKY)
@pytest.mark.parametrize("partner", PARTNERS)
def test_an_error_does_not_tell_a_small_cell_from_an_empty_one(running, clients, partner, risky):
    """A predicate that fails on a stored value fails (or not) the same way
    whether the cell it narrows holds one person or none."""
    role, client = role_of(running, partner), clients[partner]
    for table in tables_with_two_dimensions(role):
        d1, v1, d2, v2 = lone_person_cell(running, partner, table)
        outcomes = []
        for value in (v2, "NO SUCH VALUE"):
            sql = (
                f"SELECT count(*) FROM {table} WHERE {d1} = {text(v1)} AND {d2} = {text(value)} "
                f"AND {risky.format(d=d2)}"
            )
            try:
                outcomes.append(("answer", repr(public(client.query(sql)))))
            except grpc.RpcError as error:
                assert error.code() in REFUSALS, (sql, error.code(), error.details())
                outcomes.append((error.code().name, without_query_id(error.details() or "")))
        assert outcomes[0] == outcomes[1], outcomes


@pytest.mark.parametrize("partner", PARTNERS)
def test_the_audit_keeps_what_the_partner_is_not_told(running, clients, partner):
    """The query_end record holds the exact number of groups withheld and
    how the answer was released; the trailer says 0."""
    role, client = role_of(running, partner), clients[partner]
    table = tables_with_two_dimensions(role)[0]
    d1, d2 = clear_dimensions(role, table)[:2]
    result = client.query(f"SELECT {d1}, {d2}, count(*) FROM {table} GROUP BY {d1}, {d2}")
    ((small,),) = truth(
        running,
        partner,
        f"SELECT count(*) FROM (SELECT {d1}, {d2} FROM raw.{table} GROUP BY ALL "
        f"HAVING count(DISTINCT {PERSON}) < {role.min_group_size})",
    )
    records = [
        json.loads(line)
        for path in sorted(running.workdir.audit_dir().glob("audit-*.jsonl"))
        for line in path.read_text().splitlines()
        if result.query_id in line
    ]
    (end,) = [r for r in records if r.get("event") == "query_end"]
    assert small > 0 and end["groups_suppressed"] == small
    assert f"counts rounded to base {role.rounding_base}" in end["disclosure"]
    assert result.trailer.suppressed_groups == 0
    if role.privacy is not None:  # what the answer cost: broker.budget
        assert "discrete Laplace noise (OpenDP)" in end["disclosure"]
        charge = end["privacy"]
        assert charge["epsilon_charged"] in (0, role.privacy.epsilon_per_query)
        assert charge["epsilon_spent"] + charge["epsilon_remaining"] == pytest.approx(
            role.privacy.epsilon_per_year
        )


ODD_SHAPES = [
    "SELECT count(*) AS count_all FROM offenders WHERE gender = 'NO SUCH' LIMIT 0",
    "SELECT avg(length_days) AS avg_days, sum(length_days) AS sum_days, "
    "count(length_days) AS count_days FROM sentences WHERE offence_code = 'NO SUCH'",
    "SELECT gender, avg(length_days) AS avg_days FROM offenders o JOIN sentences s "
    "ON o.birth_date = s.sentence_date WHERE o.gender = 'NO SUCH' GROUP BY gender",
    "SELECT o.gender, count(*) AS count_all, count(DISTINCT s.offence_code) AS count_codes "
    "FROM offenders o JOIN sentences s ON o.birth_date = s.sentence_date GROUP BY o.gender",
    "SELECT sentence_type, avg(DISTINCT length_days) AS avg_days, "
    "sum(DISTINCT length_days) AS sum_days FROM sentences GROUP BY sentence_type "
    "ORDER BY sentence_type DESC NULLS FIRST LIMIT 2 OFFSET 1",
    "SELECT count(*) AS count_all FROM offenders "
    "WHERE birth_date BETWEEN -5 AND 99999999999999999999",
    "SELECT count(*) AS count_all FROM offenders WHERE gender IN ('M', NULL) OR NOT status IS NULL",
]


@pytest.mark.parametrize("sql", ODD_SHAPES)
def test_odd_shapes_are_answered_or_refused_clearly(running, clients, sql):
    """Empty joins, averages of nothing, DISTINCT sums, LIMIT 0: an answer
    whose statistics are rounded, or a clear refusal; never INTERNAL."""
    client = clients["statistics"]
    role = role_of(running, "statistics")
    base = {"count": role.rounding_base, "sum": role.tables["sentences"].measures["length_days"]}
    try:
        result = client.query(sql)
    except grpc.RpcError as error:
        assert error.code() in REFUSALS, (error.code(), error.details())
        return
    assert result.trailer.suppressed_groups == 0
    for field, column in zip(result.table.schema, result.table.columns, strict=True):
        kind = field.name.split("_")[0]
        if kind in base:
            assert all(v % base[kind] == 0 for v in column.to_pylist() if v is not None), field
