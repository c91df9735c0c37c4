"""Aggregate-only roles (the statistics agency): counts, never people.

A query from such a role must be one SELECT whose every output column is a
grouped dimension column or one aggregate (COUNT, COUNT(DISTINCT) of a
column; SUM, AVG of a measure); WHERE filters on dimensions only; ORDER BY
names dimension columns. No HAVING and no arithmetic on aggregates: they
would run on the exact values, before the release rounds them
(``broker.policy.disclosure``), and answer questions about those. Every
output group must cover at least ``min_group_size`` distinct persons,
counted on the person (FPS number, or the source's own id where the FPS
number is missing), not on rows: the planner adds hidden columns and the
release withholds smaller groups.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.optimizer.scope import build_scope

from accord.errors import PolicyDenied
from broker.policy.disclosure import Output

if TYPE_CHECKING:
    from collections.abc import Callable

    from broker.policy.rewrite import RoleView

_ALLOWED_AGGREGATES = (exp.Count, exp.Sum, exp.Avg)


def check_aggregate_query(tree: exp.Query, view: RoleView) -> list[Output]:
    """Refuses anything but a plain grouped aggregate over dimension columns;
    returns what each output column is, for the release.

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
    if view.role.privacy is not None and tree.args.get("joins"):
        raise PolicyDenied(
            f"role {role} reads one table per query (its answers are differentially "
            "private: a join has no bound on what one person adds)",
            reason="aggregate_only",
        )
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

    def measure_base(column: exp.Column) -> int | None:
        grant = view.role.tables.get(tables.get(column.table, ""))
        return grant.measures.get(column.name) if grant is not None else None

    schema = view.schema()

    def type_of(column: exp.Column) -> str:
        return schema.get(tables.get(column.table, ""), {}).get(column.name, "")

    grouped = _check_grouping(tree, role, dimension)
    outputs = _check_projections(tree, view, grouped, measure_base)
    _check_filters(tree, role, dimension, type_of)
    _check_ordering(tree, role, grouped)
    return outputs


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


def _check_projections(
    tree: exp.Select,
    view: RoleView,
    grouped: set[tuple[str, str]],
    measure_base: Callable[[exp.Column], int | None],
) -> list[Output]:
    role = view.role.name
    outputs = []
    for projection in tree.expressions:
        inner = projection.unalias()
        if isinstance(inner, exp.Column) and (inner.table, inner.name) in grouped:
            outputs.append(Output("dimension"))
            continue
        if not inner.find(exp.AggFunc):
            raise PolicyDenied(
                f"role {role}: {projection.sql('duckdb')} is neither a grouped "
                "dimension nor an aggregate",
                reason="aggregate_only",
            )
        if not isinstance(inner, _ALLOWED_AGGREGATES):
            raise PolicyDenied(
                f"role {role}: {projection.sql('duckdb')} computes on aggregates; each output "
                "column is one aggregate or a grouped dimension (released values are rounded: "
                "derive ratios and differences from the answer)",
                reason="aggregate_only",
            )
        outputs.append(_output(inner, view, measure_base))
    return outputs


def _output(
    aggregate: exp.AggFunc, view: RoleView, measure_base: Callable[[exp.Column], int | None]
) -> Output:
    """A COUNT is rounded to the role's base; a SUM or AVG takes a measure
    and its base. Under ``privacy`` (one table: joins are refused), each
    says how much one person may change it: a count by the table's
    ``rows_per_person``, a sum by that many times the measure's clamp."""
    privacy = view.role.privacy
    rows, table = 0, ""
    if privacy is not None:
        (table,) = {t.name for t in aggregate.root().find_all(exp.Table)}
        rows = privacy.rows_per_person[table]
    if isinstance(aggregate, exp.Count):
        return Output(
            "count", view.role.rounding_base, sensitivity=rows, slots=(aggregate.sql("duckdb"),)
        )
    column = next(aggregate.find_all(exp.Column))  # checked: a plain column
    base = measure_base(column)
    if base is None:
        measures = sorted(
            f"{table}.{name}" for table, g in view.role.tables.items() for name in g.measures
        )
        raise PolicyDenied(
            f"role {view.role.name} may SUM or AVG its measures only "
            f"({', '.join(measures) or 'none'}), not {column.name}",
            reason="aggregate_only",
        )
    clamp = view.role.tables[table].clamps.get(column.name, 0) if privacy is not None else 0
    if isinstance(aggregate, exp.Sum):
        return Output("sum", base, sensitivity=rows * clamp, slots=(aggregate.sql("duckdb"),))
    argument = aggregate.this
    slots = (
        exp.Sum(this=argument.copy()).sql("duckdb"),
        exp.Count(this=argument.copy()).sql("duckdb"),
    )
    return Output("avg", base, sensitivity=rows * clamp, count_sensitivity=rows, slots=slots)


