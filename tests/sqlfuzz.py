"""Hypothesis strategies for the fuzz suite: SQL a hostile partner could send.

Three kinds of text, all over the real catalog (``deploy/federation.yaml``)
and the functions of ``broker.validate``'s allow-lists:

- ``grammar_sql``: queries built from a small SQL grammar (select lists,
  joins, subqueries, set operations, CASE, casts, allowed and forbidden
  functions, literals of every type, real and unknown identifiers); most
  parse, many are refused by policy, some answer.
- ``plain_sql``: what a partner would write over what it may see (most
  of these answer, so the merge and the adapters are reached).
- ``aggregate_sql``: the shapes an aggregate-only role may send (a grouped
  count over its dimensions), and near misses of them.
- ``mutated_sql``: a grammar query with tokens inserted, deleted, swapped or
  replaced by random text, control characters, lone surrogates or a huge
  literal.

``request_fields`` draws the other fields of a request (purpose, case
reference, deadline, ``allow_partial``, the end user). ``load_corpus`` reads
the inputs that once failed (``tests/fixtures/fuzz/corpus.jsonl``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st
from sqlglot import exp

from broker.validate import _ALLOWED_ANONYMOUS, _ALLOWED_FUNCTIONS
from tests.conftest import ROOT, load_logical_model

if TYPE_CHECKING:
    from collections.abc import Sequence

CORPUS = ROOT / "tests" / "fixtures" / "fuzz" / "corpus.jsonl"

#: Logical table -> its columns (the real catalog, every role's superset).
MODEL: dict[str, list[str]] = {t: list(v["columns"]) for t, v in load_logical_model().items()}
TABLES = sorted(MODEL)
#: Names no catalog holds, or that reach outside it.
UNKNOWN_TABLES = [
    "nope",
    "duckdb_settings()",
    "information_schema.tables",
    "pg_catalog.pg_class",
    "main.offenders",
    "read_csv('/etc/passwd')",
    "'/etc/passwd'",
    "__accord_raw",
    '"OFFENDERS"',
]
UNKNOWN_COLUMNS = ["nope", "rowid", "__accord_persons_1", "accord_x", '"Surname"', "source"]


def _names(kinds: frozenset[type[exp.Expr]]) -> list[str]:
    functions = [k for k in kinds if issubclass(k, exp.Func)]
    names = {n.lower() for kind in functions for n in kind.sql_names()}
    return sorted(n for n in names if re.fullmatch(r"[a-z_][a-z0-9_]*", n))


#: Callable by name: the allow-list, and a few that must stay refused.
FUNCTIONS = _names(_ALLOWED_FUNCTIONS) + sorted(_ALLOWED_ANONYMOUS)
FORBIDDEN_FUNCTIONS = [
    "read_csv",
    "getenv",
    "current_setting",
    "pragma_version",
    "query",
    "glob",
    "read_text",
    "nextval",
    "random",
    "version",
]
AGGREGATES = ["count", "sum", "avg", "min", "max", "median", "any_value", "string_agg"]
WINDOWS = ["row_number", "rank", "dense_rank", "ntile", "lag", "lead", "first_value"]
TYPES = [
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "DOUBLE",
    "DECIMAL(38, 10)",
    "DECIMAL(2, 1)",
    "VARCHAR",
    "VARCHAR(3)",
    "TEXT",
    "DATE",
    "TIMESTAMP",
    "TIMESTAMPTZ",
    "TIME",
    "INTERVAL",
    "BOOLEAN",
    "BLOB",
    "UUID",
    "INTEGER[]",
    "NOPE",
]
COMPARISONS = ["=", "<>", "!=", "<", "<=", ">", ">=", "IS NOT DISTINCT FROM", "IS DISTINCT FROM"]
ARITHMETIC = ["+", "-", "*", "/", "//", "%", "||"]
JOINS = ["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN", "INNER JOIN", "CROSS JOIN", ","]
SET_OPERATIONS = ["UNION", "UNION ALL", "INTERSECT", "EXCEPT", "UNION BY NAME", "EXCEPT ALL"]
KEYWORDS = [
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "HAVING",
    "ORDER BY",
    "LIMIT",
    "OFFSET",
    "UNION",
    "JOIN",
    "ON",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "AS",
    "WITH",
    "DISTINCT",
    "NULL",
    "OVER",
    "PARTITION BY",
    "QUALIFY",
    "EXISTS",
    "CAST",
    "INTERVAL",
    "ATTACH",
    "COPY",
    "PRAGMA",
    "SET",
    "INSTALL",
    "INSERT",
    "DELETE",
    "DROP",
]
PUNCTUATION = list("(),.;*+-/%<>=!|:'\"[]{}?$#@~^&\\`")


# --- literals ---------------------------------------------------------------


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def literals() -> st.SearchStrategy[str]:
    """One literal of any type DuckDB reads; plain ones mostly, odd and huge
    ones (bad dates, out-of-range numbers, blobs, 20 KB strings) sometimes."""
    plain = st.one_of(
        st.integers(-1000, 10**6).map(str),
        st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: repr(round(f, 3))),
        st.text(max_size=12).map(_quoted),
        st.sampled_from(["'UAL'", "'IN_CUSTODY'", "'BC'", "'1051244T'", "'%a%'", "'S%'", "''"]),
        st.sampled_from(["NULL", "TRUE", "FALSE", "DATE '2020-01-31'", "INTERVAL 1 DAY"]),
    )
    odd = st.one_of(
        st.integers(-(2**70), 2**70).map(str),
        st.sampled_from(["9223372036854775808", "1" + "0" * 60, "-0", "007", "1e309", "0x1F"]),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(["DATE", "TIMESTAMP", "TIME"]).flatmap(
            lambda kind: st.sampled_from(
                ["'2020-13-45'", "'1999-02-29 25:61:00'", "'nope'", "'-infinity'"]
            ).map(lambda text: f"{kind} {text}")
        ),
        st.sampled_from(["'3 months'", "'-1' YEAR", "'P1D'", "(2 + 2) HOURS"]).map(
            lambda text: f"INTERVAL {text}"
        ),
        st.sampled_from(["'\\xff'::BLOB", "[1, 2]", "{'a': 1}", "E'\\n'", "'\\'"]),
        st.integers(1_000, 20_000).map(lambda n: _quoted("x" * n)),  # a huge literal
    )
    return st.one_of(plain, plain, plain, odd)


def rarely(draw: st.DrawFn, one_in: int = 10) -> bool:
    return draw(st.integers(1, one_in)) == 1


# --- the grammar ------------------------------------------------------------

#: Table -> columns: what a grammar query reads (a role's catalog, or all).
Catalog = dict[str, list[str]]


@dataclass(frozen=True)
class Scope:
    """What one SELECT reads: the catalog, and its FROM items (alias, table)."""

    catalog: tuple[tuple[str, tuple[str, ...]], ...]
    tables: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def of(catalog: Catalog) -> Scope:
        return Scope(tuple((t, tuple(c)) for t, c in sorted(catalog.items())))

    def names(self) -> list[str]:
        return [t for t, _ in self.catalog]

    def columns_of(self, table: str) -> list[str]:
        return list(dict(self.catalog).get(table) or MODEL.get(table) or ["x"])

    def reading(self, tables: list[tuple[str, str]]) -> Scope:
        return Scope(self.catalog, tuple(tables))

    def column(self, draw: st.DrawFn) -> str:
        if not self.tables or rarely(draw, 25):
            return draw(st.sampled_from(UNKNOWN_COLUMNS))
        alias, table = draw(st.sampled_from(self.tables))
        pool = MODEL.get(table, ["x"]) if rarely(draw, 15) else self.columns_of(table)
        name = draw(st.sampled_from([*pool, "source"]))
        return draw(st.sampled_from([name, f"{alias}.{name}", f"{alias}.{name}", f'"{name}"']))


def _arguments(draw: st.DrawFn, inner: st.SearchStrategy[str]) -> str:
    count = draw(st.integers(0, 3)) if rarely(draw, 5) else draw(st.integers(1, 2))
    return ", ".join(draw(inner) for _ in range(count))


@st.composite
def expressions(draw: st.DrawFn, scope: Scope, depth: int = 2) -> str:
    """A scalar expression over ``scope``'s columns."""
    leaf = st.one_of(literals(), st.just(scope.column(draw)), st.just(scope.column(draw)))
    if depth <= 0:
        return draw(leaf)
    inner = expressions(scope, depth - 1)
    kind = draw(st.integers(0, 18))
    if kind <= 5:
        return draw(leaf)
    if kind == 6:
        op = draw(st.sampled_from(ARITHMETIC + COMPARISONS))
        return f"{draw(inner)} {op} {draw(inner)}"
    if kind == 7:
        when = draw(predicates(scope, depth - 1))
        return f"CASE WHEN {when} THEN {draw(inner)} ELSE {draw(inner)} END"
    if kind == 8:
        cast = draw(st.sampled_from(["CAST({} AS {})", "TRY_CAST({} AS {})", "{}::{}"]))
        return cast.format(draw(inner), draw(st.sampled_from(TYPES)))
    if kind in (9, 10, 11):
        return f"{draw(st.sampled_from(FUNCTIONS))}({_arguments(draw, inner)})"
    if kind == 12 and rarely(draw, 3):
        return f"{draw(st.sampled_from(FORBIDDEN_FUNCTIONS))}({_arguments(draw, inner)})"
    if kind in (12, 13):
        name = draw(st.sampled_from(AGGREGATES))
        distinct = "DISTINCT " if rarely(draw, 4) else ""
        arg = draw(st.one_of(st.just("*"), inner)) if name == "count" else draw(inner)
        return f"{name}({distinct}{arg})"
    if kind == 14:
        name = draw(st.sampled_from(WINDOWS))
        args = ", ".join(draw(st.lists(inner, max_size=1)))
        return (
            f"{name}({args}) OVER (PARTITION BY {scope.column(draw)} ORDER BY {scope.column(draw)})"
        )
    if kind == 15:
        return f"({draw(selects(scope, depth - 1, columns=1))})"
    if kind == 16:
        return f"({draw(inner)})"
    if kind == 17:
        return f"-{draw(inner)}"
    return f"coalesce({draw(inner)}, {draw(literals())})"


