"""Secure views: every catalog table reference becomes the role's view of it.

Like Trino's, Snowflake's and Ranger's row filters and column masks: each
reference to a catalog table, wherever it appears (FROM, JOIN, subquery, CTE
body, set operation, scalar or EXISTS subquery), is replaced by a derived
table that applies the role's row filter to the raw rows and then projects
the masked columns::

    FROM offenders o
    -> FROM (SELECT offenders.surname AS surname, year(offenders.birth_date) AS birth_date, ...
             FROM offenders AS offenders
             WHERE <row filter with principal.* bound>) AS o

So the user's WHERE, JOIN, GROUP BY, ORDER BY, windows and aggregates only
ever see masked values. Tables inside the view (the raw table and any
subquery in the row filter) are marked trusted and never rewritten again.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope

from accord.catalog import SOURCE_COLUMN, catalog_schema
from accord.errors import InvalidQuery, PolicyDenied
from broker.policy.linkage import expand_linkage
from broker.policy.masks import mask_expression
from broker.validate import ctes_in_scope

if TYPE_CHECKING:
    from collections.abc import Callable

    from accord.federation import Federation
    from broker.identity import Principal
    from broker.policy.masks import Mask
    from broker.policy.model import Role

#: Meta flag on table nodes the policy put there itself (never rewritten).
TRUSTED = "accord_trusted"
#: Meta flag on a secure view's SELECT, so the planner can push user
#: conjuncts on its unmasked columns to the raw scan beneath.
SECURE_VIEW = "accord_secure_view"
#: Hidden column of aggregate-only views: one value per person.
PERSON_ID_COLUMN = "__accord_person"


#: Built secure views, by (role, table, partner); valid for one loaded policy.
ViewCache = dict[tuple[str, str, str], exp.Select]


@dataclass(frozen=True)
class RoleView:
    """What one principal may see: the role's grants within what sources release."""

    role: Role
    principal: Principal
    federation: Federation
    cache: ViewCache | None = field(default=None, compare=False)

    def columns(self, table: str) -> list[str]:
        """The columns of ``table`` the role sees, ``source`` last if granted."""
        grant = self.role.tables.get(table)
        if grant is None:
            return []
        released = self.federation.released_columns(table)
        visible = [c for c in released if c in grant.columns]
        if visible and SOURCE_COLUMN in grant.columns:
            visible.append(SOURCE_COLUMN)
        return visible

    def sees_source(self, table: str) -> bool:
        """Whether the role may see which system each row of ``table`` came from."""
        return SOURCE_COLUMN in self.columns(table)

    def schema(self) -> dict[str, dict[str, str]]:
        """Table -> column -> type as the role sees it (masked types)."""
        schema: dict[str, dict[str, str]] = {}
        for table, grant in self.role.tables.items():
            columns = self.columns(table)
            if not columns:
                continue
            types = {**self.federation.tables[table].columns, SOURCE_COLUMN: "VARCHAR"}
            schema[table] = {
                c: (
                    grant.columns[c].output_type(types[c])  # type: ignore[union-attr]
                    if grant.columns[c] is not None
                    else types[c]
                )
                for c in columns
            }
        return schema

    def mask_of(self, table: str, column: str) -> Mask | None:
        return self.role.tables[table].columns.get(column)


def qualify_for_role(tree: exp.Query, view: RoleView) -> exp.Query:
    """Qualifies the caller's query against the role's catalog only.

    A column the role is not granted does not exist for it; the error says
    so by name (the logical model is public, the data is not).
    """
    schema = view.schema()
    _alias_subquery_outputs(tree)
    try:
        tree = qualify(
            tree,
            schema=dict(schema),
            dialect="duckdb",
            validate_qualify_columns=True,
            quote_identifiers=True,
            identify=True,
        )
    except OptimizeError as exc:
        text = str(exc).split(". Line:")[0]
        match = re.search(r"Column '(\w+)' could not be resolved|Unknown column: (\w+)", text)
        if match:
            name = match.group(1) or match.group(2)
            if _is_catalog_column(name, view):
                raise PolicyDenied(
                    f"column {name} is not available to role {view.role.name}", reason="column"
                ) from exc
            raise unknown_column(name, schema) from exc
        raise InvalidQuery(f"{text}; {CATALOG_HINT}") from exc
    _check_bound_columns(tree, view, schema)
    return tree


