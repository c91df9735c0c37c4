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
    ├── Unimplemented          a Flight SQL command or action the broker does not serve
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

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from accord.metadata import QUERY_ID_METADATA
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
    """``field`` names the request field at fault (a ``BadRequest`` field
    violation): ``sql`` unless said otherwise."""

    def __init__(self, message: str, field: str = "sql") -> None:
        super().__init__(message)
        self.field = field


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


class SourcesMissing(SourceUnavailable):
    """Sources failed and the caller did not allow a partial answer.
    ``states`` maps each failed source to how it failed (``timed_out``,
    ``unavailable``, ...), for the ``ErrorInfo`` of the refusal."""

    def __init__(self, sources: str, message: str, states: dict[str, str]) -> None:
        super().__init__(sources, message)
        self.states = states


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


class Unimplemented(AccordError):
    """A Flight SQL command or action the broker does not serve (broker/flight)."""


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
    Unimplemented: ErrorKind(_S.UNIMPLEMENTED, "invalid", "invalid"),
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


#: The ``domain`` of every ``google.rpc.ErrorInfo`` the broker sends.
ERROR_DOMAIN = "accord.v1.Broker"
#: Request fields a refusal by rule (``PolicyDenied.reason``) is about.
_DENIED_FIELDS = {"purpose": "purpose", "case_ref": "case_ref"}


def error_reason(error: BaseException) -> str:
    """The ``ErrorInfo.reason`` of ``error``: its class name in UPPER_SNAKE_CASE
    (``SourceTimedOut`` is ``SOURCE_TIMED_OUT``); ``INTERNAL`` for a fault
    that is not an :class:`AccordError`.

    >>> error_reason(SourcesMissing("BC", "down", {"BC": "unavailable"}))
    'SOURCES_MISSING'
    >>> error_reason(KeyError("x"))
    'INTERNAL'
    """
    if not isinstance(error, AccordError):
        return "INTERNAL"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).upper()


def with_query_id(message: str, query_id: str) -> str:
    """``message`` ending with the query id a person quotes to the operators.

    >>> with_query_id("unknown column 'x'", "ab12")
    "unknown column 'x' (query id ab12)"
    """
    return f"{message} (query id {query_id})" if query_id else message


_QUERY_ID_SUFFIX = re.compile(r" \(query id [0-9a-f]+\)$")


def without_query_id(message: str) -> str:
    """``message`` without the query id :func:`with_query_id` added: what two
    refusals of different queries have in common.

    >>> without_query_id("unknown column 'x' (query id ab12)")
    "unknown column 'x'"
    """
    return _QUERY_ID_SUFFIX.sub("", message)


@dataclass(frozen=True)
class RichStatus(grpc.Status):
    """What ``context.abort_with_status`` takes: code, details, and trailing
    metadata carrying the query id and ``grpc-status-details-bin``."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def rich_status(
    error: BaseException, query_id: str, message: str | None = None, retry_after_s: float = 0
) -> RichStatus:
    """The status a servicer ends a failed call with: the public message
    (``message`` if given, else :func:`grpc_status`'s) followed by the query
    id, and as details a ``google.rpc.ErrorInfo`` (reason, domain, metadata
    with ``query_id`` and what else a program needs), a ``BadRequest`` naming
    the request field at fault, a ``RetryInfo`` when a retry after
    ``retry_after_s`` could succeed. The query id is in the trailing metadata
    too (``x-accord-query-id``)."""
    code, public = grpc_status(error)
    text = with_query_id(public if message is None else message, query_id)
    details = [_error_info(error, query_id)]
    field = _field_at_fault(error)
    if field:
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=text)
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    if retry_after_s > 0:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(max(1, math.ceil(retry_after_s * 1000)))
        details.append(retry)
    packed = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)
        packed.append(item)
    status = status_pb2.Status(code=code.value[0], message=text, details=packed)
    trailing: tuple[tuple[str, str | bytes], ...] = (
        (QUERY_ID_METADATA, query_id),
        (STATUS_DETAILS_KEY, status.SerializeToString()),
    )
    return RichStatus(code, text, trailing if query_id else trailing[1:])


#: The trailing metadata key of a ``google.rpc.Status`` (as grpcio-status reads it).
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _error_info(error: BaseException, query_id: str) -> error_details_pb2.ErrorInfo:
    metadata = {"query_id": query_id} if query_id else {}
    if isinstance(error, SourceError):
        metadata["sources"] = error.source
    if isinstance(error, SourcesMissing):
        metadata.update({f"source.{s}": state for s, state in sorted(error.states.items())})
    if isinstance(error, PolicyDenied):
        metadata["rule"] = error.reason
    if isinstance(error, OverQuota):
        metadata["limit"] = error.limit
    return error_details_pb2.ErrorInfo(
        reason=error_reason(error), domain=ERROR_DOMAIN, metadata=metadata
    )


def _field_at_fault(error: BaseException) -> str:
    if isinstance(error, InvalidQuery):
        return error.field
    if isinstance(error, PolicyDenied):
        return _DENIED_FIELDS.get(error.reason, "")
    return ""


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