@st.composite
def predicates(draw: st.DrawFn, scope: Scope, depth: int = 2) -> str:
    """A boolean condition over ``scope``'s columns."""
    value = expressions(scope, max(depth - 1, 0))
    kind = draw(st.integers(0, 11))
    if kind <= 2:
        return f"{draw(value)} {draw(st.sampled_from(COMPARISONS))} {draw(value)}"
    if kind == 3:
        op = draw(st.sampled_from(["LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE"]))
        escape = draw(st.sampled_from(["", "", " ESCAPE '!'", " ESCAPE ''"]))
        return f"{draw(value)} {op} {draw(literals())}{escape}"
    if kind == 4:
        items = ", ".join(draw(st.lists(literals(), min_size=1, max_size=4)))
        return f"{draw(value)} {draw(st.sampled_from(['IN', 'NOT IN']))} ({items})"
    if kind == 5:
        return f"{draw(value)} IN ({draw(selects(scope, max(depth - 1, 0), columns=1))})"
    if kind == 6:
        return f"{draw(value)} {draw(st.sampled_from(['IS NULL', 'IS NOT NULL', 'IS TRUE']))}"
    if kind == 7:
        low, high = draw(literals()), draw(literals())
        between = draw(st.sampled_from(["BETWEEN", "NOT BETWEEN"]))
        return f"{draw(value)} {between} {low} AND {high}"
    if kind == 8:
        exists = draw(st.sampled_from(["", "NOT "]))
        return f"{exists}EXISTS ({draw(selects(scope, max(depth - 1, 0)))})"
    if depth <= 0:
        return draw(st.sampled_from(["TRUE", "FALSE", "NULL"]))
    inner = predicates(scope, depth - 1)
    if kind == 9:
        return f"NOT ({draw(inner)})"
    return f"({draw(inner)}) {draw(st.sampled_from(['AND', 'OR']))} ({draw(inner)})"


