"""Person linkage in row filters: said once, in the policy language.

A child table (aliases, sentences, releases, ...) follows the people a role
sees through a policy subquery. Written by hand, each role file linked its
own way (some by FPS number only, losing every file without one), so the
policy language says it once::

    person IN (SELECT person FROM offenders WHERE status = 'UAL')
    file IN (SELECT file FROM offenders WHERE status = 'IN_CUSTODY')
    sentence IN (SELECT sentence FROM victim_cases WHERE victim_registration = ...)

``person`` links two rows when they carry the same FPS number (the
table's ``person_key``), in any system, or belong to the same file: the
same source and the same ``source_person_id`` (a system's own ids mean
nothing in another system). ``file`` links the same file only; ``sentence``
one sentence of it: the same file, ``offence_code`` and ``sentence_date``
(a file's sentences differ in these, as no system gives sentences a number
of their own). Both are
evaluated on the raw rows, as every policy subquery is, and are two-valued
(``NOT person IN (...)`` keeps exactly the rows not linked).

The rewrite expands them into two uncorrelated semi-joins, which DuckDB runs
as hash joins (a correlated ``EXISTS`` with an ``OR`` becomes a nested loop)::

    COALESCE(t.fps_number IN (SELECT o.fps_number FROM offenders AS o
                              WHERE (<condition>) AND o.fps_number IS NOT NULL), FALSE)
    OR COALESCE((t.source, t.source_person_id) IN
                (SELECT o.source, o.source_person_id FROM offenders AS o
                 WHERE <condition>), FALSE)

``check_linkage`` refuses the construct used any other way, and any row
filter that links two tables by hand on an identifier column (an ``IN``
subquery or ``EXISTS`` over ``fps_number``, ``source_person_id`` or an
expression of them), so every role links the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from accord.catalog import SOURCE_COLUMN

if TYPE_CHECKING:
    from accord.federation import Federation

#: The linkage keys a row filter may name, and what they link.
PERSON = "person"
FILE = "file"
SENTENCE = "sentence"
LINK_KEYS = (PERSON, FILE, SENTENCE)
#: Each system's own person identifier (a logical column of every person table).
LOCAL_ID = "source_person_id"
#: What tells one sentence of a file from the others, beside the file itself.
SENTENCE_KEY = ("offence_code", "sentence_date")

_ADVICE = (
    "say `person IN (SELECT person FROM <table> WHERE ...)` (the same FPS number "
    "in any system, else the same file in the same system) or `file IN (SELECT file "
    "FROM <table> WHERE ...)` (the same file)"
)


def national_key(table: str, federation: Federation) -> str:
    """The column holding the national identifier (FPS number) of ``table``."""
    return federation.tables[table].person_key or "fps_number"


def check_linkage(tree: exp.Expr, table: str, federation: Federation) -> list[str]:
    """Problems with how the row filter ``tree`` of ``table`` links people."""
    problems: list[str] = []
    links: list[exp.In] = [n for n in tree.find_all(exp.In) if _link_key(n) is not None]
    for node in links:
        problems += _check_link(node, _outer_of(node, table)[1], federation)
    inside = {id(n) for link in links for n in _link_parts(link)}
    for column in tree.find_all(exp.Column):
        if column.name in LINK_KEYS and not column.table and id(column) not in inside:
            problems.append(
                f"{column.name} is the linkage key; use it only as "
                f"`{column.name} IN (SELECT {column.name} FROM <table> WHERE ...)`"
            )
    linked = {id(link) for link in links}
    for candidate in tree.find_all(exp.In, exp.Exists):
        query = _subquery_of(candidate)
        if id(candidate) in linked or not isinstance(query, exp.Query):
            continue
        outer = _outer_of(candidate, table)[1]
        named = sorted(_identifiers(candidate, federation))
        if named:
            inner = query.find(exp.Table)
            problems.append(
                f"links {outer} to {inner.name if inner else 'a subquery'} by hand on "
                f"{', '.join(named)}; {_ADVICE}"
            )
    for key in sorted({k for k in map(_link_key, links) if k is not None}):
        clashing = [t for t, logical in federation.tables.items() if key in logical.columns]
        if clashing:
            problems.append(f"table {clashing[0]} has a column named {key}, the linkage key")
    return problems


def expand_linkage(tree: exp.Expr, table: str, federation: Federation) -> exp.Expr:
    """Replaces every ``person IN (...)`` / ``file IN (...)`` of the row filter
    of ``table`` by its semi-joins (``check_linkage`` has passed)."""
    for node in reversed(list(tree.find_all(exp.In))):  # innermost first
        key = _link_key(node)
        if key is None:
            continue
        expanded = _expand(node, key, _outer_of(node, table), federation)
        if node is tree:
            return expanded
        node.replace(expanded)
    return tree


# -- the construct -----------------------------------------------------------------------------


def _link_key(node: exp.In) -> str | None:
    """``person`` / ``file`` when ``node`` is ``<key> IN (SELECT ...)``."""
    this = node.this
    if (
        isinstance(this, exp.Column)
        and not this.table
        and this.name in LINK_KEYS
        and isinstance(node.args.get("query"), exp.Expr)
    ):
        return this.name
    return None


def _link_parts(node: exp.In) -> list[exp.Expr]:
    """The key columns of a link: its left side and its subquery's projection."""
    parts: list[exp.Expr] = [node.this]
    query = _subquery_of(node)
    if isinstance(query, exp.Select):
        parts += [p for p in query.expressions if isinstance(p, exp.Column)]
    return parts


