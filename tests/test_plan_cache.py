"""The plan cache (``broker.plan_cache``) is exactly an uncached prepare.

The property: for random queries (``tests/sqlfuzz.py``'s and point-lookup
shapes over every kind of column: text, masked, dates, ``source``) asked
several times with other string values in the same places, what the cache
returns equals what ``prepare_query`` returns for the same text, field by
field (``plan_cache.fingerprint``: SQL, plan, scans, masks, row filters, FPS
numbers, release), and an error is the same error.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlglot
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlglot.tokenizer_core import TokenType

from accord.audit.lookups import FPS_SHAPE
from accord.errors import AccordError
from broker import plan_cache
from broker.metrics import PLAN_CACHE_OUTCOMES
from broker.plan_cache import PlanCache, fingerprint
from broker.prepare import prepare_query
from tests import inprocess, sqlfuzz
from tests.test_fuzz_prepare import CATALOGS

#: Roles of every kind, the aggregate-only one among them (never cached).
PARTNERS = ["police", "crown_attorney", "residential_facility", "victim", "contract_agency"]
ALL_PARTNERS = [*PARTNERS, "statistics"]

#: Values put where a query has a string: FPS numbers, codes, plain words,
#: and values the cache must not bind (quotes, wildcards, spaces, empty).
VALUES = st.one_of(
    st.from_regex(r"[0-9]{7}[A-Z]", fullmatch=True),
    st.sampled_from(["1051244T", "UAL", "IN_CUSTODY", "SUPERVISED", "BC", "ON", "QC", "CA-CSC"]),
    st.sampled_from(["2020-01-31", "1980", "M", "F", "ACTIVE", "A%", "_", "O'BRIEN", "", " x"]),
    # dates, real or not, for DATE '...' literals
    st.sampled_from(["1980-02-29", "1981-02-29", "2001-13-01", "0001-01-01", "9999-12-31"]),
    st.dates().map(str),
    st.from_regex(r"[A-Za-z0-9_.:@/-]{1,12}", fullmatch=True),
)


@st.composite
def lookup_sql(draw: st.DrawFn, catalog: sqlfuzz.Catalog) -> str:
    """A point lookup or a short filter with string literals compared with columns."""
    table = draw(st.sampled_from(sorted(catalog)))
    columns = [*(catalog[table] or ["fps_number"]), "source"]
    picked = draw(st.lists(st.sampled_from(columns), min_size=1, max_size=3, unique=True))

    def test() -> str:
        column = draw(st.sampled_from(columns))
        value = f"'{draw(VALUES).replace(chr(39), chr(39) * 2)}'"
        form = draw(st.integers(0, 5))
        if form == 4:  # a date literal, compared with any column (a date's, or not)
            return f"{column} {draw(st.sampled_from(['=', '<>', '>=']))} DATE {value}"
        if form == 5:
            days = ", ".join(
                f"DATE '{v}'" for v in draw(st.lists(VALUES, max_size=2)) if "'" not in v
            )
            return f"{column} IN (DATE {value}{', ' + days if days else ''})"
        if form == 0:
            return f"{column} = {value}"
        if form == 1:
            return f"{value} <> {column}"
        if form == 2:
            more = ", ".join(f"'{v}'" for v in draw(st.lists(VALUES, max_size=3)) if "'" not in v)
            return f"{column} IN ({value}{', ' + more if more else ''})"
        return f"{column} >= {value}"

    where = " AND ".join(test() for _ in range(draw(st.integers(1, 3))))
    limit = draw(st.sampled_from(["", " LIMIT 3", " LIMIT 10"]))
    return f"SELECT {', '.join(picked)} FROM {table} WHERE {where}{limit}"


def queries(catalog: sqlfuzz.Catalog) -> st.SearchStrategy[str]:
    return st.one_of(
        lookup_sql(catalog), lookup_sql(catalog), sqlfuzz.plain_sql(catalog), sqlfuzz.grammar_sql()
    )


def _strings(sql: str) -> list[tuple[int, int]]:
    """Spans of the string literals of ``sql``."""
    try:
        tokens = sqlglot.Dialect.get_or_raise("duckdb").tokenize(sql)
    except sqlglot.errors.SqlglotError:
        return []
    return [(t.start, t.end + 1) for t in tokens if t.token_type == TokenType.STRING]


def with_values(sql: str, values: list[str]) -> str:
    """``sql`` with its string literals replaced, in order, by ``values`` (cycled)."""
    if not values:
        return sql
    out, at = [], 0
    for n, (start, end) in enumerate(_strings(sql)):
        value = values[n % len(values)].replace("'", "''")
        out += [sql[at:start], f"'{value}'"]
        at = end
    return "".join([*out, sql[at:]])


def outcome(prepare, sql: str, partner: str, n: int) -> tuple[object, ...]:
    role = inprocess.role_of(partner)
    try:
        prepared = prepare(
            sql,
            inprocess.principal(partner),
            role,
            inprocess.FEDERATION,
            purpose=sorted(role.purposes)[0],
            case_ref="CASE-1",
            ref_prefix=f"q{n:08x}_ref",
            cache={},
        )
    except AccordError as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("prepared", fingerprint(prepared))


@settings(
    max_examples=60,  # each example prepares its query 8-12 times, cached and not
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.sampled_from(ALL_PARTNERS).flatmap(
        lambda p: st.tuples(st.just(p), queries(CATALOGS.get(p, sqlfuzz.MODEL)))
    ),
    st.lists(st.lists(VALUES, min_size=1, max_size=4), min_size=3, max_size=5),
)
def test_a_cached_prepare_is_exactly_an_uncached_one(partner_sql, variants):
    partner, sql = partner_sql
    cache = PlanCache()
    for n, values in enumerate([[], *variants]):  # the query as drawn, then its variants
        text = with_values(sql, values)
        cached = outcome(cache.prepare, text, partner, n)
        assert cached == outcome(prepare_query, text, partner, n), text
    event(f"hits {min(cache.hits, 3)}")


def ask(
    cache: PlanCache, sql: str, partner: str = "crown_attorney", n: int = 0
) -> tuple[object, ...]:
    return outcome(cache.prepare, sql, partner, n)


POINT = "SELECT surname, given_names, status FROM offenders WHERE fps_number = '{}'"


def test_a_point_lookup_is_bound_from_its_template_from_the_third_sight():
    cache = PlanCache()
    for n, fps in enumerate(["1051244T", "2000001A", "3000002B", "4000003C"]):
        sql = POINT.format(fps)
        assert ask(cache, sql, n=n) == outcome(prepare_query, sql, "crown_attorney", n)
    assert (cache.misses, cache.hits, cache.uncacheable) == (2, 2, 0)
    role = inprocess.role_of("crown_attorney")
    prepared = cache.prepare(
        POINT.format("5000004D"),
        inprocess.principal("crown_attorney"),
        role,
        inprocess.FEDERATION,
        purpose=sorted(role.purposes)[0],
        case_ref="CASE-1",
        ref_prefix="q00000abc_ref",
    )
    assert prepared.fps_numbers == ["5000004D"]
    assert all("5000004D" in s.predicate for r in prepared.plan.references for s in r.scans)
    assert "q00000abc_ref1" in prepared.plan.merge_sql


@pytest.mark.parametrize(
    ("sql", "values"),
    [
        # source = '...' chooses the sources asked: its value is part of the key
        ("SELECT surname FROM offenders WHERE source = '{}'", ["BC", "ON", "QC", "YT"]),
        # a date compared with a string: not a text column, not a parameter
        ("SELECT surname FROM offenders WHERE birth_date = '{}'", ["1980-01-01", "1990-02-03"]),
        # a LIKE pattern is never a parameter
        ("SELECT surname FROM offenders WHERE surname LIKE '{}'", ["B%", "B", "_x", "Q%"]),
    ],
)
def test_literals_that_change_the_plan_are_not_parameters(sql, values):
    cache = PlanCache()
    for n, value in enumerate(values * 2):
        text = sql.format(value)
        assert ask(cache, text, "police", n) == outcome(prepare_query, text, "police", n)
    for value in values:  # every value's own plan, not the first one's
        text = sql.format(value)
        assert ask(cache, text, "police") == outcome(prepare_query, text, "police", 0)


def test_a_template_is_built_only_for_values_seen_twice(monkeypatch):
    """A literal that is no parameter (a LIKE pattern) different each time:
    no template would ever be used, so none is built (each costs two prepares)."""
    built: list[object] = []
    real = plan_cache._build

    def counted(*args: Any) -> Any:
        built.append(args)
        return real(*args)

    monkeypatch.setattr(plan_cache, "_build", counted)
    cache = PlanCache()
    query = "SELECT surname FROM offenders WHERE given_names LIKE '{}' AND surname = '{}'"
    for n, pattern in enumerate(["A%", "B%", "C%", "D%"]):
        sql = query.format(pattern, f"NAME{n}")
        assert ask(cache, sql, n=n) == outcome(prepare_query, sql, "crown_attorney", n)
    assert (built, cache.hits) == ([], 0)
    for n, name in enumerate(["OTHER", "THIRD"]):  # a pattern seen before: now a template
        sql = query.format("C%", name)
        assert ask(cache, sql, n=n) == outcome(prepare_query, sql, "crown_attorney", n)
    assert (len(built), cache.hits) == (1, 1)


def test_a_historys_linkage_block_binds_its_birth_dates():
    """Dates compared with a date column are parameters: the block of every
    history is one shape, bound from its template from the third on."""
    cache = PlanCache()
    block = "SELECT surname, source FROM offenders WHERE birth_date IN (DATE '{}', DATE '{}')"
    days = [
        ("1980-01-02", "1980-02-01"),
        ("1975-12-31", "1975-12-31"),
        ("2000-02-29", "2000-01-01"),
    ]
    for n, (a, b) in enumerate(days * 2):
        sql = block.format(a, b)
        assert ask(cache, sql, n=n) == outcome(prepare_query, sql, "crown_attorney", n)
    assert (cache.misses, cache.hits) == (2, 4)
    for n, (a, b) in enumerate([("1981-02-29", "1980-01-01"), ("1111-11-12", "1980-01-01")]):
        sql = block.format(a, b)  # not a date; a sentinel's text: prepared afresh
        assert ask(cache, sql, n=n) == outcome(prepare_query, sql, "crown_attorney", n)
    assert cache.hits == 4


def test_limit_and_in_list_length_are_part_of_the_shape():
    cache = PlanCache()
    for sql in [
        "SELECT surname FROM offenders WHERE fps_number = '1051244T' LIMIT 3",
        "SELECT surname FROM offenders WHERE fps_number = '1051244T' LIMIT 4",
        "SELECT surname FROM offenders WHERE fps_number IN ('1051244T')",
        "SELECT surname FROM offenders WHERE fps_number IN ('1051244T', '2000001A')",
    ]:
        ask(cache, sql)
    assert len(cache) == 4
    assert cache.hits == 0


def test_an_aggregate_only_role_is_never_cached():
    cache = PlanCache()
    sql = (
        "SELECT status, count(*) FROM offenders "
        "WHERE supervising_jurisdiction = 'BC' GROUP BY status"
    )
    for n in range(3):
        assert ask(cache, sql, "statistics", n) == outcome(prepare_query, sql, "statistics", n)
    assert (cache.hits, cache.uncacheable) == (0, 3)


def test_errors_are_never_cached():
    cache = PlanCache()
    sql = "SELECT health_note FROM offenders WHERE fps_number = '{}'"
    answers = [ask(cache, sql.format(f"{n}000000A"), n=n) for n in range(1, 5)]
    assert all(a[0] == "error" for a in answers)
    assert cache.hits == 0


def test_the_cache_is_bounded_and_counts_into_its_observer():
    seen: list[str] = []
    cache = PlanCache(max_shapes=2, observe=seen.append)
    for column in ["surname", "given_names", "status"]:
        ask(cache, f"SELECT {column} FROM offenders WHERE fps_number = '1051244T'")
    assert len(cache) == 2
    assert set(seen) <= set(PLAN_CACHE_OUTCOMES) == set(plan_cache.OUTCOMES)


def test_a_reloaded_policy_starts_an_empty_cache():
    from broker.pipeline import QueryPipeline

    policies = inprocess.POLICIES[0]
    pipeline = QueryPipeline(inprocess.FEDERATION, None, policies, b"secret")  # type: ignore[arg-type]
    try:
        old = pipeline.plans
        old.observe = lambda outcome: None
        ask(old, POINT.format("1051244T"))
        pipeline.use_policies(policies)
        assert pipeline.plans is not old
        assert len(pipeline.plans) == 0
        assert pipeline.plans.observe is old.observe
    finally:
        pipeline.close()


def test_sentinels_do_not_collide():
    assert re.fullmatch(plan_cache.SENTINEL, "QzL1iTq")
    assert "QzL1iTq" not in "QzL10iTq"
    assert not FPS_SHAPE.fullmatch("QzL1iTq")
    dates = [plan_cache._date_sentinel(i) for i in range(plan_cache.MAX_DATE_PARAMETERS)]
    assert all(plan_cache._date(d) for d in dates) and len(set(dates)) == len(dates)
    assert [plan_cache._SUBSTITUTION.fullmatch(d)[2] for d in dates] == [  # type: ignore[index]
        str(10 + i) for i in range(len(dates))
    ]
    assert plan_cache._SUBSTITUTION.search("21111-11-15") is None


def test_a_query_nested_too_deep_is_refused_on_every_sight():
    sql = "SELECT surname FROM offenders WHERE " + "(" * 400 + "surname = 'x'" + ")" * 400
    cache = PlanCache()
    answers = [ask(cache, sql, n=n) for n in range(3)]
    assert answers[0][0] == "error"
    assert answers == [outcome(prepare_query, sql, "crown_attorney", 0)] * 3


def test_a_value_compared_with_a_shard_key_is_part_of_the_shape():
    """A shard key's value chooses the sources asked (broker.pushdown.shards):
    each value gets its own plan, never another value's template."""
    import dataclasses

    from accord.federation import KeyDomain

    federation = inprocess.FEDERATION
    bc = federation.sources["BC"]
    sharded = dataclasses.replace(
        bc, shards={"offenders": {"surname": KeyDomain("surname", values=frozenset({"SMITH"}))}}
    )
    federation = dataclasses.replace(federation, sources={**federation.sources, "BC": sharded})
    assert "surname" not in plan_cache.text_columns(federation)
    role = inprocess.role_of("crown_attorney")
    cache = PlanCache()

    def sources_asked(prepare, surname: str) -> set[str]:
        prepared = prepare(
            f"SELECT given_names FROM offenders WHERE surname = '{surname}'",
            inprocess.principal("crown_attorney"),
            role,
            federation,
            purpose=sorted(role.purposes)[0],
            case_ref="CASE-1",
            ref_prefix="q00000001_ref",
            cache={},
        )
        return {s.source for r in prepared.plan.references for s in r.scans}

    for surname in ["SMITH", "JONES", "SMITH", "JONES", "SMITH", "BROWN"]:
        assert sources_asked(cache.prepare, surname) == sources_asked(prepare_query, surname)
    assert "BC" in sources_asked(cache.prepare, "SMITH")
    assert "BC" not in sources_asked(cache.prepare, "JONES")


