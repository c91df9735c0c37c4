"""Plan: the scans of a query, with pushdown.

After qualification every column is bound to a table reference. For each
reference the planner works out which sources serve it, which columns it
needs, which WHERE conjuncts touch only that reference (and can be pushed,
constants folded first: ``broker.pushdown.folding``), what an OR spanning
tables implies for it, and whether a LIMIT is safe to push. Sources whose
declared shard cannot match are skipped (``broker.pushdown.shards``). The
references to one table then share one scan per source (``share_scans``).
The merge query is the qualified tree with each reference renamed to the
Arrow table the broker registers for it.

Pushdown never changes a result: the merge query keeps every predicate, so
a pushed conjunct only trims rows the merge would drop anyway. Conjuncts are
not pushed into the null-supplying side of an outer join, where trimming
rows before the join would turn dropped rows into NULL-extended ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.pushdown_projections import pushdown_projections
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope

from accord.catalog import SOURCE_COLUMN, catalog_schema
from accord.errors import InvalidQuery
from accord.predicate import is_plain
from broker.policy.rewrite import SECURE_VIEW
from broker.pushdown.aggregates import push_aggregates
from broker.pushdown.folding import fold_constants
from broker.pushdown.shards import may_match

if TYPE_CHECKING:
    from collections.abc import Iterable

    from accord.federation import Federation
    from broker.pushdown.aggregates import AggregatePushdown, PartialSpec


@dataclass(frozen=True)
class Conjunct:
    """A pushable predicate over one reference's columns (DuckDB SQL).

    ``exact`` is False for a predicate only implied by the query's (a
    per-table disjunction split out of an OR): it trims rows, but the
    sources' rows are not then the reference's, so no LIMIT goes with it.
    """

    sql: str
    columns: frozenset[str]
    exact: bool = True


@dataclass(frozen=True)
class ScanSpec:
    """One Scan: what one source is asked for one table reference."""

    source: str
    columns: list[str]
    predicate: str
    limit: int
    #: The partial aggregate asked of the source (``broker.pushdown.aggregates``).
    aggregate: PartialSpec | None = None


@dataclass
class TableReference:
    """One occurrence of a catalog table in the query."""

    ref_id: str  # name of the Arrow table registered for it in DuckDB
    table: str
    alias: str
    columns: list[str]
    sources: list[str]
    predicates: list[Conjunct] = field(default_factory=list)
    limit: int = 0
    scans: list[ScanSpec] = field(default_factory=list)
    label: str = ""  # the caller's alias, when the reference sits under a secure view
    #: Whether its scans may serve other references to its table too (not
    #: beneath a view that keeps a few rows of each person).
    shareable: bool = True

    @property
    def name_in_query(self) -> str:
        return self.label or self.alias

    @property
    def predicate(self) -> str:
        return _and(p.sql for p in self.predicates)


def _and(parts: Iterable[str]) -> str:
    return " AND ".join(f"({p})" for p in parts)


def scans_for(ref: TableReference, federation: Federation) -> list[ScanSpec]:
    """Per source, only what that source releases: other columns arrive as
    NULL, and a conjunct over an unreleased column stays in the broker (the
    adapter refuses it, since even a filter would reveal the hidden value)."""
    specs = []
    for code in ref.sources:
        released = federation.source(code).released_columns(ref.table)
        columns = scan_columns(ref.columns, ref.table, released, federation)
        pushed = [p for p in ref.predicates if p.columns <= released]
        exact = len(pushed) == len(ref.predicates) and all(p.exact for p in pushed)
        limit = ref.limit if exact else 0
        specs.append(ScanSpec(code, columns, _and(p.sql for p in pushed), limit))
    return specs


def scan_columns(
    wanted: Iterable[str], table: str, released: frozenset[str], federation: Federation
) -> list[str]:
    """The wanted columns the source releases; one at least (a row count
    still needs a column on the wire)."""
    columns = [c for c in wanted if c in released]
    return columns or [c for c in federation.tables[table].columns if c in released][:1]


@dataclass
class QueryPlan:
    references: list[TableReference]
    merge: exp.Query
    #: Secure views to materialize before the merge query runs, in order:
    #: (registered name, SELECT over the raw references).
    views: list[tuple[str, exp.Select]] = field(default_factory=list)
    #: Partial aggregates at the sources; ``merge`` is then the final aggregation.
    aggregate: AggregatePushdown | None = None

    @property
    def merge_sql(self) -> str:
        views = "".join(f"{name} := ({view.sql(dialect='duckdb')});\n" for name, view in self.views)
        if self.aggregate is not None:
            partial = self.aggregate.partial.sql(dialect="duckdb")
            views += f"{self.aggregate.partials} := (partials of the sources) UNION ({partial});\n"
        return views + self.merge.sql(dialect="duckdb")


def plan_query(
    tree: exp.Query,
    federation: Federation,
    ref_prefix: str = "ref",
    *,
    qualified: bool = False,
    aggregates: bool = True,
) -> QueryPlan:
    """Qualifies ``tree`` against the catalog and plans its scans.

    ``tree`` has been validated (``broker.validate.parse_query``) and passed
    through the policy rewrite; it is modified in place. ``qualified`` says
    every column is already bound (the policy rewrite does that).
    ``aggregates``: whether sources may compute partial aggregates (never
    for aggregate-only roles).
    """
    schema = catalog_schema(federation)
    if not qualified:
        try:
            tree = qualify(
                tree,
                schema=schema,
                dialect="duckdb",
                validate_qualify_columns=True,
                quote_identifiers=True,
                identify=True,
            )
        except OptimizeError as exc:
            raise InvalidQuery(_qualify_message(exc)) from exc
    _exists_selects_nothing(tree)
    # Drop derived-table columns nothing reads (a secure view projects every
    # granted column; only the ones the query uses should travel).
    try:
        tree = pushdown_projections(tree)
    except OptimizeError as exc:  # its text quotes the rewritten SQL: policy literals
        raise InvalidQuery(_shape_message(exc)) from None

    references: list[TableReference] = []
    for scope in traverse_scope(tree):
        nullable = _null_supplying(scope)
        for alias, source in scope.sources.items():
            if not isinstance(source, exp.Table) or source.name not in schema:
                continue
            ref = TableReference(
                ref_id=f"{ref_prefix}{len(references) + 1}",
                table=source.name,
                alias=alias,
                columns=[],
                sources=[s.code for s in federation.sources_serving(source.name)],
            )
            if alias not in nullable:
                _push_predicates(scope, ref)
            references.append(ref)
            source.set("this", exp.to_identifier(ref.ref_id, quoted=True))
            source.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
    _push_through_secure_views(tree, references)
    by_node = _columns_by_reference(tree, references)
    for ref in references:
        wanted = by_node.get(ref.ref_id, set())
        released = federation.released_columns(ref.table)
        ref.columns = [c for c in released if c in wanted] or released[:1]
    _push_limit(tree, references)
    for ref in references:
        ref.sources = [
            code
            for code in ref.sources
            if may_match(
                (p.sql for p in ref.predicates), federation.source(code).shards.get(ref.table)
            )
        ]
        ref.scans = scans_for(ref, federation)
    share_scans(tree, references, federation)
    views = _materialized_views(tree, ref_prefix)
    plan = QueryPlan(references, tree, views)
    if aggregates:
        push_aggregates(plan, federation)
    return plan


def share_scans(tree: exp.Query, refs: list[TableReference], federation: Federation) -> None:
    """One scan per (table, source) for all the references to a table.

    The first reference's scans fetch, per source, the union of the
    references' columns under the OR of their pushed predicates (the
    conjuncts they all push stay outside the OR; a reference pushing
    nothing else means no OR at all); the others fetch nothing and read
    its table in the merge. That is exact, since the merge keeps every
    predicate: each reference still filters its rows there, and a secure
    view over a reference still applies its row filter and masks, to the
    shared rows, as it does to its own.
    """
    groups: dict[str, list[TableReference]] = {}
    for ref in refs:
        if ref.shareable and ref.limit == 0:
            groups.setdefault(ref.table, []).append(ref)
    for table, group in groups.items():
        if len(group) < 2:
            continue
        first = group[0]
        logical = federation.tables[table]
        wanted = {c for r in group for c in r.columns}
        first.columns = [c for c in logical.columns if c in wanted]
        serving = {code for r in group for code in r.sources}
        first.sources = [s.code for s in federation.sources_serving(table) if s.code in serving]
        first.scans = [_shared_scan(code, table, group, federation) for code in first.sources]
        for other in group[1:]:
            other.scans, other.sources = [], []
            for node in tree.find_all(exp.Table):
                if node.name == other.ref_id:
                    node.set("this", exp.to_identifier(first.ref_id, quoted=True))


def _shared_scan(
    code: str, table: str, group: list[TableReference], federation: Federation
) -> ScanSpec:
    released = federation.source(code).released_columns(table)
    members = [r for r in group if code in r.sources]
    wanted = {c for r in members for c in r.columns}
    columns = scan_columns(
        (c for c in federation.tables[table].columns if c in wanted), table, released, federation
    )
    pushed = [[p.sql for p in r.predicates if p.columns <= released] for r in members]
    common = [p for p in pushed[0] if all(p in other for other in pushed[1:])]
    rests = [[p for p in own if p not in common] for own in pushed]
    parts = list(common)
    if all(rests):
        terms = dict.fromkeys(rest[0] if len(rest) == 1 else _and(rest) for rest in rests)
        parts.append(" OR ".join(f"({t})" for t in terms))
    return ScanSpec(code, columns, _and(parts), 0)


def _exists_selects_nothing(tree: exp.Query) -> None:
    """``EXISTS (SELECT * ...)`` reads no column of its rows: it selects 1,
    so no column travels for it (TPC-H Q4, Q21). Not where the projection
    aggregates without GROUP BY (one row even over none)."""
    for exists in tree.find_all(exp.Exists):
        select = exists.this
        if not isinstance(select, exp.Select):
            continue
        aggregates = any(e.find(exp.AggFunc) for e in select.expressions)
        if aggregates and not select.args.get("group"):
            continue
        select.set("expressions", [exp.Literal.number(1)])


def _materialized_views(tree: exp.Query, ref_prefix: str) -> list[tuple[str, exp.Select]]:
    """Takes every secure view out of the merge query, to be computed first.

    DuckDB's optimizer may evaluate a caller's predicate before a view's row
    filter (it reorders filters freely); a failing CAST would then quote a
    hidden value in its error. Materialized first, a view is all the
    caller's SQL can ever touch. Each view keeps its ``source`` column, so
    the answer can say how many visible rows each source gave.
    """
    views: list[tuple[str, exp.Select]] = []
    for subquery in list(tree.find_all(exp.Subquery)):
        view = subquery.this
        if not (isinstance(view, exp.Select) and view.meta.get(SECURE_VIEW)):
            continue
        if SOURCE_COLUMN not in view.named_selects:
            raw = view.args["from_"].this.alias_or_name
            view.select(
                exp.alias_(
                    exp.column(SOURCE_COLUMN, table=raw, quoted=True), SOURCE_COLUMN, quoted=True
                ),
                copy=False,
            )
        name = f"{ref_prefix.removesuffix('_ref')}_view{len(views) + 1}"
        views.append((name, view))
        subquery.replace(
            exp.Table(this=exp.to_identifier(name, quoted=True), alias=subquery.args.get("alias"))
        )
    return views


def _shape_message(exc: OptimizeError) -> str:
    if "set operation" in str(exc):
        return (
            "each side of a UNION, INTERSECT or EXCEPT must have the same number of "
            "columns (BY NAME: the same names)"
        )
    return (
        "the query's shape cannot be planned; the catalog (GetCatalog) lists the tables "
        "and columns you may query"
    )


def _qualify_message(exc: OptimizeError) -> str:
    text = str(exc).split(". Line:")[0]
    return f"{text}; the catalog (GetCatalog) lists the tables and columns you may query"


def _null_supplying(scope: Scope) -> set[str]:
    """Aliases on the null-supplying side of an outer join in this scope."""
    select = scope.expression
    if not isinstance(select, exp.Select):
        return set()
    nullable: set[str] = set()
    seen = [select.args["from_"].this.alias_or_name] if select.args.get("from_") else []
    for join in select.args.get("joins") or []:
        name = join.this.alias_or_name
        side = (join.side or "").upper()
        if side in ("LEFT", "FULL"):
            nullable.add(name)
        if side in ("RIGHT", "FULL"):
            nullable.update(seen)
        seen.append(name)
    return nullable


def _push_through_secure_views(tree: exp.Query, references: list[TableReference]) -> None:
    """User conjuncts over a secure view's *unmasked* columns go to the raw
    scan beneath it. A conjunct touching a masked column never does: the
    source would compare raw values, which the caller may not see. Nothing
    goes beneath a view that bounds each person's rows (QUALIFY)."""
    by_id = {r.ref_id: r for r in references}
    for scope in traverse_scope(tree):
        nullable = _null_supplying(scope)
        for alias, source in scope.sources.items():
            view = source.expression if isinstance(source, Scope) else None
            if view is None or not view.meta.get(SECURE_VIEW) or alias in nullable:
                continue
            inner = view.args["from_"].this
            ref = by_id.get(inner.name) if isinstance(inner, exp.Table) else None
            if ref is None:
                continue
            ref.label = alias
            if view.args.get("qualify"):
                ref.shareable = False
                # A differentially private role's view keeps a few rows of
                # each person (broker.policy.privacy): a filter or a source
                # pruned beneath it would change which; the merge filters.
                continue
            clear = {
                p.alias_or_name
                for p in view.expressions
                if isinstance(p.unalias(), exp.Column)
                and p.unalias().name == p.alias_or_name
                and p.unalias().table == ref.alias
            }
            _push_predicates(scope, ref, alias, clear)


