"""Accord's exceptions, and the one table that says what each one means.

    AccordError                every error Accord raises on purpose
    ├── ConfigError            a federation, policy or registry file is wrong
    │   ├── PolicyFileError    a policy file is wrong (``file:line: problem``)
    │   └── PkiError           the PKI directory is in a state not to repair silently
    ├── InvalidQuery           the SQL is malformed, not read-only, or names
    │                          something that does not exist
    ├── PolicyDenied           the caller may not do this (refused by rule;
    │                          ``reason`` says which rule, for metrics)
    ├── Unauthenticated        no usable client certificate / unknown partner
    │   ├── CertificateRevoked the certificate is on the federation's revocation list
    │   └── RevocationStale    the revocation list is past its next-update time
    ├── SourceError            one source system failed a scan
    │   ├── SourceUnavailable  the source could not be reached or is down
    │   │   └── CircuitOpen    failed repeatedly of late: not asked for now
    │   ├── SourceTimedOut     the source did not answer within the deadline
    │   ├── SourceRefused      the source's adapter refused the scan
    │   └── ScanCancelled      stopped by the broker (another source failed)
    ├── ResourceExhausted      a per-query limit was exceeded
    │   ├── OverQuota          the partner is over its admission quota: retry later
    │   └── SlowReader         the client stopped reading; its answer was cancelled
    ├── QueryTimedOut          the query's own work ran past its deadline
    ├── AuditWriteError        the audit trail cannot record: nothing is answered
    └── ConversionError        a stored value does not fit the logical model

:data:`ERROR_TABLE` maps each class to what it means at every edge: the gRPC
status a caller gets, the label a query or scan ending so carries in
metrics, and the state a source failing so has in a trailer.
:func:`describe` looks an error up (the most specific class wins).

Messages are written for the caller: they say what was wrong and what to do
next, and never carry internals such as stack traces or file paths. A
database's own error text may quote the stored value it choked on (DuckDB's
``Could not convert string 'Smith1980-01-01' to INT32``): it reaches a
message, a record or a log line only through :func:`scrubbed`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import grpc

from accord.v1 import broker_pb2

if TYPE_CHECKING:
    import datetime as dt

#: Which rule refused a query (the ``reason`` label of policy-denial metrics).
DenialReason = Literal[
    "purpose", "case_ref", "table", "column", "aggregate_only", "attribute", "partner", "other"
]


class AccordError(Exception):
    """Base class of every error Accord raises on purpose."""


class ConfigError(AccordError):
    pass


class PolicyFileError(ConfigError):
    """A policy file is wrong; the message starts with ``file:line:``."""


class PkiError(ConfigError):
    """The PKI directory is in a state this tool will not silently repair."""


class InvalidQuery(AccordError):
    pass


class PolicyDenied(AccordError):
    def __init__(self, message: str, reason: DenialReason = "other") -> None:
        super().__init__(message)
        self.reason: DenialReason = reason


class Unauthenticated(AccordError):
    pass


class CertificateRevoked(Unauthenticated):
    """The caller's certificate is on the federation's revocation list."""

    def __init__(self, serial: int, revoked_at: dt.datetime, reason: str | None) -> None:
        why = f" ({reason.replace('_', ' ')})" if reason else ""
        super().__init__(
            f"certificate {serial:x} was revoked on {revoked_at:%Y-%m-%d %H:%M} UTC{why}: "
            "ask the federation for a new certificate"
        )
        self.serial = serial
        self.revoked_at = revoked_at
        self.revocation_reason = reason


class RevocationStale(Unauthenticated):
    """The revocation list in force is past its next-update time, so it can no
    longer say whether a certificate was revoked since."""

    def __init__(self, next_update: dt.datetime) -> None:
        super().__init__(
            "the federation's revocation list is out of date (it was due for renewal at "
            f"{next_update:%Y-%m-%d %H:%M} UTC): the operator must publish a new one with "
            "`accord certs crl`"
        )
        self.next_update = next_update


class SourceError(AccordError):
    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"source {source}: {message}")
        self.source = source
        self.reason = message


class SourceUnavailable(SourceError):
    pass


class CircuitOpen(SourceUnavailable):
    pass


class SourceTimedOut(SourceError):
    pass


class SourceRefused(SourceError):
    pass


class ScanCancelled(SourceError):
    """Not the source's fault: the broker stopped the scan."""


