"""Plan cache: a repeated query shape skips parse, qualify, rewrite and plan.

A point lookup is the same SQL each time but for one string: the FPS number.
The cache keys a query by (role, partner, purpose, case reference, its token
sequence with string literals taken out) and keeps, per shape, a *template*:
the :class:`~broker.prepare.PreparedQuery` of the query with each literal
that is a parameter written as a unique sentinel (``'QzL0iTq'``). A hit binds
the caller's values into a copy of the template by replacing the sentinels in
every string and tree of it (the SQL, the scans' predicates, the merge and
secure-view trees), and recomputes the FPS numbers the audit record keeps.

Exactly equivalent to an uncached prepare, by construction and by check:

- Only a string literal compared (``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``,
  ``IN``) with a bare column that is text in every table holding it (not
  ``source``, whose values choose the sources asked) is a parameter, and only
  when its value is plain (letters, digits, ``_.:@/-`` and inner single
  spaces, at most 64 characters): nothing in the path escapes, folds, casts
  or judges such a value, it passes through. So is a date literal
  (``DATE 'YYYY-MM-DD'``, a real day) compared so with a column that is a
  date in every table holding it and no shard key: its sentinel is a date
  too (``1111-11-10`` and on), which the path reads as it reads any date;
  a history's linkage block (``birth_date IN (DATE ..)``) is one shape.
  Every other literal's value is
  part of the key; numbers, NULL, LIMIT and IN-list lengths are tokens of the
  shape. Aggregate-only roles are not cached (their checks and release read
  the query's constants).
- A template is built the second time a shape is seen with the same values
  of its other literals (one-off queries pay only the tokenizing; a shape
  whose non-parameters differ each time, a LIKE pattern, never pays for a
  template it would not use), and kept only if binding the real values into it
  gives exactly the real prepared query and no sentinel was transformed on
  the way (a case change, a fold); otherwise the shape is never cached.
- Errors are never cached: a shape that fails to prepare is prepared again
  next time, and raises again.

The cache is bounded (LRU over shapes and over templates per shape) and
belongs to one loaded policy: ``QueryPipeline.use_policies`` starts a new one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import TokenType

from accord.audit.lookups import FPS_COLUMN, FPS_SHAPE, MAX_FPS_NUMBERS
from accord.catalog import SOURCE_COLUMN
from accord.errors import AccordError
from broker.planner import QueryPlan, ScanSpec, TableReference
from broker.policy.rewrite import RoleView
from broker.prepare import PreparedQuery, prepare_query
from broker.validate import MAX_SQL_CHARS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlglot.tokenizer_core import Token

    from accord.federation import Federation
    from broker.identity import Principal
    from broker.policy.model import Role
    from broker.policy.rewrite import ViewCache
    from broker.settings import QueryShape

#: Shapes kept, and templates per shape (a shape's non-parameter values).
MAX_SHAPES = 2048
MAX_TEMPLATES_PER_SHAPE = 32
MAX_SIGHTINGS = 4 * MAX_TEMPLATES_PER_SHAPE

#: The largest query cached: a template costs two prepares to build, which
#: pays for a point lookup, not for an 800-term OR (prepared as before).
MAX_TOKENS = 1000
MAX_STRINGS = 64
#: The longest query whose template may be bound on the event loop (``bound``).
MAX_INLINE_CHARS = 8192

#: A parameter's sentinel: mixed case, so a case change is seen; digits
#: fenced by letters, so ``QzL1iTq`` is no part of ``QzL10iTq``.
SENTINEL = re.compile(r"QzL(\d+)iTq")
_ANY_CASE = re.compile(r"qzl\d+itq|qzlprefixq", re.IGNORECASE)
#: The reference prefix of the template (each query names its scans' tables),
#: without the "_ref" the planner takes off to name views.
PREFIX_SENTINEL = "qzlprefixq"
#: A date parameter's sentinel is a date, since the path reads it as one: in
#: a year no record holds, its day 10 plus its index (so at most 18 of them).
#: A query that holds this text anywhere is not cached.
DATE_SENTINEL_PREFIX = "1111-11-"
MAX_DATE_PARAMETERS = 18
_SUBSTITUTION = re.compile(r"QzL(\d+)iTq|qzlprefixq|(?<!\d)1111-11-([12]\d)(?!\d)")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: A value that passes through the path untouched.
PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.:@/-]+(?: [A-Za-z0-9_.:@/-]+)*")
MAX_PARAMETER_CHARS = 64

_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_FPS_COMPARISONS = (exp.EQ, exp.NEQ, exp.In)  # what accord.audit.lookups reads

#: What a lookup found (the Prometheus label of ``accord_plan_cache_lookups``).
OUTCOMES = ("hit", "miss", "uncacheable")


def _sentinel(i: int) -> str:
    return f"QzL{i}iTq"


def _date_sentinel(i: int) -> str:
    return f"{DATE_SENTINEL_PREFIX}{10 + i}"


def _index(match: re.Match[str]) -> int | None:
    """The parameter a sentinel match stands for; None for the prefix's."""
    if match[1] is not None:
        return int(match[1])
    if match[2] is not None:
        return int(match[2]) - 10
    return None


