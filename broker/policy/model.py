"""The policy model: one file per partner role, read strictly.

A role file (``policies/roles/<role>.yaml``)::

    role: police
    purposes: [supervision, investigation]
    case_reference_required: false
    tables:
      offenders:
        row_filter: "status = 'UAL' OR supervising_jurisdiction = principal.jurisdiction"
        columns:
          surname: clear
          birth_date: year_only
          address: {mask: partial, keep_last: 3}
      sentences:
        columns: all        # every column of the table, in the clear

Deny by default: a table or column no rule grants does not exist for the
role, and ``columns: all`` is said per table (a list of columns names
each one). ``source``, the system a row came from (``CA-CSC`` says a
federal sentence), is a column like the others: granted only in the clear
(``source: clear``) and absent where not listed; ``columns: all`` grants it.
A row filter may test ``source`` whether or not the role sees it.
A row filter links a child table to people with ``person IN (SELECT
person FROM offenders WHERE ...)`` (``broker/policy/linkage.py``).
Aggregate-only roles add ``aggregate_only: true``, ``min_group_size``,
``rounding_base`` (counts are randomly rounded to a multiple of it) and, per
table, the ``dimensions`` they may group and filter by and the ``measures``
they may sum or average, each with the base its sums are rounded to
(``broker/policy/disclosure.py``)::

    aggregate_only: true
    min_group_size: 5
    rounding_base: 5
    tables:
      sentences:
        columns: {offence_code: clear, length_days: clear}
        dimensions: [offence_code]
        measures: {length_days: 365}

A differentially private aggregate-only role adds ``privacy:`` (every
measure then names its clamp; ``broker/policy/privacy.py``)::

    privacy:
      epsilon_per_query: 0.5    # one query's statistics together
      epsilon_per_year: 10      # one partner, per calendar year (UTC)
      rows_per_person: {sentences: 8}   # per granted table
    tables:
      sentences:
        measures: {length_days: {base: 365, clamp: 7300}}

What one partner of the role may have under way (``broker/quota.py``; a
key left out keeps its default, shown here; a partner in
``policies/partners.yaml`` may override any of them with its own
``quota:``)::

    quota:
      concurrent_queries: 4     # queries being answered at once
      queries_per_second: 100   # the token bucket's rate ...
      burst: 200                # ... and its size
      bytes_in_flight_mb: 512   # answer bytes handed to gRPC, not yet written

Every error names the file and line; a policy with any error is refused
whole (the broker does not start with part of a policy).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from accord.catalog import SOURCE_COLUMN
from accord.errors import PolicyFileError
from accord.federation import LOGICAL_TYPES, Federation
from broker.policy.linkage import check_linkage
from broker.policy.masks import MASK_KINDS, Mask
from broker.policy.yamlfile import LineDict, load_yaml
from broker.quota import Quota, QuotaValueError, quota_from

if TYPE_CHECKING:
    from pathlib import Path

_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")

#: Principal attributes every partner has; others come from the registry.
BUILTIN_ATTRIBUTES = frozenset({"name", "organization", "role", "jurisdiction"})

_ROLE_KEYS = {
    "role",
    "description",
    "purposes",
    "case_reference_required",
    "aggregate_only",
    "min_group_size",
    "rounding_base",
    "tables",
    "quota",
    "privacy",
}
_PRIVACY_KEYS = {"epsilon_per_query", "epsilon_per_year", "rows_per_person"}
_TABLE_KEYS = {"columns", "row_filter", "dimensions", "measures"}
_MASK_KEYS = {"mask", "value", "keep_first", "keep_last", "expression", "type"}


@dataclass(frozen=True)
class TableGrant:
    table: str
    columns: dict[str, Mask | None]  # granted column -> mask (None: clear)
    row_filter: str | None = None
    dimensions: frozenset[str] = frozenset()
    #: aggregate-only: column -> the base its sums are rounded to
    measures: dict[str, int] = field(default_factory=dict)
    #: differentially private roles: column -> the most one row adds to a
    #: sum (values are clamped to [0, clamp] before they are summed)
    clamps: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Privacy:
    """Differential privacy for an aggregate-only role (``broker/policy/privacy.py``):
    the epsilon one query spends, the epsilon one partner may spend per
    calendar year (UTC), and per table the most rows one person adds to an
    answer (rows beyond it are left out, so one person changes a count by
    at most that many)."""

    epsilon_per_query: float
    epsilon_per_year: float
    rows_per_person: dict[str, int]


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    purposes: frozenset[str]
    case_reference_required: bool
    tables: dict[str, TableGrant]
    aggregate_only: bool = False
    min_group_size: int = 5
    rounding_base: int = 5
    path: str = ""
    quota: Quota = field(default_factory=Quota)
    privacy: Privacy | None = None

    def principal_attributes(self) -> set[str]:
        """Attributes of ``principal.*`` the role's filters and masks use."""
        used: set[str] = set()
        for grant in self.tables.values():
            texts = [grant.row_filter or ""]
            texts += [m.expression or "" for m in grant.columns.values() if m is not None]
            for text in texts:
                used |= set(re.findall(r"\bprincipal\.([A-Za-z_]\w*)", text))
        return used


