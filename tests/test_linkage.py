"""Person linkage in row filters (``broker/policy/linkage.py``).

- ``accord policy check`` refuses a row filter that links tables by hand
  (by FPS number alone, or any hand-written key), and the construct used
  any other way than ``person IN (SELECT person FROM t WHERE ...)``.
- On random raw rows (FPS numbers and file ids missing, shared across
  sources), the broker's secure view keeps exactly the rows the definition
  keeps (written here in Python), and so does the oracles' own expansion
  (``tests/linkage_oracle.py``).
"""

from __future__ import annotations

import datetime as dt
import shutil
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.catalog import catalog_schema
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION
from broker.identity import Principal
from broker.policy.linkage import check_linkage
from broker.policy.masks import Mask, bind_keyed_hash
from broker.policy.model import Role, TableGrant
from broker.policy.rewrite import RoleView, secure_view
from broker.policy.store import PolicySet, check_policies
from tests import linkage_oracle
from tests.conftest import POLICY_FIXTURES, make_small_federation

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

FEDERATION = make_small_federation()
#: The whole logical model (the small federation serves offenders and sentences only).
DEFAULT = load_federation(DEFAULT_FEDERATION)
POLICY = PolicySet.load(POLICY_FIXTURES, FEDERATION)
LINK = "person IN (SELECT person FROM offenders WHERE status = 'UAL')"


# --- accord policy check ----------------------------------------------------------------------


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICY_FIXTURES, target)
    return target


def test_fixture_links_through_the_construct():
    assert POLICY.roles["officer"].tables["sentences"].row_filter == LINK


@pytest.mark.parametrize(
    ("row_filter", "message"),
    [
        (
            "fps_number IN (SELECT fps_number FROM offenders WHERE status = 'UAL')",
            "row_filter of sentences: links sentences to offenders by hand on fps_number; "
            "say `person IN (SELECT person FROM <table> WHERE ...)`",
        ),
        (
            "coalesce(fps_number, source || ':' || source_person_id) IN (SELECT "
            "coalesce(fps_number, source || ':' || source_person_id) FROM offenders)",
            "links sentences to offenders by hand on fps_number, source_person_id",
        ),
        (
            "source || ':' || source_person_id IN "
            "(SELECT source || ':' || source_person_id FROM offenders)",
            "links sentences to offenders by hand on source_person_id",
        ),
        (
            "EXISTS (SELECT 1 FROM offenders o WHERE o.fps_number = sentences.fps_number)",
            "links sentences to offenders by hand on fps_number",
        ),
        (
            "length_days > 0 AND person IN (SELECT person FROM offenders "
            "WHERE fps_number IN (SELECT fps_number FROM alerts))",
            "links offenders to alerts by hand on fps_number",
        ),
        (
            "person IN (SELECT fps_number FROM offenders)",
            "the subquery must select person",
        ),
        ("file IN (SELECT person FROM offenders)", "the subquery must select file"),
        (
            "sentence IN (SELECT sentence FROM offenders)",
            "sentence cannot link table offenders: it has no offence_code, sentence_date",
        ),
        (f"{LINK} OR person = 'x'", "person is the linkage key; use it only as"),
        ("person IN ('4D')", "person is the linkage key; use it only as"),
        (
            "person IN (SELECT person FROM offenders JOIN alerts ON TRUE)",
            "one table, a WHERE, nothing else",
        ),
        (
            "person IN (SELECT person FROM offenders GROUP BY ALL)",
            "one table, a WHERE, nothing else",
        ),
    ],
)
def test_policy_check_refuses_hand_written_linkage(policy_dir, row_filter, message):
    path = policy_dir / "roles" / "officer.yaml"
    text = path.read_text()
    assert LINK in text
    path.write_text(text.replace(LINK, row_filter.replace('"', '\\"')))
    policy, problems = check_policies(policy_dir, FEDERATION)
    assert policy is None
    assert any(message in p and "officer.yaml:18:" in p for p in problems), problems


@pytest.mark.parametrize(
    "row_filter",
    [
        LINK,
        "NOT person IN (SELECT person FROM offenders)",
        "person NOT IN (SELECT person FROM offenders o WHERE o.status = 'UAL')",
        "file IN (SELECT file FROM offenders WHERE fps_number IN ('4D'))",
        "person IN (SELECT person FROM offenders WHERE person IN (SELECT person FROM alerts))",
        "fps_number IN ('4D', '9Z')",  # naming people by FPS number is not a link
        "offence_code IN (SELECT offence_code FROM sentences WHERE length_days > 10)",
    ],
)
def test_linkage_construct_and_plain_subqueries_pass(row_filter):
    tree = sqlglot.parse_one(row_filter, read="duckdb")
    assert check_linkage(tree, "sentences", FEDERATION) == []