@dataclass
class _Template:
    prepared: PreparedQuery
    fixed_fps: frozenset[str]  # FPS numbers of the query's other constants
    fps_parameters: tuple[int, ...]  # parameters compared with fps_number


@dataclass
class _Shape:
    parameters: tuple[int, ...] | None = None  # string-token positions; None: not yet known
    dates: frozenset[int] = frozenset()  # the parameters that are dates
    cacheable: bool = True
    building: set[tuple[str, ...]] = field(default_factory=set)  # templates under way
    templates: OrderedDict[tuple[str, ...], _Template] = field(default_factory=OrderedDict)
    first_values: tuple[str, ...] = ()  # every string's value the first time
    #: Non-parameter values seen since (once), which a template is built for next time.
    sightings: OrderedDict[tuple[str, ...], None] = field(default_factory=OrderedDict)

    def seen_before(self, others: tuple[str, ...]) -> bool:
        """Whether these non-parameter values were seen before (and now are)."""
        assert self.parameters is not None
        parameters = set(self.parameters)
        if others == tuple(v for i, v in enumerate(self.first_values) if i not in parameters):
            return True
        if others in self.sightings:
            return True
        self.sightings[others] = None
        while len(self.sightings) > MAX_SIGHTINGS:
            self.sightings.popitem(last=False)
        return False


