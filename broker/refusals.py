"""TLS handshakes the broker refused: counted, and recorded in the audit trail
at a bounded rate.

It exists because a refused handshake never reaches a servicer (see
``accord.corelog``, which recognises it in gRPC core's log): without this, a
certificate from another CA, an expired one or none at all leaves no record.
Every refusal counts in ``accord_handshake_refusals_total{reason}``. The
trail gets, per peer address (host, without the port), the first refusal at
once and then at most one summary per window (``window_s``, one minute)
with how many more came and why, so a peer retrying in a loop costs the
trail one line a minute, not one per attempt.

Core's log names the peer and OpenSSL's reason, never the certificate that
was presented (nor does any gRPC API: grpc/grpc#38665), so a record carries
no certificate fingerprint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from accord.errors import AuditWriteError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from accord.corelog import HandshakeRefusal
    from broker.metrics import BrokerMetrics

log = logging.getLogger("accord.broker")

#: Seconds between two records about one peer.
WINDOW_S = 60.0
#: Peers tracked at once; refusals from further peers are summarised together.
MAX_PEERS = 10_000
OTHER_PEERS = "(other peers)"


@dataclass
class _Window:
    opened: float
    reasons: dict[str, int] = field(default_factory=dict)  # since the last record


class HandshakeRefusals:
    """Counts refusals and writes their rate-limited records (on the event loop)."""

    def __init__(
        self,
        metrics: BrokerMetrics | None,
        write: Callable[[dict[str, Any]], Awaitable[None]],
        *,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.write = write
        self.window_s = window_s
        self.clock = clock
        self._windows: dict[str, _Window] = {}
        self._writes: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    def refused(self, refusal: HandshakeRefusal) -> None:
        """One refused handshake (call on the event loop)."""
        if self.metrics is not None:
            self.metrics.handshake_refusals.labels(refusal.reason).inc()
        host = refusal.host or "unknown"
        if host not in self._windows and len(self._windows) >= MAX_PEERS:
            host = OTHER_PEERS
        now = self.clock()
        window = self._windows.get(host)
        if window is None or now - window.opened >= self.window_s:
            if window is not None and window.reasons:
                self._record(host, window, summary=True)
            self._windows[host] = window = _Window(now)
            window.reasons[refusal.reason] = 1
            self._record(host, window, summary=False)
            log.warning("refused a TLS handshake from %s: %s", host, refusal.reason)
        else:
            window.reasons[refusal.reason] = window.reasons.get(refusal.reason, 0) + 1

    def flush(self, *, everything: bool = False) -> None:
        """Record the windows that have closed (all of them with ``everything``)."""
        now = self.clock()
        for host, window in list(self._windows.items()):
            if everything or now - window.opened >= self.window_s:
                if window.reasons:
                    self._record(host, window, summary=True)
                del self._windows[host]

    def start(self) -> None:
        """Record closed windows from now on (on the running event loop)."""
        self._runner = asyncio.get_running_loop().create_task(
            self._run(), name="handshake-refusals"
        )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.window_s / 4)
            self.flush()

    async def drain(self) -> None:
        """Stop, record every open window and wait for the writes (at shutdown)."""
        if self._runner is not None:
            self._runner.cancel()
        self.flush(everything=True)
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def _record(self, host: str, window: _Window, *, summary: bool) -> None:
        record = {
            "event": "handshake_refused",
            "peer": host,
            "count": sum(window.reasons.values()),
            "reasons": dict(sorted(window.reasons.items())),
            # first: this refusal, recorded at once; summary: the refusals
            # since, over at most window_s seconds
            "kind": "summary" if summary else "first",
            "window_s": self.window_s,
        }
        window.reasons = {}
        task = asyncio.get_running_loop().create_task(self._write(record))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, record: dict[str, Any]) -> None:
        try:
            await self.write(record)
        except AuditWriteError as exc:  # counted by write_audit; nobody to refuse
            log.error("could not audit a refused handshake: %s", exc)
