"""The broker's settings: declared once as (name, default, help), read from
the environment as ``ACCORD_<NAME>``. README.md and docs/CONFIGURATION.md
hold the table :func:`markdown_table` makes of them (a test checks they
are equal); ``python -m broker.settings`` prints it."""

from __future__ import annotations

import os
from dataclasses import dataclass

from accord.errors import ConfigError
from broker.breaker import MIN_TIMEOUT_S, RESET_TIMEOUT_S


@dataclass(frozen=True)
class Setting:
    name: str
    default: float
    help: str

    @property
    def env(self) -> str:
        return f"ACCORD_{self.name.upper()}"


SETTINGS = (
    Setting("default_timeout_s", 30.0, "deadline of a query whose client gives none"),
    Setting("max_timeout_s", 300.0, "longest deadline a client may ask for"),
    Setting("max_source_rows", 5_000_000, "rows one source may send for one query"),
    Setting("max_source_bytes", 2 * 1024**3, "Arrow bytes one source may send for one query"),
    Setting("max_result_rows", 2_000_000, "rows in one answer"),
    Setting("max_result_bytes", 1024**3, "Arrow bytes in one answer"),
    Setting(
        "source_min_timeout_s",
        MIN_TIMEOUT_S,
        "shortest scan deadline whose timeout counts against a source's circuit breaker (a "
        "client's shorter deadline is its own budget, not the source failing)",
    ),
    Setting(
        "circuit_reset_s",
        RESET_TIMEOUT_S,
        "seconds an open circuit waits before letting one probe scan through to its source",
    ),
    Setting("max_sql_bytes", 100_000, "UTF-8 bytes of SQL in one request (refused beyond)"),
    Setting("audit_retention_days", 400, "days audit files are kept (pruned at start and daily)"),
    Setting("audit_checkpoint_records", 100, "audit records between signed checkpoints"),
    Setting("audit_checkpoint_s", 60.0, "seconds between signed checkpoints"),
    Setting(
        "handshake_audit_window_s",
        60.0,
        "seconds between two audit records of TLS handshakes refused from one peer address "
        "(the first is recorded at once, the rest summarised with a count)",
    ),
    Setting("audit_file_mb", 64, "size at which an audit file rotates (it also rotates daily)"),
    Setting("max_query_depth", 24, "nesting of one query: parentheses, subqueries, CASE, NOT"),
    Setting("max_query_nodes", 5000, "terms (syntax-tree nodes) in one query"),
    Setting("max_in_list", 1000, "values in one IN list"),
    Setting("max_set_arms", 32, "arms of a query's UNION, INTERSECT and EXCEPT, together"),
    Setting("max_joins", 16, "joins in one query"),
    Setting("prepare_threads", 4, "threads that parse and plan queries (one partner: all but one)"),
    Setting(
        "slow_reader_s",
        10.0,
        "longest wait for one write of an answer to a client before the answer is cancelled "
        "and audited as too slow (`broker/slow_reader.py`)",
    ),
    Setting(
        "merge_threads",
        4,
        "threads that merge answers in DuckDB, apart from the audit writer's; a merge past "
        "its deadline is interrupted",
    ),
    Setting(
        "merge_memory_mb",
        512,
        "DuckDB memory of one merge (each merge thread has its own database); over it, "
        "RESOURCE_EXHAUSTED",
    ),
    Setting(
        "flight_ticket_s",
        60.0,
        "seconds a Flight SQL ticket (from GetFlightInfo) stays redeemable; it is single-use "
        "and bound to the certificate that asked for it (`docs/FLIGHT_SQL.md`)",
    ),
    Setting(
        "flight_statement_idle_s",
        900.0,
        "seconds a Flight SQL prepared statement lives unused before the broker closes it",
    ),
    Setting(
        "flight_handles",
        256,
        "open Flight SQL tickets and prepared statements one partner may hold; beyond, "
        "RESOURCE_EXHAUSTED",
    ),
)


def shown(setting: Setting) -> str:
    """A default as a person reads it.

    >>> shown(Setting("max_source_bytes", 2 * 1024**3, ""))
    '2 GiB'
    >>> shown(Setting("max_result_rows", 2_000_000, ""))
    '2,000,000'
    >>> shown(Setting("slow_reader_s", 10.0, ""))
    '10'
    """
    value = setting.default
    if setting.name.endswith("_bytes") and value >= 1024**3 and value % 1024**3 == 0:
        return f"{value / 1024**3:g} GiB"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:g}"