def _push_predicates(
    scope: Scope, ref: TableReference, alias: str | None = None, clear: set[str] | None = None
) -> None:
    """Copies the WHERE conjuncts that touch only ``alias`` (by default the
    reference itself; else a secure view over it, where only the ``clear``
    columns may be touched) into the reference's scan, constants folded
    (``broker.pushdown.folding``). From an OR that is not pushable as it
    is (it spans tables, or one branch is not plain) goes the disjunction
    it implies for this reference: ``(a1 AND b1) OR (a2 AND b2)`` implies
    ``a1 OR a2`` for a's table; the broker keeps the original."""
    alias = alias or ref.alias
    select = scope.expression
    where = select.args.get("where") if isinstance(select, exp.Select) else None
    if where is None:
        return
    for part in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        conjunct = part.unnest()
        columns = list(conjunct.find_all(exp.Column))
        if not columns:
            continue
        visible = all(c.table == alias and (clear is None or c.name in clear) for c in columns)
        if visible and _prune_sources(conjunct, ref):
            continue
        pushed = _pushable(conjunct, alias, clear)
        if pushed is not None:
            ref.predicates.append(_conjunct(pushed))
            continue
        implied = _implied(conjunct, alias, clear) if isinstance(conjunct, exp.Or) else None
        if implied is not None:
            ref.predicates.append(_conjunct(implied, exact=False))


