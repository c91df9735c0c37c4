"""Prometheus metrics of the broker, on their own port.

Labels stay low-cardinality: roles, sources, outcomes and a fixed set of
denial reasons; never SQL, a person or a query id.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from accord.corelog import OTHER_REASON, REASONS
from accord.errors import (
    AccordError,
    OverQuota,
    PolicyDenied,
    SlowReader,
    query_outcome,
    scan_outcome,
)
from accord.telemetry import LATENCY_BUCKETS, ProcessMetrics

if TYPE_CHECKING:
    from collections.abc import Iterable

    from broker.breaker import CircuitState
    from broker.budget import Charge


#: What a reload reloads (broker.reload), and the limits of a quota (broker.quota).
RELOAD_KINDS = ("policy", "certificate", "client_certificate", "revocation_list")
QUOTA_LIMITS = ("concurrent_queries", "bytes_in_flight", "queries_per_second")
#: What a plan cache lookup found (broker.plan_cache.OUTCOMES).
PLAN_CACHE_OUTCOMES = ("hit", "miss", "uncacheable")


class BrokerMetrics(ProcessMetrics):
    """Every metric of one broker, in a registry of its own."""

    def __init__(self) -> None:
        super().__init__("broker")
        r = self.registry
        self.queries = Counter(
            "accord_queries", "Queries by role and outcome.", ["role", "outcome"], registry=r
        )
        self.query_duration = Histogram(
            "accord_query_duration_seconds",
            "Time to answer a query.",
            ["role"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.source_requests = Counter(
            "accord_source_requests",
            "Scans sent to a source, by outcome.",
            ["source", "outcome"],
            registry=r,
        )
        self.source_duration = Histogram(
            "accord_source_duration_seconds",
            "Time a source took for one scan.",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows_returned = Counter(
            "accord_rows_returned", "Rows sent to partners.", ["role"], registry=r
        )
        self.denials = Counter(
            "accord_policy_denials",
            "Queries refused by the policy.",
            ["role", "reason"],
            registry=r,
        )
        self.suppressed_groups = Counter(
            "accord_suppressed_groups",
            "Output groups suppressed for covering too few persons.",
            ["role"],
            registry=r,
        )
        self.bad_values = Counter(
            "accord_source_bad_values",
            "Stored values a source sent as NULL for not fitting the federation's model.",
            ["source", "table", "column"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "accord_circuit_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open.",
            ["source"],
            registry=r,
        )
        self.circuit_changes = Counter(
            "accord_circuit_changes",
            "Changes of a source's circuit breaker, by the state it entered.",
            ["source", "state"],
            registry=r,
        )
        self.partial_answers = Counter(
            "accord_partial_answers",
            "Answers sent without a source (allow_partial), by missing source.",
            ["source"],
            registry=r,
        )
        self.audit_records = Counter("accord_audit_records", "Audit records written.", registry=r)
        self.audit_write_failures = Counter(
            "accord_audit_write_failures",
            "Audit records that could not be written (their query failed).",
            registry=r,
        )
        self.reloads = Counter(
            "accord_reloads",
            "Policy and certificate reloads, by outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        self.adapter_refusals = Counter(
            "accord_adapter_identity_refusals",
            "Adapters the broker refused before a scan: wrong certificate or revoked.",
            ["source", "reason"],
            registry=r,
        )
        self.handshake_refusals = Counter(
            "accord_handshake_refusals",
            "TLS handshakes refused (no certificate, untrusted or expired, not TLS), by reason.",
            ["reason"],
            registry=r,
        )
        self.malformed_requests = Counter(
            "accord_malformed_requests",
            "Calls refused before any query: a body that does not decode, an unknown caller.",
            ["reason"],
            registry=r,
        )
        self.inflight = Gauge("accord_inflight_queries", "Queries being answered now.", registry=r)
        self.over_quota = Counter(
            "accord_admission_refusals",
            "Queries refused before any work for a partner over its quota, by limit.",
            ["role", "limit"],
            registry=r,
        )
        self.privacy_charged = Counter(
            "accord_privacy_epsilon_charged",
            "Epsilon charged to partners of differentially private roles.",
            ["role"],
            registry=r,
        )
        self.privacy_spent = Gauge(
            "accord_privacy_epsilon_spent",
            "Epsilon a partner has spent this year (its budget: the role's epsilon_per_year).",
            ["role", "partner"],
            registry=r,
        )
        self.privacy_remaining = Gauge(
            "accord_privacy_epsilon_remaining",
            "Epsilon a partner may still spend this year.",
            ["role", "partner"],
            registry=r,
        )
        self.plan_cache = Counter(
            "accord_plan_cache_lookups",
            "Plan cache lookups: hit (a template bound), miss (prepared, "
            "and a template built on a shape's second sight), uncacheable.",
            ["outcome"],
            registry=r,
        )
        self.slow_readers = Counter(
            "accord_slow_reader_cancels",
            "Answers cancelled because the client stopped reading (ACCORD_SLOW_READER_S).",
            ["role"],
            registry=r,
        )

    def expect(self, sources: Iterable[str], roles: Iterable[str]) -> None:
        """Starts at zero the series a dashboard panel or an alert reads
        before the first event (rate() and increase() cannot see a counter's
        first step otherwise): bounded sets, the federation's and the policy's."""
        for kind in RELOAD_KINDS:
            for outcome in ("ok", "failed"):
                self.reloads.labels(kind, outcome)
        for reason in (*(name for name, _ in REASONS), OTHER_REASON):
            self.handshake_refusals.labels(reason)
        for source in sources:
            self.partial_answers.labels(source)
            for reason in ("certificate", "revoked"):  # broker.adapter_identity
                self.adapter_refusals.labels(source, reason)
        for outcome in PLAN_CACHE_OUTCOMES:
            self.plan_cache.labels(outcome)
        for role in roles:
            self.slow_readers.labels(role)
            for limit in QUOTA_LIMITS:
                self.over_quota.labels(role, limit)

    def query_done(
        self,
        role: str,
        error: BaseException | None,
        started: float,
        rows: int = 0,
        suppressed: int = 0,
    ) -> None:
        self.queries.labels(role, query_outcome(error)).inc()
        self.query_duration.labels(role).observe(time.monotonic() - started)
        self.rows_returned.labels(role).inc(rows)
        if suppressed:
            self.suppressed_groups.labels(role).inc(suppressed)
        if isinstance(error, PolicyDenied):
            self.denials.labels(role, error.reason).inc()
        if isinstance(error, OverQuota):
            self.over_quota.labels(role, error.limit).inc()
        if isinstance(error, SlowReader):
            self.slow_readers.labels(role).inc()

    def privacy_spent_by(self, role: str, partner: str, charge: Charge) -> None:
        self.privacy_charged.labels(role).inc(charge.charged)
        self.privacy_spent.labels(role, partner).set(charge.spent)
        self.privacy_remaining.labels(role, partner).set(charge.remaining)

    def scan_done(self, source: str, error: AccordError | None, elapsed_s: float) -> None:
        self.source_requests.labels(source, scan_outcome(error)).inc()
        self.source_duration.labels(source).observe(elapsed_s)

    def bad_values_received(self, source: str, table: str, counts: dict[str, int]) -> None:
        for column, n in counts.items():
            self.bad_values.labels(source, table, column).inc(n)

    def circuit_changed(self, source: str, state: CircuitState, *, initial: bool = False) -> None:
        """Sets the gauge; counts the change unless it is the start's CLOSED."""
        self.circuit_state.labels(source).set(int(state))
        changes = self.circuit_changes.labels(source, state.name.lower())
        if not initial:
            changes.inc()