def load_role(path: Path, federation: Federation) -> Role:
    doc = load_yaml(path)
    if not isinstance(doc, LineDict):
        raise PolicyFileError(f"{path}:1: a role file is a mapping with role, purposes, tables")
    where = _Where(path, doc)
    where.unknown_keys(doc, _ROLE_KEYS)
    name = doc.get("role")
    if not isinstance(name, str) or not _SNAKE.match(name):
        where.fail("role", "'role' must be a snake_case name")
    if name != path.stem:
        where.fail("role", f"role {name!r} must be in a file named {name}.yaml")
    purposes = doc.get("purposes")
    if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
        where.fail("purposes", "'purposes' must be a list of purpose names")
    for purpose in purposes:
        if not _SNAKE.match(purpose):
            where.fail("purposes", f"purpose {purpose!r} must be snake_case")
    aggregate_only = bool(doc.get("aggregate_only", False))
    min_group_size = doc.get("min_group_size", 5)
    if not isinstance(min_group_size, int) or min_group_size < 2:
        where.fail("min_group_size", "'min_group_size' must be an integer of at least 2")
    rounding_base = doc.get("rounding_base", 5)
    if not isinstance(rounding_base, int) or isinstance(rounding_base, bool) or rounding_base < 1:
        where.fail("rounding_base", "'rounding_base' must be a positive integer (1: no rounding)")
    if "rounding_base" in doc and not aggregate_only:
        where.fail("rounding_base", "'rounding_base' only applies to aggregate_only roles")
    tables_spec = doc.get("tables") or LineDict()
    if not isinstance(tables_spec, LineDict):
        where.fail("tables", "'tables' must map table names to grants")
    tables = {
        table: _load_grant(
            where.nested(tables_spec, table), table, spec, federation, aggregate_only
        )
        for table, spec in tables_spec.items()
    }
    quota = load_quota(where, doc.get("quota"), Quota())
    privacy = _load_privacy(where, doc.get("privacy"), tables, aggregate_only)
    return Role(
        name=name,
        description=str(doc.get("description", "")),
        purposes=frozenset(purposes),
        case_reference_required=bool(doc.get("case_reference_required", False)),
        tables=tables,
        aggregate_only=aggregate_only,
        min_group_size=min_group_size,
        rounding_base=rounding_base,
        path=str(path),
        quota=quota,
        privacy=privacy,
    )


