"""The circuit breaker's states, with an explicit clock."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import (
    CircuitOpen,
    ScanCancelled,
    SourceError,
    SourceRefused,
    SourceTimedOut,
    SourceUnavailable,
)
from broker.breaker import Breakers, CircuitBreaker, CircuitState, counts_against_source


def state_of(breaker: CircuitBreaker) -> CircuitState:
    """The breaker's state now. A call, not ``breaker.state`` itself: mypy would
    keep the state narrowed by an earlier assertion across the calls that change it."""
    return breaker.state


def test_opens_after_repeated_failures_and_answers_at_once():
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=10)
    for _ in range(2):
        breaker.failed(now=0)
    assert breaker.allow(now=0) and state_of(breaker) is CircuitState.CLOSED
    breaker.failed(now=1)
    assert state_of(breaker) is CircuitState.OPEN
    assert not breaker.allow(now=5)


def test_half_opens_for_one_probe_and_closes_on_success():
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=10)
    breaker.failed(now=0)
    assert breaker.allow(now=10.5)  # the probe
    assert state_of(breaker) is CircuitState.HALF_OPEN
    assert not breaker.allow(now=10.6)  # only one probe at a time
    breaker.succeeded()
    assert state_of(breaker) is CircuitState.CLOSED and breaker.allow(now=11)


def test_a_failed_probe_opens_again():
    breaker = CircuitBreaker(failure_threshold=5, reset_timeout_s=10)
    for _ in range(5):
        breaker.failed(now=0)
    assert breaker.allow(now=20)
    breaker.failed(now=20)
    assert state_of(breaker) is CircuitState.OPEN and not breaker.allow(now=25)


def test_a_success_resets_the_count():
    breaker = CircuitBreaker(failure_threshold=2)
    breaker.failed(now=0)
    breaker.succeeded()
    breaker.failed(now=1)
    assert state_of(breaker) is CircuitState.CLOSED


def test_one_breaker_per_source():
    breakers = Breakers(failure_threshold=1)
    breakers["BC"].failed(now=0)
    assert breakers.states() == {"BC": CircuitState.OPEN}
    assert breakers["ON"].state is CircuitState.CLOSED


def test_changes_of_state_are_reported_per_source():
    seen = []
    breakers = Breakers(failure_threshold=1, reset_timeout_s=1)
    breakers.on_change = lambda source, state: seen.append((source, state))
    breakers["BC"].failed(now=0)
    breakers["BC"].allow(now=2)
    breakers["BC"].succeeded()
    breakers["BC"].succeeded()  # no change, no report
    assert seen == [
        ("BC", CircuitState.OPEN),
        ("BC", CircuitState.HALF_OPEN),
        ("BC", CircuitState.CLOSED),
    ]


def test_the_clock_decides_when_a_probe_may_go():
    now = [100.0]
    breakers = Breakers(failure_threshold=1, reset_timeout_s=10, clock=lambda: now[0])
    breaker = breakers["BC"]
    breaker.failed()
    assert breaker.opened_at == 100.0
    now[0] = 109.9
    assert not breaker.allow() and state_of(breaker) is CircuitState.OPEN
    now[0] = 110.0
    assert breaker.allow() and state_of(breaker) is CircuitState.HALF_OPEN


def test_the_default_clock_is_monotonic():
    import time

    assert CircuitBreaker().clock is time.monotonic
    assert Breakers()["BC"].clock is time.monotonic


# What a scan can end with: (kind, seconds it had). Only "down" and a
# "timeout" with at least MIN seconds are the source's own failures.
MIN = 1.0
OUTCOMES = st.tuples(
    st.sampled_from(["ok", "down", "timeout", "cancelled", "refused", "invalid", "exhausted"]),
    st.sampled_from([0.0, 0.001, 0.5, MIN, 30.0]),
)


def error_of(kind: str) -> SourceError | None:
    return {
        "ok": None,
        "down": SourceUnavailable("BC", "down"),
        "timeout": SourceTimedOut("BC", "late"),
        "cancelled": ScanCancelled("BC", "cancelled"),
        "refused": SourceRefused("BC", "refused"),
        "invalid": SourceError("BC", "INVALID_ARGUMENT: bad"),
        "exhausted": SourceError("BC", "stopped: a per-query limit was exceeded"),
    }[kind]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(OUTCOMES, max_size=30), st.integers(1, 5))
def test_only_the_sources_own_failures_move_the_breaker(outcomes, threshold):
    """The breaker agrees with a count kept by hand: of the source's own
    failures since the last success. Nothing else moves it."""
    breaker = CircuitBreaker(failure_threshold=threshold, min_timeout_s=MIN)
    own = 0
    for kind, budget in outcomes:
        breaker.ended(error_of(kind), budget)
        if kind == "ok":
            own = 0
        elif kind == "down" or (kind == "timeout" and budget >= MIN):
            own += 1
        assert breaker.failures == own
        expected = CircuitState.OPEN if own >= threshold else CircuitState.CLOSED
        assert state_of(breaker) is expected


def test_a_circuit_open_ending_is_not_a_failure():
    assert not counts_against_source(CircuitOpen("BC", "open"), 30.0, MIN)
