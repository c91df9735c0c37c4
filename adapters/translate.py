"""Translates one logical Scan into the source system's own SQL.

The broker asks in the federation's logical terms (table ``offenders``,
column ``status``, value ``'IN_CUSTODY'``); each system stores its own names,
codes and date formats. A conjunct of the predicate is pushed to the
database only when it translates *faithfully*: the physical condition holds
for exactly the rows whose logical values satisfy the logical one. Anything
else is left to the broker, which applies the whole predicate again anyway.

Literals travel as bound parameters, never spliced into the SQL text.

This module is the translation only: names, codes, date formats and
literals, one conjunct at a time, for any database. What differs from one
database to the next (collation, LIKE escapes, native dates) is not decided
here but read from its ``adapters.dialects`` rules.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from accord.errors import ConfigError, InvalidQuery
from accord.federation import (
    ORDER_PRESERVING_DATE_FORMATS,
    ColumnMapping,
    LogicalTable,
    TableMapping,
)
from accord.predicate import parse_predicate
from adapters.dialects import RULES

if TYPE_CHECKING:
    from collections.abc import Callable

    from adapters.dialects import DialectRules

_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_RANGE = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Between)

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BINARY = frozenset({"this", "expression"})
#: For each node type the translator handles, the arguments it reads and so
#: reproduces. A node of another type, or carrying any other argument (a flag
#: such as ``negate``, ``symmetric`` or ``escape`` that a newer sqlglot may
#: add), is never pushed: rebuilding it without that argument would change
#: what it means. Subclasses (``TryCast`` aside) are other types.
_UNDERSTOOD: dict[type[exp.Expr], frozenset[str]] = {
    exp.And: _BINARY,
    exp.Or: _BINARY,
    exp.Not: frozenset({"this"}),
    exp.Paren: frozenset({"this"}),
    exp.Boolean: frozenset({"this"}),
    exp.Null: frozenset(),
    exp.Is: _BINARY,
    **dict.fromkeys(_COMPARISONS, _BINARY),
    exp.Like: _BINARY | {"negate"},
    exp.In: frozenset({"this", "expressions"}),
    exp.Between: frozenset({"this", "low", "high", "symmetric"}),
    exp.Column: frozenset({"this"}),
    exp.Identifier: frozenset({"this", "quoted"}),
    exp.Literal: frozenset({"this", "is_string"}),
    exp.Neg: frozenset({"this"}),
    exp.Cast: frozenset({"this", "to"}),
    exp.TryCast: frozenset({"this", "to", "safe"}),  # of a literal that parses: the same value
    exp.DataType: frozenset({"this", "nested"}),
}


def _check_understood(tree: exp.Expr) -> None:
    """Raises Untranslatable unless every node and argument is one we reproduce."""
    for node in tree.walk():
        understood = _UNDERSTOOD.get(type(node))
        if understood is None:
            raise Untranslatable(f"{node.key.upper()} is not translated")
        unknown = sorted(
            k for k, v in node.args.items() if k not in understood and v not in (None, False, [])
        )
        if unknown:
            raise Untranslatable(f"{node.key.upper()} with {', '.join(unknown)} is not translated")


class Untranslatable(Exception):
    """This conjunct cannot be pushed faithfully; the broker keeps it."""


@dataclass
class PhysicalScan:
    """What the adapter runs for one Scan, and what it reports back."""

    sql: str
    params: list[Any]
    columns: list[str]
    pushed: list[str] = field(default_factory=list)  # applied exactly by the database
    residual: list[str] = field(default_factory=list)  # left to the broker
    superset: list[str] = field(default_factory=list)  # narrowed there, re-checked by the broker
    limit_pushed: bool = False
    dialect: str = "sqlite"
    #: The statement as a tree, for a partial aggregate over the same rows
    #: (``adapters.aggregate``): its FROM and WHERE, placeholders in params' order.
    tree: exp.Select | None = None


def plan_scan(
    table: LogicalTable,
    mapping: TableMapping,
    columns: list[str],
    predicate: str,
    limit: int,
    dialect: str,
    release_filter: str | None = None,
    release_conditions: tuple[list[exp.Expr], list[Any]] | None = None,
) -> PhysicalScan:
    """Builds the physical SELECT for a logical scan.

    ``release_conditions``: physical conditions (and their parameters) the
    release agreement adds beyond the table's own filter, already
    translated (``adapters.release``); they run in the database, always.

    >>> from accord.federation import ColumnMapping, LogicalTable, TableMapping
    >>> t = LogicalTable("offenders", {"fps_number": "VARCHAR", "status": "VARCHAR"})
    >>> m = TableMapping("offenders", "CLIENT", {
    ...     "fps_number": ColumnMapping("fps_number", "FPS"),
    ...     "status": ColumnMapping("status", "STAT", {"C": "IN_CUSTODY"})})
    >>> s = plan_scan(t, m, ["fps_number"], "status = 'IN_CUSTODY'", 10, "sqlite")
    >>> s.sql
    'SELECT "FPS" FROM "CLIENT" WHERE CASE WHEN "STAT" IN (?) THEN "STAT" IN (?) END LIMIT 10'
    >>> s.params, s.limit_pushed
    (['C', 'C'], True)
    """
    if not columns:
        raise InvalidQuery(f"a scan of {table.name} must ask for at least one column")
    for column in columns:
        if column not in table.columns:
            raise InvalidQuery(f"table {table.name} has no column {column!r}")
    rules = RULES[dialect]
    try:
        tree = parse_predicate(predicate, table)
    except RecursionError:
        raise InvalidQuery("scan predicate nests too deeply to be read") from None
    pushed, params = translate_release_filter(table, mapping, release_filter, rules)
    if release_conditions is not None:
        pushed.extend(release_conditions[0])
        params.extend(release_conditions[1])
    scan = PhysicalScan(sql="", params=params, columns=list(columns), dialect=dialect)
    # Conjuncts that work on every row's text go last: the database evaluates
    # AND left to right, so the cheap ones thin the rows first.
    costly: list[tuple[exp.Expr, list[Any]]] = []
    for conjunct in _conjuncts(tree):
        translator = _Translator(table, mapping, rules)
        text = conjunct.sql("duckdb")
        try:
            physical = translator.translate(conjunct)
        except (Untranslatable, RecursionError):  # too deep: the broker applies it
            scan.residual.append(text)
            continue
        if translator.costly:
            costly.append((physical, translator.params))
        else:
            pushed.append(physical)
            params.extend(translator.params)
        (scan.pushed if translator.exact else scan.superset).append(text)
    for physical, bound in costly:  # placeholders are positional: params follow the SQL
        pushed.append(physical)
        params.extend(bound)

    projections: list[exp.Expr] = [
        exp.column(mapping.columns[c].physical, quoted=True) if c in mapping.columns else exp.null()
        for c in columns
    ]
    select = exp.select(*projections).from_(exp.to_table(_quoted(mapping.physical_table)))
    if pushed:
        select = select.where(exp.and_(*pushed, copy=False), copy=False)
    scan.limit_pushed = limit > 0 and not scan.residual and not scan.superset
    if scan.limit_pushed:
        select = select.limit(limit, copy=False)
    scan.sql = select.sql(dialect=dialect)
    scan.tree = select
    return scan


def translate_release_filter(
    table: LogicalTable, mapping: TableMapping, release_filter: str | None, rules: DialectRules
) -> tuple[list[exp.Expr], list[Any]]:
    """A release filter's physical conjuncts and their parameters.

    The jurisdiction's release filter is not negotiable: all of it runs in
    the database, exactly, or the scan is refused (ConfigError).
    """
    params: list[Any] = []
    pushed: list[exp.Expr] = []
    try:
        release = parse_predicate(release_filter or "", table)
    except InvalidQuery as exc:
        raise ConfigError(f"release filter of {table.name}: {exc}") from exc
    for conjunct in _conjuncts(release):
        translator = _Translator(table, mapping, rules, bad_rows_withheld=True)
        try:
            physical = translator.translate(conjunct)
        except Untranslatable as exc:
            raise ConfigError(
                f"release filter {conjunct.sql('duckdb')!r} of {table.name} cannot be "
                f"applied faithfully by this source's database ({exc}); rewrite it"
            ) from exc
        if not translator.exact:
            raise ConfigError(
                f"release filter {conjunct.sql('duckdb')!r} of {table.name} would match more "
                "rows in this source's database than it names (collation); rewrite it"
            )
        pushed.append(physical)
        params.extend(translator.params)
    return pushed, params


def _quoted(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql()


def _conjuncts(tree: exp.Expr | None) -> list[exp.Expr]:
    if tree is None:
        return []
    return [c.unnest() for c in tree.flatten()] if isinstance(tree, exp.And) else [tree.unnest()]


class _Translator:
    """Translates one conjunct; collects its parameters and whether it is exact."""

    def __init__(
        self,
        table: LogicalTable,
        mapping: TableMapping,
        rules: DialectRules,
        *,
        bad_rows_withheld: bool = False,
    ) -> None:
        self.table = table
        self.mapping = mapping
        self.rules = rules
        # A release filter's rows with a bad stored value in a column it reads
        # are withheld by the adapter (adapters.convert.withheld): the stored
        # value then decides alone, and text that is not a date needs no care.
        self.bad_rows_withheld = bad_rows_withheld
        self.params: list[Any] = []
        self.exact = True
        self.costly = False  # row-by-row text work: pushed after the other conjuncts

    def translate(self, node: exp.Expr) -> exp.Expr:
        """The physical condition, equal to the logical one in three-valued
        logic (TRUE, FALSE and NULL for the same rows) when ``exact`` stays
        set, so that NOT of it is exact too."""
        _check_understood(node)
        node = _without_flags(node.unnest())
        if isinstance(node, (exp.And, exp.Or)):
            # a chain (a OR b OR c ...) one term at a time, not one recursion a term
            kind = type(node)
            # A translated term lost its parentheses (unnest above): an OR
            # inside an AND must get them back, or AND's precedence regroups it.
            terms = [_grouped(self.translate(term)) for term in node.flatten()]
            chained = terms[0]
            for term in terms[1:]:
                chained = kind(this=chained, expression=term)
            return chained
        if isinstance(node, exp.Not):
            inner = _Translator(
                self.table, self.mapping, self.rules, bad_rows_withheld=self.bad_rows_withheld
            )
            translated = inner.translate(node.this)
            if not inner.exact:
                raise Untranslatable("the negation of a superset match is not a superset")
            self.params.extend(inner.params)
            return exp.Not(this=exp.paren(translated, copy=False))
        if isinstance(node, exp.Boolean):
            return node.copy()
        if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
            return self._is_null(node)
        if isinstance(node, (*_COMPARISONS, exp.Like, exp.In, exp.Between)):
            return self._comparison(node)
        raise Untranslatable(node.sql())

    def _is_null(self, node: exp.Is) -> exp.Expr:
        """``x IS NULL``, where NULL is also what a stored value that does not
        fit the logical model reads as (``adapters.convert``): an unknown code,
        or text that is not a date."""
        column = node.this
        if not isinstance(column, exp.Column):
            raise Untranslatable(node.sql())
        held = self.mapping.columns.get(column.name)
        if held is None:
            return exp.Is(this=exp.null(), expression=exp.null())
        ref = exp.column(held.physical, quoted=True)
        missing = exp.Is(this=ref, expression=exp.null())
        if held.codes:
            if self.rules.text_equality != "exact":
                raise Untranslatable("which stored codes are unknown depends on the collation")
            known = exp.In(this=ref.copy(), expressions=[self._bind_raw(c) for c in held.codes])
            return exp.paren(exp.or_(missing, exp.not_(known), copy=False), copy=False)
        if self._text_dates(held, self.table.columns[column.name]):
            raise Untranslatable("stored text that is not a date reads as NULL")
        return missing

    def _text_dates(self, held: ColumnMapping, logical_type: str) -> bool:
        """Dates stored as text, which the adapter parses (and NULLs if bad),
        where a bad one would be judged on its text."""
        if self.bad_rows_withheld:
            return False
        return logical_type == "DATE" and bool(held.date_format or not self.rules.native_dates)

    def _comparison(self, node: exp.Expr) -> exp.Expr:
        column = node.this
        if not isinstance(column, exp.Column):
            raise Untranslatable(node.sql())  # literal on the left, or an expression
        logical_type = self.table.columns[column.name]
        held = self.mapping.columns.get(column.name)
        if held is None:
            # The system does not hold the column: it reads as NULL, so the
            # comparison is NULL too, which filters exactly as the broker would.
            return exp.null()
        text = logical_type == "VARCHAR" or (logical_type == "DATE" and held.date_format)
        if isinstance(node, exp.In):
            if node.args.get("query") or not node.expressions:
                raise Untranslatable(node.sql())
            values = [_literal_value(v, logical_type) for v in node.expressions]
            return self._in(held, values, negate=False, text=bool(text))
        if isinstance(node, (exp.Between, *_RANGE)):
            return self._range(node, held, logical_type)
        value = _literal_value(node.expression, logical_type)
        if held.codes:
            if isinstance(node, exp.EQ):
                return self._in(held, [value], negate=False, text=True)
            if isinstance(node, exp.NEQ):
                return self._in(held, [value], negate=True, text=True)
            raise Untranslatable(node.sql())  # codes do not keep patterns
        if isinstance(node, exp.Like):
            ref: exp.Expr = self._like(node, held, logical_type, value)
        else:
            ref = self._equality(node, held, logical_type, text=bool(text))
        return node.__class__(this=ref, expression=self._bind(held, value))

    def _equality(
        self, node: exp.Expr, held: ColumnMapping, logical_type: str, *, text: bool
    ) -> exp.Expr:
        """The column for ``=`` or ``<>`` (no codes: those go through ``_in``)."""
        negated = isinstance(node, exp.NEQ)
        if text:
            self._text_match(self.rules.text_equality, negated=negated)
        if negated and self._text_dates(held, logical_type):
            self.exact = False  # stored text that is not a date differs too, but reads NULL
        return exp.column(held.physical, quoted=True)

    def _like(
        self, node: exp.Expr, held: ColumnMapping, logical_type: str, pattern: Any
    ) -> exp.Expr:
        if logical_type != "VARCHAR":
            raise Untranslatable(node.sql())
        if self.rules.like_backslash_escapes and "\\" in str(pattern):
            raise Untranslatable("the pattern holds a backslash, an escape there")
        self._text_match(self.rules.like)
        return exp.column(held.physical, quoted=True)

    def _in(self, held: ColumnMapping, values: list[Any], *, negate: bool, text: bool) -> exp.Expr:
        """``column [NOT] IN values`` over the physical values that map onto ``values``."""
        if text:
            self._text_match(self.rules.text_equality, negated=negate)
        physical: list[Any] = []
        for value in values:
            physical.extend(_preimage(held, value, self.rules))
        ref = exp.column(held.physical, quoted=True)
        # Placeholders are positional: bind in the order the SQL reads.
        known: exp.Expr | None = None
        if held.codes:
            # A stored code the mapping does not know reads as NULL, so the
            # comparison must be NULL there too, or a NOT around it would let
            # the row through: CASE WHEN it is a known code THEN ... END.
            known = exp.In(this=ref.copy(), expressions=[self._bind_raw(c) for c in held.codes])
        answer: exp.Expr
        if physical:
            condition = exp.In(this=ref, expressions=[self._bind_raw(v) for v in physical])
            answer = exp.not_(condition) if negate else condition
        else:  # no stored value reads as these: IN is FALSE, NOT IN TRUE (NULL for a NULL)
            answer = exp.true() if negate else exp.false()
        if known is None:
            return answer
        return exp.Case(ifs=[exp.If(this=known, true=answer)])

    def _text_match(self, how: str, *, negated: bool = False) -> None:
        if how == "superset":
            if negated:
                raise Untranslatable("a negated comparison under this collation may drop rows")
            self.exact = False

    def _ordered(self, held: ColumnMapping, logical_type: str) -> exp.Expr:
        """The column for a range comparison, where its stored order is the logical one."""
        if held.codes:
            raise Untranslatable("coded column")
        ref: exp.Expr = exp.column(held.physical, quoted=True)
        stored_as_text = logical_type == "VARCHAR" or (
            logical_type == "DATE" and (held.date_format or not self.rules.native_dates)
        )
        if logical_type == "DATE" and held.date_format not in (
            None,
            *ORDER_PRESERVING_DATE_FORMATS,
        ):
            raise Untranslatable(f"dates stored as {held.date_format} do not sort as text")
        if self._text_dates(held, logical_type):
            # Stored text that is not a date may fall in the range, yet reads
            # as NULL: the database narrows, the broker decides.
            self.exact = False
        if stored_as_text:
            if self.rules.text_range == "none":
                raise Untranslatable("text order differs under this collation")
            if self.rules.text_range == "collate_c":
                ref = exp.Collate(this=ref, expression=exp.to_identifier("C", quoted=True))
        return ref

    def _range(self, node: exp.Expr, held: ColumnMapping, logical_type: str) -> exp.Expr:
        """``<``, ``<=``, ``>``, ``>=`` or BETWEEN over a column kept in its stored order,
        or over a sortable key of dates stored as day-first or month-first text."""
        if isinstance(node, exp.Between):
            values = [_literal_value(node.args[k], logical_type) for k in ("low", "high")]
        else:
            values = [_literal_value(node.expression, logical_type)]
        if held.codes:
            raise Untranslatable(node.sql())  # codes do not keep order
        if (layout := self._date_key_layout(held, logical_type)) is not None:
            return self._keyed_range(node, held, layout, values)
        ref = self._ordered(held, logical_type)
        bounds = [self._bind(held, v) for v in values]
        if isinstance(node, exp.Between):
            return exp.Between(this=ref, low=bounds[0], high=bounds[1])
        return node.__class__(this=ref, expression=bounds[0])

    def _date_key_layout(self, held: ColumnMapping, logical_type: str) -> DateLayout | None:
        """For dates stored as fixed-width text whose order is not the date's
        (``%d/%m/%Y``, ``%m/%d/%Y``, ``%d.%m.%Y``): where each field sits."""
        fmt = held.date_format
        if logical_type != "DATE" or fmt is None or fmt in ORDER_PRESERVING_DATE_FORMATS:
            return None
        return date_layout(fmt)

    def _keyed_range(
        self, node: exp.Expr, held: ColumnMapping, layout: DateLayout, values: list[Any]
    ) -> exp.Expr:
        """A range over text dates laid out as ``layout``, compared on the
        text's year, month and day digits put in that order (a key that sorts
        as the dates do). Only for text as the format prints it: ASCII digits
        where the fields sit, at the format's length. Any other text (a day
        the parser reads unpadded, other digits, garbage) is sent whatever
        the range, for the broker to judge: the scan only narrows."""
        if self.rules.text_range == "none" and self.rules.byte_equality != "hex":
            raise Untranslatable("text order differs under this collation")
        if not all(isinstance(v, dt.date) for v in values):
            raise Untranslatable(node.sql())
        self.exact = False
        column = exp.column(held.physical, quoted=True)
        # Where text order differs (then, as checked, bytes compare by HEX()):
        # the key and its bounds in hex digits, which order alike in any collation.
        hexed = self.rules.text_range == "none"

        def part(start: int, width: int) -> exp.Expr:
            return exp.Substring(
                this=column.copy(),
                start=exp.Literal.number(start),
                length=exp.Literal.number(width),
            )

        def text(value: exp.Expr) -> exp.Expr:
            if hexed:
                return exp.Hex(this=value)
            if self.rules.text_range == "collate_c":
                bytewise = exp.to_identifier("C", quoted=True)
                return exp.Collate(this=exp.paren(value, copy=False), expression=bytewise)
            return value

        def bound(value: str) -> exp.Expr:
            return self._bind_raw(value.encode("ascii").hex().upper() if hexed else value)

        # Placeholders are positional: bound in the order the SQL reads them.
        (y, m, d) = layout.year, layout.month, layout.day
        key = text(
            exp.DPipe(this=exp.DPipe(this=part(*y), expression=part(*m)), expression=part(*d))
        )
        if isinstance(node, exp.Between):
            low, high = (bound(_key_text(v)) for v in values)
            in_range: exp.Expr = exp.Between(this=key, low=low, high=high)
        else:
            in_range = node.__class__(this=key, expression=bound(_key_text(values[0])))
        as_printed = self._as_printed(column, layout, text, bound, part)
        self.costly = True  # evaluated row by row: after the cheaper conjuncts
        return exp.paren(
            exp.or_(exp.paren(in_range), exp.not_(exp.paren(as_printed)), copy=False), copy=False
        )

    def _as_printed(
        self,
        column: exp.Expr,
        layout: DateLayout,
        text: Callable[[exp.Expr], exp.Expr],
        bound: Callable[[str], exp.Expr],
        part: Callable[[int, int], exp.Expr],
    ) -> exp.Expr:
        """Whether the stored text is laid out as the format prints it: ASCII
        digits where the fields sit, the separators between, nothing more."""
        if self.rules.digit_pattern == "glob":  # SQLite: byte ranges, the whole text
            return exp.Glob(this=column.copy(), expression=bound(layout.glob))
        if self.rules.digit_pattern == "regex":  # PostgreSQL: [0-9] is ASCII under "C"
            return exp.RegexpLike(this=text(column.copy()), expression=bound(layout.regex))
        digits = [
            exp.Between(this=text(part(position, 1)), low=bound("0"), high=bound("9"))
            for position in layout.digit_positions
        ]
        length = exp.Length(this=column.copy())
        return exp.and_(
            exp.EQ(this=length, expression=exp.Literal.number(layout.width)), *digits, copy=False
        )

    def _column_ref(self, node: exp.Expr) -> exp.Expr:
        if not isinstance(node, exp.Column):
            raise Untranslatable(node.sql())
        held = self.mapping.columns.get(node.name)
        return exp.column(held.physical, quoted=True) if held else exp.null()

    def _bind(self, held: ColumnMapping, value: Any) -> exp.Expr:
        return self._bind_raw(_physical_value(held, value, self.rules))

    def _bind_raw(self, value: Any) -> exp.Expr:
        self.params.append(value)
        return exp.Placeholder()


def _grouped(term: exp.Expr) -> exp.Expr:
    """``term`` in parentheses if it is itself an AND or OR chain."""
    return exp.paren(term, copy=False) if isinstance(term, exp.Connector) else term


def _without_flags(node: exp.Expr) -> exp.Expr:
    """The node with its flags spelled out as plain nodes.

    sqlglot keeps ``x NOT LIKE p`` one ``Like`` node with ``negate`` set, and
    ``BETWEEN SYMMETRIC`` one ``Between`` with ``symmetric``: rebuilt without
    the flag, either would mean something else.
    """
    if isinstance(node, exp.Like) and node.args.get("negate"):
        positive = node.copy()
        positive.set("negate", None)
        return exp.Not(this=positive)
    if isinstance(node, exp.Between) and node.args.get("symmetric"):
        low, high = node.args["low"], node.args["high"]
        return exp.or_(
            exp.Between(this=node.this.copy(), low=low.copy(), high=high.copy()),
            exp.Between(this=node.this.copy(), low=high.copy(), high=low.copy()),
            copy=False,
        )
    return node


def _preimage(held: ColumnMapping, value: Any, rules: DialectRules) -> list[Any]:
    """Physical values the adapter reads as ``value`` (an unknown code reads
    as NULL, so only the mapping's own codes)."""
    if not held.codes:
        return [_physical_value(held, value, rules)]
    return [code for code, logical in held.codes.items() if logical == value]


#: A BIGINT literal outside this range is not a BIGINT to the databases (their
#: drivers refuse or overflow it); the broker compares it instead.
_BIGINT = range(-(2**63), 2**63)


def _literal_value(node: exp.Expr, logical_type: str) -> Any:
    """The Python value of a literal, only when its type matches the column's exactly."""
    value = _literal(node, logical_type)
    if isinstance(value, int) and value not in _BIGINT:
        raise Untranslatable(f"{node.sql()} is outside the BIGINT range")
    return value


def _literal(node: exp.Expr, logical_type: str) -> Any:
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        return -_literal(node.this, logical_type)
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):
        if node.to.is_type(exp.DataType.Type.DATE) and logical_type == "DATE":
            return _parse_date(node.this.this)
        raise Untranslatable(node.sql())
    if not isinstance(node, exp.Literal):
        raise Untranslatable(node.sql())
    if node.is_string:
        if logical_type == "VARCHAR":
            return node.this
        if logical_type == "DATE":
            return _parse_date(node.this)
        raise Untranslatable(node.sql())
    if logical_type == "BIGINT" and node.is_int:
        return int(node.this)
    if logical_type == "DOUBLE":
        return float(node.this)
    raise Untranslatable(node.sql())