@st.composite
def _from_clause(draw: st.DrawFn, scope: Scope, depth: int) -> tuple[str, Scope]:
    parts: list[str] = []
    tables: list[tuple[str, str]] = []
    for i in range(draw(st.integers(1, 3)) if draw(st.booleans()) else 1):
        alias = f"t{i}"
        if depth > 0 and rarely(draw, 6):
            source, table = f"({draw(selects(scope, depth - 1))})", ""
        elif rarely(draw, 20):
            source, table = draw(st.sampled_from(UNKNOWN_TABLES)), ""
        else:
            table = draw(st.sampled_from(TABLES if rarely(draw, 15) else scope.names()))
            source = table
        named = draw(st.booleans()) or not table or any(t == table for _, t in tables)
        item = f"{source} AS {alias}" if named else source
        tables.append((alias if named else table, table))
        if i == 0:
            parts.append(item)
            continue
        join = draw(st.sampled_from(JOINS))
        if join in ("CROSS JOIN", ","):
            parts.append(f"{join} {item}")
        elif rarely(draw, 4):
            parts.append(f"{join} {item} USING (fps_number)")
        else:
            on = draw(predicates(scope.reading(tables), 1))
            parts.append(f"{join} {item} ON {on}")
    return " ".join(parts), scope.reading(tables)


