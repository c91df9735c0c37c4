"""Aggregate-only roles (the statistics agency): counts, never people.

A query from such a role must be one SELECT whose output is aggregates
(COUNT, COUNT(DISTINCT), SUM, AVG) grouped by the role's dimension columns;
WHERE filters on dimensions only. Every output group must cover at least
``min_group_size`` distinct persons, counted on the person (FPS number, or
the source's own id where the FPS number is missing), not on rows: the
planner adds a hidden person count and the broker drops smaller groups,
saying in the trailer how many it dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp
from sqlglot.optimizer.scope import build_scope

from accord.errors import PolicyDenied
from broker.policy.rewrite import PERSON_ID_COLUMN

if TYPE_CHECKING:
    from collections.abc import Callable

    from broker.policy.rewrite import RoleView

#: Prefix of the hidden output columns carrying each group's distinct-person
#: count, one per table joined (``__accord_persons_1``, ...).
PERSON_COUNT_PREFIX = "__accord_persons"

_ALLOWED_AGGREGATES = (exp.Count, exp.Sum, exp.Avg)


def check_aggregate_query(tree: exp.Query, view: RoleView) -> None:
    """Refuses anything but a plain grouped aggregate over dimension columns.

    ``tree`` is qualified against the role's catalog.
    """
    role = view.role.name
    if not isinstance(tree, exp.Select):
        raise PolicyDenied(
            f"role {role} may run aggregate queries only: one SELECT, no UNION/INTERSECT/EXCEPT",
            reason="aggregate_only",
        )
    if tree.args.get("with_") or any(n is not tree for n in tree.find_all(exp.Query)):
        raise PolicyDenied(f"role {role} may not use subqueries or CTEs", reason="aggregate_only")
    if tree.find(exp.Window) or tree.args.get("distinct") or tree.args.get("qualify"):
        raise PolicyDenied(
            f"role {role} may not use window functions, DISTINCT or QUALIFY",
            reason="aggregate_only",
        )
    for node in tree.find_all(exp.AggFunc):
        if not isinstance(node, _ALLOWED_AGGREGATES):
            raise PolicyDenied(
                f"role {role} may use COUNT, COUNT(DISTINCT), SUM and AVG only, "
                f"not {node.sql_name()}",
                reason="aggregate_only",
            )
        _check_aggregate_argument(node, role)
    scope = build_scope(tree)
    assert scope is not None
    tables = {alias: src.name for alias, src in scope.sources.items() if isinstance(src, exp.Table)}

    def dimension(column: exp.Column) -> bool:
        grant = view.role.tables.get(tables.get(column.table, ""))
        return grant is not None and column.name in grant.dimensions

    grouped = _check_grouping(tree, role, dimension)
    _check_projections(tree, role, grouped)
    _check_filters(tree, role, dimension)


def _check_aggregate_argument(node: exp.AggFunc, role: str) -> None:
    """An aggregate takes a plain column (or * for COUNT): an expression such
    as sum(CASE WHEN <narrow condition> THEN 1 END) would count a cell the
    suppression never sees as a group."""
    argument = node.this
    if isinstance(argument, exp.Distinct) and len(argument.expressions) == 1:
        argument = argument.expressions[0]
    plain = isinstance(argument, exp.Column) or (
        isinstance(node, exp.Count) and isinstance(argument, exp.Star)
    )
    if not plain:
        raise PolicyDenied(
            f"role {role}: aggregates take a plain column, not {node.sql('duckdb')}",
            reason="aggregate_only",
        )


def _check_grouping(
    tree: exp.Select, role: str, dimension: Callable[[exp.Column], bool]
) -> set[tuple[str, str]]:
    group = tree.args.get("group")
    grouped: set[tuple[str, str]] = set()
    for expression in _grouping_expressions(tree):
        if not isinstance(expression, exp.Column) or not dimension(expression):
            raise PolicyDenied(
                f"role {role} may group by its dimension columns only, "
                f"not {expression.sql('duckdb')}",
                reason="aggregate_only",
            )
        grouped.add((expression.table, expression.name))
    if not group and not tree.find(exp.AggFunc):
        raise PolicyDenied(f"role {role} may run aggregate queries only", reason="aggregate_only")
    return grouped


def _grouping_expressions(tree: exp.Select) -> list[exp.Expr]:
    """What the query groups by; ``GROUP BY ALL`` is, as DuckDB reads it,
    every projection without an aggregate."""
    group = tree.args.get("group")
    if group is None:
        return []
    if group.args.get("all"):
        return [p.unalias() for p in tree.expressions if not p.find(exp.AggFunc)]
    return list(group.expressions)


def _check_projections(tree: exp.Select, role: str, grouped: set[tuple[str, str]]) -> None:
    for projection in tree.expressions:
        inner = projection.unalias()
        if isinstance(inner, exp.Column) and (inner.table, inner.name) in grouped:
            continue
        if not inner.find(exp.AggFunc):
            raise PolicyDenied(
                f"role {role}: {projection.sql('duckdb')} is neither a grouped "
                "dimension nor an aggregate",
                reason="aggregate_only",
            )
        for column in inner.find_all(exp.Column):
            if column.find_ancestor(exp.AggFunc) is None:
                raise PolicyDenied(
                    f"role {role}: column {column.name} outside an aggregate must be grouped",
                    reason="aggregate_only",
                )


def _check_filters(tree: exp.Select, role: str, dimension: Callable[[exp.Column], bool]) -> None:
    """WHERE on dimensions only; joins on column equality; HAVING on aggregates."""
    for join in tree.args.get("joins") or []:
        on = join.args.get("on")
        equalities = list(on.find_all(exp.EQ)) if on is not None else []
        plain = (
            on is not None
            and not join.args.get("using")
            and all(
                isinstance(n, (exp.EQ, exp.And, exp.Column, exp.Identifier, exp.Paren))
                for n in on.walk()
            )
            and all(
                isinstance(eq.this, exp.Column)
                and isinstance(eq.expression, exp.Column)
                and eq.this.table != eq.expression.table
                for eq in equalities
            )
        )
        if not plain or not equalities:
            raise PolicyDenied(
                f"role {role} may join on column equality between two tables only (ON a.x = b.y)",
                reason="aggregate_only",
            )
    where = tree.args.get("where")
    for column in where.find_all(exp.Column) if where else []:
        if not dimension(column):
            raise PolicyDenied(
                f"role {role} may filter on its dimension columns only, not {column.name}",
                reason="aggregate_only",
            )
    having = tree.args.get("having")
    for column in having.find_all(exp.Column) if having else []:
        if column.find_ancestor(exp.AggFunc) is None:
            raise PolicyDenied(
                f"role {role}: HAVING may test aggregates only", reason="aggregate_only"
            )


def add_person_count(tree: exp.Select) -> exp.Select:
    """Adds ``COUNT(DISTINCT t.__accord_person) AS __accord_persons_<n>`` for
    every table the query reads: in a join, each side's persons must reach
    the threshold, not only the first table's."""
    tables = [tree.args["from_"].this, *(j.this for j in tree.args.get("joins") or [])]
    for number, table in enumerate(tables, start=1):
        count = exp.Count(
            this=exp.Distinct(
                expressions=[exp.column(PERSON_ID_COLUMN, table=table.alias_or_name, quoted=True)]
            )
        )
        tree.select(exp.alias_(count, f"{PERSON_COUNT_PREFIX}_{number}", quoted=True), copy=False)
    return tree


def suppress_small_groups(table: pa.Table, k: int) -> tuple[pa.Table, int]:
    """Drops output groups where any table's persons number fewer than ``k``;
    returns (kept, dropped)."""
    counts = [name for name in table.column_names if name.startswith(PERSON_COUNT_PREFIX + "_")]
    keep = pa.array([True] * table.num_rows, pa.bool_())
    for name in counts:
        keep = pc.and_(keep, pc.greater_equal(table.column(name), k))
    kept = table.filter(keep).drop_columns(counts)
    return kept, table.num_rows - kept.num_rows
