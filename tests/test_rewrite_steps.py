"""Golden rewrites, one file per step, each case also answered on small data.

Fixtures: ``tests/fixtures/rewrite/<step>.sql`` for the steps

- ``secure_views``: parse, qualify for the role, ``apply_secure_views``;
- ``principal_binding``: ``bind_principal`` over a policy expression (a
  query over the raw tables naming ``principal.*``);
- ``aggregate_rules``: qualify, ``check_aggregate_query``, ``add_hidden_columns``
  (the secure views are left out of the text, and put back to execute it);
- ``pushdown``: ``plan_query``, shown as one statement per scan
  (``SELECT <columns> FROM "<source>"."<table>" AS "<ref>" WHERE <pushed> LIMIT
  <n>``), one ``CREATE TABLE`` per materialized secure view, then the merge.

Each case, as in sqlglot's ``tests/fixtures/optimizer/*.sql``, is a block of
``# key: value`` headers (``# title:`` first; ``# role:``, with ``# partner:``
when the partner is not named like the role; ``# attributes:`` JSON to
override the partner's; ``# error:`` when the step refuses), the input
statement ending in ``;``, then the expected statements, pretty-printed, each
ending in ``;``. Blocks are separated by a blank line.

Three checks per case:

- the step alone gives the expected text (or the expected error);
- for the policy steps, it is the path ``prepare_query`` takes: composing the
  steps gives ``prepare_query``'s rewritten SQL;
- the expected SQL, executed in DuckDB on small generated data
  (``tests/rewrite_oracle.py``), gives the answer the caller's query gives
  over the role's view built independently of ``broker.policy`` (for
  pushdown: the scans with their pushed predicates and limits applied to each
  source's rows, then the merge, give the unpushed query's answer).

Regenerate the expected text after a deliberate change, then review the diff::

    ACCORD_REGEN_GOLDEN=1 .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/test_rewrite_steps.py

(a new case needs only its headers and input; regeneration fills in the rest).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from accord.errors import AccordError
from accord.federation import load_federation
from broker.identity import Principal
from broker.planner import QueryPlan, plan_query
from broker.policy.aggregate import check_aggregate_query
from broker.policy.disclosure import add_hidden_columns
from broker.policy.masks import bind_keyed_hash, partner_key
from broker.policy.rewrite import RoleView, apply_secure_views, bind_principal, qualify_for_role
from broker.policy.store import PolicySet, default_policies_dir
from broker.prepare import prepare_query
from broker.validate import parse_query
from tests import rewrite_oracle as oracle
from tests.conftest import POLICY_FIXTURES, ROOT

FIXTURES = Path(__file__).parent / "fixtures" / "rewrite"
STEPS = ("secure_views", "principal_binding", "aggregate_rules", "pushdown")
REGEN = os.environ.get("ACCORD_REGEN_GOLDEN") == "1"

FEDERATION = load_federation(ROOT / "deploy" / "federation.yaml")
POLICIES = [PolicySet.load(d, FEDERATION) for d in (default_policies_dir(), POLICY_FIXTURES)]
DATA = oracle.source_data(FEDERATION)
RAW = oracle.raw_tables(FEDERATION, DATA)


# -- fixture files ---------------------------------------------------------------------------


@dataclass
class Case:
    step: str
    headers: dict[str, str]
    input: str
    expected: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.headers["title"]


def parse_file(step: str) -> list[Case]:
    text = (FIXTURES / f"{step}.sql").read_text()
    cases = []
    for block in re.split(r"\n\s*\n(?=# title:)", text.strip()):
        lines = block.splitlines()
        pairs = [re.fullmatch(r"# (\w+): (.*)", ln) for ln in lines]
        headers = {m.group(1): m.group(2) for m in pairs if m is not None}
        body = "\n".join(ln for ln in lines if not ln.startswith("# ")) + "\n"
        statements = [s.strip() for s in re.split(r";[ \t]*\n", body) if s.strip()]
        cases.append(Case(step, headers, statements[0], statements[1:]))
    return cases


def render_file(cases: list[Case]) -> str:
    blocks = []
    for case in cases:
        headers = "".join(f"# {k}: {v}\n" for k, v in case.headers.items())
        blocks.append(headers + "".join(f"{s};\n" for s in [case.input, *case.expected]))
    return "\n".join(blocks)


# -- running one step ------------------------------------------------------------------------


def pretty(tree: exp.Expr) -> str:
    return tree.sql(dialect="duckdb", pretty=True)


def role_view(case: Case) -> RoleView:
    name = case.headers.get("partner") or case.headers["role"]
    for policy in POLICIES:
        if name in policy.registry.partners:
            partner = policy.registry.partners[name]
            if "attributes" in case.headers:
                attributes = {**partner.attributes, **json.loads(case.headers["attributes"])}
                partner = dataclasses.replace(partner, attributes=attributes)
            assert partner.role == case.headers["role"], f"{name} is a {partner.role}"
            principal = Principal(partner, "", 0, dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
            return RoleView(policy.roles[partner.role], principal, FEDERATION)
    raise KeyError(name)


def qualified(case: Case, view: RoleView) -> exp.Query:
    schema = view.schema()
    tree = parse_query(case.input, set(schema), set(FEDERATION.tables), role=view.role.name)
    return qualify_for_role(tree, view)


def run_step(case: Case) -> list[str]:
    """The step alone on the case's input: its output as pretty statements."""
    if case.step == "pushdown":
        return render_plan(plan_of(case))
    view = role_view(case)
    if case.step == "principal_binding":
        return [pretty(bind_principal(sqlglot.parse_one(case.input, read="duckdb"), view))]
    tree = qualified(case, view)
    if case.step == "secure_views":
        return [pretty(apply_secure_views(tree, view))]
    outputs = check_aggregate_query(tree, view)
    role = view.role
    add_hidden_columns(tree, outputs, role.min_group_size, role.rounding_base)  # type: ignore[arg-type]
    return [pretty(tree)]