def _alias_subquery_outputs(tree: exp.Query) -> None:
    """Names each unnamed scalar subquery in a select list ``_col_<i>``, as
    ``qualify`` would, but as an ``Alias`` node: ``qualify`` names it inside
    the subquery instead, and then fails on ``GROUP BY <position>`` (an
    assertion of sqlglot's, not a refusal)."""
    for select in tree.find_all(exp.Select):
        for i, projection in enumerate(select.expressions):
            if isinstance(projection, exp.Subquery) and not projection.alias:
                name = exp.to_identifier(f"_col_{i}")
                projection.replace(exp.Alias(this=projection.copy(), alias=name))


def _check_bound_columns(
    tree: exp.Query, view: RoleView, schema: dict[str, dict[str, str]]
) -> None:
    """Every column is bound to something the role may see, or to an output
    alias of its own SELECT. sqlglot leaves some names unbound (HAVING over
    an ungrouped aggregate); those must not reach the merge."""
    unbound = []
    for scope in traverse_scope(tree):
        for column in scope.columns:
            source = scope.sources.get(column.table)
            if isinstance(source, exp.Table) and column.name not in schema.get(source.name, {}):
                unbound.append(column)
    for column in tree.find_all(exp.Column):  # scopes skip some unqualified names
        query = column.find_ancestor(exp.Query)  # a SELECT, or a set operation's ORDER BY
        outputs = set(query.named_selects) if query is not None else set()
        if not column.table and column.name not in outputs:
            unbound.append(column)
    for column in unbound:
        if _is_catalog_column(column.name, view):
            raise PolicyDenied(
                f"column {column.name} is not available to role {view.role.name}", reason="column"
            )
        raise unknown_column(column.name, schema)


#: Where a caller finds what it may query (the CLI says `accord catalog`).
CATALOG_HINT = "the catalog (GetCatalog) lists the tables and columns you may query"


def unknown_column(name: str, schema: dict[str, dict[str, str]]) -> InvalidQuery:
    """The refusal of a column nobody has, with the closest the caller may see.

    >>> str(unknown_column("surnme", {"offenders": {"surname": "VARCHAR"}}))
    "unknown column 'surnme' (did you mean surname?); the catalog (GetCatalog) lists ..."
    """
    visible = sorted({c for columns in schema.values() for c in columns})
    close = difflib.get_close_matches(name.lower(), visible, n=1)
    guess = f" (did you mean {close[0]}?)" if close else ""
    return InvalidQuery(f"unknown column {name!r}{guess}; {CATALOG_HINT}")


def _is_catalog_column(name: str, view: RoleView) -> bool:
    """A column of the public logical model (or ``source``): naming one the
    role lacks is a refusal, not a typo."""
    return name == SOURCE_COLUMN or any(name in t.columns for t in view.federation.tables.values())


def denied_table_message(table: str, view: RoleView) -> str:
    return f"table {table} is not available to role {view.role.name}"


def apply_secure_views(tree: exp.Query, view: RoleView) -> exp.Query:
    """Replaces every untrusted catalog table reference with its secure view."""
    replacements = []
    for scope in traverse_scope(tree):
        for alias, source in scope.sources.items():
            if isinstance(source, exp.Table) and not source.meta.get(TRUSTED):
                replacements.append((source, alias))
    for table, alias in replacements:
        if table.name not in view.role.tables:
            raise PolicyDenied(denied_table_message(table.name, view), reason="table")
        subquery = exp.Subquery(
            this=secure_view(table.name, view),
            alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)),
        )
        table.replace(subquery)
    _check_every_table_rewritten(tree)
    return tree


