"""Aggregate pushdown: partial aggregates at the sources, the final one here.

For a query over one table reference whose secure view is the identity
(no mask, no row filter), with every WHERE conjunct pushed, GROUP BY on
plain columns (or none) and only COUNT(*), COUNT(col), SUM, AVG, MIN and
MAX, each scan also asks its source for the partial aggregate
(``accord.partial``): per group, COUNT(*) as ``rows`` and one column per
call (AVG as a SUM and a COUNT). The merge then runs the *final* query over
the union of the partials: SUM of the counts and sums, MIN of the minima,
MAX of the maxima, the query's HAVING, ORDER BY and LIMIT as they were.

An adapter may decline (``adapters.aggregate``: the predicate not pushed
whole, a code table, text dates...); it then sends the rows, and the broker
computes that source's partial itself with the same SQL, the query's whole
WHERE included, before the final aggregation. So any mix of sources that
pushed and declined gives the answer the rows would have.

Not pushed: aggregate-only roles (their release needs the rows' groups as
the policy shapes them), DISTINCT or FILTER aggregates, windows, subqueries,
joins, GROUP BY on expressions, ROLLUP and the like.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlglot import exp

from accord.catalog import SOURCE_COLUMN
from accord.errors import InvalidQuery
from accord.partial import ROWS, call_name, parse_argument
from accord.v1 import adapter_pb2
from broker.pushdown.identity import identity_projection

if TYPE_CHECKING:
    from collections.abc import Sequence

    from accord.federation import Federation

_FUNCTIONS: dict[type[exp.Expr], str] = {
    exp.Count: "count",
    exp.Sum: "sum",
    exp.Avg: "avg",
    exp.Min: "min",
    exp.Max: "max",
}


@dataclass(frozen=True)
class PartialSpec:
    """What a scan asks its source to aggregate (``adapter.proto``)."""

    group_by: tuple[str, ...]
    calls: tuple[tuple[str, str], ...]  # (function, argument over logical columns)

    def describe(self) -> str:
        """For Explain: ``GROUP BY a, b: count(*), count(x), sum(y)``."""
        calls = ", ".join(["count(*)", *(f"{f}({a})" for f, a in self.calls)])
        return f"GROUP BY {', '.join(self.group_by)}: {calls}" if self.group_by else calls

    def message(self) -> adapter_pb2.PartialAggregate:
        return adapter_pb2.PartialAggregate(
            group_by=list(self.group_by),
            calls=[adapter_pb2.AggregateCall(function=f, argument=a) for f, a in self.calls],
        )


@dataclass
class AggregatePushdown:
    """The plan's partial aggregate: the spec the scans carry, the same
    partial in DuckDB over a declining source's rows (the reference's raw
    table, ``source`` kept), and the table of partials the final query reads."""

    spec: PartialSpec
    table: str  # the logical table
    raw: str  # the reference's table: rows of the sources that declined
    partials: str  # the union of every source's partial, with ``source``
    partial: exp.Select  # over ``raw``: ``source``, groups, ``rows``, a1...

    @property
    def columns(self) -> list[str]:
        return [*self.spec.group_by, ROWS, *(call_name(i) for i in range(len(self.spec.calls)))]


class _Conjunct(Protocol):
    @property
    def columns(self) -> frozenset[str]: ...
    @property
    def exact(self) -> bool: ...


class TableReference(Protocol):
    """What this rule reads of ``broker.planner.TableReference`` (the
    planner imports this module, not the other way round)."""

    scans: list[Any]

    @property
    def ref_id(self) -> str: ...
    @property
    def table(self) -> str: ...
    @property
    def shareable(self) -> bool: ...
    @property
    def limit(self) -> int: ...
    @property
    def predicates(self) -> Sequence[_Conjunct]: ...


class QueryPlan(Protocol):
    """What this rule reads and rewrites of ``broker.planner.QueryPlan``."""

    merge: exp.Query
    views: list[tuple[str, exp.Select]]
    aggregate: AggregatePushdown | None

    @property
    def references(self) -> Sequence[TableReference]: ...


def push_aggregates(plan: QueryPlan, federation: Federation) -> None:
    """Rewrites ``plan`` for partial aggregation where it is exact (see the
    module docstring); leaves it as it was otherwise."""
    if len(plan.references) != 1 or not isinstance(plan.merge, exp.Select):
        return
    ref = plan.references[0]
    tree = plan.merge
    alias = _reads_identity(plan, ref)
    if alias is None or not ref.shareable or ref.limit or not ref.scans:
        return
    if _blocked(tree) or not _where_pushed(tree, ref):
        return
    try:
        group_by, calls, final = _Shaper(tree, alias, federation.tables[ref.table].columns).shape()
    except _NotPushable:
        return
    spec = PartialSpec(tuple(c for c in group_by if c != SOURCE_COLUMN), tuple(calls))
    logical = federation.tables[ref.table]
    try:
        used = {
            c.name for f, a in calls for c in parse_argument(a, logical, f).find_all(exp.Column)
        }
    except InvalidQuery:
        return
    used |= set(spec.group_by)
    partials = f"{ref.ref_id}_partial"
    final.set("from_", exp.From(this=exp.Table(this=exp.to_identifier(partials, quoted=True))))
    final.args["from_"].this.set(
        "alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True))
    )
    plan.aggregate = AggregatePushdown(
        spec, ref.table, ref.ref_id, partials, _partial(tree, spec, ref, alias)
    )
    plan.merge, plan.views = final, []
    predicates = [p.columns for p in ref.predicates]
    for i, scan in enumerate(ref.scans):
        released = federation.source(scan.source).released_columns(ref.table)
        # A source that does not release a column filtered on is not sent
        # that conjunct (planner.scans_for): its rows need the broker's WHERE.
        if used <= released and all(p <= released for p in predicates):
            ref.scans[i] = dataclasses.replace(scan, aggregate=spec)


class _NotPushable(Exception):
    pass


def _reads_identity(plan: QueryPlan, ref: TableReference) -> str | None:
    """The alias the query reads the reference by: directly, or through a
    secure view that only projects its columns (no mask, no row filter)."""
    from_ = plan.merge.args.get("from_")
    table = from_.this if from_ is not None else None
    if not isinstance(table, exp.Table) or plan.merge.args.get("joins"):
        return None
    if not plan.views:
        return table.alias_or_name if table.name == ref.ref_id else None
    if len(plan.views) != 1 or table.name != plan.views[0][0]:
        return None
    projection = identity_projection(plan.views[0][1])
    if projection is None or projection[0] != ref.ref_id:
        return None
    return table.alias_or_name


def _blocked(tree: exp.Select) -> bool:
    if any(tree.args.get(a) for a in ("joins", "qualify", "windows", "distinct")):
        return True
    group = tree.args.get("group")
    if group is not None and any(
        group.args.get(a) for a in ("rollup", "cube", "grouping_sets", "all")
    ):
        return True
    kinds = (exp.Window, exp.Subquery, exp.Exists, exp.Filter, exp.Distinct, exp.Lambda)
    nested = any(isinstance(n, exp.Query) and n is not tree for n in tree.walk())
    return nested or tree.find(*kinds) is not None


def _where_pushed(tree: exp.Select, ref: TableReference) -> bool:
    where = tree.args.get("where")
    count = (
        0
        if where is None
        else len(list(where.this.flatten()))
        if isinstance(where.this, exp.And)
        else 1
    )
    return all(p.exact for p in ref.predicates) and len(ref.predicates) == count


class _Shaper:
    """Reads the query's groups and aggregates and writes the final query."""

    def __init__(self, tree: exp.Select, alias: str, types: dict[str, str]) -> None:
        self.tree, self.alias, self.types = tree, alias, types
        self.calls: dict[tuple[str, str], str] = {}

    def shape(self) -> tuple[list[str], list[tuple[str, str]], exp.Select]:
        """(groups, calls, the final query); _NotPushable where not exact."""
        group = self.tree.args.get("group")
        group_by = []
        for node in group.expressions if group is not None else []:
            known = isinstance(node, exp.Column) and (
                node.name in self.types or node.name == SOURCE_COLUMN
            )
            if not known or node.table != self.alias:
                raise _NotPushable
            group_by.append(node.name)
        if len(set(group_by)) != len(group_by) or ROWS in group_by:
            raise _NotPushable
        final = self.tree.copy()
        final.set("where", None)
        aggregates = list(final.find_all(exp.AggFunc))
        if not aggregates and not group_by:
            raise _NotPushable
        if any(node.find_ancestor(exp.AggFunc) is not None for node in aggregates):
            raise _NotPushable
        for node in aggregates:
            node.replace(self._final(node))
        # Outside the aggregates, only the groups (and the query's own outputs).
        outputs = {e.alias_or_name for e in final.expressions}
        partial = {*group_by, ROWS, *self.calls.values()}
        for column in final.find_all(exp.Column):
            inside = column.table == self.alias and column.name in partial
            if not inside and (column.table or column.name not in outputs):
                raise _NotPushable
        calls = sorted(self.calls.items(), key=lambda kv: int(kv[1][1:]))
        return group_by, [k for k, _ in calls], final

    def _final(self, node: exp.AggFunc) -> exp.Expr:
        function = _FUNCTIONS.get(type(node))
        # ``big_int`` is how sqlglot marks COUNT's BIGINT result; anything
        # else (a second argument, an ORDER BY inside, DISTINCT) is not pushed.
        if function is None or any(v for k, v in node.args.items() if k not in ("this", "big_int")):
            raise _NotPushable
        argument = node.this
        if function == "count":
            if isinstance(argument, exp.Star):
                return _count(self._ref(ROWS))
            return _count(self._ref(self._call("count", argument)))
        if function == "avg":
            total = exp.Sum(this=self._ref(self._call("sum", argument)))
            count = exp.Sum(this=self._ref(self._call("count", argument)))
            return exp.Div(
                this=exp.cast(total, "DOUBLE"),
                expression=exp.Nullif(this=count, expression=exp.Literal.number(0)),
            )
        combine = exp.Sum if function == "sum" else type(node)
        return combine(this=self._ref(self._call(function, argument)))

    def _call(self, function: str, argument: exp.Expr) -> str:
        columns = list(argument.find_all(exp.Column))
        if not columns or any(c.table != self.alias or c.name not in self.types for c in columns):
            raise _NotPushable  # a literal alone, or ``source``, or another table's
        if function != "sum" and not isinstance(argument, exp.Column):
            raise _NotPushable
        text = argument.transform(
            lambda n: exp.column(n.name) if isinstance(n, exp.Column) else n
        ).sql(dialect="duckdb")
        name = self.calls.setdefault((function, text), call_name(len(self.calls)))
        return name

    def _ref(self, name: str) -> exp.Column:
        return exp.column(name, table=self.alias, quoted=True)


