"""The privacy budget of each partner of a differentially private role, and
the noisy draws already released, kept durably in the work dir
(``WORKDIR/privacy/ledger.sqlite3``; ``broker/policy/privacy.py`` says what
is spent and why).

A query of such a role first *reserves* its role's ``epsilon_per_query``
(:meth:`PrivacyLedger.reserve`): refused with RESOURCE_EXHAUSTED, saying
when the budget renews, if what the partner spent this calendar year (UTC)
plus what its queries under way reserved would pass ``epsilon_per_year``.
So concurrent queries cannot overspend: reservations are counted under one
lock (and the commit checks the bound again inside its transaction, should
another broker share the file). When its answer is released, the query *commits*
(:meth:`PrivacyLedger.commit`), in one SQLite transaction: the draws of its
new cells are stored (the first stored wins, so two queries racing for one
cell release one value), the cells are marked as given to the partner, and
the partner is charged the epsilon, or nothing if every cell was given to it
before (a repeat). Then the answer leaves. A query that fails gives its
reservation back (:meth:`PrivacyLedger.release`). The transaction is
durable (``synchronous=FULL``) before the answer leaves: a restart keeps
what was spent, and a crash after the commit counts the epsilon as spent.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accord.errors import OverQuota

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

#: Epsilon below this is rounding in float sums, not spending.
_SLACK = 1e-9

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spent (
    partner TEXT NOT NULL, year INTEGER NOT NULL, epsilon REAL NOT NULL,
    queries INTEGER NOT NULL, PRIMARY KEY (partner, year));
CREATE TABLE IF NOT EXISTS draws (
    role TEXT NOT NULL, year INTEGER NOT NULL, cell TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (role, year, cell));
CREATE TABLE IF NOT EXISTS given (
    partner TEXT NOT NULL, year INTEGER NOT NULL, cell TEXT NOT NULL,
    PRIMARY KEY (partner, year, cell));
"""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def renewal(year: int) -> dt.datetime:
    """When a budget of ``year`` renews: the next 1 January, 00:00 UTC."""
    return dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)


@dataclass
class Reservation:
    """Epsilon held for one query under way."""

    partner: str
    year: int
    epsilon: float
    per_year: float
    open: bool = True


@dataclass(frozen=True)
class Charge:
    """What one answer cost its partner (for the audit record and metrics)."""

    charged: float
    spent: float
    remaining: float
    per_year: float
    year: int

    def as_record(self) -> dict[str, Any]:
        return {
            "epsilon_charged": round(self.charged, 9),
            "epsilon_spent": round(self.spent, 9),
            "epsilon_remaining": round(self.remaining, 9),
            "epsilon_per_year": self.per_year,
            "year": self.year,
        }


class PrivacyLedger:
    """Spent epsilon per (partner, year), reservations under way, released draws.

    ``path`` None keeps everything in memory (tests, benchmarks): the broker
    gives it the work dir's file."""

    def __init__(self, path: Path | None = None, clock: Callable[[], dt.datetime] = _utc_now):
        self.clock = clock
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path),
            check_same_thread=False,  # used from the policy threads, under self._lock
            isolation_level=None,  # transactions are explicit
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._reserved: dict[tuple[str, int], float] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def year(self) -> int:
        return self.clock().year

    def _spent(self, partner: str, year: int) -> float:
        row = self._db.execute(
            "SELECT epsilon FROM spent WHERE partner = ? AND year = ?", (partner, year)
        ).fetchone()
        return float(row[0]) if row else 0.0

    def spent(self, partner: str, year: int | None = None) -> float:
        with self._lock:
            return self._spent(partner, self.year() if year is None else year)

    def remaining(self, partner: str, per_year: float) -> float:
        """What ``partner`` may still spend this year (queries under way not counted)."""
        return max(per_year - self.spent(partner), 0.0)

    def reserve(self, partner: str, epsilon: float, per_year: float) -> Reservation:
        """Holds ``epsilon`` for one query, or refuses it (OverQuota, with the
        seconds until the budget renews)."""
        year = self.clock().year
        with self._lock:
            held = self._reserved.get((partner, year), 0.0)
            spent = self._spent(partner, year)
            reservation = Reservation(partner, year, epsilon, per_year)
            if spent + held + epsilon > per_year + _SLACK:
                raise self._exhausted(partner, year, reservation, held)
            self._reserved[(partner, year)] = held + epsilon
        return reservation

    def _exhausted(
        self, partner: str, year: int, reservation: Reservation, held: float
    ) -> OverQuota:
        renews = renewal(year)
        spent = self._spent(partner, year)
        return OverQuota(
            f"the partner's privacy budget for {year} is spent (epsilon {spent:g} of "
            f"{reservation.per_year:g}, {held:g} held by queries under way; a query costs "
            f"{reservation.epsilon:g}); it renews on {renews:%Y-%m-%d} 00:00 UTC",
            limit="privacy_budget",
            retry_after_s=max((renews - self.clock()).total_seconds(), 0.001),
        )

    def _unhold(self, reservation: Reservation) -> None:
        key = (reservation.partner, reservation.year)
        left = self._reserved.get(key, 0.0) - reservation.epsilon
        if left > _SLACK:
            self._reserved[key] = left
        else:
            self._reserved.pop(key, None)
        reservation.open = False

    def release(self, reservation: Reservation) -> None:
        """Gives back a reservation whose query released nothing; a second call does nothing."""
        with self._lock:
            if reservation.open:
                self._unhold(reservation)

    def draws(self, role: str, year: int, cells: Iterable[str]) -> dict[str, Any]:
        """The values already released for these cells of ``role``."""
        wanted = list(cells)
        found: dict[str, Any] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for cell, value in self._db.execute(
                    "SELECT cell, value FROM draws WHERE role = ? AND year = ? "
                    f"AND cell IN ({marks})",
                    (role, year, *chunk),
                ):
                    found[cell] = json.loads(value)
        return found

    def commit(
        self, reservation: Reservation, role: str, fresh: Mapping[str, Any], cells: list[str]
    ) -> tuple[dict[str, Any], Charge]:
        """Stores ``fresh`` draws (a cell stored meanwhile keeps its value),
        marks ``cells`` given to the partner and charges the reservation's
        epsilon unless all of them were given before. Returns the stored
        value of every cell and the charge. Durable when it returns."""
        partner, year = reservation.partner, reservation.year
        with self._lock:
            if not reservation.open:
                raise RuntimeError("a reservation is committed once")
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT OR IGNORE INTO draws VALUES (?, ?, ?, ?)",
                    [(role, year, cell, json.dumps(value)) for cell, value in fresh.items()],
                )
                before = db.total_changes
                db.executemany(
                    "INSERT OR IGNORE INTO given VALUES (?, ?, ?)",
                    [(partner, year, cell) for cell in cells],
                )
                new = db.total_changes > before
                charged = reservation.epsilon if new else 0.0
                # Another broker over the same file may have spent meanwhile:
                # the transaction serializes them, this check keeps the bound.
                if charged and self._spent(partner, year) + charged > reservation.per_year + _SLACK:
                    raise self._exhausted(partner, year, reservation, 0.0)
                if charged:
                    db.execute(
                        "INSERT INTO spent VALUES (?, ?, ?, 1) ON CONFLICT (partner, year) "
                        "DO UPDATE SET epsilon = epsilon + excluded.epsilon, queries = queries + 1",
                        (partner, year, charged),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._unhold(reservation)
            spent = self._spent(partner, year)
        values = self.draws(role, year, cells)
        per_year = reservation.per_year
        return values, Charge(charged, spent, max(per_year - spent, 0.0), per_year, year)