def plan_of(case: Case) -> QueryPlan:
    if "role" not in case.headers:
        return plan_query(parse_query(case.input, FEDERATION.tables), FEDERATION)
    view = role_view(case)
    return prepare_query(
        case.input,
        view.principal,
        view.role,
        FEDERATION,
        purpose=sorted(view.role.purposes)[0],
        case_ref="GOLDEN-1",
    ).plan


def render_plan(plan: QueryPlan) -> list[str]:
    statements = []
    for ref in plan.references:
        for scan in ref.scans:
            columns = ", ".join(f'"{c}"' for c in scan.columns)
            sql = f'SELECT {columns} FROM "{scan.source}"."{ref.table}" AS "{ref.ref_id}"'
            sql += f" WHERE {scan.predicate}" if scan.predicate else ""
            sql += f" LIMIT {scan.limit}" if scan.limit else ""
            statements.append(pretty(sqlglot.parse_one(sql, read="duckdb")))
    for name, view in plan.views:
        create = exp.Create(
            this=exp.to_table(f'"{name}"', dialect="duckdb"), kind="TABLE", expression=view.copy()
        )
        statements.append(pretty(create))
    statements.append(pretty(plan.merge))
    return statements


def outcome(case: Case) -> tuple[str | None, list[str]]:
    """(error as ``Class: message``, or None; expected statements)."""
    try:
        return None, run_step(case)
    except AccordError as exc:
        return f"{type(exc).__name__}: {exc}", []


def regenerate() -> None:
    for step in STEPS:
        cases = parse_file(step)
        for case in cases:
            error, case.expected = outcome(case)
            case.headers.pop("error", None)
            if error is not None:
                case.headers["error"] = error
        (FIXTURES / f"{step}.sql").write_text(render_file(cases))


if REGEN:
    regenerate()

CASES = [case for step in STEPS for case in parse_file(step)]
IDS = [f"{c.step}: {c.title}" for c in CASES]


# -- executing -------------------------------------------------------------------------------


def key_for(case: Case) -> bytes:
    return partner_key(b"golden master secret", case.headers.get("partner") or case.headers["role"])


def answer(
    con: duckdb.DuckDBPyConnection, tree: exp.Expr, key: bytes
) -> tuple[list[str], list[tuple[Any, ...]]]:
    relation = con.sql(bind_keyed_hash(tree.copy(), key).sql(dialect="duckdb"))
    rows = [
        tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in relation.fetchall()
    ]
    return relation.columns, rows