def _check_every_table_rewritten(tree: exp.Query) -> None:
    """Fails closed where a table reference escaped the scopes above: every
    table left is the policy's own (trusted) or one of the caller's CTEs.
    ``broker.validate`` refuses the positions known to hide one."""
    for table in tree.find_all(exp.Table):
        if not table.meta.get(TRUSTED) and table.name not in ctes_in_scope(table):
            raise InvalidQuery(
                f"table {table.name} sits where the policy cannot be applied to it; "
                "move the subquery into the FROM or WHERE of a SELECT"
            )


def secure_view(table: str, view: RoleView) -> exp.Select:
    """SELECT masked columns FROM raw table WHERE row filter, fully qualified.

    A view depends only on the role, the table and the partner's attributes,
    so it is built once per loaded policy and copied for each query.
    """
    if view.cache is None:
        return _build_secure_view(table, view)
    key = (view.role.name, table, view.principal.partner.name)
    built = view.cache.get(key)
    if built is None:
        built = view.cache[key] = _build_secure_view(table, view)
    return built.copy()  # copies keep the TRUSTED and SECURE_VIEW marks (node meta)


def _build_secure_view(table: str, view: RoleView) -> exp.Select:
    grant = view.role.tables[table]
    types = view.federation.tables[table].columns
    raw = exp.to_identifier(table, quoted=True)
    projections: list[exp.Expr] = []
    for column in view.columns(table):
        ref = exp.column(column, table=raw.copy(), quoted=True)
        mask = grant.columns[column]
        value = (
            ref if mask is None else bind_principal(mask_expression(mask, ref, types[column]), view)
        )
        if view.role.privacy is not None and column in grant.clamps:
            value = _clamped(value, grant.clamps[column])
        projections.append(exp.alias_(value, column, quoted=True))
    # Without `source` granted the view has no such column: the planner adds
    # it to the materialized view (rows per source), out of the caller's reach.
    if view.role.aggregate_only:
        projections.append(exp.alias_(person_identity(table, view), PERSON_ID_COLUMN, quoted=True))
    select = exp.select(*projections).from_(
        exp.Table(this=raw.copy(), alias=exp.TableAlias(this=raw.copy()))
    )
    if grant.row_filter:
        row_filter = expand_linkage(
            sqlglot.parse_one(grant.row_filter, read="duckdb"), table, view.federation
        )
        select = select.where(bind_principal(row_filter, view), copy=False)
    select = qualify(
        select,
        schema=catalog_schema(view.federation),
        dialect="duckdb",
        validate_qualify_columns=True,
        quote_identifiers=True,
        identify=True,
    )
    if view.role.privacy is not None:
        _bound_rows_per_person(select, view.role.privacy.rows_per_person[table])
    for node in select.find_all(exp.Table):
        node.meta[TRUSTED] = True
    select.meta[SECURE_VIEW] = True
    return select


def _clamped(value: exp.Expr, clamp: int) -> exp.Expr:
    """``value`` within [0, clamp] (NULL stays NULL): one row then adds at
    most ``clamp`` to a sum, which calibrates the sum's noise."""
    return exp.Case(
        ifs=[
            exp.If(
                this=exp.LT(this=value.copy(), expression=exp.Literal.number(0)),
                true=exp.Literal.number(0),
            ),
            exp.If(
                this=exp.GT(this=value.copy(), expression=exp.Literal.number(clamp)),
                true=exp.Literal.number(clamp),
            ),
        ],
        default=value,
    )