@st.composite
def selects(draw: st.DrawFn, scope: Scope, depth: int = 2, columns: int | None = None) -> str:
    """One SELECT, with any of its clauses."""
    source, inner = draw(_from_clause(scope, depth))
    items = []
    for i in range(columns or draw(st.integers(1, 4))):
        if columns is None and rarely(draw, 10):
            items.append(draw(st.sampled_from(["*", "t0.*", "* EXCLUDE (surname)"])))
            continue
        item = draw(expressions(inner, depth))
        items.append(f"{item} AS c{i}" if draw(st.booleans()) else item)
    distinct = "DISTINCT " if rarely(draw, 6) else ""
    sql = f"SELECT {distinct}{', '.join(items)} FROM {source}"
    if draw(st.booleans()):
        sql += f" WHERE {draw(predicates(inner, depth))}"
    if rarely(draw, 4):
        keys = [inner.column(draw) for _ in range(draw(st.integers(1, 2)))]
        sql += " GROUP BY " + draw(st.sampled_from([", ".join(keys), ", ".join(keys), "ALL", "1"]))
        if draw(st.booleans()):
            sql += f" HAVING {draw(predicates(inner, max(depth - 1, 0)))}"
    if rarely(draw, 8):
        sql += f" QUALIFY {draw(predicates(inner, 0))}"
    if rarely(draw, 3):
        key = draw(st.sampled_from([inner.column(draw), "1", "2"]))
        sql += f" ORDER BY {key} {draw(st.sampled_from(['', 'DESC', 'NULLS FIRST']))}"
    if rarely(draw, 3):
        limits = LIMITS if rarely(draw, 15) else ["0", "1", "10", "100"]
        sql += f" LIMIT {draw(st.sampled_from(limits))}"
        if rarely(draw, 4):
            sql += f" OFFSET {draw(st.sampled_from(['1', '5', '-5', '99999999999999999999']))}"
    return sql


LIMITS = ["-1", "1e3", "(SELECT 1)", "ALL", "99999999999999999999", "1 + 1"]


@st.composite
def grammar_sql(draw: st.DrawFn, catalog: Catalog | None = None) -> str:
    """A query from the grammar over ``catalog`` (by default the whole
    logical model): a SELECT, a set operation, or a WITH."""
    scope = Scope.of(catalog or MODEL)
    kind = draw(st.integers(0, 5))
    if kind == 0:
        arms = [draw(selects(scope, 1)) for _ in range(draw(st.integers(2, 3)))]
        return f" {draw(st.sampled_from(SET_OPERATIONS))} ".join(arms)
    if kind == 1:
        cte = draw(selects(scope, 1))
        body = draw(selects(scope, 1))
        body = re.sub(r"FROM \w+", "FROM c", body, count=1) if draw(st.booleans()) else body
        return f"WITH c AS ({cte}) {body}"
    return draw(selects(scope, draw(st.integers(0, 2))))


