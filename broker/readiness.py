"""Whether the broker can serve, as gRPC health reports it.

The broker does not start without a valid policy (a reload that fails keeps
the policy in force), so what can change while it runs is the audit trail:
a broker that cannot write audit records answers no query, and says so in
health checks before callers find out one refusal at a time. The trail is
probed every few seconds, and at once after a record could not be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from grpc_health.v1 import health_pb2

from accord.telemetry import Check

if TYPE_CHECKING:
    from collections.abc import Iterable

    from grpc_health.v1 import _async as health_aio

    from accord.audit.log import AuditLog
    from broker.breaker import Breakers

log = logging.getLogger("accord.readiness")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Readiness:
    def __init__(
        self,
        health: health_aio.HealthServicer,
        services: tuple[str, ...],
        audit: AuditLog | None,
        interval_s: float = 2.0,
    ) -> None:
        self.health = health
        self.services = services
        self.audit = audit
        self.interval_s = interval_s
        self.problem: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def audit_failed(self) -> None:
        """A record could not be written: probe now rather than at the next tick."""
        self._wake.set()

    async def check(self) -> str | None:
        """Probes once and publishes the result; returns the problem, if any."""
        problem = None if self.audit is None else await asyncio.to_thread(self.audit.probe)
        if problem != self.problem:
            if problem:
                log.error("not serving: %s", problem)
            else:
                log.warning("serving again: the audit trail is writable")
        self.problem = problem
        status = NOT_SERVING if problem else SERVING
        for name in self.services:
            await self.health.set(name, status)
        return problem

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="readiness")

    async def stop(self) -> None:
        """Stops the probing. Python 3.11's ``wait_for`` drops a cancel that
        lands as the wake-up it waits for fires (a failed audit write just
        before a stop), so the loop also checks a flag rather than rely on
        the cancel alone."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.check()
            except Exception:  # a probe must never stop the probing
                log.exception("readiness probe failed")


def broker_checks(
    readiness: Readiness,
    roles: int | None,
    breakers: Breakers,
    sources: Iterable[str],
) -> list[Check]:
    """What the broker's /readyz reports: the audit trail (as last probed)
    and the policy (``roles``: how many it has; None: none loaded) decide;
    each source's circuit is reported only (one
    source down leaves the others to answer, partially)."""
    checks = [
        Check("audit", readiness.problem is None, readiness.problem or "writable"),
        Check(
            "policy",
            roles is not None,
            f"{roles} roles" if roles is not None else "no policy loaded",
        ),
    ]
    states = breakers.states()
    for code in sorted(sources):
        state = states.get(code)
        name = "closed" if state is None else state.name.lower().replace("_", "-")
        checks.append(Check(f"source/{code}", name != "open", f"circuit {name}", required=False))
    return checks
