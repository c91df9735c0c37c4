"""The adapter's plans of repeated scan shapes: a history asks the same six
scans for every person but for the FPS number, and translating one with
sqlglot (parse, check, map, generate) costs the adapter more than running
it on SQLite.

A scan's *shape* is its table, columns, limit and predicate text with the
contents of its string literals taken out. A shape's *template* is its plan
(``adapters.translate.plan_scan`` and what ``adapters.server`` derives from
it) made with each parameter literal written as a unique sentinel; a scan of
that shape is planned by putting its values where the sentinels are, in the
bound parameters and in the texts of the conjuncts it reports.

Exactly the plan an uncached scan gets, by construction and by check:

- Only a string literal compared with ``=``, ``<>`` or ``IN`` to a bare
  VARCHAR column that the source stores without codes is a parameter: the
  translation binds such a value as it is, and nothing about the plan
  depends on it (``adapters.translate``). Every other literal's value is part
  of the key. A parameter's value is used only when it is plain (letters,
  digits, ``_.:@/-`` and inner single spaces, at most 64 characters);
  otherwise the scan is planned afresh.
- A predicate whose text could hide a quote from this splitting (a
  backslash, a double quote or backtick, ``$``, a comment, two literals side
  by side) has no shape and is planned afresh.
- A template is built the second time a shape is seen with the same values
  of its other literals (a history's birth dates, different every time,
  never pay for one), and kept only if binding the real values into it
  gives exactly the real plan; otherwise the shape is never cached. Errors
  are never cached.

Bounded (LRU), per adapter; aggregates are planned afresh.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from accord.errors import InvalidQuery
from accord.predicate import parse_predicate

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow as pa

    from accord.federation import LogicalTable, TableMapping
    from accord.v1 import adapter_pb2
    from adapters.translate import PhysicalScan

#: What planning one scan found (the adapter's ``accord_adapter_scan_plans``).
OUTCOMES = ("hit", "miss", "uncacheable")

MAX_SHAPES = 1024
MAX_TEMPLATES_PER_SHAPE = 16
MAX_SIGHTINGS = 4 * MAX_TEMPLATES_PER_SHAPE
PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.:@/-]+(?: [A-Za-z0-9_.:@/-]+)*")
MAX_PARAMETER_CHARS = 64
#: What may hide a quote from the split on ``'``, or make one mean another thing.
_UNSPLITTABLE = re.compile(r"""[\\"`$]|--|/\*""")


@dataclass(frozen=True)
class RowScan:
    """A scan's plan: the physical statement and how its rows become logical ones."""

    physical: PhysicalScan
    columns: list[str]  # asked, in order
    fetched: list[str]  # asked, then the release filter's columns
    guarded: list[str]  # the release filter's columns
    schema: pa.Schema  # of the answer
    fetched_schema: pa.Schema
    converters: list[Any]
    stored: list[pa.DataType]