def _pushable(node: exp.Expr, alias: str, clear: set[str] | None) -> exp.Expr | None:
    """``node`` as this reference's scan may say it: its columns all of
    ``alias`` (and ``clear``), none the broker's ``source``, plain once its
    constants are folded; None otherwise."""
    columns = list(node.find_all(exp.Column))
    if not columns or any(c.table != alias for c in columns):
        return None
    if clear is not None and any(c.name not in clear for c in columns):
        return None
    if any(c.name == SOURCE_COLUMN for c in columns):
        return None
    folded = fold_constants(node)
    if not is_plain(folded):
        return None
    return folded.transform(lambda n: exp.column(n.name) if isinstance(n, exp.Column) else n)


def _implied(node: exp.Or, alias: str, clear: set[str] | None) -> exp.Expr | None:
    """The disjunction over ``alias`` that ``node`` implies, or None when some
    branch says nothing about ``alias`` (then every row may match)."""
    branches: list[exp.Expr] = []
    for branch in node.flatten():
        parts = []
        for part in _conjuncts_of(branch.unnest()):
            pushed = _pushable(part, alias, clear)
            if pushed is not None:
                parts.append(pushed)
            elif isinstance(part, exp.Or) and (inner := _implied(part, alias, clear)):
                parts.append(inner)
        if not parts:
            return None
        branches.append(exp.and_(*parts, copy=False))  # and_/or_ parenthesize
    return exp.or_(*branches, copy=False)