class ResourceExhausted(AccordError):
    pass


class ClientCancelled(AccordError):
    """The client cancelled its call (or its deadline passed) mid-answer."""


class OverQuota(ResourceExhausted):
    """Refused before any work: ``limit`` names the quota (a metric label),
    ``retry_after_s`` is when the same query could be admitted."""

    def __init__(self, message: str, limit: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after_s = retry_after_s


class SlowReader(ResourceExhausted):
    """The client did not read its answer in time; ``rows`` had been sent."""

    def __init__(self, message: str, rows: int) -> None:
        super().__init__(message)
        self.rows = rows


class QueryTimedOut(AccordError):
    """The broker's own part of a query (the merge) ran past its deadline."""


class AuditWriteError(AccordError):
    """The audit trail could not record durably: the query must not proceed."""


class ConversionError(AccordError):
    """A stored value does not fit the logical model."""


@dataclass(frozen=True)
class ErrorKind:
    """What one kind of error means at each edge."""

    status: grpc.StatusCode  # what the caller gets
    outcome: str  # label of a query ending so (accord_queries_total)
    scan_outcome: str  # label of a scan ending so (accord_source_requests_total)
    source_state: broker_pb2.SourceState = broker_pb2.SOURCE_STATE_ERROR


_S = grpc.StatusCode
#: The one table. A class not listed takes its nearest listed ancestor's row.
ERROR_TABLE: dict[type[BaseException], ErrorKind] = {
    BaseException: ErrorKind(_S.INTERNAL, "error", "error"),
    AccordError: ErrorKind(_S.INTERNAL, "error", "error"),
    ConfigError: ErrorKind(_S.FAILED_PRECONDITION, "error", "error"),
    InvalidQuery: ErrorKind(_S.INVALID_ARGUMENT, "invalid", "invalid"),
    PolicyDenied: ErrorKind(_S.PERMISSION_DENIED, "denied", "refused"),
    Unauthenticated: ErrorKind(_S.UNAUTHENTICATED, "unauthenticated", "error"),
    SourceError: ErrorKind(_S.UNAVAILABLE, "unavailable", "error"),
    SourceUnavailable: ErrorKind(
        _S.UNAVAILABLE, "unavailable", "unavailable", broker_pb2.SOURCE_STATE_UNAVAILABLE
    ),
    CircuitOpen: ErrorKind(
        _S.UNAVAILABLE, "unavailable", "circuit_open", broker_pb2.SOURCE_STATE_CIRCUIT_OPEN
    ),
    SourceTimedOut: ErrorKind(
        _S.DEADLINE_EXCEEDED, "timeout", "timeout", broker_pb2.SOURCE_STATE_TIMED_OUT
    ),
    SourceRefused: ErrorKind(
        _S.PERMISSION_DENIED, "denied", "refused", broker_pb2.SOURCE_STATE_REFUSED
    ),
    ScanCancelled: ErrorKind(_S.UNAVAILABLE, "unavailable", "cancelled"),
    ResourceExhausted: ErrorKind(_S.RESOURCE_EXHAUSTED, "exhausted", "exhausted"),
    OverQuota: ErrorKind(_S.RESOURCE_EXHAUSTED, "over_quota", "exhausted"),
    SlowReader: ErrorKind(_S.RESOURCE_EXHAUSTED, "slow_reader", "exhausted"),
    QueryTimedOut: ErrorKind(_S.DEADLINE_EXCEEDED, "timeout", "timeout"),
    AuditWriteError: ErrorKind(_S.UNAVAILABLE, "unavailable", "error"),
    ClientCancelled: ErrorKind(_S.CANCELLED, "cancelled", "cancelled"),
}

#: What a caller reads when the fault is the broker's own: the details stay
#: in the server log.
INTERNAL_MESSAGE = "internal error in the broker; the operators have the details"


def describe(error: BaseException) -> ErrorKind:
    """The row of :data:`ERROR_TABLE` for ``error``'s most specific class.

    >>> describe(CircuitOpen("BC", "down")).scan_outcome
    'circuit_open'
    >>> describe(KeyError("x")).status.name
    'INTERNAL'
    """
    return next(ERROR_TABLE[c] for c in type(error).__mro__ if c in ERROR_TABLE)


def grpc_status(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The (status, public message) a servicer answers for ``error``.

    Anything that is not an :class:`AccordError` is an internal fault: the
    caller gets a generic message and the details stay in the server log.
    """
    status = describe(error).status
    if isinstance(error, AccordError):
        return status, str(error)
    return status, INTERNAL_MESSAGE


def scan_outcome(error: BaseException | None) -> str:
    """A scan's outcome label: ``ok``, one of a few failure kinds, or ``error``."""
    return "ok" if error is None else describe(error).scan_outcome


def query_outcome(error: BaseException | None) -> str:
    """A query's outcome label: ``ok``, one of a few failure kinds, or ``error``."""
    return "ok" if error is None else describe(error).outcome


def source_state(error: BaseException | None) -> broker_pb2.SourceState:
    """The trailer's state of a source whose scans ended with ``error``."""
    return broker_pb2.SOURCE_STATE_OK if error is None else describe(error).source_state


#: DuckDB's kind of error, which leads its message: ``Conversion Error: ``.
_KIND = re.compile(r"^(?:[A-Z][A-Za-z]*(?: [A-Za-z]+)* Error: )?")
#: A number, a date, a time: anything that starts with a digit.
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\w.:/+-]*")
#: Where a quoted literal opens: a quote not inside a word (``can't`` is no quote).
_OPENING = re.compile(r"(?<!\w)['\"`]")
ELIDED = "…"
#: The longest scrubbed message kept.
MAX_SCRUBBED = 300


def scrubbed(message: str) -> str:
    """A database's error message with nothing in it that could be a stored
    value: its first line; after its kind, the text up to the first ``": "``
    (what follows names the offending value); every quoted literal and every
    number replaced by ``…``. A literal runs from its opening quote to the
    last such quote on the line, so a value with quotes of its own cannot
    close it early and show the rest.

    >>> scrubbed("Conversion Error: Could not convert string 'Smith1980-01-01' to INT32")
    "Conversion Error: Could not convert string '…' to INT32"
    >>> scrubbed("Conversion Error: Date out of range: 41-41-41")
    'Conversion Error: Date out of range: …'
    >>> scrubbed("Out of Range Error: Overflow in multiplication of INT32 (6 * 2000000000)!")
    'Out of Range Error: Overflow in multiplication of INT32 (… * …)!'
    >>> scrubbed("Could not convert string 'A' Smith 'B' to INT32")
    "Could not convert string '…' to INT32"
    >>> scrubbed('invalid input syntax for type integer: "Smith"')
    'invalid input syntax for type integer: …'
    """
    lines = message.strip().splitlines()
    line = lines[0] if lines else ""
    kind = _KIND.match(line)
    head = kind.group(0) if kind else ""
    text = line[len(head) :]
    if ": " in text:
        text = text.split(": ", 1)[0] + ": " + ELIDED
    text = _without_literals(text)
    return (head + _NUMBER.sub(ELIDED, text))[:MAX_SCRUBBED]


def _without_literals(text: str) -> str:
    out, rest = "", text
    while (opening := _OPENING.search(rest)) is not None:
        quote = opening.group(0)
        closing = rest.rfind(quote)
        out += rest[: opening.start()] + quote + ELIDED
        if closing <= opening.start():
            return out  # never closed: the rest is the literal
        out += quote
        rest = rest[closing + 1 :]
    return out + rest