def _check_link(node: exp.In, outer: str, federation: Federation) -> list[str]:
    key = _link_key(node)
    query = _subquery_of(node)
    shape = f"`{key} IN (SELECT {key} FROM <table> WHERE ...)`"
    if not isinstance(query, exp.Select):
        return [f"{key} links only through {shape}"]
    projection = query.expressions
    if not (
        len(projection) == 1
        and isinstance(projection[0], exp.Column)
        and not projection[0].table
        and projection[0].name == key
    ):
        return [f"{key} links only through {shape}; the subquery must select {key}"]
    blocked = (
        "joins",
        "group",
        "having",
        "qualify",
        "order",
        "limit",
        "offset",
        "with_",
        "laterals",
    )
    source = query.args.get("from_")
    inner = source.this if source is not None else None
    if any(query.args.get(arg) for arg in blocked) or not isinstance(inner, exp.Table):
        return [f"{key} links only through {shape}: one table, a WHERE, nothing else"]
    problems = []
    for name in (inner.name, outer):
        if name not in federation.tables:
            continue
        needed = {
            FILE: [LOCAL_ID],
            SENTENCE: [LOCAL_ID, *SENTENCE_KEY],
            PERSON: [national_key(name, federation), LOCAL_ID],
        }[key]
        missing = [c for c in needed if c not in federation.tables[name].columns]
        if missing:
            problems.append(f"{key} cannot link table {name}: it has no {', '.join(missing)}")
    return problems


def _expand(node: exp.In, key: str, outer_of: tuple[str, str], federation: Federation) -> exp.Expr:
    outer, outer_table = outer_of
    query = _subquery_of(node)
    assert isinstance(query, exp.Select)
    inner_table = query.args["from_"].this
    assert isinstance(inner_table, exp.Table)
    inner = inner_table.alias_or_name
    where = query.args.get("where")
    condition = where.this if where is not None else None

    def semi_join(outer_columns: list[str], inner_columns: list[str], not_null: str) -> exp.Expr:
        left: list[exp.Expr] = [exp.column(c, table=outer, quoted=True) for c in outer_columns]
        right = [exp.column(c, table=inner, quoted=True) for c in inner_columns]
        filters: list[exp.Expr] = [exp.Paren(this=condition.copy())] if condition else []
        filters.append(exp.column(not_null, table=inner, quoted=True).is_(exp.null()).not_())
        subquery = exp.select(*right).from_(inner_table.copy()).where(exp.and_(*filters))
        probe = left[0] if len(left) == 1 else exp.Tuple(expressions=left)
        return exp.Coalesce(
            this=exp.In(this=probe, query=exp.Subquery(this=subquery)),
            expressions=[exp.false()],
        )

    if key == SENTENCE:
        columns = [SOURCE_COLUMN, LOCAL_ID, *SENTENCE_KEY]
        return exp.Paren(this=semi_join(columns, columns, LOCAL_ID))
    same_file = semi_join([SOURCE_COLUMN, LOCAL_ID], [SOURCE_COLUMN, LOCAL_ID], LOCAL_ID)
    if key == FILE:
        return exp.Paren(this=same_file)
    fps_outer = national_key(outer_table, federation)
    fps_inner = national_key(inner_table.name, federation)
    same_fps = semi_join([fps_outer], [fps_inner], fps_inner)
    return exp.Paren(this=exp.or_(same_fps, same_file))


# -- helpers -----------------------------------------------------------------------------------


def _subquery_of(node: exp.Expr) -> exp.Expr | None:
    query = node.args.get("query") if isinstance(node, exp.In) else node.this
    return query.this if isinstance(query, exp.Subquery) else query


def _outer_of(node: exp.Expr, table: str) -> tuple[str, str]:
    """(alias, table) of the rows ``node`` filters: the enclosing subquery's
    FROM table, else the row filter's own table (its alias is its name)."""
    select = node.find_ancestor(exp.Select)
    if select is not None and select.args.get("from_") is not None:
        source = select.args["from_"].this
        if isinstance(source, exp.Table):
            return source.alias_or_name, source.name
    return table, table


def _identifiers(node: exp.Expr, federation: Federation) -> set[str]:
    """Identifier columns an IN-subquery compares or an EXISTS touches."""
    names = {LOCAL_ID} | {national_key(t, federation) for t in federation.tables}
    query = _subquery_of(node)
    if isinstance(node, exp.In):
        sides: list[exp.Expr] = [node.this]
        if isinstance(query, exp.Select):
            sides += query.expressions
    else:
        sides = [query] if query is not None else []
    return {c.name for side in sides for c in side.find_all(exp.Column) if c.name in names}
