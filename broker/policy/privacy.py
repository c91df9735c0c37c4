"""Differential privacy for aggregate-only roles with ``privacy:`` (issue 19).

Rounding alone (``broker.policy.disclosure``) gives each *distinct* cell an
independent draw, so averaging many distinct differencing pairs narrows a
withheld cell without end. A role with ``privacy: {epsilon_per_query,
epsilon_per_year, rows_per_person}`` therefore releases every statistic as:

1. **Bounded contributions.** Its secure views keep at most
   ``rows_per_person[table]`` rows of one person (the same rows every time),
   and every measure is clamped to ``[0, clamp]`` (``measures: {column:
   {base, clamp}}``); such a role reads one table per query (a join has no
   bound on what one person adds). One person then changes a column of
   counts by at most ``rows_per_person`` in total over its groups (L1), a
   column of sums by ``rows_per_person * clamp``.
2. **Noise, with OpenDP.** Each statistic column of the answer (a count, a
   sum; an average is two: its sum and its count) gets discrete Laplace
   noise from ``opendp.measurements.make_laplace`` over the vector of its
   cells, with the scale for ``epsilon_per_query / statistics`` at its
   sensitivity; OpenDP's privacy map checks the columns together spend at
   most ``epsilon_per_query`` (basic composition).
3. **Rounding and suppression** as before, on the noisy value
   (post-processing costs no privacy): a multiple of the base, never
   negative; groups under ``min_group_size`` persons withheld. Which groups
   appear is still decided by that exact threshold, outside the epsilon.

**The same cell.** A cell is one (role, year, the query's rewritten SQL,
its group's dimension values, the statistic's place in the query). Its
released value is stored in the partner ledger (``broker.budget``) the
first time, and every later answer with that cell gives the stored value:
the same query asked again gives the same numbers, to every partner of the
role. Identity comes from the query, not from the data: a cell identified
by its persons would answer a differencing pair with two equal values
exactly when the cell between them is empty. A rephrased query is another
cell: a fresh draw, paid for.

**The budget.** Every answer that holds a cell new to its partner is
charged ``epsilon_per_query``; one whose every cell the partner was given
before is charged nothing (what it could learn, it has). So a partner
spends at most ``epsilon_per_year`` a calendar year (UTC), whatever it asks;
reserved before the scans, committed before the answer leaves, refused with
RESOURCE_EXHAUSTED and the date it renews when spent (``broker.budget``).

**What averaging can recover.** With total epsilon E a year, at most
n = E / epsilon_per_query answers, each with noise of scale
b = s * rows / epsilon_per_query (s statistics). Any unbiased estimate of a
withheld count from differences of such answers has a standard deviation
of at least 2 * rows / sqrt(epsilon_per_query * E) (Cramér-Rao: a Laplace
sample of scale b carries Fisher information 1/b², n of them n/b², and a
difference of two cells needs both): :func:`averaging_bound`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import opendp.prelude as dp
import pyarrow as pa

from broker.policy.disclosure import _field, draw, rounded

if TYPE_CHECKING:
    from collections.abc import Sequence

    from broker.budget import Charge, PrivacyLedger, Reservation
    from broker.policy.disclosure import Output, ReleaseSpec
    from broker.policy.model import Privacy

# OpenDP ships its mechanisms under "contrib" (not yet formally vetted by
# its own process); the Laplace mechanism and its privacy map are among
# the library's best reviewed.
dp.enable_features("contrib")


@dataclass(frozen=True)
class Statistic:
    """One noisy column: where its true values are, how it is rounded, its scale."""

    column: int  # position in the merged table
    kind: str  # "count" or "sum"
    base: int
    sensitivity: int
    slot: str  # its name in a cell's identity


def statistics(spec: ReleaseSpec) -> list[Statistic]:
    """The columns an answer adds noise to, one per distinct statistic (an
    average's SUM and COUNT are those of the same column asked alone)."""
    found: dict[str, Statistic] = {}
    for index, output in enumerate(spec.outputs):
        if output.kind in ("count", "sum"):
            (slot,) = output.slots
            found.setdefault(
                slot, Statistic(index, output.kind, output.base, output.sensitivity, slot)
            )
        elif output.kind == "avg":
            (total, count), (sum_slot, count_slot) = output.hidden, output.slots
            found.setdefault(
                sum_slot, Statistic(total, "sum", output.base, output.sensitivity, sum_slot)
            )
            found.setdefault(
                count_slot,
                Statistic(count, "count", spec.count_base, output.count_sensitivity, count_slot),
            )
    return list(found.values())


def _measurement(statistic: Statistic, scale: float) -> dp.Measurement:
    """Discrete Laplace noise on a vector of 64-bit integers (one per group:
    OpenDP's default integer is 32 bits, which a national sum of days
    passes)."""
    domain = dp.vector_domain(dp.atom_domain(T="i64"))
    return dp.m.make_laplace(domain, dp.l1_distance(T="i64"), scale=scale)


def scales(spec: ReleaseSpec, privacy: Privacy) -> list[float]:
    """Each statistic's noise scale: ``epsilon_per_query`` split evenly,
    checked against OpenDP's own privacy map."""
    found = statistics(spec)
    if not found:
        return []
    share = privacy.epsilon_per_query / len(found)
    chosen = [max(s.sensitivity, 1) / share for s in found]
    spent = sum(
        _measurement(s, scale).map(max(s.sensitivity, 1))  # type: ignore[no-untyped-call]
        for s, scale in zip(found, chosen, strict=True)
    )
    assert spent <= privacy.epsilon_per_query * (1 + 1e-9), spent
    return chosen


def averaging_bound(privacy: Privacy, rows: int) -> float:
    """The smallest standard deviation with which a year of differencing
    answers of one count each (rows per person ``rows``) can estimate a
    withheld count, without bias (see the module docstring)."""
    return 2 * rows / math.sqrt(privacy.epsilon_per_query * privacy.epsilon_per_year)


def cell_id(key: bytes, query: str, group: Sequence[Any], slot: str) -> str:
    """A cell's stored name: keyed, so the ledger names no dimension value."""
    message = f"{query}|{group!r}|{slot}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def query_identity(rewritten_sql: str) -> str:
    return hashlib.sha256(rewritten_sql.encode()).hexdigest()


def release_private(
    table: pa.Table,
    spec: ReleaseSpec,
    key: bytes,
    privacy: Privacy,
    ledger: PrivacyLedger,
    reservation: Reservation,
    role: str,
    query: str,
) -> tuple[pa.Table, int, Charge]:
    """The answer a private role may see, charged to the reservation's partner
    before it is returned; returns (released, groups withheld, charge)."""
    values = [column.to_pylist() for column in table.columns]
    kept = [
        r
        for r in range(table.num_rows)
        if all((values[i][r] or 0) >= spec.min_group_size for i in spec.persons)
    ]
    dimensions = [i for i, o in enumerate(spec.outputs) if o.kind == "dimension"]
    noisy = statistics(spec)
    cells = {
        (r, s.slot): cell_id(key, query, [values[i][r] for i in dimensions], s.slot)
        for r in kept
        for s in noisy
    }
    stored = ledger.draws(role, reservation.year, cells.values())
    fresh: dict[str, Any] = {}
    for statistic, scale in zip(noisy, scales(spec, privacy), strict=True):
        wanted = [cells[(r, statistic.slot)] for r in kept]
        truths = {
            cell: _integer(values[statistic.column][r])
            for r, cell in zip(kept, wanted, strict=True)
            if cell not in stored
        }
        present = [(cell, t) for cell, t in truths.items() if t is not None]
        drawn = _measurement(statistic, scale)([t for _, t in present]) if present else []
        fresh.update(dict.fromkeys(truths))  # a SUM of NULLs stays NULL
        for (cell, _), value in zip(present, drawn, strict=True):
            # the rounding's own draw, keyed apart from the noise's
            u = draw(key, [], "round", statistic.base, cell)
            fresh[cell] = max(rounded(int(value), statistic.base, u), 0)
    released, charge = ledger.commit(reservation, role, fresh, list(cells.values()))
    rows = [_row(spec, values, r, released, cells) for r in kept]
    fields = [_field(table.schema.field(i), o) for i, o in enumerate(spec.outputs)]
    columns = [pa.array([row[i] for row in rows], f.type) for i, f in enumerate(fields)]
    answer = pa.Table.from_arrays(columns, schema=pa.schema(fields))
    return answer, table.num_rows - len(kept), charge


def _integer(value: Any) -> int | None:
    """A true count or sum as an integer (sums of integer measures are exact)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return int(round(value))  # noqa: RUF046  (Decimal and float alike)


def _row(
    spec: ReleaseSpec,
    values: list[list[Any]],
    r: int,
    released: dict[str, Any],
    cells: dict[tuple[int, str], str],
) -> list[Any]:
    row: list[Any] = []
    for index, output in enumerate(spec.outputs):
        row.append(_value(output, index, values, r, released, cells))
    return row


def _value(
    output: Output,
    index: int,
    values: list[list[Any]],
    r: int,
    released: dict[str, Any],
    cells: dict[tuple[int, str], str],
) -> Any:
    if output.kind == "dimension":
        return values[index][r]
    if output.kind in ("count", "sum"):
        return released.get(cells[(r, output.slots[0])])
    total = released.get(cells[(r, output.slots[0])])
    count = released.get(cells[(r, output.slots[1])])
    return None if total is None or not count else float(total) / count