def _check_filters(
    tree: exp.Select,
    role: str,
    dimension: Callable[[exp.Column], bool],
    type_of: Callable[[exp.Column], str],
) -> None:
    """WHERE on dimensions only, in tests that cannot fail; joins on equality
    of columns of one type (a differentially private role has none: refused
    above); no HAVING."""
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
                and type_of(eq.this) == type_of(eq.expression)  # no cast to fail
                for eq in equalities
            )
        )
        if not plain or not equalities:
            raise PolicyDenied(
                f"role {role} may join on column equality between two tables only "
                "(ON a.x = b.y, both of one type)",
                reason="aggregate_only",
            )
    where = tree.args.get("where")
    for column in where.find_all(exp.Column) if where else []:
        if not dimension(column):
            raise PolicyDenied(
                f"role {role} may filter on its dimension columns only, not {column.name}",
                reason="aggregate_only",
            )
    if where is not None:
        _check_condition(where.this, role, type_of)
    if tree.args.get("having"):
        raise PolicyDenied(
            f"role {role} may not use HAVING: it would test exact values before they are "
            "rounded; filter the released answer instead",
            reason="aggregate_only",
        )


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_NUMERIC = {"BIGINT", "DOUBLE"}


def _check_condition(node: exp.Expr, role: str, type_of: Callable[[exp.Column], str]) -> None:
    """AND, OR and NOT of tests of a dimension against literals of its type
    (or a column of its type): =, <>, <, >, IN, BETWEEN, IS NULL. Nothing in
    such a test can fail on a stored value, so no error can tell a cell that
    holds someone from an empty one (a CAST or a text compared with a number
    fails only when a row reaches it)."""

    def operand(expression: exp.Expr) -> str:
        """The type of a column (or COALESCE(column, literal)) operand, else ''."""
        if isinstance(expression, exp.Column):
            return type_of(expression)
        if isinstance(expression, exp.Coalesce) and len(expression.expressions) == 1:
            kind = operand(expression.this)
            return kind if fits(expression.expressions[0], kind) else ""
        return ""

    def fits(expression: exp.Expr, kind: str) -> bool:
        if isinstance(expression, exp.Neg):
            expression = expression.this
        if isinstance(expression, exp.Null):
            return True
        if isinstance(expression, exp.Boolean):
            return kind == "BOOLEAN"
        if isinstance(expression, exp.Literal):
            return kind == "VARCHAR" if expression.is_string else kind in _NUMERIC
        return bool(kind) and operand(expression) == kind

    if isinstance(node, exp.Paren):
        _check_condition(node.this, role, type_of)
        return
    if isinstance(node, (exp.And, exp.Or)):
        _check_condition(node.this, role, type_of)
        _check_condition(node.expression, role, type_of)
        return
    if isinstance(node, exp.Not):
        _check_condition(node.this, role, type_of)
        return
    safe = isinstance(node, exp.Boolean)
    if isinstance(node, _COMPARISONS):
        left, right = node.this, node.expression
        safe = fits(right, operand(left)) or fits(left, operand(right))
    elif isinstance(node, exp.In):
        kind = operand(node.this)
        safe = not node.args.get("query") and all(fits(e, kind) for e in node.expressions)
        safe = safe and bool(node.expressions)
    elif isinstance(node, exp.Between):
        kind = operand(node.this)
        safe = fits(node.args["low"], kind) and fits(node.args["high"], kind)
    elif isinstance(node, exp.Is):
        safe = bool(operand(node.this)) and isinstance(node.expression, exp.Null)
    if not safe:
        raise PolicyDenied(
            f"role {role}: WHERE tests dimension columns against literals of their type "
            f"(=, <>, <, >, IN, BETWEEN, IS NULL, AND, OR, NOT), not {node.sql('duckdb')}",
            reason="aggregate_only",
        )


def _check_ordering(tree: exp.Select, role: str, grouped: set[tuple[str, str]]) -> None:
    """ORDER BY on grouped dimension columns only: ordering on an aggregate
    (by name, alias, position or ALL) would rank exact values."""
    order = tree.args.get("order")
    dimensions = {  # output names of the grouped dimensions, which ORDER BY may name
        p.alias_or_name
        for p in tree.expressions
        if isinstance(p.unalias(), exp.Column) and (p.unalias().table, p.unalias().name) in grouped
    }
    for ordered in order.expressions if order else []:
        key = ordered.this
        named = isinstance(key, exp.Column) and (
            (key.table, key.name) in grouped or (not key.table and key.name in dimensions)
        )
        if not named:
            raise PolicyDenied(
                f"role {role} may order by grouped dimension columns only, by name, not "
                f"{key.sql('duckdb')}: an order on an aggregate ranks its exact values",
                reason="aggregate_only",
            )
