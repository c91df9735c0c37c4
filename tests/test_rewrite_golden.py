"""Golden policy rewrites: input SQL + partner -> the rewritten SQL, exactly.

Fixtures live in ``tests/fixtures/rewrite.sql`` as blocks of ``# title:``,
``# partner:``, ``# purpose:`` (and ``# case_ref:``) headers, the input
statement ending in ``;`` and the expected rewrite ending in ``;``.
Regenerate after a deliberate change with
``.venv/bin/python -m tests.test_rewrite_golden`` and review the diff.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from broker.identity import Principal
from broker.policy.masks import bind_keyed_hash
from broker.policy.store import PolicySet
from broker.prepare import prepare_query
from tests.conftest import POLICY_FIXTURES, make_small_federation

FIXTURES = Path(__file__).parent / "fixtures" / "rewrite.sql"


def parse_fixtures(text: str) -> list[dict]:
    cases = []
    for block in re.split(r"\n\s*\n(?=# title:)", text.strip()):
        headers = dict(re.findall(r"^# (\w+): (.*)$", block, flags=re.M))
        body = "\n".join(line for line in block.splitlines() if not line.startswith("#"))
        statements = [s.strip() for s in body.split(";\n") if s.strip()]
        headers["input"] = statements[0].rstrip(";")
        headers["expected"] = statements[1].rstrip(";") if len(statements) > 1 else ""
        cases.append(headers)
    return cases


CASES = parse_fixtures(FIXTURES.read_text())
FEDERATION = make_small_federation()
POLICY = PolicySet.load(POLICY_FIXTURES, FEDERATION)


def rewrite(case: dict):
    partner = POLICY.registry.partners[case["partner"]]
    principal = Principal(partner, "", 0, dt.datetime.now(dt.UTC))
    return prepare_query(
        case["input"],
        principal,
        POLICY.roles[partner.role],
        FEDERATION,
        purpose=case["purpose"],
        case_ref=case.get("case_ref", ""),
    )


def regold() -> None:
    """Rewrites the expected SQL from the current engine (review the diff!)."""
    blocks = []
    for case in CASES:
        headers = "".join(
            f"# {k}: {case[k]}\n" for k in ("title", "partner", "purpose", "case_ref") if k in case
        )
        blocks.append(f"{headers}{case['input']};\n{rewrite(case).rewritten_sql};\n")
    FIXTURES.write_text("\n".join(blocks))


@pytest.mark.parametrize("case", CASES, ids=[c["title"] for c in CASES])
def test_rewrite(case):
    assert rewrite(case).rewritten_sql == case["expected"]


@pytest.mark.parametrize("case", CASES, ids=[c["title"] for c in CASES])
def test_rewrite_runs_on_duckdb(case):
    """Each expected rewrite is valid DuckDB over the raw catalog."""
    con = duckdb.connect()
    for name, table in FEDERATION.tables.items():
        schema = table.arrow_schema().append(pa.field("source", pa.string()))
        con.register(name, schema.empty_table())
    sql = bind_keyed_hash(
        __import__("sqlglot").parse_one(case["expected"], read="duckdb"), b"k"
    ).sql("duckdb")
    con.sql(sql).fetchall()


if __name__ == "__main__":
    regold()