def _positive_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _load_privacy(
    where: _Where, spec: Any, tables: dict[str, TableGrant], aggregate_only: bool
) -> Privacy | None:
    """``privacy: {epsilon_per_query, epsilon_per_year, rows_per_person: {table: n}}``:
    every table granted needs its bound, every measure its clamp."""
    if spec is None:
        return None
    if not aggregate_only:
        where.fail("privacy", "'privacy' only applies to aggregate_only roles")
    if not isinstance(spec, LineDict):
        where.fail("privacy", "'privacy' maps epsilon_per_query, epsilon_per_year, rows_per_person")
    inner = where.nested_in(spec)
    inner.unknown_keys(spec, _PRIVACY_KEYS)
    for key in ("epsilon_per_query", "epsilon_per_year"):
        if not _positive_number(spec.get(key)):
            inner.fail(key if key in spec else None, f"privacy {key} must be a positive number")
    per_query, per_year = float(spec["epsilon_per_query"]), float(spec["epsilon_per_year"])
    if per_query > per_year:
        inner.fail("epsilon_per_query", "privacy epsilon_per_query exceeds epsilon_per_year")
    bounds = spec.get("rows_per_person")
    if not isinstance(bounds, LineDict):
        inner.fail(
            "rows_per_person" if "rows_per_person" in spec else None,
            "privacy rows_per_person maps each granted table to the most rows one person adds",
        )
    _check_privacy_tables(where, inner, bounds, tables)
    return Privacy(per_query, per_year, {str(t): int(n) for t, n in bounds.items()})


def _check_privacy_tables(
    where: _Where, inner: _Where, bounds: LineDict, tables: dict[str, TableGrant]
) -> None:
    """Every granted table has its row bound, every measure its clamp."""
    for table in tables:
        value = bounds.get(table)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            inner.fail("rows_per_person", f"privacy rows_per_person.{table}: an integer >= 1")
    unknown = sorted(set(bounds) - set(tables))
    if unknown:
        inner.fail("rows_per_person", f"privacy rows_per_person names {unknown[0]!r}, not granted")
    for table, grant in tables.items():
        for measure in grant.measures:
            if measure not in grant.clamps:
                where.fail(
                    "privacy",
                    f"measure {table}.{measure} needs a clamp under privacy: "
                    "measures: {" + measure + ": {base: B, clamp: C}}",
                )


def partner_quota(path: Path, partner: Any, base: Quota) -> Quota:
    """A partner's quota in the registry (``path``): its role's, ``base``,
    with the keys of the partner's own ``quota:``."""
    if not isinstance(partner, LineDict):
        return base  # the registry itself reports a partner that is no mapping
    return load_quota(_Where(path, partner), partner.get("quota"), base)


def load_quota(where: _Where, spec: Any, base: Quota) -> Quota:
    """``base`` with a ``quota:`` mapping's keys; an error names its line."""
    if spec is None:
        return base
    if not isinstance(spec, LineDict):
        where.fail("quota", "'quota' must be a mapping of limits (see broker/quota.py)")
    try:
        return quota_from(spec, base)
    except QuotaValueError as exc:
        where.at(spec, exc.key or "").fail(exc.key, str(exc))


def _load_grant(
    where: _Where, table: str, spec: Any, federation: Federation, aggregate_only: bool
) -> TableGrant:
    logical = federation.tables.get(table)
    if logical is None:
        where.fail(
            None, f"unknown table {table!r}; the logical model has {', '.join(federation.tables)}"
        )
    if not isinstance(spec, LineDict):
        where.fail(None, f"the grant on {table} must be a mapping with columns")
    where = where.nested_in(spec)
    where.unknown_keys(spec, _TABLE_KEYS)
    columns_spec = spec.get("columns")
    columns: dict[str, Mask | None] = {}
    if columns_spec == "all":  # every column of the table, in the clear
        columns_spec = LineDict()
        columns = dict.fromkeys([*logical.columns, SOURCE_COLUMN])
    elif not isinstance(columns_spec, LineDict) or not columns_spec:
        where.fail("columns", f"the grant on {table} must list its columns, or say 'all'")
    for column, mask_spec in columns_spec.items():
        if column == SOURCE_COLUMN:  # the broker's column: seen in the clear or not at all
            if mask_spec not in ("clear", None):
                where.at(columns_spec, column).fail(
                    column, f"column {SOURCE_COLUMN} of {table} is granted 'clear' or not listed"
                )
            columns[column] = None
            continue
        if column not in logical.columns:
            close = difflib.get_close_matches(str(column), list(logical.columns), n=1)
            guess = f" (did you mean {close[0]}?)" if close else ""
            where.at(columns_spec, column).fail(
                column, f"unknown column {column!r} of {table}{guess}"
            )
        columns[column] = _load_mask(
            where.at(columns_spec, column),
            column,
            logical.columns[column],
            mask_spec,
            set(logical.columns),
        )
    row_filter = _load_row_filter(where, table, spec.get("row_filter"), federation)
    dimensions = _load_dimensions(where, table, spec.get("dimensions"), columns, aggregate_only)
    measures, clamps = _load_measures(where, table, spec.get("measures"), columns, aggregate_only)
    return TableGrant(table, columns, row_filter, frozenset(dimensions), measures, clamps)


