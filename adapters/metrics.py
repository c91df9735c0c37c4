"""Prometheus metrics of one adapter, on their own port.

What the broker cannot see from outside: how long the database took, what
the adapter refused, how much it read, how many stored values did not fit.
Labels are the source, the logical table (and column) and an outcome; never
SQL, a predicate, a stored value or a query id.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from accord.errors import scan_outcome
from accord.telemetry import LATENCY_BUCKETS, ProcessMetrics
from adapters.scan_plans import OUTCOMES as SCAN_PLAN_OUTCOMES

if TYPE_CHECKING:
    from collections.abc import Iterator

    from accord.v1 import adapter_pb2


class AdapterMetrics(ProcessMetrics):
    def __init__(self, source: str) -> None:
        super().__init__("adapter")
        self.source = source
        r = self.registry
        self.scans = Counter(
            "accord_adapter_scans",
            "Scans served, by table and outcome.",
            ["source", "table", "outcome"],
            registry=r,
        )
        self.scan_duration = Histogram(
            "accord_adapter_scan_duration_seconds",
            "Time from a scan's arrival to its last batch.",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter(
            "accord_adapter_rows", "Rows sent to the broker.", ["source", "table"], registry=r
        )
        self.bytes = Counter(
            "accord_adapter_bytes", "Arrow IPC bytes sent to the broker.", ["source"], registry=r
        )
        self.inflight = Gauge(
            "accord_adapter_inflight_scans", "Scans being served now.", ["source"], registry=r
        )
        self.bad_values = Counter(
            "accord_adapter_bad_values",
            "Stored values that did not fit the logical model (sent as NULL, or their "
            "row withheld), by table and column.",
            ["source", "table", "column"],
            registry=r,
        )
        self.refused_callers = Counter(
            "accord_adapter_refused_callers",
            "Calls refused for not coming from the broker.",
            ["source"],
            registry=r,
        )
        self.scan_plans = Counter(
            "accord_adapter_scan_plans",
            "Scans planned: hit (from a repeated shape's template), miss (translated, "
            "and a template built on a shape's second sight), uncacheable.",
            ["source", "outcome"],
            registry=r,
        )
        self.reloads = Counter(
            "accord_adapter_reloads",
            "Reloads on SIGHUP (certificate, broker identities, revocation list), by outcome.",
            ["source", "kind", "outcome"],
            registry=r,
        )
        # Series a dashboard or an alert reads exist from the start, at zero:
        # rate() and increase() cannot see a counter's first step otherwise.
        for metric in (self.scan_duration, self.bytes, self.inflight, self.refused_callers):
            metric.labels(source)
        for outcome in SCAN_PLAN_OUTCOMES:
            self.scan_plans.labels(source, outcome)
        for kind in ("certificate", "broker_identities", "revocation_list"):  # adapters.reload
            for outcome in ("ok", "failed"):
                self.reloads.labels(source, kind, outcome)

    def expect_columns(self, columns: dict[str, list[str]]) -> None:
        """Starts the bad-value series of every (table, column) the source
        serves at zero, for the dashboard (a bounded set: the mapping's)."""
        for table, names in columns.items():
            for column in names:
                self.bad_values.labels(self.source, table, column)

    def scan_planned(self, outcome: str) -> None:
        self.scan_plans.labels(self.source, outcome).inc()

    def count_rows(self, table: str, rows: int) -> None:
        self.rows.labels(self.source, table).inc(rows)

    def observe(
        self,
        table: str,
        stream: Iterator[adapter_pb2.ScanResponse],
    ) -> Iterator[adapter_pb2.ScanResponse]:
        """Passes one scan's stream through, counting it; the outcome is
        taken from how the stream ends (an early close is ``cancelled``)."""
        started = time.monotonic()
        outcome = "cancelled"
        self.inflight.labels(self.source).inc()
        try:
            for message in stream:
                kind = message.WhichOneof("payload")
                if kind == "arrow_batch":
                    self.bytes.labels(self.source).inc(len(message.arrow_batch))
                elif kind == "trailer":
                    for column, n in message.trailer.bad_values.items():
                        self.bad_values.labels(self.source, table, column).inc(n)
                yield message
            outcome = "ok"
        except Exception as exc:
            outcome = scan_outcome(exc)
            raise
        finally:
            self.inflight.labels(self.source).dec()
            self.scans.labels(self.source, table, outcome).inc()
            self.scan_duration.labels(self.source).observe(time.monotonic() - started)