def _parse_date(text: str) -> dt.date:
    """A date literal as DuckDB reads it; only the plain ``YYYY-MM-DD`` form,
    since Python also accepts forms DuckDB reads otherwise or not at all
    (``'18991231'``: a date to Python, NULL to DuckDB's TRY_CAST)."""
    if not _ISO_DATE.fullmatch(text):
        raise Untranslatable(f"date literal {text!r} is not YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise Untranslatable(text) from exc


@dataclass(frozen=True)
class DateLayout:
    """Where a fixed-width text date keeps its fields: (first character, width), 1-based."""

    year: tuple[int, int]
    month: tuple[int, int]
    day: tuple[int, int]
    width: int
    separators: str = ""  # what is printed between the fields, in order

    @property
    def digit_positions(self) -> list[int]:
        return [
            start + i for start, width in (self.year, self.month, self.day) for i in range(width)
        ]

    def _pieces(self, digit: str, literal: Callable[[str], str]) -> str:
        digits = set(self.digit_positions)
        separators = iter(self.separators)
        return "".join(
            digit if at in digits else literal(next(separators)) for at in range(1, self.width + 1)
        )

    @property
    def glob(self) -> str:
        """SQLite GLOB for the layout (``[0-9]`` a digit; a separator as itself,
        bracketed where GLOB would read it)."""
        return self._pieces("[0-9]", lambda c: f"[{c}]" if c in "*?[]" else c)

    @property
    def regex(self) -> str:
        return "^" + self._pieces("[0-9]", re.escape) + "$"


_FIELD_WIDTHS = {"%Y": 4, "%m": 2, "%d": 2}


def date_layout(fmt: str) -> DateLayout | None:
    """The layout of a format made of ``%Y``, ``%m``, ``%d`` (each once) and
    single ASCII separators, as ``strftime`` prints it; None for any other.

    >>> date_layout("%d.%m.%Y")
    DateLayout(year=(7, 4), month=(4, 2), day=(1, 2), width=10, separators='..')
    >>> date_layout("%d.%m.%Y").glob
    '[0-9][0-9].[0-9][0-9].[0-9][0-9][0-9][0-9]'
    >>> date_layout("%d %b %Y") is None
    True
    """
    fields: dict[str, tuple[int, int]] = {}
    separators = []
    position, i = 1, 0
    while i < len(fmt):
        if fmt[i] == "%":
            directive = fmt[i : i + 2]
            if directive not in _FIELD_WIDTHS or directive in fields:
                return None
            fields[directive] = (position, _FIELD_WIDTHS[directive])
            position, i = position + _FIELD_WIDTHS[directive], i + 2
        elif fmt[i].isascii() and not fmt[i].isalnum() and not fmt[i].isspace():
            separators.append(fmt[i])
            position, i = position + 1, i + 1
        else:
            return None
    if len(fields) != 3:
        return None
    return DateLayout(fields["%Y"], fields["%m"], fields["%d"], position - 1, "".join(separators))


def _key_text(value: dt.date) -> str:
    """A date as the sortable key of ``_keyed_range``: YYYYMMDD, zero-padded
    (``strftime('%Y')`` leaves years before 1000 unpadded)."""
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def _physical_value(held: ColumnMapping, value: Any, rules: DialectRules) -> Any:
    if isinstance(value, dt.date):
        if held.date_format:
            return value.strftime(held.date_format)
        return value if rules.native_dates else value.isoformat()
    return value