def _load_row_filter(
    where: _Where, table: str, row_filter: Any, federation: Federation
) -> str | None:
    if row_filter is None:
        return None
    if not isinstance(row_filter, str) or not row_filter.strip():
        where.fail("row_filter", "'row_filter' must be a SQL boolean expression")
    _check_sql(where, "row_filter", row_filter, federation)
    for problem in check_linkage(_parse(where, "row_filter", row_filter), table, federation):
        where.fail("row_filter", f"row_filter of {table}: {problem}")
    return row_filter


def _load_dimensions(
    where: _Where, table: str, spec: Any, columns: dict[str, Mask | None], aggregate_only: bool
) -> list[str]:
    dimensions = spec or []
    if not isinstance(dimensions, list):
        where.fail("dimensions", "'dimensions' must be a list of columns")
    for column in dimensions:
        if column not in columns:
            where.fail("dimensions", f"dimension {column!r} is not a granted column of {table}")
    if dimensions and not aggregate_only:
        where.fail("dimensions", "'dimensions' only apply to aggregate_only roles")
    return dimensions


def _load_measures(
    where: _Where, table: str, spec: Any, columns: dict[str, Mask | None], aggregate_only: bool
) -> tuple[dict[str, int], dict[str, int]]:
    """``measures``: granted columns an aggregate-only role may SUM or AVG,
    each with the positive base its sums are randomly rounded to (``column:
    B``), or with that base and the clamp a private role needs (``column:
    {base: B, clamp: C}``). Returns (bases, clamps)."""
    if spec is None:
        return {}, {}
    if not isinstance(spec, LineDict):
        where.fail("measures", "'measures' maps columns to the base their sums are rounded to")
    if not aggregate_only:
        where.fail("measures", "'measures' only apply to aggregate_only roles")
    bases, clamps = {}, {}
    for column, value in spec.items():
        if column not in columns:
            where.fail("measures", f"measure {column!r} is not a granted column of {table}")
        base, clamp = value, None
        if isinstance(value, dict):
            if set(value) - {"base", "clamp"} or "base" not in value:
                where.fail("measures", f"measure {column!r}: a mapping has base and clamp")
            base, clamp = value.get("base"), value.get("clamp")
        if not isinstance(base, int) or isinstance(base, bool) or base < 1:
            where.fail(
                "measures", f"measure {column!r}: the rounding base must be a positive integer"
            )
        if clamp is not None:
            if not isinstance(clamp, int) or isinstance(clamp, bool) or clamp < 1:
                where.fail("measures", f"measure {column!r}: the clamp must be a positive integer")
            clamps[str(column)] = int(clamp)
        bases[str(column)] = int(base)
    return bases, clamps


def _load_mask(
    where: _Where, column: str, logical_type: str, spec: Any, table_columns: set[str]
) -> Mask | None:
    if spec in ("clear", None):
        return None
    if isinstance(spec, str):
        spec = {"mask": spec}
    if not isinstance(spec, dict):
        where.fail(column, f"column {column}: use 'clear', a mask kind, or a mapping")
    where.unknown_keys(spec, _MASK_KEYS, key=column)
    kind = spec.get("mask")
    if kind not in MASK_KINDS:
        where.fail(
            column, f"column {column}: unknown mask {kind!r}; use one of {', '.join(MASK_KINDS)}"
        )
    declared = spec.get("type")
    if declared is not None and str(declared).upper() not in LOGICAL_TYPES:
        where.fail(column, f"column {column}: unknown type {declared!r}")
    mask = Mask(
        kind=kind,
        value=None if spec.get("value") is None else str(spec["value"]),
        keep_first=int(spec.get("keep_first", 0)),
        keep_last=int(spec.get("keep_last", 0)),
        expression=spec.get("expression"),
        type=str(declared).upper() if declared else None,
    )
    _check_mask(where, column, logical_type, mask, declared is not None, table_columns)
    return mask