def oracle_partner(case: Case) -> oracle.OraclePartner:
    overrides = json.loads(case.headers.get("attributes", "{}"))
    return oracle.load_partner(case.headers.get("partner") or case.headers["role"], overrides)


_VIEWS: dict[tuple[str, str, bytes], dict[str, pa.Table]] = {}


def oracle_view(case: Case, key: bytes) -> dict[str, pa.Table]:
    partner = oracle_partner(case)
    cache_key = (partner.name, json.dumps(partner.values, sort_keys=True), key)
    if cache_key not in _VIEWS:
        _VIEWS[cache_key] = oracle.oracle_tables(FEDERATION, RAW, partner, key)
    return _VIEWS[cache_key]


def with_person_counts(tree: exp.Select) -> exp.Select:
    """The aggregate-only oracle: per table read, its distinct-person count and
    the digest of its persons; per average, its sum and count."""
    tables = [tree.args["from_"].this, *(j.this for j in tree.args.get("joins") or [])]
    averages = [
        (i, p.unalias()) for i, p in enumerate(tree.expressions) if isinstance(p.unalias(), exp.Avg)
    ]
    for number, table in enumerate(tables, start=1):
        person = f'"{table.alias_or_name}"."{oracle.PERSON}"'
        tree = tree.select(
            f'count(DISTINCT {person}) AS "__accord_persons_{number}"', dialect="duckdb"
        )
        digest = f"bit_xor(DISTINCT (md5_number({person}) >> 64)::UBIGINT)"
        tree = tree.select(f'{digest} AS "__accord_cell_{number}"', dialect="duckdb")
    for i, average in averages:
        column = average.this.sql(dialect="duckdb")
        tree = tree.select(
            f'sum({column}) AS "__accord_avg_sum_{i}"',
            f'count({column}) AS "__accord_avg_count_{i}"',
            dialect="duckdb",
        )
    return tree


def run_planned(statements: list[exp.Expr], key: bytes) -> duckdb.DuckDBPyConnection:
    """Runs each scan on its source's rows and registers the results (per
    reference, the union over its scans, NULL where a source sends no column),
    then materializes the views; returns the connection to run the merge on."""
    scans = oracle.connect({f"{s}.{t}": table for (s, t), table in DATA.items()})
    parts: dict[str, list[tuple[str, str, pa.Table]]] = {}
    merge = oracle.connect({})
    for statement in statements:
        source = statement.find(exp.Table)
        if isinstance(statement, exp.Select) and source is not None and source.db:
            runnable = statement.copy()
            table = runnable.find(exp.Table)
            assert table is not None
            table.set("this", exp.to_identifier(f"{source.db}.{source.name}", quoted=True))
            table.set("db", None)
            rows = scans.sql(runnable.sql(dialect="duckdb")).to_arrow_table()
            parts.setdefault(source.alias, []).append((source.db, source.name, rows))
        elif isinstance(statement, exp.Create):
            for ref, pieces in parts.items():
                merge.register(ref, union_of_scans(pieces))
            view = bind_keyed_hash(statement.expression.copy(), key).sql(dialect="duckdb")
            merge.register(statement.this.name, merge.sql(view).to_arrow_table())
    for ref, pieces in parts.items():
        merge.register(ref, union_of_scans(pieces))
    return merge


def union_of_scans(pieces: list[tuple[str, str, pa.Table]]) -> pa.Table:
    logical = FEDERATION.tables[pieces[0][1]]
    sent = {name for _, _, t in pieces for name in t.column_names}
    schema = logical.arrow_schema([c for c in logical.columns if c in sent])
    aligned = []
    for source, _, table in pieces:
        columns = [
            table.column(f.name) if f.name in table.column_names else pa.nulls(len(table), f.type)
            for f in schema
        ]
        columns.append(pa.array([source] * len(table), pa.string()))
        aligned.append(
            pa.Table.from_arrays(columns, schema=schema.append(pa.field("source", pa.string())))
        )
    return pa.concat_tables(aligned)


def ordered(sql: str) -> bool:
    return bool(sqlglot.parse_one(sql, read="duckdb").args.get("order"))


