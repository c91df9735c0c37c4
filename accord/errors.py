"""Accord's exceptions, and the one table that maps them to gRPC statuses.

    AccordError
    ├── ConfigError            a federation, policy or registry file is wrong
    ├── InvalidQuery           the SQL is malformed, not read-only, or names
    │                          something that does not exist
    ├── PolicyDenied           the caller may not do this (refused by rule)
    ├── Unauthenticated        no usable client certificate / unknown partner
    ├── SourceError            one source system failed a scan
    │   ├── SourceUnavailable  the source could not be reached or is down
    │   │   └── CircuitOpen    failed repeatedly of late: not asked for now
    │   ├── SourceTimedOut     the source did not answer within the deadline
    │   ├── SourceRefused      the source's adapter refused the scan
    │   └── ScanCancelled      stopped by the broker (another source failed)
    └── ResourceExhausted      a per-query limit was exceeded

Messages are written for the caller: they say what was wrong and what to do
next, and never carry internals such as stack traces or file paths.
"""

from __future__ import annotations

import grpc


class AccordError(Exception):
    """Base class of every error Accord raises on purpose."""

    status: grpc.StatusCode = grpc.StatusCode.INTERNAL


class ConfigError(AccordError):
    status = grpc.StatusCode.FAILED_PRECONDITION


class InvalidQuery(AccordError):
    status = grpc.StatusCode.INVALID_ARGUMENT


class PolicyDenied(AccordError):
    status = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(AccordError):
    status = grpc.StatusCode.UNAUTHENTICATED


class SourceError(AccordError):
    status = grpc.StatusCode.UNAVAILABLE

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"source {source}: {message}")
        self.source = source
        self.reason = message


class SourceUnavailable(SourceError):
    pass


class CircuitOpen(SourceUnavailable):
    pass


class SourceTimedOut(SourceError):
    status = grpc.StatusCode.DEADLINE_EXCEEDED


class SourceRefused(SourceError):
    status = grpc.StatusCode.PERMISSION_DENIED


class ScanCancelled(SourceError):
    """Not the source's fault: the broker stopped the scan."""


class ResourceExhausted(AccordError):
    status = grpc.StatusCode.RESOURCE_EXHAUSTED


def grpc_status(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The (status, public message) a servicer answers for ``error``.

    Anything that is not an :class:`AccordError` is an internal fault: the
    caller gets a generic message and the details stay in the server log.
    """
    if isinstance(error, AccordError):
        return error.status, str(error)
    return grpc.StatusCode.INTERNAL, "internal error in the broker; the operators have the details"
