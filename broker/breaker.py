"""A circuit breaker per source system.

After ``failure_threshold`` failures in a row a source's circuit opens: its
scans fail at once, without waiting on a system that is down. After
``reset_timeout_s`` one probe scan is let through (half-open); its success
closes the circuit, its failure opens it again.

Only the source's own failures count (:func:`counts_against_source`): any
partner can cut a scan short (a tiny deadline, a cancel, a query over a
limit or one the adapter refuses), and if that counted, one partner could
open every circuit and keep the federation down for everyone else. A scan
that tells nothing about its source leaves the count as it was, and a probe
that ends so gives its place to the next scan.

Time comes from ``clock`` (``time.monotonic`` unless given), so a test can
advance it instead of waiting the reset period out.
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from accord.errors import CircuitOpen, SourceTimedOut, SourceUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from accord.errors import SourceError

#: Seconds an open circuit waits before its half-open probe
#: (ACCORD_CIRCUIT_RESET_S). Short, because the probe is cheap: against a
#: source still down it is one refused connection; against one that came
#: back it is what lets it in again (with accord.tls.RECONNECT_MAX_MS, a
#: returned source answers within RESET_TIMEOUT_S + 1.2 s + one scan).
RESET_TIMEOUT_S = 2.0

#: A scan that timed out counts only if it had at least this long (seconds;
#: ACCORD_SOURCE_MIN_TIMEOUT_S): a shorter deadline is the caller's budget.
MIN_TIMEOUT_S = 1.0


def counts_against_source(error: SourceError, budget_s: float, min_timeout_s: float) -> bool:
    """Whether a scan that ended with ``error`` after it was given ``budget_s``
    seconds tells of its source failing.

    Unreachable, down, or sending unusable data: yes. Timed out: only within
    a deadline of at least ``min_timeout_s``. Anything else (cancelled, over a
    per-query limit, refused or found invalid by the adapter, not asked since
    the circuit is open) is about the request or the caller, not the source.

    >>> counts_against_source(SourceTimedOut("BC", "late"), 0.001, 1.0)
    False
    >>> counts_against_source(SourceTimedOut("BC", "late"), 30.0, 1.0)
    True
    """
    if isinstance(error, SourceTimedOut):
        return budget_s >= min_timeout_s
    return isinstance(error, SourceUnavailable) and not isinstance(error, CircuitOpen)


class CircuitState(enum.IntEnum):
    """Also the value of the ``accord_circuit_state`` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    reset_timeout_s: float = RESET_TIMEOUT_S
    #: Told of every change of state (health and metrics follow it).
    on_change: Callable[[CircuitState], None] | None = None
    #: Seconds from an arbitrary start, never going back.
    clock: Callable[[], float] = time.monotonic
    #: See counts_against_source.
    min_timeout_s: float = MIN_TIMEOUT_S
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    _probing: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def allow(self, now: float | None = None) -> bool:
        """Whether a scan may go to the source now (may start the one probe)."""
        now = self.clock() if now is None else now
        with self._lock:
            before = self.state
            if self.state is CircuitState.OPEN and now - self.opened_at >= self.reset_timeout_s:
                self.state = CircuitState.HALF_OPEN
                self._probing = False
            allowed = self.state is CircuitState.CLOSED
            if self.state is CircuitState.HALF_OPEN and not self._probing:
                self._probing = allowed = True
        self._changed(before)
        return allowed

    def succeeded(self) -> None:
        with self._lock:
            before = self.state
            self.state = CircuitState.CLOSED
            self.failures = 0
            self._probing = False
        self._changed(before)

    def failed(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        with self._lock:
            before = self.state
            self.failures += 1
            if self.state is CircuitState.HALF_OPEN or self.failures >= self.failure_threshold:
                self.state = CircuitState.OPEN
                self.opened_at = now
                self._probing = False
        self._changed(before)

    def released(self) -> None:
        """A scan ended telling nothing about the source: if it was the probe,
        the next scan may probe instead."""
        with self._lock:
            self._probing = False

    def ended(self, error: SourceError | None, budget_s: float) -> None:
        """Records a scan that was allowed and had ``budget_s`` seconds."""
        if error is None:
            self.succeeded()
        elif counts_against_source(error, budget_s, self.min_timeout_s):
            self.failed()
        else:
            self.released()

    def _changed(self, before: CircuitState) -> None:
        if self.state is not before and self.on_change is not None:
            self.on_change(self.state)


@dataclass
class Breakers:
    """The breakers of every source, created on first use."""

    failure_threshold: int = 5
    reset_timeout_s: float = RESET_TIMEOUT_S
    #: Told (source, new state) of every change.
    on_change: Callable[[str, CircuitState], None] | None = None
    #: The clock of every breaker (see CircuitBreaker.clock).
    clock: Callable[[], float] = time.monotonic
    #: See counts_against_source.
    min_timeout_s: float = MIN_TIMEOUT_S
    _breakers: dict[str, CircuitBreaker] = field(default_factory=dict)

    def __getitem__(self, source: str) -> CircuitBreaker:
        breaker = self._breakers.get(source)
        if breaker is None:
            breaker = self._breakers.setdefault(
                source,
                CircuitBreaker(
                    self.failure_threshold,
                    self.reset_timeout_s,
                    lambda state: self._notify(source, state),
                    self.clock,
                    self.min_timeout_s,
                ),
            )
        return breaker

    def _notify(self, source: str, state: CircuitState) -> None:
        if self.on_change is not None:
            self.on_change(source, state)

    def states(self) -> dict[str, CircuitState]:
        return {source: b.state for source, b in self._breakers.items()}
