"""The console's calls to the broker: one channel per request, with the
partner's certificate and the signed-in person as the end user, and what a
failed call tells the person (the broker's own words, or that it could not be
reached: never an address or a stack)."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import grpc

from accord.client import BrokerClient, error_info, query_id_of, retry_after
from accord.errors import AccordError

if TYPE_CHECKING:
    from app.console.config import ConsoleConfig

log = logging.getLogger("accord.console")

#: What a broker call may raise: the call's failure, or the console's own
#: configuration (no certificate, no broker address yet).
BROKER_ERRORS = (grpc.RpcError, AccordError)

#: What the broker accepts as an end user: printable ASCII, 200 characters (broker.identity).
_NOT_PRINTABLE = re.compile(r"[^ -~]")
MAX_END_USER = 200


def end_user(user: str, annotation: str = "") -> str:
    """The audited end user: the person, and ``annotation`` (e.g. an export) after it."""
    text = _NOT_PRINTABLE.sub("?", user) + (f" [{annotation}]" if annotation else "")
    return text[:MAX_END_USER]


def client(config: ConsoleConfig, session: dict[str, str], annotation: str = "") -> BrokerClient:
    ca, cert, key = config.workdir.partner_credentials(config.partner)
    return BrokerClient(
        config.broker_address(),
        ca,
        cert,
        key,
        end_user=end_user(session["user"], annotation),
        purpose=session.get("purpose", ""),
        case_ref=session.get("case_ref", ""),
    )


def failure_text(error: grpc.RpcError | AccordError) -> str:
    """One line for the page: the status and the broker's message, or, for an
    error gRPC raised before the broker answered, that it could not be reached
    (the detail, which may name addresses and paths, goes to the log only)."""
    if isinstance(error, AccordError):
        log.error("console cannot call the broker: %s", error)
        return "UNAVAILABLE: the broker did not answer; ask the console's operator"
    code = error.code() if isinstance(error, grpc.Call) else None
    name = code.name if code is not None else "ERROR"
    if error_info(error) is None:
        return (
            f"{name}: the broker did not answer; try again in a moment, "
            "or ask the console's operator"
        )
    details = error.details() if isinstance(error, grpc.Call) else ""
    text = f"{name}: {details}"
    delay = retry_after(error)
    if delay is not None:
        text += f" (retry after {delay:.0f} s)"
    query_id = query_id_of(error)
    if query_id and query_id not in text:
        text += f" (query id {query_id})"
    return text