def _conjuncts_of(node: exp.Expr) -> list[exp.Expr]:
    return [p.unnest() for p in node.flatten()] if isinstance(node, exp.And) else [node]


def _conjunct(tree: exp.Expr, *, exact: bool = True) -> Conjunct:
    """A predicate over unqualified columns, as a Conjunct."""
    names = frozenset(c.name for c in tree.find_all(exp.Column))
    return Conjunct(tree.sql(dialect="duckdb"), names, exact)


def _prune_sources(conjunct: exp.Expr, ref: TableReference) -> bool:
    """``source = 'BC'``, ``source <> 'BC'``, ``source [NOT] IN (...)`` narrow
    the sources asked at all."""
    negated = isinstance(conjunct, exp.Not)
    node = conjunct.this.unnest() if negated else conjunct
    if isinstance(node, exp.NEQ):
        negated, node = not negated, exp.EQ(this=node.this, expression=node.expression)
    column = node.this if isinstance(node, (exp.EQ, exp.In)) else None
    if not isinstance(column, exp.Column) or column.name != SOURCE_COLUMN:
        return False
    values = node.expressions if isinstance(node, exp.In) else [node.expression]
    if (
        node.args.get("query")
        or not values
        or not all(isinstance(v, exp.Literal) and v.is_string for v in values)
    ):
        return False
    named = {v.this for v in values}
    ref.sources = [s for s in ref.sources if (s in named) != negated]
    return True