AGGREGATE_MEASURES = ["count(*)", "count(DISTINCT {})", "sum({})", "avg({})", "max({})"]


@st.composite
def plain_sql(draw: st.DrawFn, catalog: Catalog | None = None) -> str:
    """A query a partner would write, over columns it may see: a selection,
    a join on the FPS number, or a count by group; most of these answer."""
    catalog = catalog or MODEL
    table = draw(st.sampled_from(sorted(catalog)))
    columns = catalog[table] or ["source"]
    picked = draw(st.lists(st.sampled_from(columns), min_size=1, max_size=3, unique=True))
    scope = Scope.of(catalog).reading([(table, table)])
    where = f" WHERE {draw(predicates(scope, 0))}" if draw(st.booleans()) else ""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        key = picked[0]
        return f"SELECT {key}, count(*) AS n FROM {table}{where} GROUP BY {key} ORDER BY n DESC"
    others = [t for t in sorted(catalog) if t != table and "fps_number" in catalog[t]]
    if kind == 1 and others and "fps_number" in columns:
        other = draw(st.sampled_from(others))
        column = draw(st.sampled_from(catalog[other]))
        return (
            f"SELECT {table}.{picked[0]}, b.{column} FROM {table} "
            f"{draw(st.sampled_from(['JOIN', 'LEFT JOIN']))} {other} AS b "
            f"ON b.fps_number = {table}.fps_number{where} LIMIT 50"
        )
    limit = draw(st.sampled_from(["", " LIMIT 5", " LIMIT 100"]))
    return f"SELECT {', '.join(picked)} FROM {table}{where}{limit}"


@st.composite
def aggregate_sql(draw: st.DrawFn, dimensions: dict[str, list[str]]) -> str:
    """A grouped aggregate over an aggregate-only role's dimensions (or a
    near miss: a column that is no dimension, an aggregate it may not use)."""
    table = draw(st.sampled_from(sorted(dimensions)))
    pool = dimensions[table] + MODEL[table][:3]
    keys = draw(st.lists(st.sampled_from(pool), min_size=0, max_size=2, unique=True))
    func = draw(
        st.sampled_from(["count(*)", "count(DISTINCT {})", "sum({})", "avg({})", "max({})"])
    )
    measure = func.format(draw(st.sampled_from(MODEL[table])))
    sql = f"SELECT {', '.join([*keys, measure + ' AS n'])} FROM {table}"
    if draw(st.booleans()):
        scope = Scope.of({table: dimensions[table]}).reading([(table, table)])
        sql += f" WHERE {draw(predicates(scope, 1))}"
    if keys:
        sql += f" GROUP BY {', '.join(keys)}"
    if rarely(draw, 4):
        sql += f" HAVING count(*) > {draw(st.integers(-1, 10))}"
    if rarely(draw, 4):
        sql += " ORDER BY n DESC"
    return sql


# --- mutations --------------------------------------------------------------

_TOKEN = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|\w+|\s+|.", re.DOTALL)

#: Text a mutation may splice in: keywords, punctuation, and the unruly.
_NOISE = st.one_of(
    st.sampled_from(KEYWORDS + PUNCTUATION),
    st.sampled_from(["\x00", "\ud800", "\udfff", "\ufeff", "\u202e", "--", "/*", "*/", "$$", "\n"]),
    st.binary(max_size=8).map(lambda b: b.decode("utf-8", errors="surrogateescape")),
    st.text(max_size=6),
    st.integers(100_000, 100_100).map(lambda n: "9" * n),  # over the length limit
    literals(),
)


def tokens_of(sql: str) -> list[str]:
    return _TOKEN.findall(sql)


