"""What the command line says when something fails: what happened, what to do
next, and the query id to quote to the operators.

The broker's messages are written for every client (they name request
fields, ``allow_partial``, ``timeout_ms``); here they are followed by the
advice in this command line's words (``--allow-partial``, ``--timeout``,
``accord catalog --as X``), chosen from the structured details the broker
sends (``google.rpc.ErrorInfo``, ``BadRequest``, ``RetryInfo``), never by
parsing its prose. An error that carries no details did not come from the
broker: nothing answered at the address, or the TLS handshake failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from accord.client import bad_fields, error_info, query_id_of, retry_after

if TYPE_CHECKING:
    from collections.abc import Callable

    from accord.workdir import Workdir

#: Exit statuses of ``accord`` (README, "Exit status").
EXIT_OK = 0
EXIT_FAILED = 1  # the broker refused or failed the call; nothing was answered
EXIT_USAGE = 2  # a wrong option, file or work dir: nothing was asked
EXIT_PARTIAL = 3  # an answer was printed, but some sources are missing from it
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (`| head`), as a shell reports SIGPIPE

#: The longest part of a transport error quoted (gRPC core's text is long).
MAX_TRANSPORT_TEXT = 160


#: How the command was started, kept across a server's re-execution.
PROGRAM_ENV = "ACCORD_PROGRAM"


def program() -> str:
    """How to run this command again: ``accord`` when that is on PATH and is
    this program, else the path it was started by (``.venv/bin/accord``)."""
    inherited = os.environ.get(PROGRAM_ENV)
    if inherited:  # a server re-executed itself (accord.corelog): its first name
        return inherited
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("accord")
    if started.name != "accord":
        return "accord"  # python -m, a test: the installed name
    found = shutil.which("accord")
    if found and Path(found).resolve() == started.resolve():
        return "accord"
    try:
        return os.path.relpath(started.resolve(), Path.cwd())
    except ValueError:  # another drive
        return str(started.resolve())


def in_our_words(message: str) -> str:
    """A message naming ``accord SUBCOMMAND`` with the way to run it here
    (``.venv/bin/accord certs init`` where ``accord`` is not on PATH)."""
    name = program()
    return message if name == "accord" else message.replace("`accord ", f"`{name} ")


def positive_seconds(text: str) -> float:
    """argparse type of ``--timeout``: a positive number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds (e.g. 30)")
    return seconds


def moment(text: str) -> dt.datetime:
    """argparse type of ``--since``/``--until``: an ISO 8601 date or time."""
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or time: use e.g. 2026-11-01, "
            "2026-11-01T09:30 or 2026-11-01T09:30:00+00:00 (naive is UTC)"
        ) from None


def rpc_failure(error: grpc.RpcError, args: argparse.Namespace, workdir: Workdir) -> str:
    """What to print for a failed call: the status and the broker's message,
    then what to do next, then the query id."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    info = error_info(error)
    lines = [f"accord: {code.name if code else 'ERROR'}: {details}"]
    if info is None:
        lines[0] = (
            f"accord: {code.name if code else 'ERROR'}: {_transport(code, details, args, workdir)}"
        )
        lines.append(f"  (gRPC: {details[:MAX_TRANSPORT_TEXT]})")
    else:
        advice = _advice(info.reason, dict(info.metadata), error, args)
        lines += [in_our_words(f"  what to do: {advice}")] if advice else []
    query_id = query_id_of(error) or (info.metadata.get("query_id", "") if info else "")
    if query_id and query_id not in details:
        lines.append(f"  query id: {query_id}")
    return "\n".join(lines)


def _transport(
    code: grpc.StatusCode | None, details: str, args: argparse.Namespace, workdir: Workdir
) -> str:
    """An error gRPC raised before the broker answered."""
    address = getattr(args, "broker", None) or _read_address(workdir)
    whence = (
        "" if getattr(args, "broker", None) else f" (read from {workdir.broker_address_file()})"
    )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return (
            f"no answer from {address} within --timeout {getattr(args, 'timeout', '?')} s: "
            "give it longer, e.g. --timeout 120"
        )
    handshake = any(word in details.lower() for word in ("handshake", "ssl", "tls", "certificate"))
    if code == grpc.StatusCode.UNAVAILABLE and handshake:
        return in_our_words(
            f"the TLS handshake with {address}{whence} failed: the broker refused this "
            "partner's certificate (revoked, expired, or of another federation), or "
            f"{address} is not this federation's broker. `accord certs list` shows the "
            "certificate's status"
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return in_our_words(
            f"no broker answers at {address}{whence}; the broker that wrote it may have "
            f"stopped or crashed. Start one with `accord demo --serve --workdir {workdir.path}`, "
            "or give --broker HOST:PORT"
        )
    return f"the call to {address} failed before the broker answered"


def _read_address(workdir: Workdir) -> str:
    try:
        return workdir.broker_address_file().read_text().strip()
    except OSError:
        return "?"


@dataclass(frozen=True)
class _Failure:
    """What advice is chosen from: the broker's details and the command's options."""

    metadata: dict[str, str]
    error: grpc.RpcError
    args: argparse.Namespace

    @property
    def catalog(self) -> str:
        return f"`accord catalog --as {getattr(self.args, 'partner', '') or 'PARTNER'}`"

    @property
    def timeout(self) -> float:
        return float(getattr(self.args, "timeout", 0) or 0)

    @property
    def longer(self) -> str:
        return f"--timeout {max(60.0, 4 * self.timeout):g}"

    @property
    def or_partial(self) -> str:
        """The query command's way out when sources are missing."""
        if getattr(self.args, "command", "") != "query":
            return ""
        return " or add --allow-partial to accept an answer without them"


