"""A circuit breaker per source system.

After ``failure_threshold`` failures in a row a source's circuit opens: its
scans fail at once, without waiting on a system that is down. After
``reset_timeout_s`` one probe scan is let through (half-open); its success
closes the circuit, its failure opens it again.

Time comes from ``clock`` (``time.monotonic`` unless given), so a test can
advance it instead of waiting the reset period out.
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class CircuitState(enum.IntEnum):
    """Also the value of the ``accord_circuit_state`` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    reset_timeout_s: float = 10.0
    #: Told of every change of state (health and metrics follow it).
    on_change: Callable[[CircuitState], None] | None = None
    #: Seconds from an arbitrary start, never going back.
    clock: Callable[[], float] = time.monotonic
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

    def _changed(self, before: CircuitState) -> None:
        if self.state is not before and self.on_change is not None:
            self.on_change(self.state)


@dataclass
class Breakers:
    """The breakers of every source, created on first use."""

    failure_threshold: int = 5
    reset_timeout_s: float = 10.0
    #: Told (source, new state) of every change.
    on_change: Callable[[str, CircuitState], None] | None = None
    #: The clock of every breaker (see CircuitBreaker.clock).
    clock: Callable[[], float] = time.monotonic
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
                ),
            )
        return breaker

    def _notify(self, source: str, state: CircuitState) -> None:
        if self.on_change is not None:
            self.on_change(source, state)

    def states(self) -> dict[str, CircuitState]:
        return {source: b.state for source, b in self._breakers.items()}