@dataclass
class PlanCache:
    """Prepared templates of one loaded policy (see the module docstring)."""

    max_shapes: int = MAX_SHAPES
    #: Called with each lookup's outcome (``OUTCOMES``): the broker's metrics.
    observe: Callable[[str], None] | None = None
    hits: int = 0
    misses: int = 0
    uncacheable: int = 0
    _shapes: OrderedDict[tuple[Any, ...], _Shape] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __len__(self) -> int:
        return len(self._shapes)

    def prepare(
        self,
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
        """What ``prepare_query`` returns for these arguments, from a template when one fits."""

        def uncached(outcome: str) -> PreparedQuery:
            self._count(outcome)
            return prepare_query(
                sql,
                principal,
                role,
                federation,
                purpose=purpose,
                case_ref=case_ref,
                ref_prefix=ref_prefix,
                cache=cache,
                shape=shape,
            )

        tokenized = _cacheable_tokens(sql, role)
        if tokenized is None:
            return uncached("uncacheable")
        tokens, strings = tokenized
        key = _key(role, principal, purpose, case_ref, ref_prefix, tokens, strings)
        entry = self._seen(key, tuple(tokens[i].text for i in strings))
        if entry is None:  # first sight: a one-off query pays only the tokenizing
            return uncached("miss")
        binding = _binding(entry, sql, tokens, strings, federation)
        if binding is None:
            return uncached("uncacheable")
        parameters, bound, others = binding
        with self._lock:
            template = entry.templates.get(others)
            if template is not None:
                entry.templates.move_to_end(others)
            build = template is None and others not in entry.building and entry.seen_before(others)
            if build:  # one thread builds it; the others prepare meanwhile
                entry.building.add(others)
        if template is not None:
            return self._hit(
                template, bound, ref_prefix, RoleView(role, principal, federation, cache)
            )
        if not build:
            return uncached("miss")
        try:
            real = uncached("miss")
            args = (principal, role, federation, purpose, case_ref, cache, shape)
            template = _build(
                sql, tokens, strings, parameters, entry.dates, real, bound, ref_prefix, *args
            )
        finally:
            with self._lock:
                entry.building.discard(others)
        with self._lock:
            if template is None:
                entry.cacheable = False
            else:
                entry.templates[others] = template
                while len(entry.templates) > MAX_TEMPLATES_PER_SHAPE:
                    entry.templates.popitem(last=False)
        return real

    def bound(
        self,
        sql: str,
        principal: Principal,
        role: Role,
        federation: Federation,
        *,
        purpose: str,
        case_ref: str,
        ref_prefix: str = "ref",
        cache: ViewCache | None = None,
    ) -> PreparedQuery | None:
        """What ``prepare`` returns when a template fits, else None (and
        nothing counted): a hit costs a copy of a template of at most
        ``MAX_TOKENS`` tokens, so it may run on the event loop."""
        tokenized = None if len(sql) > MAX_INLINE_CHARS else _cacheable_tokens(sql, role)
        if tokenized is None:
            return None
        tokens, strings = tokenized
        key = _key(role, principal, purpose, case_ref, ref_prefix, tokens, strings)
        with self._lock:
            entry = self._shapes.get(key)
        if entry is None or entry.parameters is None or not entry.cacheable:
            return None
        binding = _binding(entry, sql, tokens, strings, federation)
        if binding is None:
            return None
        _, values, others = binding
        with self._lock:
            template = entry.templates.get(others)
            if template is None:
                return None
            entry.templates.move_to_end(others)
        return self._hit(template, values, ref_prefix, RoleView(role, principal, federation, cache))

    def _hit(
        self, template: _Template, values: list[str], ref_prefix: str, view: RoleView
    ) -> PreparedQuery:
        self._count("hit")
        return instantiate(template, values, _prefix_head(ref_prefix), view)

    def _seen(self, key: tuple[Any, ...], values: tuple[str, ...]) -> _Shape | None:
        """The shape's entry, or None the first time (then it is remembered,
        with its strings' ``values``)."""
        with self._lock:
            entry = self._shapes.get(key)
            if entry is not None:
                self._shapes.move_to_end(key)
                return entry
            self._shapes[key] = _Shape(first_values=values)
            while len(self._shapes) > self.max_shapes:
                self._shapes.popitem(last=False)
            return None

    def _count(self, outcome: str) -> None:
        if outcome == "hit":
            self.hits += 1
        elif outcome == "miss":
            self.misses += 1
        else:
            self.uncacheable += 1
        if self.observe is not None:
            self.observe(outcome)


def _cacheable_tokens(sql: str, role: Role) -> tuple[list[Token], list[int]] | None:
    """(tokens, positions of its plain strings) of a query the cache may
    hold, or None (aggregate-only, too large, a date sentinel's text)."""
    if role.aggregate_only or DATE_SENTINEL_PREFIX in sql:
        return None
    tokens = _tokens(sql)
    if tokens is None or len(tokens) > MAX_TOKENS:
        return None
    strings = [i for i, t in enumerate(tokens) if _plain_string(sql, t)]
    return None if len(strings) > MAX_STRINGS else (tokens, strings)


def _key(
    role: Role,
    principal: Principal,
    purpose: str,
    case_ref: str,
    ref_prefix: str,
    tokens: list[Token],
    strings: list[int],
) -> tuple[Any, ...]:
    """A shape's key. The planner names views after the prefix without its
    "_ref": the template's prefix sentinel ends as the caller's prefix does."""
    suffixed = ref_prefix.endswith("_ref")
    shape = _shape_of(tokens, strings)
    return (role.name, principal.partner.name, purpose, case_ref, suffixed, shape)


def _binding(
    entry: _Shape, sql: str, tokens: list[Token], strings: list[int], federation: Federation
) -> tuple[tuple[int, ...], list[str], tuple[str, ...]] | None:
    """(parameters, their values, the other strings' values), or None where
    this query cannot use a template."""
    if not entry.cacheable:
        return None
    if entry.parameters is None:
        entry.parameters, entry.dates = _parameters(sql, tokens, strings, federation)
    parameters = entry.parameters
    values = [tokens[i].text for i in strings]
    bound = [values[p] for p in parameters]
    if not all(len(v) <= MAX_PARAMETER_CHARS and PLAIN_VALUE.fullmatch(v) for v in bound):
        return None
    if not all(_date(values[p]) for p in entry.dates):
        return None  # the path judges a date that is not one: as it always does
    return parameters, bound, tuple(v for i, v in enumerate(values) if i not in parameters)


def _date(value: str) -> bool:
    """A date as DuckDB and Python both read it: YYYY-MM-DD, and a real day."""
    if not _ISO_DATE.fullmatch(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _tokens(sql: str) -> list[Token] | None:
    """DuckDB's tokens of ``sql``, or None where the uncached path must judge it
    (too long, not ASCII, not tokenizable: it raises the caller's error)."""
    if len(sql) > MAX_SQL_CHARS or not sql.isascii():
        return None
    try:
        return list(sqlglot.Dialect.get_or_raise("duckdb").tokenize(sql))
    except SqlglotError:
        return None


def _plain_string(sql: str, token: Token) -> bool:
    """A string literal written as its value in single quotes (no escapes)."""
    return token.token_type == TokenType.STRING and sql[token.start : token.end + 1] == (
        f"'{token.text}'"
    )


def _shape_of(tokens: list[Token], strings: list[int]) -> tuple[Any, ...]:
    """The tokens, comments included, with the plain strings' values left out."""
    slots = set(strings)
    return tuple(
        (t.token_type, None if i in slots else t.text, tuple(t.comments) if t.comments else ())
        for i, t in enumerate(tokens)
    )


def _with_sentinels(
    sql: str,
    tokens: list[Token],
    strings: list[int],
    chosen: set[int],
    dates: frozenset[int] = frozenset(),
) -> str:
    """``sql`` with the ``chosen`` (positions in ``strings``) literals as
    sentinels (date sentinels for those in ``dates``)."""
    parts, at = [], 0
    for n, i in enumerate(strings):
        if n in chosen:
            token = tokens[i]
            sentinel = _date_sentinel(n) if n in dates else _sentinel(n)
            parts += [sql[at : token.start], f"'{sentinel}'"]
            at = token.end + 1
    parts.append(sql[at:])
    return "".join(parts)


def text_columns(federation: Federation) -> frozenset[str]:
    """Columns that are text in every catalog table holding them, ``source``
    aside, and that no source keys a shard on: a value compared with a shard
    key chooses which sources are asked (``broker.pushdown.shards``), so it
    belongs to the plan's shape, not to its parameters."""
    kinds: dict[str, set[bool]] = {}
    for table in federation.tables.values():
        for column, type_name in table.columns.items():
            kinds.setdefault(column, set()).add(type_name.upper() in {"VARCHAR", "TEXT"})
    sharded = _sharded(federation)
    return frozenset(
        c for c, k in kinds.items() if k == {True} and c != SOURCE_COLUMN and c not in sharded
    )


def date_columns(federation: Federation) -> frozenset[str]:
    """Columns that are DATE in every catalog table holding them and that no
    source keys a shard on (as ``text_columns``)."""
    kinds: dict[str, set[bool]] = {}
    for table in federation.tables.values():
        for column, type_name in table.columns.items():
            kinds.setdefault(column, set()).add(type_name.upper() == "DATE")
    return frozenset(c for c, k in kinds.items() if k == {True}) - _sharded(federation)


def _sharded(federation: Federation) -> frozenset[str]:
    return frozenset(
        column.lower()
        for source in federation.sources.values()
        for keys in source.shards.values()
        for column in keys
    )


def _parameters(
    sql: str, tokens: list[Token], strings: list[int], federation: Federation
) -> tuple[tuple[int, ...], frozenset[int]]:
    """Which plain strings (positions in ``strings``) are parameters, and
    which of them are dates: ``DATE 'YYYY-MM-DD'`` (a cast of the string)
    compared with a date column."""
    try:
        tree = sqlglot.parse_one(
            _with_sentinels(sql, tokens, strings, set(range(len(strings)))), read="duckdb"
        )
    except (SqlglotError, RecursionError):  # the uncached path refuses it, as it should
        return (), frozenset()
    texts, days = text_columns(federation), date_columns(federation)
    found, dates = set(), set()
    for literal in tree.find_all(exp.Literal):
        match = SENTINEL.fullmatch(literal.this) if literal.is_string else None
        if match is None:
            continue
        n = int(match.group(1))
        if _compared_with_column(literal, texts):
            found.add(n)
        elif (
            isinstance(literal.parent, exp.Cast)
            and literal.arg_key == "this"
            and literal.parent.to.is_type(exp.DataType.Type.DATE)
            and _compared_with_column(literal.parent, days)
            and n < MAX_DATE_PARAMETERS
        ):
            found.add(n)
            dates.add(n)
    return tuple(sorted(found)), frozenset(dates)


def _compared_with_column(node: exp.Expr, columns: frozenset[str]) -> bool:
    parent = node.parent
    if isinstance(parent, _COMPARISONS):
        other = parent.expression if parent.this is node else parent.this
    elif isinstance(parent, exp.In) and node.arg_key == "expressions":
        other = parent.this
    else:
        return False
    return isinstance(other, exp.Column) and other.name.lower() in columns


def _fps_parameters(
    sql: str, tokens: list[Token], strings: list[int], parameters: tuple[int, ...]
) -> tuple[int, ...]:
    """The parameters compared (=, <>, IN) with an ``fps_number`` column: the
    audit record keeps them (``accord.audit.lookups``)."""
    tree = sqlglot.parse_one(_with_sentinels(sql, tokens, strings, set(parameters)), read="duckdb")
    found = set()
    for literal in tree.find_all(exp.Literal):
        match = SENTINEL.fullmatch(literal.this) if literal.is_string else None
        parent = literal.parent
        if match is None or not isinstance(parent, _FPS_COMPARISONS):
            continue
        if isinstance(parent, exp.In):
            other = parent.this if literal.arg_key == "expressions" else None
        else:
            other = parent.expression if parent.this is literal else parent.this
        if isinstance(other, exp.Column) and other.name.lower() == FPS_COLUMN:
            found.add(int(match.group(1)))
    return tuple(sorted(found))


def _build(
    sql: str,
    tokens: list[Token],
    strings: list[int],
    parameters: tuple[int, ...],
    dates: frozenset[int],
    real: PreparedQuery,
    bound: list[str],
    ref_prefix: str,
    principal: Principal,
    role: Role,
    federation: Federation,
    purpose: str,
    case_ref: str,
    cache: ViewCache | None,
    shape: QueryShape | None,
) -> _Template | None:
    """The shape's template, or None if binding ``bound`` into it does not
    give ``real`` exactly (then the shape is not cached)."""
    try:
        prepared = prepare_query(
            _with_sentinels(sql, tokens, strings, set(parameters), dates),
            principal,
            role,
            federation,
            purpose=purpose,
            case_ref=case_ref,
            ref_prefix=PREFIX_SENTINEL + ref_prefix[len(_prefix_head(ref_prefix)) :],
            cache=cache,
            shape=shape,
        )
        fps_parameters = _fps_parameters(sql, tokens, strings, parameters)
    except (AccordError, SqlglotError, RecursionError):  # a sentinel the path refuses
        return None
    # Renumber: sentinel n is the n-th plain string; bind by parameter order.
    order = {n: k for k, n in enumerate(parameters)}

    def renumbered(match: re.Match[str]) -> str:
        n = _index(match)
        if n is None or n not in order:
            return match[0]
        return _date_sentinel(order[n]) if n in dates else _sentinel(order[n])

    prepared = _substitute(prepared, renumbered)
    if any(_unfenced(s) for s in _strings(prepared)):
        return None
    fixed = frozenset(f for f in prepared.fps_numbers if not _ANY_CASE.search(f))
    template = _Template(prepared, fixed, tuple(order[p] for p in fps_parameters))
    view = RoleView(role, principal, federation, cache)
    if fingerprint(instantiate(template, bound, _prefix_head(ref_prefix), view)) != fingerprint(
        real
    ):
        return None
    return template


def _unfenced(text: str) -> bool:
    """Whether ``text`` holds a sentinel in another case than written."""
    exact = {m.group(0) for m in _SUBSTITUTION.finditer(text)}
    return any(m.group(0) not in exact for m in _ANY_CASE.finditer(text))


def _prefix_head(ref_prefix: str) -> str:
    return ref_prefix.removesuffix("_ref")


def instantiate(
    template: _Template, values: list[str], prefix_head: str, view: RoleView
) -> PreparedQuery:
    """The template with ``values`` (by parameter order) bound, and the
    reference prefix (without its ``_ref``) ``prefix_head``."""

    def value(match: re.Match[str]) -> str:
        n = _index(match)
        return values[n] if n is not None else prefix_head

    prepared = _substitute(template.prepared, value)
    found = set(template.fixed_fps)
    found.update(values[i] for i in template.fps_parameters)
    found.update(v for v in values if FPS_SHAPE.fullmatch(v))
    prepared.fps_numbers = sorted(found)[:MAX_FPS_NUMBERS]
    prepared.view = view
    return prepared


def _substitute(prepared: PreparedQuery, value: Callable[[re.Match[str]], str]) -> PreparedQuery:
    """A deep copy of ``prepared`` with every sentinel replaced by ``value``'s answer."""

    def text(s: str) -> str:
        if "zl" in s.lower() or DATE_SENTINEL_PREFIX in s:
            return _SUBSTITUTION.sub(value, s)
        return s

    plan = prepared.plan
    references = [
        dataclasses.replace(
            ref,
            ref_id=text(ref.ref_id),
            alias=text(ref.alias),
            label=text(ref.label),
            columns=list(ref.columns),
            sources=list(ref.sources),
            predicates=[dataclasses.replace(p, sql=text(p.sql)) for p in ref.predicates],
            scans=[
                ScanSpec(s.source, list(s.columns), text(s.predicate), s.limit, s.aggregate)
                for s in ref.scans
            ],
        )
        for ref in plan.references
    ]
    new_plan = QueryPlan(
        references,
        _tree(plan.merge, text),
        [(text(name), _tree(view, text)) for name, view in plan.views],
        None
        if plan.aggregate is None
        else dataclasses.replace(
            plan.aggregate,
            raw=text(plan.aggregate.raw),
            partials=text(plan.aggregate.partials),
            partial=_tree(plan.aggregate.partial, text),
        ),
    )
    return dataclasses.replace(
        prepared,
        validated_sql=text(prepared.validated_sql),
        rewritten_sql=text(prepared.rewritten_sql),
        plan=new_plan,
        masks=[text(m) for m in prepared.masks],
        row_filters=[text(f) for f in prepared.row_filters],
        fps_numbers=[text(f) for f in prepared.fps_numbers],
        tables=list(prepared.tables),
    )


def _tree(tree: Any, text: Callable[[str], str]) -> Any:
    copied = tree.copy()
    for node in copied.walk():
        for key, arg in node.args.items():
            if isinstance(arg, str):
                node.args[key] = text(arg)
    return copied


def _strings(prepared: PreparedQuery) -> Iterator[str]:
    """Every string of ``prepared`` a sentinel could sit in."""
    yield prepared.validated_sql
    yield prepared.rewritten_sql
    yield from prepared.masks
    yield from prepared.row_filters
    yield from prepared.fps_numbers
    plan = prepared.plan
    yield plan.merge_sql
    for ref in plan.references:
        yield from (ref.ref_id, ref.alias, ref.label)
        yield from (p.sql for p in ref.predicates)
        yield from (s.predicate for s in ref.scans)
    partial = [plan.aggregate.partial] if plan.aggregate is not None else []
    for tree in [plan.merge, *(v for _, v in plan.views), *partial]:
        for node in tree.walk():
            yield from (a for a in node.args.values() if isinstance(a, str))


def fingerprint(prepared: PreparedQuery) -> tuple[Any, ...]:
    """Everything of ``prepared`` the rest of the path reads, comparable."""
    plan = prepared.plan
    return (
        prepared.view.role.name,
        prepared.view.principal.partner.name,
        prepared.validated_sql,
        prepared.rewritten_sql,
        plan.merge_sql,
        [(n, v.sql(dialect="duckdb")) for n, v in plan.views],
        [dataclasses.astuple(r) for r in plan.references],
        prepared.masks,
        prepared.row_filters,
        prepared.fps_numbers,
        prepared.release,
        prepared.tables,
        prepared.min_group_size,
        prepared.counts_by_source,
    )


__all__ = ["OUTCOMES", "PlanCache", "TableReference", "fingerprint", "text_columns"]