@st.composite
def mutated_sql(draw: st.DrawFn, bases: Sequence[str] = (), catalog: Catalog | None = None) -> str:
    """A grammar query (or one of ``bases``) with one to four tokens mutated."""
    base: str
    use_base: bool = draw(st.booleans())
    if bases and use_base:
        base = draw(st.sampled_from(list(bases)))
    else:
        base = draw(st.one_of(grammar_sql(catalog), plain_sql(catalog)))
    tokens = tokens_of(base) or [""]
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(tokens) - 1))
        kind = draw(st.sampled_from(["insert", "delete", "swap", "duplicate", "replace"]))
        if kind == "insert":
            tokens.insert(at, draw(_NOISE))
        elif kind == "delete" and len(tokens) > 1:
            del tokens[at]
        elif kind == "swap":
            other = draw(st.integers(0, len(tokens) - 1))
            tokens[at], tokens[other] = tokens[other], tokens[at]
        elif kind == "duplicate":
            tokens.insert(at, tokens[at])
        else:
            tokens[at] = draw(_NOISE)
    return "".join(tokens)


def random_text() -> st.SearchStrategy[str]:
    """Text with no SQL in mind: random code points (lone surrogates too) or
    random bytes read as they would arrive."""
    return st.one_of(
        st.text(st.characters(codec=None, exclude_categories=()), max_size=200),
        st.binary(max_size=200).map(lambda b: b.decode("utf-8", errors="surrogateescape")),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    )


def any_sql(bases: Sequence[str] = (), catalog: Catalog | None = None) -> st.SearchStrategy[str]:
    """Grammar, mutated and random text, weighted towards what parses."""
    grammar, plain = grammar_sql(catalog), plain_sql(catalog)
    return st.one_of(grammar, plain, plain, mutated_sql(bases, catalog), random_text())


# --- the other request fields ------------------------------------------------


@st.composite
def request_fields(draw: st.DrawFn, purposes: Sequence[str]) -> dict[str, Any]:
    """purpose, case_ref, timeout_ms, allow_partial and end_user, each mostly
    valid, sometimes hostile (oversized, control characters, look-alikes)."""
    hostile = st.one_of(
        st.text(max_size=80),
        st.sampled_from(["", " ", "x" * 70, "x" * 100_000, "R-1\n", "R\u20101", "R-1\x00"]),
        st.sampled_from(["bail_hearing\n", "\u0455upervision", "SUPERVISION", "../purpose"]),
    )
    purpose = draw(st.one_of(st.sampled_from(purposes), hostile))
    case_ref = draw(st.one_of(st.just("CASE-1"), st.from_regex(r"[A-Z]{1,4}-[0-9]{1,8}"), hostile))
    timeout_ms = draw(
        st.one_of(
            st.just(0),
            st.integers(1, 50),
            st.integers(50, 3000),
            st.sampled_from([-1, -(2**63), 2**63 - 1, 10**12]),
        )
    )
    end_user = draw(
        st.one_of(st.just("fuzz-user"), st.just(""), st.text(max_size=40), st.just("u" * 300))
    )
    return {
        "purpose": purpose,
        "case_ref": case_ref,
        "timeout_ms": timeout_ms,
        "allow_partial": draw(st.booleans()),
        "end_user": end_user,
    }


# --- the corpus of inputs that once failed -----------------------------------


def load_corpus(kind: str) -> list[dict[str, Any]]:
    """The corpus entries of one kind ("prepare" or "live"), each a dict with
    at least ``sql`` and ``partner``; ``sql_bytes`` (hex) for invalid UTF-8."""
    entries = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            entry = json.loads(line)
            if kind in entry.get("kinds", ["prepare", "live"]):
                entries.append(entry)
    return entries


def corpus_text(entry: dict[str, Any]) -> str:
    """An entry's SQL as the broker's code sees it (bytes that are not
    UTF-8 read with ``surrogateescape``, as lone surrogates)."""
    if entry.get("sql_bytes"):
        return bytes.fromhex(entry["sql_bytes"]).decode("utf-8", "surrogateescape")
    text: str = entry["sql"]
    return text