# --- semantics on random rows -----------------------------------------------------------------

SOURCES = ["BC", "ON"]
FPS = [None, "F1", "F2", "F3"]
LOCAL = [None, "P1", "P2", "P3"]
STATUS = ["UAL", "SUPERVISED"]

raw_row = st.fixed_dictionaries(
    {
        "source": st.sampled_from(SOURCES),
        "fps_number": st.sampled_from(FPS),
        "source_person_id": st.sampled_from(LOCAL),
        "status": st.sampled_from(STATUS),
    }
)

Row = dict[str, object]
#: (row filter of sentences, its meaning in Python over (sentence, offenders, alerts)).
FILTERS: dict[str, tuple[str, Callable[[Row, list[Row], list[Row]], bool]]] = {
    "person": (LINK, lambda s, o, a: any(_person(s, x) and x["status"] == "UAL" for x in o)),
    "not person": (
        "NOT person IN (SELECT person FROM offenders WHERE status = 'UAL')",
        lambda s, o, a: not any(_person(s, x) and x["status"] == "UAL" for x in o),
    ),
    "file": (
        "file IN (SELECT file FROM offenders o WHERE o.status = 'UAL')",
        lambda s, o, a: any(_file(s, x) and x["status"] == "UAL" for x in o),
    ),
    "nested": (
        "person IN (SELECT person FROM offenders WHERE status = 'SUPERVISED' "
        "AND person IN (SELECT person FROM alerts WHERE alert_type = 'UAL'))",
        lambda s, o, a: any(
            _person(s, x)
            and x["status"] == "SUPERVISED"
            and any(_person(x, y) and y["status"] == "UAL" for y in a)
            for x in o
        ),
    ),
}


def _person(a: dict[str, object], b: dict[str, object]) -> bool:
    """The definition: the same FPS number anywhere, or the same file."""
    return (a["fps_number"] is not None and a["fps_number"] == b["fps_number"]) or _file(a, b)


def _file(a: dict[str, object], b: dict[str, object]) -> bool:
    return (
        a["source"] == b["source"]
        and a["source_person_id"] is not None
        and a["source_person_id"] == b["source_person_id"]
    )


def _tables(rows: dict[str, list[dict[str, object]]]) -> duckdb.DuckDBPyConnection:
    """Raw tables with every catalog column (those not drawn are NULL)."""
    con = duckdb.connect()
    schema = catalog_schema(DEFAULT)
    types = {"VARCHAR": pa.string(), "DATE": pa.date32(), "BIGINT": pa.int64()}
    for table in ("offenders", "sentences", "alerts"):
        columns = schema[table]
        assert isinstance(columns, dict)
        data = [{c: r.get(c) for c in columns} for r in rows[table]]
        arrow = pa.schema([(c, types.get(t, pa.string())) for c, t in columns.items()])
        con.register(table, pa.Table.from_pylist(data, schema=arrow))
    return con


def _view_sql(row_filter: str) -> str:
    columns: dict[str, Mask | None] = dict.fromkeys(["fps_number", "source_person_id", "source"])
    grant = TableGrant("sentences", columns, row_filter)
    role = Role("linker", "", frozenset({"supervision"}), False, {"sentences": grant})
    partner = POLICY.registry.partners["officer_bc"]
    view = RoleView(role, Principal(partner, "", 0, dt.datetime.now(dt.UTC)), DEFAULT)
    return bind_keyed_hash(secure_view("sentences", view), b"k").sql(dialect="duckdb")


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    name=st.sampled_from(sorted(FILTERS)),
    offenders=st.lists(raw_row, max_size=6),
    sentences=st.lists(raw_row, min_size=1, max_size=6),
    alerts=st.lists(raw_row, max_size=4),
)
def test_broker_and_oracle_link_as_the_definition_says(name, offenders, sentences, alerts):
    row_filter, meaning = FILTERS[name]
    # an alert's drawn status is its alert_type (the nested filter reads alert_type)
    alert_rows = [{**r, "alert_type": r["status"]} for r in alerts]
    rows = {"offenders": offenders, "sentences": sentences, "alerts": alert_rows}
    con = _tables(rows)
    expected = sorted(
        (s["source"], s["fps_number"] or "", s["source_person_id"] or "")
        for s in sentences
        if meaning(s, offenders, alerts)
    )
    key = "SELECT source, coalesce(fps_number, ''), coalesce(source_person_id, '') FROM "
    broker = sorted(con.sql(f"{key}({_view_sql(row_filter)})").fetchall())
    written = linkage_oracle.expand(row_filter, "sentences", "sentences", DEFAULT)
    oracle = sorted(con.sql(f"{key}sentences AS sentences WHERE {written}").fetchall())
    assert broker == expected, (row_filter, _view_sql(row_filter))
    assert oracle == expected, written