def _sources_missing(f: _Failure) -> str:
    states = [v for k, v in f.metadata.items() if k.startswith("source.")]
    if "timeout" in states:
        return f"give the query more time ({f.longer}; it had {f.timeout:g} s),{f.or_partial}"
    return "retry later (the operators see why in the broker log)" + (
        f",{f.or_partial}" if f.or_partial else ""
    )


def _invalid_query(f: _Failure) -> str:
    fields = bad_fields(f.error)
    if "timeout_ms" in fields:
        return "give --timeout as a positive number of seconds"
    if "sql" in fields:
        return f"fix the SQL; {f.catalog} lists the tables and columns you may query"
    return ""


def _policy_denied(f: _Failure) -> str:
    rule = f.metadata.get("rule", "")
    if rule == "purpose":
        return f"declare one of your purposes with --purpose; {f.catalog} lists them"
    if rule == "case_ref":
        return "give the file's case reference with --case-ref"
    return f"{f.catalog} lists what your role may query"


def _over_quota(f: _Failure) -> str:
    delay = retry_after(f.error)
    return f"retry in {delay:.1f} s" if delay is not None else "retry later"


_CERTIFICATE = "ask the federation's operator for a valid certificate (`accord certs issue`)"
_LESS = "ask for less: a narrower WHERE, fewer columns, a LIMIT, or an aggregate"
#: ErrorInfo.reason -> what to do next (accord.errors.error_reason names them).
_ADVICE: dict[str, Callable[[_Failure], str]] = {
    "SOURCES_MISSING": _sources_missing,
    "SOURCE_TIMED_OUT": lambda f: f"give the query more time: {f.longer}",
    "QUERY_TIMED_OUT": lambda f: f"give the query more time: {f.longer}",
    "SOURCE_UNAVAILABLE": lambda f: "retry later" + (f",{f.or_partial}" if f.or_partial else ""),
    "CIRCUIT_OPEN": lambda f: "retry later" + (f",{f.or_partial}" if f.or_partial else ""),
    "INVALID_QUERY": _invalid_query,
    "POLICY_DENIED": _policy_denied,
    "OVER_QUOTA": _over_quota,
    "RESOURCE_EXHAUSTED": lambda f: _LESS,
    "SLOW_READER": lambda f: "read the answer as it comes (a client that stalls is cut off)",
    "UNAUTHENTICATED": lambda f: _CERTIFICATE,
    "CERTIFICATE_REVOKED": lambda f: _CERTIFICATE,
    "REVOCATION_STALE": lambda f: "tell the federation's operator: the revocation list is stale",
    "AUDIT_WRITE_ERROR": lambda f: "retry later: the broker answers nothing it cannot record",
    "INTERNAL": lambda f: "tell the operators the query id: the broker log has the details",
}


def _advice(
    reason: str, metadata: dict[str, str], error: grpc.RpcError, args: argparse.Namespace
) -> str:
    advise = _ADVICE.get(reason)
    return advise(_Failure(metadata, error, args)) if advise else ""