def bind(cache: PlanCache, sql: str, partner: str = "crown_attorney", n: int = 0) -> Any:
    role = inprocess.role_of(partner)
    return cache.bound(
        sql,
        inprocess.principal(partner),
        role,
        inprocess.FEDERATION,
        purpose=sorted(role.purposes)[0],
        case_ref="CASE-1",
        ref_prefix=f"q{n:08x}_ref",
        cache={},
    )


def test_a_fitting_template_is_bound_without_preparing():
    """``bound`` (the event loop's fast path) answers only from a template,
    exactly as ``prepare`` would, and otherwise leaves the query to it."""
    cache = PlanCache()
    assert bind(cache, POINT.format("1051244T")) is None  # never seen
    for n, fps in enumerate(["1051244T", "2000001A"]):
        ask(cache, POINT.format(fps), n=n)
    counted = (cache.hits, cache.misses, cache.uncacheable)
    prepared = bind(cache, POINT.format("3000002B"), n=7)
    assert prepared is not None
    assert ("prepared", fingerprint(prepared)) == outcome(
        prepare_query, POINT.format("3000002B"), "crown_attorney", 7
    )
    assert (cache.hits, cache.misses, cache.uncacheable) == (counted[0] + 1, *counted[1:])
    assert bind(cache, POINT.format("O''BRIEN")) is None  # not plain: prepare judges it
    assert bind(cache, POINT.format("3000002B"), partner="police") is None  # another key
    long = POINT.format("3000002B") + " AND " + " AND ".join(["surname <> 'x'"] * 700)
    assert bind(cache, long) is None  # too long to handle on the loop
