"""The generator's reference date and the small random helpers its modules share.

Dates are handled as day ordinals (``date.toordinal()``) while the data is
built; ``EPOCH`` converts them to and from Arrow's days since 1970.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import unicodedata
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import random
    from collections.abc import Sequence


#: "Today" for the generated data. Fixed, so the same seed gives the same
#: files whenever they are generated; planned releases lie after it.
REFERENCE_DATE = dt.date(2026, 11, 1)

_T = TypeVar("_T")

# Day ordinals: the reference date, Arrow's epoch (1970-01-01) and
# 1990-01-01, before which no sentence or alert is dated.
REF = REFERENCE_DATE.toordinal()
EPOCH = dt.date(1970, 1, 1).toordinal()
D1990 = dt.date(1990, 1, 1).toordinal()


class Pick(Generic[_T]):
    """Weighted choice with one random draw (faster than Random.choices)."""

    __slots__ = ("cum", "items", "total")

    def __init__(self, pairs: Sequence[tuple[_T, float]]) -> None:
        self.items = [item for item, _ in pairs]
        self.cum = list(itertools.accumulate(weight for _, weight in pairs))
        self.total = self.cum[-1]

    def __call__(self, rng: random.Random) -> _T:
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.total)]


def decreasing(items: Sequence[_T]) -> Pick[_T]:
    """Earlier items more likely (the first city of a province is its largest)."""
    return Pick([(item, 1.0 / (i + 1)) for i, item in enumerate(items)])


def between(rng: random.Random, lo: int, hi: int) -> int:
    """A uniform integer in [lo, hi]; lo when the range is empty."""
    if hi <= lo:
        return lo
    return lo + int(rng.random() * (hi - lo + 1))


_ASCII_CACHE: dict[str, str] = {}


def strip_accents(text: str) -> str:
    out = _ASCII_CACHE.get(text)
    if out is None:
        decomposed = unicodedata.normalize("NFKD", text)
        out = "".join(c for c in decomposed if not unicodedata.combining(c))
        _ASCII_CACHE[text] = out
    return out