# -- tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_step_gives_the_expected_sql(case: Case) -> None:
    error, statements = outcome(case)
    assert error == case.headers.get("error")
    assert statements == case.expected


POLICY_CASES = [c for c in CASES if c.step in ("secure_views", "aggregate_rules")]


@pytest.mark.parametrize("case", POLICY_CASES, ids=[f"{c.step}: {c.title}" for c in POLICY_CASES])
def test_steps_compose_to_prepare_query(case: Case) -> None:
    """The steps run alone are the path ``prepare_query`` takes."""
    view = role_view(case)
    try:
        prepared = prepare_query(
            case.input,
            view.principal,
            view.role,
            FEDERATION,
            purpose=sorted(view.role.purposes)[0],
            case_ref="GOLDEN-1",
        ).rewritten_sql
    except AccordError as exc:
        assert f"{type(exc).__name__}: {exc}" == case.headers.get("error")
        return
    tree = sqlglot.parse_one(case.expected[0], read="duckdb")
    if case.step == "aggregate_rules":
        tree = apply_secure_views(tree, view)  # type: ignore[arg-type]
    assert tree.sql(dialect="duckdb") == prepared


EXECUTED = [c for c in CASES if "error" not in c.headers]


@pytest.mark.parametrize("case", EXECUTED, ids=[f"{c.step}: {c.title}" for c in EXECUTED])
def test_expected_sql_gives_the_oracle_answer(case: Case) -> None:
    key = key_for(case) if "role" in case.headers else b""
    raw = oracle.connect(RAW)
    expected = [sqlglot.parse_one(s, read="duckdb") for s in case.expected]
    user = sqlglot.parse_one(case.input, read="duckdb")
    base = raw  # where the caller's (unrewritten) query runs
    if case.step == "principal_binding":
        got = answer(raw, expected[0], key)
        text = oracle.substitute_principal(case.input, oracle_partner(case))
        want = answer(raw, sqlglot.parse_one(text, read="duckdb"), key)
    elif case.step == "pushdown":
        merge = run_planned(expected[:-1], key)
        got = answer(merge, expected[-1], key)
        if "role" in case.headers:
            base = oracle.connect(oracle_view(case, key))
            if role_view(case).role.aggregate_only:
                user = with_person_counts(user)  # type: ignore[arg-type]
        want = answer(base, user, key)
    else:
        view = oracle_view(case, key)
        rewritten = expected[0]
        if case.step == "aggregate_rules":
            rewritten = apply_secure_views(rewritten, role_view(case))  # type: ignore[arg-type]
            user = with_person_counts(user)  # type: ignore[arg-type]
        got = answer(raw, rewritten, key)
        base = oracle.connect(view)
        want = answer(base, user, key)
    assert got[0] == want[0], "output columns differ"
    if isinstance(user, exp.Query) and user.args.get("limit") and not user.args.get("order"):
        unlimited = user.copy()
        unlimited.set("limit", None)
        unlimited.set("offset", None)
        full = answer(base, unlimited, key)[1]
        assert len(got[1]) == len(want[1])
        assert set(got[1]) <= set(full)
    elif ordered(case.input):
        assert got[1] == want[1]
    else:
        assert sorted(got[1], key=repr) == sorted(want[1], key=repr)


def test_the_data_tells_a_filtered_view_from_the_raw_table() -> None:
    """Every row filter the policy cases meet keeps some rows and drops some,
    so a filter left out or misplaced changes an answer."""
    partners = {
        json.dumps([c.headers.get("partner") or c.headers["role"], c.headers.get("attributes")])
        for c in CASES
        if "role" in c.headers
    }
    checked = 0
    for entry in sorted(partners):
        name, attributes = json.loads(entry)
        partner = oracle.load_partner(name, json.loads(attributes or "{}"))
        views = oracle.oracle_tables(FEDERATION, RAW, partner, b"k")
        grants = oracle.load_role(partner.role).get("tables") or {}
        for table, view in views.items():
            if grants[table].get("row_filter") and partner.values.get("approved_cases") != []:
                assert 0 < view.num_rows < RAW[table].num_rows, (name, table)
                checked += 1
    assert checked >= 5
