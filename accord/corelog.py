"""gRPC core's log, read through a pipe: each line re-emitted as a JSON log
line, and the TLS handshakes a server refused recognised in it.

It exists because Python never sees a refused handshake: grpc core refuses
it before any servicer or interceptor runs, and offers no callback for it
(grpc/grpc#38665, open), so the one trace of the refusal is a line core
writes to file descriptor 2. A process that must count and audit refusals
(``accord serve broker``) therefore owns its fd 2:

1. :func:`exec_capturing` (called before anything else) makes a pipe, puts
   its write end on fd 2, keeps the real stderr on another descriptor, asks
   core for the lines it needs and re-executes the process, because core
   reads ``GRPC_VERBOSITY`` and ``GRPC_TRACE`` once, when ``grpc`` is imported
   (the handshake failure line is INFO since grpc/grpc#38058; only the
   ``handshaker`` tracer names the peer address, grpc/grpc#32893);
2. in the new image, :func:`adopt` points ``sys.stderr`` (hence the JSON log)
   at the real stderr and starts a :class:`CoreLogReader` thread on the pipe.

Line formats (absl, grpc 1.6x and later; not a stable interface, which is why
tests drive a real handshake through this parser)::

    I1201 13:01:57.203174   12472 ssl_transport_security.cc:2563] Handshake failed ...
    I1201 13:01:57.203211   12472 handshaker.cc:155] CallNextHandshakerLocked: error=UNKNOWN:
    Ssl handshake failed (TSI_PROTOCOL_FAILURE): ...CERTIFICATE_VERIFY_FAILED: ...
    === Source Location Trace: ===
    ... shutdown=false index=2, args={endpoint=0x..., args={...,
    grpc.internal.endpoint_peer_address=ipv4:127.0.0.1:44424, ...,
    grpc.internal.server_credentials=0x..., ...}}

A record is a header line and the lines after it that have no header.
"""

from __future__ import annotations

import logging
import os
import re
import select
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger("grpc.core")

#: The handoff from the process that made the pipe to the image it exec-ed:
#: "READ_FD,STDERR_FD". Internal, never set by hand.
HANDOFF_ENV = "_ACCORD_CORE_LOG_FDS"
#: The tracer whose lines name a refused peer's address.
TRACER = "handshaker"

