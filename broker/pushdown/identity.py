"""Whether a secure view is the identity: it only selects its table's
columns under their own names (no mask, no row filter). The merge then
projects the Arrow table without DuckDB (``broker.merge``), and an
aggregate may be computed at the sources (``broker.pushdown.aggregates``).
"""

from __future__ import annotations

from sqlglot import exp

#: The only clauses an identity view has.
_PROJECTION_ARGS = frozenset({"expressions", "from_"})


def identity_projection(view: exp.Select) -> tuple[str, list[str]] | None:
    """(the table it reads, its columns) when ``view`` is nothing but
    ``SELECT t.a AS a, t.b AS b FROM t``: each column under its own name.

    >>> import sqlglot
    >>> identity_projection(sqlglot.parse_one('SELECT o.a AS a, o.b FROM ref1 AS o'))
    ('ref1', ['a', 'b'])
    >>> identity_projection(sqlglot.parse_one("SELECT o.a AS a FROM ref1 AS o WHERE o.a = 1"))
    >>> identity_projection(sqlglot.parse_one("SELECT upper(o.a) AS a FROM ref1 AS o"))
    """
    if not isinstance(view, exp.Select) or any(
        value for arg, value in view.args.items() if arg not in _PROJECTION_ARGS
    ):
        return None
    from_ = view.args.get("from_")
    table = from_.this if from_ is not None else None
    if not isinstance(table, exp.Table) or table.args.get("db") or table.args.get("catalog"):
        return None
    alias = table.alias_or_name
    columns = []
    for projection in view.expressions:
        column = projection.this if isinstance(projection, exp.Alias) else projection
        if (
            not isinstance(column, exp.Column)
            or not isinstance(column.this, exp.Identifier)
            or column.table != alias
            or column.args.get("db")
            or projection.alias_or_name != column.name
        ):
            return None
        columns.append(column.name)
    return (table.name, columns) if columns else None
