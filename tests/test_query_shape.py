"""Query-shape limits: a pathological query is INVALID_ARGUMENT naming the
limit and its setting, refused in milliseconds, never a RecursionError or
INTERNAL, and never after minutes of parsing and rewriting."""

from __future__ import annotations

import time

import grpc
import pytest

from accord.errors import InvalidQuery, grpc_status
from broker.settings import QueryShape
from broker.validate import parse_query
from tests import inprocess

CATALOG = {"offenders", "sentences", "releases", "alerts"}

#: Generous: each is refused in milliseconds; before, they took up to 99 s.
#: Counted in this thread's CPU time, which a loaded machine does not stretch.
BOUND_S = 2.0

PATHOLOGICAL = {
    "42 nested parentheses": "SELECT " + "(" * 42 + "1" + ")" * 42 + " AS x FROM offenders",
    "300 nested subqueries": "SELECT * FROM "
    + "(SELECT * FROM " * 300
    + "offenders"
    + ") AS t" * 300,
    "1,000 NOTs": "SELECT surname FROM offenders WHERE " + "NOT " * 1000 + "surname = 'a'",
    "1,000 CASEs": "SELECT "
    + "CASE WHEN surname = 'a' THEN " * 1000
    + "1"
    + " END" * 1000
    + " AS x FROM offenders",
    "4,000-term OR": "SELECT surname FROM offenders WHERE "
    + " OR ".join(f"surname = 's{i}'" for i in range(4000)),
    "8,000-term concatenation": "SELECT " + " || ".join(["surname"] * 8000) + " FROM offenders",
    "8,000-term sum": "SELECT " + " + ".join(["1"] * 8000) + " AS x FROM offenders",
    "12,000 select items": "SELECT " + ",".join(["surname"] * 12000) + " FROM offenders",
}


@pytest.mark.parametrize("sql", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_pathological_shapes_are_refused_quickly(sql):
    started = time.thread_time()
    with pytest.raises(InvalidQuery) as caught:
        inprocess.prepare(sql, "police")
    elapsed = time.thread_time() - started
    code, message = grpc_status(caught.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "ACCORD_MAX_QUERY_" in message
    assert elapsed < BOUND_S, f"refused after {elapsed:.2f} s of CPU"


def _nested_subqueries(depth: int) -> str:
    return "SELECT * FROM " + "(SELECT * FROM " * depth + "offenders" + ") AS t" * depth


@pytest.mark.parametrize(
    ("sql", "setting"),
    [
        ("SELECT " + "(" * 25 + "1" + ")" * 25 + " AS x FROM offenders", "ACCORD_MAX_QUERY_DEPTH"),
        (_nested_subqueries(25), "ACCORD_MAX_QUERY_DEPTH"),
        ("SELECT surname FROM offenders WHERE " + "NOT " * 25 + "true", "ACCORD_MAX_QUERY_DEPTH"),
        ("SELECT " + "- " * 25 + "1 AS x FROM offenders", "ACCORD_MAX_QUERY_DEPTH"),
        (
            "SELECT surname FROM offenders WHERE surname IN ("
            + ", ".join(f"'s{i}'" for i in range(1001))
            + ")",
            "ACCORD_MAX_IN_LIST",
        ),
        (" UNION ALL ".join(["SELECT surname FROM offenders"] * 33), "ACCORD_MAX_SET_ARMS"),
        (
            "SELECT o.surname FROM offenders o "
            + " ".join(f"JOIN sentences s{i} ON s{i}.fps_number = o.fps_number" for i in range(17)),
            "ACCORD_MAX_JOINS",
        ),
        (
            "SELECT surname FROM offenders WHERE "
            + " OR ".join(f"surname = 's{i}'" for i in range(1000)),
            "ACCORD_MAX_QUERY_NODES",
        ),
    ],
    ids=["parens", "subqueries", "nots", "unary minus", "in-list", "set arms", "joins", "nodes"],
)
def test_each_limit_is_named_with_its_setting(sql, setting):
    with pytest.raises(InvalidQuery, match=setting):
        parse_query(sql, CATALOG)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT " + "(" * 24 + "1" + ")" * 24 + " AS x FROM offenders",
        _nested_subqueries(24),
        "SELECT surname FROM offenders WHERE surname IN ("
        + ", ".join(f"'s{i}'" for i in range(1000))
        + ")",
        " UNION ALL ".join(["SELECT surname FROM offenders"] * 32),
        "SELECT o.surname FROM offenders o "
        + " ".join(f"JOIN offenders s{i} ON s{i}.fps_number = o.fps_number" for i in range(16)),
        "SELECT surname FROM offenders WHERE "
        + " OR ".join(f"surname = 's{i}'" for i in range(800)),
    ],
    ids=["parens", "subqueries", "in-list", "set arms", "joins", "nodes"],
)
def test_queries_at_the_limits_are_prepared(sql):
    """Just under each limit, the whole path runs (no RecursionError deeper in)."""
    inprocess.prepare(sql, "police")


def test_limits_follow_the_settings():
    sql = "SELECT surname FROM offenders WHERE surname IN ('a', 'b', 'c')"
    parse_query(sql, CATALOG, shape=QueryShape(max_in_list=3))
    with pytest.raises(InvalidQuery, match="3 values, over the limit of 2"):
        parse_query(sql, CATALOG, shape=QueryShape(max_in_list=2))


def test_a_recursion_error_deeper_in_is_invalid_argument(monkeypatch):
    """Should any step still recurse too deeply, the caller is told so."""
    import broker.prepare

    def deep(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(broker.prepare, "apply_secure_views", deep)
    with pytest.raises(InvalidQuery, match="nests too deeply") as caught:
        inprocess.prepare("SELECT surname FROM offenders", "police")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