def split_literals(predicate: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(the text around the string literals, their contents), or None when
    the text could hide a quote (see the module's docstring)."""
    if _UNSPLITTABLE.search(predicate):
        return None
    pieces = predicate.split("'")
    if len(pieces) % 2 == 0:
        return None  # an unclosed quote: the parser says what is wrong
    around = tuple(pieces[0::2])
    if any(not between for between in around[1:-1]):
        return None  # '' inside a literal, or two literals side by side
    return around, tuple(pieces[1::2])


def _joined(around: tuple[str, ...], values: list[str] | tuple[str, ...]) -> str:
    out = [around[0]]
    for value, after in zip(values, around[1:], strict=True):
        out += ["'", value, "'", after]
    return "".join(out)


@dataclass
class _Template:
    plan: RowScan
    sentinels: dict[str, int]  # sentinel -> literal position
    pattern: re.Pattern[str] | None = None  # any of the sentinels

    def __post_init__(self) -> None:
        if self.sentinels:
            self.pattern = re.compile("|".join(re.escape(s) for s in self.sentinels))


@dataclass
class _Shape:
    parameters: tuple[int, ...] | None = None  # literal positions; None: not yet known
    cacheable: bool = True
    first_values: tuple[str, ...] | None = None
    templates: OrderedDict[tuple[str, ...], _Template] = field(default_factory=OrderedDict)
    #: Other literals' values seen once, whose template is built the next time.
    sightings: OrderedDict[tuple[str, ...], None] = field(default_factory=OrderedDict)

    def fixed(self, values: tuple[str, ...]) -> tuple[str, ...]:
        assert self.parameters is not None
        return tuple(v for i, v in enumerate(values) if i not in self.parameters)

    def seen_before(self, fixed: tuple[str, ...]) -> bool:
        """Whether these other values were seen before (and now are)."""
        if fixed in self.sightings:
            return True
        self.sightings[fixed] = None
        while len(self.sightings) > MAX_SIGHTINGS:
            self.sightings.popitem(last=False)
        return False


class ScanPlans:
    """Templates of one adapter's repeated scan shapes."""

    def __init__(
        self,
        table_of: Callable[[str], tuple[LogicalTable, TableMapping]],
        observe: Callable[[str], None] | None = None,
    ) -> None:
        self._table_of = table_of
        self._observe = observe or (lambda outcome: None)
        self._shapes: OrderedDict[tuple[Any, ...], _Shape] = OrderedDict()
        self._lock = threading.Lock()
        # Unguessable, so no value a caller sends is a sentinel.
        self._nonce = secrets.token_hex(6)
        self.hits = self.misses = 0

    def plan(self, request: adapter_pb2.ScanRequest, build: Callable[[str], RowScan]) -> RowScan:
        """``build(request.predicate)``, or the same from a template."""
        split = split_literals(request.predicate)
        if split is None:
            self._observe("uncacheable")
            return build(request.predicate)
        around, values = split
        key = (request.table, tuple(request.columns), request.limit, around)
        with self._lock:
            shape = self._shapes.get(key)
            if shape is None:
                shape = self._shapes[key] = _Shape()
                while len(self._shapes) > MAX_SHAPES:
                    self._shapes.popitem(last=False)
            self._shapes.move_to_end(key)
            template = None
            if shape.parameters is not None:
                template = shape.templates.get(shape.fixed(values))
        if template is not None and all(_plain(values[i]) for i in template.sentinels.values()):
            self.hits += 1
            self._observe("hit")
            return _bound(template, values)
        self.misses += 1
        self._observe("miss" if shape.cacheable else "uncacheable")
        plan = build(request.predicate)  # errors are raised here, never cached
        if shape.cacheable and template is None:
            self._learn(request.table, shape, around, values, plan, build)
        return plan

    def _learn(
        self,
        table_name: str,
        shape: _Shape,
        around: tuple[str, ...],
        values: tuple[str, ...],
        plan: RowScan,
        build: Callable[[str], RowScan],
    ) -> None:
        """Builds the template of ``values``' shape, kept if it binds to
        ``plan``: the second time its other literals' values are seen (the
        first, a shape's parameters are not known yet: the second time it is
        seen, they are found), so that a shape whose other values change
        every time (a history's birth dates) never pays for one."""
        with self._lock:
            if shape.parameters is None and shape.first_values is None:
                shape.first_values = values
                return
        if shape.parameters is None:
            parameters = self._parameters(table_name, around, len(values))
            if parameters is None:
                shape.cacheable = False
                return
            shape.parameters = parameters
            assert shape.first_values is not None
            shape.seen_before(shape.fixed(shape.first_values))
        with self._lock:
            if not shape.seen_before(shape.fixed(values)):
                return
        if not all(_plain(values[i]) for i in shape.parameters):
            return  # another value of this shape may build it
        sentinels = {f"zqa{self._nonce}n{i}qz": i for i in shape.parameters}
        by_position = {i: s for s, i in sentinels.items()}
        written = [by_position.get(i, v) for i, v in enumerate(values)]
        try:
            template = _Template(build(_joined(around, written)), sentinels)
        except Exception:  # a sentinel the plan refuses: no template
            shape.cacheable = False
            return
        if not _same(_bound(template, values), plan):
            shape.cacheable = False
            return
        with self._lock:
            shape.templates[shape.fixed(values)] = template
            while len(shape.templates) > MAX_TEMPLATES_PER_SHAPE:
                shape.templates.popitem(last=False)

    def _parameters(
        self, table_name: str, around: tuple[str, ...], count: int
    ) -> tuple[int, ...] | None:
        """The literal positions that are parameters (see the module's docstring)."""
        table, mapping = self._table_of(table_name)
        marks = [f"zqm{self._nonce}n{i}qz" for i in range(count)]
        try:
            tree = parse_predicate(_joined(around, marks), table)
        except (InvalidQuery, RecursionError):
            return None
        if tree is None:
            return ()
        position = {m: i for i, m in enumerate(marks)}
        found: list[int] = []
        for literal in tree.find_all(exp.Literal):
            if not literal.is_string or literal.this not in position:
                continue
            i = position.pop(literal.this)
            parent = literal.parent
            column = parent.this if parent is not None else None
            if not isinstance(column, exp.Column) or not (
                (isinstance(parent, (exp.EQ, exp.NEQ)) and parent.expression is literal)
                or (isinstance(parent, exp.In) and literal in parent.expressions)
            ):
                continue
            held = mapping.columns.get(column.name)
            if table.columns.get(column.name) == "VARCHAR" and held is not None and not held.codes:
                found.append(i)
        if position:
            return None  # a literal the parser did not read as one: no shape
        return tuple(sorted(found))


def _plain(value: str) -> bool:
    return len(value) <= MAX_PARAMETER_CHARS and PLAIN_VALUE.fullmatch(value) is not None


def _bound(template: _Template, values: tuple[str, ...]) -> RowScan:
    """The template's plan with ``values`` where its sentinels are."""
    by_sentinel = {s: values[i] for s, i in template.sentinels.items()}
    pattern = template.pattern

    def text(conjunct: str) -> str:
        return pattern.sub(lambda m: by_sentinel[m.group(0)], conjunct) if pattern else conjunct

    physical = template.plan.physical
    bound = dataclasses.replace(
        physical,
        params=[by_sentinel.get(p, p) if isinstance(p, str) else p for p in physical.params],
        pushed=[text(c) for c in physical.pushed],
        residual=[text(c) for c in physical.residual],
        superset=[text(c) for c in physical.superset],
        tree=None,  # for partial aggregates, which are never cached
    )
    return dataclasses.replace(template.plan, physical=bound)


def _same(a: RowScan, b: RowScan) -> bool:
    pa_, pb = a.physical, b.physical
    return (
        pa_.sql == pb.sql
        and pa_.params == pb.params
        and [type(p) for p in pa_.params] == [type(p) for p in pb.params]
        and (pa_.pushed, pa_.residual, pa_.superset) == (pb.pushed, pb.residual, pb.superset)
        and (pa_.limit_pushed, pa_.dialect, pa_.columns)
        == (pb.limit_pushed, pb.dialect, pb.columns)
    )