def markdown_table() -> str:
    """Every setting as a Markdown table: variable, default, what it bounds."""
    lines = ["| variable | default | what it bounds |", "|---|---|---|"]
    lines += [f"| `{s.env}` | {shown(s)} | {s.help} |" for s in SETTINGS]
    return "\n".join(lines)


@dataclass(frozen=True)
class QueryShape:
    """How big a query may be before it is parsed further: the parser, the
    policy rewrite and the planner cost more than the query's length, and
    recurse, so a short pathological text could stall or crash them."""

    max_depth: int = 24
    max_nodes: int = 5000
    max_in_list: int = 1000
    max_set_arms: int = 32
    max_joins: int = 16


@dataclass(frozen=True)
class Limits:
    default_timeout_s: float
    max_timeout_s: float
    max_source_rows: int
    max_source_bytes: int
    max_result_rows: int
    max_result_bytes: int
    max_sql_bytes: int = 100_000
    shape: QueryShape = QueryShape()
    prepare_threads: int = 4
    slow_reader_s: float = 10.0
    merge_threads: int = 4
    merge_memory_mb: int = 512


@dataclass(frozen=True)
class AuditSettings:
    retention_days: int
    checkpoint_records: int
    checkpoint_s: float
    file_bytes: int


def load_min_timeout_s(environ: dict[str, str] | None = None) -> float:
    """The circuit breakers' ``min_timeout_s`` (see broker.breaker)."""
    return _values(environ)["source_min_timeout_s"]


def load_circuit_reset_s(environ: dict[str, str] | None = None) -> float:
    """The circuit breakers' ``reset_timeout_s`` (see broker.breaker)."""
    return _values(environ)["circuit_reset_s"]


def load_handshake_window_s(environ: dict[str, str] | None = None) -> float:
    """How often the trail records refused handshakes per peer (broker.refusals)."""
    return _values(environ)["handshake_audit_window_s"]


def load_limits(environ: dict[str, str] | None = None) -> Limits:
    values = _values(environ)
    return Limits(
        default_timeout_s=values["default_timeout_s"],
        max_timeout_s=values["max_timeout_s"],
        max_source_rows=int(values["max_source_rows"]),
        max_source_bytes=int(values["max_source_bytes"]),
        max_result_rows=int(values["max_result_rows"]),
        max_result_bytes=int(values["max_result_bytes"]),
        max_sql_bytes=int(values["max_sql_bytes"]),
        shape=QueryShape(
            max_depth=int(values["max_query_depth"]),
            max_nodes=int(values["max_query_nodes"]),
            max_in_list=int(values["max_in_list"]),
            max_set_arms=int(values["max_set_arms"]),
            max_joins=int(values["max_joins"]),
        ),
        prepare_threads=int(values["prepare_threads"]),
        slow_reader_s=values["slow_reader_s"],
        merge_threads=int(values["merge_threads"]),
        merge_memory_mb=int(values["merge_memory_mb"]),
    )


@dataclass(frozen=True)
class FlightSettings:
    ticket_s: float
    statement_idle_s: float
    handles: int


def load_flight_settings(environ: dict[str, str] | None = None) -> FlightSettings:
    """The Flight SQL endpoint's handle lifetimes and bound (broker.flight.handles)."""
    values = _values(environ)
    return FlightSettings(
        ticket_s=values["flight_ticket_s"],
        statement_idle_s=values["flight_statement_idle_s"],
        handles=int(values["flight_handles"]),
    )


def load_audit_settings(environ: dict[str, str] | None = None) -> AuditSettings:
    values = _values(environ)
    return AuditSettings(
        retention_days=int(values["audit_retention_days"]),
        checkpoint_records=int(values["audit_checkpoint_records"]),
        checkpoint_s=values["audit_checkpoint_s"],
        file_bytes=int(values["audit_file_mb"] * 2**20),
    )


def _values(environ: dict[str, str] | None) -> dict[str, float]:
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, float] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        try:
            values[setting.name] = float(raw) if raw else setting.default
        except ValueError as exc:
            raise ConfigError(f"{setting.env}={raw!r} is not a number") from exc
        if values[setting.name] <= 0:
            raise ConfigError(f"{setting.env} must be positive")
    return values


if __name__ == "__main__":
    print(markdown_table())