_HEADER = re.compile(
    r"^(?P<level>[IWEF])\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ (?P<where>[^\]\s]+)\] (?P<text>.*)$"
)
_LEVELS = {"I": logging.DEBUG, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}
#: Core files whose INFO lines matter at INFO (the rest is tracing: DEBUG).
_INFO_FROM = ("ssl_transport_security.cc",)
_PEER = re.compile(r"grpc\.internal\.endpoint_peer_address=(?:ipv4:|ipv6:)?(\S+?)(?:,|\}|$)")
#: OpenSSL's words for why, mapped to a few metric labels (low cardinality).
REASONS = (
    ("expired_certificate", ("certificate has expired", "CERTIFICATE_EXPIRED")),
    ("revoked_certificate", ("certificate revoked", "CERTIFICATE_REVOKED")),
    ("no_certificate", ("PEER_DID_NOT_RETURN_A_CERTIFICATE",)),
    ("untrusted_certificate", ("CERTIFICATE_VERIFY_FAILED", "BAD_CERTIFICATE", "UNKNOWN_CA")),
    ("not_tls", ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL")),
    ("no_shared_cipher", ("NO_SHARED_CIPHER", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE")),
    ("timeout", ("Handshake timed out", "Deadline Exceeded")),
)
OTHER_REASON = "other"


@dataclass(frozen=True)
class CoreRecord:
    """One log record of grpc core: level letter, source file, text (all lines)."""

    level: str
    where: str
    text: str


@dataclass(frozen=True)
class HandshakeRefusal:
    """A TLS handshake this process's server refused: the peer's address
    (host and port as core spells it, "" when the line lacks it) and why."""

    peer: str
    reason: str

    @property
    def host(self) -> str:
        """The peer's address without its port (the port changes per connection)."""
        host, sep, port = self.peer.rpartition(":")
        return host.strip("[]") if sep and port.isdigit() else self.peer


def parse_records(lines: Sequence[str]) -> list[CoreRecord]:
    """Group lines into records; text before the first header is its own record.

    >>> [r.where for r in parse_records([
    ...     "I1201 13:01:57.203211   12472 handshaker.cc:155] error=UNKNOWN: x", "more",
    ...     "E1201 13:01:58.000000   12472 ssl.cc:1] bad"])]
    ['handshaker.cc:155', 'ssl.cc:1']
    """
    records: list[CoreRecord] = []
    for line in lines:
        match = _HEADER.match(line)
        if match is not None:
            records.append(CoreRecord(match["level"], match["where"], match["text"]))
        elif records:
            last = records[-1]
            records[-1] = CoreRecord(last.level, last.where, f"{last.text}\n{line}")
        else:
            records.append(CoreRecord("I", "", line))
    return records


def handshake_refusal(record: CoreRecord) -> HandshakeRefusal | None:
    """The refusal ``record`` reports, if it is a server's failed handshake.

    Only the handshake manager's record names the peer and says which side
    failed: a server's handshake carries ``server_credentials`` in its
    arguments; a client's (this broker calling an adapter) does not.
    """
    text = record.text
    if not text.startswith("CallNextHandshakerLocked: error=") or text.startswith(
        "CallNextHandshakerLocked: error=OK "
    ):
        return None
    if "grpc.internal.server_credentials=" not in text:
        return None
    peer = _PEER.search(text)
    return HandshakeRefusal(peer[1] if peer else "", reason_of(text))


def reason_of(text: str) -> str:
    """The metric label for why a handshake failed.

    >>> reason_of("SSL_ERROR_SSL: ...:CERTIFICATE_VERIFY_FAILED: certificate has expired")
    'expired_certificate'
    """
    for reason, words in REASONS:
        if any(word in text for word in words):
            return reason
    return OTHER_REASON


class CoreLogReader:
    """Reads core's records from ``fd`` on a thread of its own, logs each one
    (as JSON, through the process's logging) and hands refusals to listeners."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._listeners: list[Callable[[HandshakeRefusal], object]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="grpc-core-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def listen(self, listener: Callable[[HandshakeRefusal], object]) -> None:
        """Call ``listener`` (on the reader's thread) for every refusal."""
        with self._lock:
            self._listeners.append(listener)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        partial = b""
        pending: list[str] = []
        while True:
            # A record's continuation lines come in the same burst; a quiet
            # pipe means the record is complete.
            ready, _, _ = select.select([self.fd], [], [], 0.05 if pending else None)
            if not ready:
                self._emit(pending)
                pending = []
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self._emit([*pending, *([partial.decode("utf-8", "replace")] if partial else [])])
                return
            *lines, partial = (partial + chunk).split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                if _HEADER.match(line) and pending:
                    self._emit(pending)
                    pending = []
                pending.append(line)

    def _emit(self, lines: list[str]) -> None:
        for record in parse_records(lines):
            self.handle(record)

    def handle(self, record: CoreRecord) -> None:
        level = _LEVELS.get(record.level, logging.INFO)
        if level == logging.DEBUG and record.where.startswith(_INFO_FROM):
            level = logging.INFO
        elif "is not suitable for production" in record.text:
            level = logging.DEBUG  # core's note on the INFO verbosity asked for on purpose
        if log.isEnabledFor(level):
            log.log(level, "%s", record.text, extra={"core_source": record.where})
        refusal = handshake_refusal(record)
        if refusal is None:
            return
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(refusal)
            except Exception:  # a listener's fault must not stop core's log
                log.exception("handshake refusal listener failed")


def exec_capturing(argv: Sequence[str], extra_env: Mapping[str, str] | None = None) -> None:
    """Re-execute this process (``python -m app.cli ARGV``) with fd 2 a pipe
    and core asked for the lines :func:`handshake_refusal` needs; returns
    only in the image that was exec-ed (the handoff is then in the environment).
    """
    if HANDOFF_ENV in os.environ:
        return
    read_fd, write_fd = os.pipe()
    saved = os.dup(2)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    os.set_inheritable(read_fd, True)
    os.set_inheritable(saved, True)
    env = {**os.environ, **(extra_env or {})}
    env[HANDOFF_ENV] = f"{read_fd},{saved}"
    env["GRPC_VERBOSITY"] = "INFO"  # the handshake failure line is INFO
    tracers = [t for t in env.get("GRPC_TRACE", "").split(",") if t]
    env["GRPC_TRACE"] = ",".join([*tracers, TRACER] if TRACER not in tracers else tracers)
    sys.stdout.flush()
    try:
        os.execve(sys.executable, [sys.executable, "-m", "app.cli", *argv], env)  # noqa: S606
    except OSError:
        os.dup2(saved, 2)  # nobody would ever read the pipe
        raise


_adopted: CoreLogReader | None = None


def adopted() -> CoreLogReader | None:
    """The reader :func:`adopt` started in this process, if any."""
    return _adopted


def adopt() -> CoreLogReader | None:
    """In the image :func:`exec_capturing` started: ``sys.stderr`` back on
    the real stderr, and the reader of core's pipe started. None elsewhere."""
    global _adopted  # noqa: PLW0603 - one pipe per process
    handoff = os.environ.pop(HANDOFF_ENV, "")
    if not handoff or _adopted is not None:
        return _adopted
    read_fd, saved = (int(part) for part in handoff.split(","))
    os.set_inheritable(read_fd, False)
    os.set_inheritable(saved, False)
    sys.stderr = open(saved, "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    _adopted = CoreLogReader(read_fd)
    _adopted.start()
    return _adopted