def _check_mask(
    where: _Where,
    column: str,
    logical_type: str,
    mask: Mask,
    declared: bool,
    table_columns: set[str],
) -> None:
    kind = mask.kind
    if kind == "partial" and (
        mask.keep_first < 0 or mask.keep_last < 0 or mask.keep_first + mask.keep_last == 0
    ):
        where.fail(column, f"column {column}: partial keeps keep_first/keep_last characters")
    if kind == "partial" and logical_type != "VARCHAR":
        where.fail(column, f"column {column}: partial applies to text columns only")
    if kind == "city" and logical_type != "VARCHAR":
        where.fail(column, f"column {column}: city applies to text (address) columns only")
    if kind == "year_only" and logical_type != "DATE":
        where.fail(column, f"column {column}: year_only applies to DATE columns only")
    if (
        kind == "redact"
        and mask.value is not None
        and mask.output_type(logical_type) != "VARCHAR"
        and not declared
    ):
        where.fail(
            column,
            f"column {column}: a redact constant on a {logical_type} column "
            "must declare type: VARCHAR",
        )
    if kind == "expression":
        if not isinstance(mask.expression, str) or not mask.expression.strip():
            where.fail(column, f"column {column}: an expression mask needs 'expression'")
        tree = _parse(where, column, str(mask.expression))
        for node in tree.find_all(exp.Column):
            if node.table or node.name not in table_columns:
                where.fail(
                    column, f"column {column}: expression names unknown column {node.sql()!r}"
                )
        if tree.find(exp.Query):
            where.fail(column, f"column {column}: an expression mask may not hold a subquery")


def _check_sql(where: _Where, key: str, text: str, federation: Federation) -> None:
    tree = _parse(where, key, text)
    for table in tree.find_all(exp.Table):
        if table.name not in federation.tables:
            where.fail(key, f"unknown table {table.name!r} in {key}")


def _parse(where: _Where, key: str, text: str) -> exp.Expr:
    try:
        return sqlglot.parse_one(text, read="duckdb")
    except (ParseError, TokenError) as exc:
        where.fail(key, f"{key} does not parse: {str(exc).splitlines()[0]}")


@dataclass
class _Where:
    """Where in which file an error is, for messages like ``file:12: problem``."""

    path: Path
    doc: LineDict
    parents: list[LineDict] = field(default_factory=list)

    def line(self, key: str | None) -> int:
        return self.doc.line_of(key) if key is not None else self.doc.line

    def fail(self, key: str | None, message: str) -> NoReturn:
        raise PolicyFileError(f"{self.path}:{self.line(key)}: {message}")

    def nested(self, mapping: LineDict, key: str) -> _Where:
        child = _Where(self.path, LineDict(), [*self.parents, self.doc])
        child.doc.line = mapping.line_of(key)
        child.doc.lines = {}
        return child

    def nested_in(self, mapping: LineDict) -> _Where:
        return _Where(self.path, mapping, [*self.parents, self.doc])

    def at(self, mapping: LineDict, key: str) -> _Where:
        child = _Where(self.path, LineDict(), [*self.parents, self.doc])
        child.doc.line = mapping.line_of(key)
        child.doc.lines = {key: mapping.line_of(key)}
        return child

    def unknown_keys(
        self, mapping: dict[str, Any], allowed: set[str], key: str | None = None
    ) -> None:
        unknown = sorted(set(mapping) - allowed)
        if unknown:
            self.fail(
                key or unknown[0],
                f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}",
            )
