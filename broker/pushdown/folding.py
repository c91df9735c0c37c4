"""Constant folding before pushdown: ``0.06 - 0.01`` is ``0.05`` and
``DATE '1994-01-01' + INTERVAL '1' YEAR`` is ``DATE '1995-01-01'``.

The Scan predicate grammar (``accord.predicate``) has no arithmetic, so a
conjunct with a constant expression in it was never pushed. Folding turns
each column-free arithmetic into the literal DuckDB would compute, and
only where that literal is exactly DuckDB's value: a folded bound that
differed would drop rows at the source that the merge keeps. So numbers
fold by sqlglot's simplifier only for +, - and * over plain decimal
literals (exact in decimal arithmetic, as DuckDB's DECIMAL is; no
division, no exponent notation, no more digits than exact arithmetic
keeps), and a date moves by whole days, weeks, months, quarters or years
(a month past the 31st is the month's last day, as in DuckDB). Anything
else is left as it was, and the conjunct stays in the broker if it is not
plain.

Only the pushed copy is folded: the merge evaluates the caller's own
expression, so folding can trim rows early but never decides an answer.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

from sqlglot import exp
from sqlglot.optimizer.simplify import simplify

#: Months per interval unit that moves a date by calendar months.
_MONTHS = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}
#: Days per interval unit that moves a date by whole days.
_DAYS = {"DAY": 1, "WEEK": 7}
_PLAIN_NUMBER = re.compile(r"^\d+(\.\d+)?$")
#: Digits in all of an expression's literals that exact decimal
#: arithmetic (28 significant digits) always keeps.
_MAX_DIGITS = 24
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul)


def fold_constants(tree: exp.Expr) -> exp.Expr:
    """A copy of ``tree`` with every foldable constant expression folded,
    innermost first (``d + INTERVAL '1' MONTH + INTERVAL '1' DAY`` folds
    twice)."""
    root = tree.copy()
    for node in reversed(list(root.walk(bfs=False))):
        folded = _fold(node)
        if folded is not node:
            if node is root:
                root = folded
            else:
                node.replace(folded)
    return root


def _fold(node: exp.Expr) -> exp.Expr:
    if isinstance(node, (exp.Add, exp.Sub)):
        moved = _moved_date(node)
        if moved is not None:
            return moved
    if isinstance(node, _ARITHMETIC) and _numeric_constant(node):
        folded: exp.Expr = simplify(node.copy(), dialect="duckdb")
        if _is_number(folded):
            return folded
    return node


def _numeric_constant(node: exp.Expr) -> bool:
    """Only +, -, * and parentheses over plain decimal literals, few digits in all."""
    digits = 0
    for part in node.walk():
        if isinstance(part, exp.Literal):
            if part.is_string or not _PLAIN_NUMBER.match(part.this):
                return False
            digits += len(part.this.replace(".", ""))
        elif not isinstance(part, (*_ARITHMETIC, exp.Neg, exp.Paren)):
            return False
    return digits <= _MAX_DIGITS


def _is_number(node: exp.Expr) -> bool:
    inner = node.this if isinstance(node, exp.Neg) else node
    return isinstance(inner, exp.Literal) and not inner.is_string


def _moved_date(node: exp.Add | exp.Sub) -> exp.Expr | None:
    """``date ± interval`` (or ``interval + date``) as a date literal, or None."""
    left, right = node.this.unnest(), node.expression.unnest()
    if isinstance(node, exp.Add) and isinstance(left, exp.Interval):
        left, right = right, left
    day = _date_literal(left)
    amount = _interval(right)
    if day is None or amount is None:
        return None
    months, days = amount
    sign = -1 if isinstance(node, exp.Sub) else 1
    try:
        moved = _add_months(day, sign * months) + dt.timedelta(days=sign * days)
    except (OverflowError, ValueError):
        return None  # out of the date range: DuckDB decides (it errors)
    return exp.cast(exp.Literal.string(moved.isoformat()), exp.DataType.Type.DATE)


def _date_literal(node: exp.Expr) -> dt.date | None:
    if not (
        isinstance(node, exp.Cast)
        and node.to.is_type(exp.DataType.Type.DATE)
        and isinstance(node.this, exp.Literal)
        and node.this.is_string
    ):
        return None
    text = node.this.this
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _interval(node: exp.Expr) -> tuple[int, int] | None:
    """(months, days) of a whole-unit interval literal, or None."""
    if not isinstance(node, exp.Interval) or not isinstance(node.this, exp.Literal):
        return None
    unit = node.args.get("unit")
    name = unit.name.upper().removesuffix("S") if unit is not None else ""
    text = node.this.this
    if not re.fullmatch(r"-?\d{1,6}", text):
        return None
    count = int(text)
    if name in _MONTHS:
        return count * _MONTHS[name], 0
    if name in _DAYS:
        return 0, count * _DAYS[name]
    return None  # hours and smaller would make a timestamp, not a date


def _add_months(day: dt.date, months: int) -> dt.date:
    """DuckDB's date + months: the same day of the month, else the month's last."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))