def _bound_rows_per_person(select: exp.Select, bound: int) -> None:
    """Keeps at most ``bound`` rows of each person (the same ones every time:
    ordered by every column the view shows), so one person changes any count
    by at most ``bound``: what the noise is calibrated to."""
    person = next(p.this for p in select.expressions if p.alias_or_name == PERSON_ID_COLUMN)
    order = [exp.Ordered(this=p.unalias().copy()) for p in select.expressions]
    number = exp.Window(
        this=exp.RowNumber(),
        partition_by=[person.copy()],
        order=exp.Order(expressions=order),
    )
    select.set(
        "qualify", exp.Qualify(this=exp.LTE(this=number, expression=exp.Literal.number(bound)))
    )


def person_identity(table: str, view: RoleView) -> exp.Expr:
    """One value per person: the FPS number, else the source's own person id."""
    key = view.federation.tables[table].person_key or "fps_number"
    raw = exp.to_identifier(table, quoted=True)
    local = exp.DPipe(
        this=exp.DPipe(
            this=exp.column(SOURCE_COLUMN, table=raw.copy(), quoted=True),
            expression=exp.Literal.string(":"),
            safe=True,
        ),
        expression=exp.column("source_person_id", table=raw.copy(), quoted=True),
        safe=True,
    )
    return exp.Coalesce(this=exp.column(key, table=raw.copy(), quoted=True), expressions=[local])


def bind_principal(tree: exp.Expr, view: RoleView) -> exp.Expr:
    """Replaces ``principal.<attribute>`` with the caller's value, as a literal.

    A list attribute is only meaningful as an IN list, where it expands:
    ``fps_number IN (principal.approved_cases)``. An empty list matches nothing.
    """

    def bind(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.In) and not node.args.get("query"):
            values: list[exp.Expr] = []
            for item in node.expressions:
                value = _principal_value(item, view)
                if isinstance(value, list):
                    values.extend(_literal(v) for v in value)
                elif value is not _NOT_PRINCIPAL:
                    values.append(_literal(value))
                else:
                    values.append(item)
            if not values:
                return exp.false()
            node.set("expressions", values)
            return node
        value = _principal_value(node, view)
        if value is _NOT_PRINCIPAL:
            return node
        if isinstance(value, list):
            raise PolicyDenied(
                f"principal attribute {node.sql()} is a list; use it in IN (...)",
                reason="attribute",
            )
        return _literal(value)

    return tree.transform(bind)


def principal_redactor(view: RoleView) -> Callable[[str], str]:
    """Hides the values of the partner's own attributes (victim registration,
    approved cases, assigned facility, ...) in text shown to the caller.

    The policy binds them into row filters as literals; a contract agency
    may not read its assigned FPS numbers back from a plan, so Explain shows
    ``<principal.assigned_offenders>`` where the filter holds the raw value.
    """
    partner = view.principal.partner
    replacements: list[tuple[str, str]] = []
    for name, value in partner.attributes.items():
        for item in value if isinstance(value, list) else [value]:
            quoted = _literal(item).sql(dialect="duckdb")
            replacements.append((quoted, f"<principal.{name}>"))
    replacements.sort(key=lambda pair: -len(pair[0]))  # longest first

    def redact(text: str) -> str:
        for literal, placeholder in replacements:
            text = text.replace(literal, placeholder)
        return text

    return redact


_NOT_PRINCIPAL = object()


def _principal_value(node: exp.Expr, view: RoleView) -> Any:
    if not (isinstance(node, exp.Column) and node.table == "principal"):
        return _NOT_PRINCIPAL
    partner = view.principal.partner
    builtins = {
        "name": partner.name,
        "organization": partner.organization,
        "role": partner.role,
        "jurisdiction": partner.jurisdiction,
    }
    if node.name in builtins:
        return builtins[node.name]
    if node.name not in partner.attributes:
        raise PolicyDenied(
            f"partner {partner.name} has no attribute {node.name!r}, which role "
            f"{view.role.name}'s policy needs; the registry must give it one",
            reason="attribute",
        )
    return partner.attributes[node.name]


def _literal(value: Any) -> exp.Expr:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))