def _columns_by_reference(tree: exp.Query, refs: list[TableReference]) -> dict[str, set[str]]:
    """For each reference, the catalog columns the query reads from it."""
    ref_ids = {r.ref_id for r in refs}
    found: dict[str, set[str]] = {}
    for scope in traverse_scope(tree):
        for column in scope.columns:
            source = _resolve(scope, column.table)
            if isinstance(source, exp.Table) and source.name in ref_ids:
                found.setdefault(source.name, set()).add(column.name)
    return found


def _resolve(scope: Scope | None, alias: str) -> exp.Expr | Scope | None:
    while scope is not None:
        if alias in scope.sources:
            return scope.sources[alias]
        scope = scope.parent
    return None


def _push_limit(tree: exp.Query, refs: list[TableReference]) -> None:
    """A LIMIT goes to the sources only for a plain filter over one table,
    directly or through its secure view, with every conjunct pushed."""
    if len(refs) != 1 or not isinstance(tree, exp.Select) or not plain_select(tree):
        return
    limit = tree.args.get("limit")
    if limit is None or not (isinstance(limit.expression, exp.Literal) and limit.expression.is_int):
        return
    source = tree.args["from_"].this
    conjuncts = _conjunct_count(tree)
    if isinstance(source, exp.Subquery) and source.this.meta.get(SECURE_VIEW):
        view = source.this
        if not plain_select(view) or view.args.get("limit"):
            return
        conjuncts += _conjunct_count(view)
    elif not isinstance(source, exp.Table):
        return
    if sum(p.exact for p in refs[0].predicates) != conjuncts:
        return  # something stays in the broker: the sources must send every row
    offset = tree.args.get("offset")
    skip = 0
    if offset is not None:
        if not (isinstance(offset.expression, exp.Literal) and offset.expression.is_int):
            return
        skip = int(offset.expression.this)
    refs[0].limit = int(limit.expression.this) + skip


def plain_select(select: exp.Select) -> bool:
    """No joins, grouping, ordering, windows, aggregates or subqueries in this SELECT."""
    blocked = ("joins", "group", "having", "qualify", "distinct", "order", "windows")
    if any(select.args.get(arg) for arg in blocked):
        return False
    parts = [*select.expressions, select.args.get("where")]
    kinds = (exp.AggFunc, exp.Window, exp.Query, exp.Exists)
    return not any(part is not None and part.find(*kinds) for part in parts)


def _conjunct_count(select: exp.Select) -> int:
    where = select.args.get("where")
    if where is None:
        return 0
    return len(list(where.this.flatten())) if isinstance(where.this, exp.And) else 1
