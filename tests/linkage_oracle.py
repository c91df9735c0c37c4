"""The oracles' own reading of the policy language's person linkage.

``person IN (SELECT person FROM t WHERE c)`` keeps a row when some row of
``t`` passing ``c`` has the same FPS number (non-null, any system) or is the
same file (same source, same non-null ``source_person_id``); ``file IN``
keeps the same file only; ``sentence IN`` the same file's sentence of the
same ``offence_code`` and ``sentence_date``. Written here as a correlated ``EXISTS`` with an
``OR`` (the broker writes two uncorrelated semi-joins instead), without
importing ``broker``: the two must agree on any data.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

if TYPE_CHECKING:
    from collections.abc import Iterator

    from accord.federation import Federation

KEYS = ("person", "file", "sentence")


def expand(sql: str, table: str, outer_alias: str, federation: Federation) -> str:
    """``sql`` (a row filter of ``table``, whose rows are named ``outer_alias``)
    with every linkage written out as ``EXISTS``; tables keep their names."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    if not any(_is_link(n) for n in tree.find_all(exp.In)):
        return sql  # nothing to write out: the filter runs as written
    fresh = (f"__link{n}" for n in itertools.count(1))
    return _expand(tree, table, outer_alias, federation, fresh).sql("duckdb")


def _is_link(node: exp.Expr) -> bool:
    return (
        isinstance(node, exp.In)
        and isinstance(node.this, exp.Column)
        and not node.this.table
        and node.this.name in KEYS
        and node.args.get("query") is not None
    )


def _expand(
    tree: exp.Expr, table: str, outer: str, federation: Federation, fresh: Iterator[str]
) -> exp.Expr:
    def rewrite(node: exp.Expr) -> exp.Expr:
        if not _is_link(node):
            return node
        key = node.this.name
        select = node.args["query"].this
        inner = select.args["from_"].this
        alias = next(fresh)
        written = inner.alias_or_name
        where = select.args.get("where")
        condition = where.this.copy() if where is not None else exp.true()
        # the inner rows get a fresh name: a self-link (offenders in offenders) stays apart
        for column in condition.find_all(exp.Column):
            if column.table == written:
                column.set("table", exp.to_identifier(alias))
        condition = _expand(condition, inner.name, alias, federation, fresh)
        same_file = (
            f"({alias}.source = {outer}.source "
            f"AND {alias}.source_person_id = {outer}.source_person_id)"
        )
        link = same_file
        if key == "sentence":
            link = (
                f"({same_file} AND {alias}.offence_code = {outer}.offence_code "
                f"AND {alias}.sentence_date = {outer}.sentence_date)"
            )
        if key == "person":
            mine = federation.tables[table].person_key or "fps_number"
            theirs = federation.tables[inner.name].person_key or "fps_number"
            link = f"({alias}.{theirs} = {outer}.{mine} OR {same_file})"
        text = (
            f"EXISTS (SELECT 1 FROM {inner.name} AS {alias} "
            f"WHERE ({condition.sql('duckdb')}) AND {link})"
        )
        return sqlglot.parse_one(text, read="duckdb")

    # top-down, not into what was just written: nested links are expanded by the recursion
    if _is_link(tree):
        return rewrite(tree)
    for node in list(tree.find_all(exp.In)):
        if _is_link(node) and not any(_is_link(a) for a in _ancestors(node)):
            node.replace(rewrite(node))
    return tree


def _ancestors(node: exp.Expr) -> list[exp.Expr]:
    found = []
    parent = node.parent
    while parent is not None:
        found.append(parent)
        parent = parent.parent
    return found