def _count(total: exp.Expr) -> exp.Expr:
    """A count's final: the sum of the partial counts, 0 over none, BIGINT
    (DuckDB's SUM of BIGINT is a HUGEINT; COUNT is a BIGINT)."""
    return exp.cast(
        exp.Coalesce(this=exp.Sum(this=total), expressions=[exp.Literal.number(0)]), "BIGINT"
    )


def _partial(tree: exp.Select, spec: PartialSpec, ref: TableReference, alias: str) -> exp.Select:
    """The partial aggregate in DuckDB over a declining source's rows: the
    query's whole WHERE (the source may have applied part of it), grouped
    by ``source`` too."""
    functions = {"count": exp.Count, "sum": exp.Sum, "min": exp.Min, "max": exp.Max}
    column = exp.column
    projections: list[exp.Expr] = [column(SOURCE_COLUMN, table=alias, quoted=True)]
    projections += [column(g, table=alias, quoted=True) for g in spec.group_by]
    projections.append(exp.alias_(exp.Count(this=exp.Star()), ROWS, quoted=True))
    for i, (function, argument) in enumerate(spec.calls):
        parsed: exp.Expr = exp.maybe_parse(argument, dialect="duckdb").transform(
            lambda n: column(n.name, table=alias, quoted=True) if isinstance(n, exp.Column) else n
        )
        projections.append(exp.alias_(functions[function](this=parsed), call_name(i), quoted=True))
    select = exp.select(*projections).from_(
        exp.Table(
            this=exp.to_identifier(ref.ref_id, quoted=True),
            alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)),
        )
    )
    where = tree.args.get("where")
    if where is not None:
        select.set("where", where.copy())
    return select.group_by(*[exp.Literal.number(i + 1) for i in range(len(spec.group_by) + 1)])
