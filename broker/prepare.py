"""The front half of one query's path, as one plain function: from the
caller's SQL to the plan of its scans, with the role's policy applied.

admit (purpose, case reference; ``broker.policy.admission``) -> parse and
validate against the role's catalog (``broker.validate``) -> qualify, so a
denied column does not exist (``broker.policy.rewrite``) -> aggregate-only
checks (``broker.policy.aggregate``) -> secure views -> hidden columns the
release needs (aggregate-only: ``broker.policy.disclosure``) -> plan
(``broker.planner``). Each step is its own module; this one only calls them
in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from accord.audit.lookups import fps_numbers
from accord.errors import InvalidQuery
from broker.naming import name_outputs
from broker.planner import QueryPlan, plan_query
from broker.policy.admission import admit
from broker.policy.aggregate import check_aggregate_query
from broker.policy.disclosure import ReleaseSpec, add_hidden_columns
from broker.policy.rewrite import (
    RoleView,
    ViewCache,
    apply_secure_views,
    bind_principal,
    qualify_for_role,
)
from broker.validate import parse_query, too_deep_message

if TYPE_CHECKING:
    from accord.federation import Federation
    from broker.identity import Principal
    from broker.policy.model import Role
    from broker.settings import QueryShape


@dataclass
class PreparedQuery:
    view: RoleView
    validated_sql: str
    rewritten_sql: str
    plan: QueryPlan
    masks: list[str] = field(default_factory=list)
    row_filters: list[str] = field(default_factory=list)
    fps_numbers: list[str] = field(default_factory=list)  # for the audit record
    release: ReleaseSpec | None = None  # aggregate-only: how the answer is released
    tables: list[str] = field(default_factory=list)  # the catalog tables the caller's SQL names

    @property
    def min_group_size(self) -> int:
        return self.view.role.min_group_size if self.view.role.aggregate_only else 0

    @property
    def counts_by_source(self) -> bool:
        """Whether the trailer may say how many visible rows each source gave:
        not to aggregate-only roles (a count would undo suppression), and not
        where the role is denied ``source`` on a table the query reads (the
        counts would say which systems hold the rows, as ``source`` does)."""
        view = self.view
        return not view.role.aggregate_only and all(view.sees_source(t) for t in self.tables)


def prepare_query(
    sql: str,
    principal: Principal,
    role: Role,
    federation: Federation,
    *,
    purpose: str,
    case_ref: str,
    ref_prefix: str = "ref",
    cache: ViewCache | None = None,
    shape: QueryShape | None = None,
) -> PreparedQuery:
    """Every step; a RecursionError in any of them (the shape limits should
    prevent one) is the caller's query nesting too deeply: INVALID_ARGUMENT,
    with no traceback kept."""
    try:
        return _prepare(
            sql, principal, role, federation, purpose, case_ref, ref_prefix, cache, shape
        )
    except RecursionError:
        raise InvalidQuery(too_deep_message(shape)) from None


def _prepare(
    sql: str,
    principal: Principal,
    role: Role,
    federation: Federation,
    purpose: str,
    case_ref: str,
    ref_prefix: str,
    cache: ViewCache | None,
    shape: QueryShape | None,
) -> PreparedQuery:
    admit(role, purpose, case_ref)
    view = RoleView(role, principal, federation, cache)
    schema = view.schema()
    tree = parse_query(
        sql, set(schema), known_tables=set(federation.tables), role=role.name, shape=shape
    )
    validated = tree.sql(dialect="duckdb")
    looked_up = fps_numbers(tree)  # here, off the event loop, from the tree at hand
    name_outputs(tree, sql)  # count(*) is count_star(), as DuckDB names it
    tree = qualify_for_role(tree, view)
    touched = _tables_touched(tree)
    outputs = check_aggregate_query(tree, view) if role.aggregate_only else None
    tree = apply_secure_views(tree, view)
    release = None
    if outputs is not None:
        release = add_hidden_columns(
            tree,  # type: ignore[arg-type]  # checked: a plain SELECT
            outputs,
            role.min_group_size,
            role.rounding_base,
        )
    rewritten = tree.sql(dialect="duckdb")
    plan = plan_query(
        tree, federation, ref_prefix=ref_prefix, qualified=True, aggregates=not role.aggregate_only
    )
    masks, filters = describe_policy(view, touched)
    return PreparedQuery(
        view,
        validated,
        rewritten,
        plan,
        masks,
        filters,
        looked_up,
        release=release,
        tables=touched,
    )


def _tables_touched(tree: exp.Expr) -> list[str]:
    return sorted({t.name for t in tree.find_all(exp.Table)})


def describe_policy(view: RoleView, tables: list[str]) -> tuple[list[str], list[str]]:
    """Masks and row filters (principal bound) applied to ``tables``."""
    masks, filters = [], []
    for table in tables:
        grant = view.role.tables.get(table)
        if grant is None:
            continue
        for column in view.columns(table):
            mask = grant.columns[column]
            if mask is not None:
                masks.append(f"{table}.{column}: {mask.describe()}")
        if grant.row_filter:
            bound = bind_principal(sqlglot.parse_one(grant.row_filter, read="duckdb"), view)
            filters.append(f"{table}: {bound.sql(dialect='duckdb')}")
    return masks, filters
