"""Long-running servers: ``accord serve adapter`` and ``accord serve broker``.

Each writes its bound address to a file once it accepts calls (so a parent
process knows when and where), and on SIGTERM or SIGINT goes NOT_SERVING in
health checks, stops taking calls and lets in-flight ones finish. The broker
reloads its policy and its certificate on SIGHUP (``broker.reload``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from grpc_health.v1 import health_pb2

from accord import corelog
from accord.audit.keys import load_or_create_signing_key, pin_public_key
from accord.audit.log import AuditLog
from accord.errors import AccordError, AuditWriteError
from accord.federation import load_federation
from accord.revocation import RevocationList
from accord.telemetry import Check
from accord.tls import ReloadableServerCredentials
from accord.workdir import write_text_atomically
from adapters.backends import open_backend
from adapters.metrics import AdapterMetrics
from adapters.reload import reload_adapter
from adapters.server import SERVICE_NAME as ADAPTER_SERVICE
from adapters.server import create_server as create_adapter_server
from adapters.trace import ScanTrace
from broker.breaker import Breakers, CircuitState
from broker.budget import PrivacyLedger
from broker.fanout import AdapterClients
from broker.flight.service import create_flight_server
from broker.metrics import BrokerMetrics
from broker.pipeline import QueryPipeline
from broker.readiness import broker_checks
from broker.record import write_audit
from broker.refusals import HandshakeRefusals
from broker.reload import Reloader, certificate_details, load_policy
from broker.server import start_broker
from broker.settings import (
    load_audit_settings,
    load_circuit_reset_s,
    load_handshake_window_s,
    load_min_timeout_s,
)

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from accord.workdir import Workdir
    from adapters.backends.base import Backend
    from adapters.server import RunningAdapter

log = logging.getLogger("accord.serve")

#: Seconds in-flight calls get to finish on shutdown.
SHUTDOWN_GRACE_S = 5.0
#: Seconds between two passes of audit retention.
PRUNE_EVERY_S = 24 * 3600.0
#: Seconds between two probes of an adapter's trail.
ADAPTER_PROBE_S = 2.0
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def source_health_name(code: str) -> str:
    """The health-check service name of one source, as seen by the broker."""
    return f"accord.v1.Broker/source/{code}"


def write_address(path: Path | None, host: str, port: int) -> None:
    if path is not None:
        write_text_atomically(path, f"{host}:{port}\n")


def serve_adapter(
    workdir: Workdir,
    federation_path: Path,
    source_code: str,
    host: str,
    port: int,
    port_file: Path | None,
    metrics_port: int = 0,
) -> None:
    federation = load_federation(federation_path)
    source = federation.source(source_code)
    backend = open_backend(source, workdir.path)
    cert, key = workdir.pki.adapter(source.code)
    metrics = AdapterMetrics(source.code)
    metrics.watch_certificates([workdir.pki.ca_cert(), cert])
    revocations = open_revocations(workdir)
    broker_certs = [workdir.pki.broker_client()[0]]
    audit = open_adapter_audit(
        workdir, source.code, instance_name(f"adapter-{source.code}", host, port)
    )
    prune_once(audit)
    running = create_adapter_server(
        federation,
        source,
        backend,
        ca=workdir.pki.ca_cert(),
        cert=cert,
        key=key,
        broker_certs=broker_certs,
        revocations=revocations,
        address=f"{host}:{port}",
        metrics=metrics,
        trace=ScanTrace(audit, source.code),
    )
    server, bound, health = running.server, running.port, running.health
    trail = TrailState(audit.probe())
    metrics_port = metrics.serve(host, metrics_port, ready=lambda: adapter_checks(trail, backend))
    write_address(workdir.metrics_address_file(f"adapter-{source.code}"), host, metrics_port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    reloads = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: reloads.set())
    threading.Thread(
        target=_reload_on_signal,
        args=(reloads, running, federation_path, broker_certs, revocations, metrics, audit),
        name="reload",
        daemon=True,
    ).start()
    write_address(port_file, host, bound)
    log.info(
        "adapter %s (%s) serving on %s:%d; metrics on http://%s:%d/metrics",
        source.code,
        source.system,
        host,
        bound,
        host,
        metrics_port,
    )
    # Probed like the broker's: NOT_SERVING while the trail cannot take a
    # record (every scan would be refused), and an idle trail's last records
    # are signed once a checkpoint falls due.
    serving = True
    while not stop.wait(ADAPTER_PROBE_S):
        problem = trail.problem = audit.probe()
        if problem and serving:
            log.error("adapter audit trail: %s", problem)
        if (problem is None) != serving:
            serving = problem is None
            status = health_pb2.HealthCheckResponse.SERVING if serving else NOT_SERVING
            for name in ("", ADAPTER_SERVICE):
                health.set(name, status)
    health.enter_graceful_shutdown()
    backend_done = server.stop(SHUTDOWN_GRACE_S)
    backend_done.wait()
    audit.close()  # a last signed checkpoint
    log.info("adapter %s stopped", source.code)


@dataclass
class TrailState:
    """An adapter trail's last probe (None: writable), for /readyz."""

    problem: str | None


def adapter_checks(trail: TrailState, backend: Backend) -> list[Check]:
    """What an adapter's /readyz reports: its trail writable (as last
    probed, every ADAPTER_PROBE_S) and its database reachable (now)."""
    try:
        backend.check()
    except AccordError as exc:
        reachable = Check("backend", False, str(exc))
    else:
        reachable = Check("backend", True, "reachable")
    return [Check("trail", trail.problem is None, trail.problem or "writable"), reachable]


def open_revocations(workdir: Workdir) -> RevocationList:
    """The federation's revocation list; a missing or unsigned one: no start."""
    return RevocationList(workdir.pki.crl(), workdir.pki.ca_cert())


def _reload_on_signal(
    reloads: threading.Event,
    running: RunningAdapter,
    federation_path: Path,
    broker_certs: list[Path],
    revocations: RevocationList,
    metrics: AdapterMetrics,
    audit: AuditLog,
) -> None:
    # Off the signal handler: a reload reads files and may log at length.
    # A daemon thread: it ends with the process.
    while reloads.wait():
        reloads.clear()
        for record in reload_adapter(running, federation_path, broker_certs, revocations, metrics):
            try:  # the reload stands; a failure to record it is logged and in health
                audit.append(record)
            except AuditWriteError as exc:
                log.error("could not audit the %s: %s", record["event"], exc)


def broker_instance(host: str, port: int) -> str:
    """The audit records' ``instance``: host and port, or, for a port picked
    at random, the process."""
    return instance_name("broker", host, port)


def instance_name(component: str, host: str, port: int) -> str:
    """``component@hostname/host:port`` (or ``/pid-N`` for a port picked at random)."""
    where = f"{host}:{port}" if port else f"pid-{os.getpid()}"
    return f"{component}@{socket.gethostname()}/{where}"


def open_audit(workdir: Workdir, instance: str) -> AuditLog:
    """The work dir's audit trail, with the ACCORD_AUDIT_* settings; its key
    pinned on first use (a key that differs from the pin: no start)."""
    return _open_trail(workdir.audit_dir(), workdir.audit_key(), workdir.audit_key_pin(), instance)


def open_adapter_audit(workdir: Workdir, source: str, instance: str) -> AuditLog:
    """Adapter ``source``'s own trail of the scans it serves
    (``adapters.trace``): its own key and pin, the same settings."""
    # Its parent is the broker's trail directory: private, as the broker makes it.
    workdir.audit_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    return _open_trail(
        workdir.adapter_audit_dir(source),
        workdir.adapter_audit_key(source),
        workdir.adapter_audit_key_pin(source),
        instance,
    )


def _open_trail(directory: Path, key_path: Path, pin: Path, instance: str) -> AuditLog:
    kept = load_audit_settings()
    key = load_or_create_signing_key(key_path)
    pin_public_key(pin, key.public_key())
    return AuditLog(
        directory,
        key,
        instance=instance,
        retention_days=kept.retention_days,
        checkpoint_every=kept.checkpoint_records,
        checkpoint_seconds=kept.checkpoint_s,
        max_file_bytes=kept.file_bytes,
    )


def prune_once(audit: AuditLog) -> None:
    """Drops audit files past retention (an adapter prunes when it starts)."""
    try:
        removed = audit.prune()
    except AuditWriteError as exc:
        log.error("audit retention: %s", exc)
        return
    if removed:
        log.info("audit retention: removed %s", ", ".join(p.name for p in removed))


async def prune_daily(audit: AuditLog) -> None:
    """Drops audit files past retention, now and every day (each prune is
    itself recorded in the chain)."""
    while True:
        try:
            removed = await asyncio.to_thread(audit.prune)
            if removed:
                log.info("audit retention: removed %s", ", ".join(p.name for p in removed))
        except AuditWriteError as exc:
            log.error("audit retention: %s", exc)
        await asyncio.sleep(PRUNE_EVERY_S)


def watch_handshakes(metrics: BrokerMetrics, audit: AuditLog) -> HandshakeRefusals:
    """Handshakes gRPC core refused (read from its log, ``accord.corelog``),
    counted and audited until ``drain()``."""
    loop = asyncio.get_running_loop()
    refusals = HandshakeRefusals(
        metrics,
        lambda record: write_audit(record, audit, metrics),
        window_s=load_handshake_window_s(),
    )
    core = corelog.adopted()  # None unless started as `accord serve broker`
    if core is not None:
        core.listen(lambda refusal: loop.call_soon_threadsafe(refusals.refused, refusal))
    else:
        log.warning("gRPC core's log is not captured: refused handshakes go unrecorded")
    refusals.start()
    return refusals


async def follow_circuits(
    health: Any,
    breakers: Breakers,
    sources: Iterable[str],
    metrics: BrokerMetrics,
    updates: set[asyncio.Task[None]],
) -> None:
    """Each source has a health entry that follows its circuit breaker:
    NOT_SERVING while its circuit is open. Each change is logged once and
    counted (``accord_circuit_changes_total``)."""
    for code in sources:
        await health.set(source_health_name(code), health_pb2.HealthCheckResponse.SERVING)
        metrics.circuit_changed(code, CircuitState.CLOSED, initial=True)
    loop = asyncio.get_running_loop()
    last = dict.fromkeys(sources, CircuitState.CLOSED)

    def follow(source: str, state: CircuitState) -> None:
        log_circuit_change(source, last.get(source, CircuitState.CLOSED), state)
        last[source] = state
        status = (
            health_pb2.HealthCheckResponse.NOT_SERVING
            if state is CircuitState.OPEN
            else health_pb2.HealthCheckResponse.SERVING
        )
        task = loop.create_task(health.set(source_health_name(source), status))
        updates.add(task)
        task.add_done_callback(updates.discard)
        metrics.circuit_changed(source, state)

    breakers.on_change = follow


def log_circuit_change(source: str, before: CircuitState, state: CircuitState) -> None:
    """A line per change of a source's circuit: an outage is two WARNING
    lines (open, closed again); the probes between (half-open, open again
    after a failed probe, every ACCORD_CIRCUIT_RESET_S) are DEBUG."""
    if state is CircuitState.OPEN and before is CircuitState.CLOSED:
        log.warning("source %s: circuit open: its scans fail at once until a probe passes", source)
    elif state is CircuitState.CLOSED:
        log.warning("source %s: circuit closed: it answers again", source)
    else:
        log.debug("source %s: circuit %s", source, state.name.lower().replace("_", "-"))


def serve_broker(
    workdir: Workdir,
    federation_path: Path,
    policies_dir: Path,
    host: str,
    port: int,
    endpoints: dict[str, tuple[str, ...]],
    port_file: Path | None,
    metrics_port: int = 0,
    flight_port: int = 0,
) -> None:
    asyncio.run(
        _serve_broker(
            workdir,
            federation_path,
            policies_dir,
            host,
            port,
            endpoints,
            port_file,
            metrics_port,
            flight_port,
        )
    )


async def _serve_broker(
    workdir: Workdir,
    federation_path: Path,
    policies_dir: Path,
    host: str,
    port: int,
    endpoints: dict[str, tuple[str, ...]],
    port_file: Path | None,
    metrics_port: int,
    flight_port: int = 0,
) -> None:
    federation = load_federation(federation_path).with_endpoints(endpoints)
    policies, policy_sha256 = load_policy(policies_dir, federation)  # any error: no start
    client_cert, client_key = workdir.pki.broker_client()
    metrics = BrokerMetrics()
    metrics.expect(federation.sources, policies.roles)
    server_cert, server_key = workdir.pki.broker_server()
    credentials = ReloadableServerCredentials(workdir.pki.ca_cert(), server_cert, server_key)
    certificates = [workdir.pki.ca_cert(), server_cert, client_cert]
    metrics.watch_certificates(certificates)
    breakers = Breakers(min_timeout_s=load_min_timeout_s(), reset_timeout_s=load_circuit_reset_s())
    revocations = open_revocations(workdir)
    clients = AdapterClients(
        federation,
        workdir.pki.ca_cert(),
        client_cert,
        client_key,
        breakers,
        metrics,
        revocations=revocations,
    )
    pipeline = QueryPipeline(
        federation,
        clients,
        policies,
        workdir.mask_secret(),
        ledger=PrivacyLedger(workdir.privacy_ledger()),  # budgets survive restarts
    )
    audit = open_audit(workdir, broker_instance(host, port))
    await write_audit(
        {
            "event": "start",
            "federation": federation.name,
            "sources": sorted(federation.sources),
            "roles": sorted(policies.roles),
            "partners": len(policies.registry.partners),
            "policy_sha256": policy_sha256,
            **certificate_details(credentials.current),
        },
        audit,
        metrics,
    )
    running = await start_broker(
        pipeline,
        credentials.credentials,
        address=f"{host}:{port}",
        metrics=metrics,
        audit=audit,
        revocations=revocations,
    )
    server, bound, readiness = running.server, running.port, running.readiness
    # The Flight SQL endpoint: the same service (identity, quotas, audit) on
    # its own port, with credentials that follow the same reloads.
    flight, flight_bound = await create_flight_server(
        running.service, credentials.another_port(), address=f"{host}:{flight_port}"
    )
    write_address(workdir.broker_flight_address_file(), host, flight_bound)
    health = readiness.health
    reloader = Reloader(
        policies_dir,
        federation,
        pipeline,
        credentials,
        certificates,
        audit,
        metrics,
        readiness,
        client_certificate=(client_cert, client_key),
        revocations=revocations,
    )
    metrics_port = metrics.serve(
        host,
        metrics_port,
        ready=lambda: broker_checks(
            readiness, len(pipeline.policies.roles), breakers, federation.sources
        ),
    )
    write_address(workdir.metrics_address_file("broker"), host, metrics_port)
    loop = asyncio.get_running_loop()
    updates: set[asyncio.Task[None]] = set()
    await follow_circuits(health, breakers, federation.sources, metrics, updates)
    refusals = watch_handshakes(metrics, audit)
    pruning = asyncio.create_task(prune_daily(audit), name="audit-retention")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def reload() -> None:
        task = loop.create_task(reloader.reload(), name="reload")
        updates.add(task)
        task.add_done_callback(updates.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    write_address(port_file, host, bound)
    log.info(
        "broker serving on %s:%d for %d sources; Flight SQL on %s:%d; metrics on "
        "http://%s:%d/metrics",
        host,
        bound,
        len(federation.sources),
        host,
        flight_bound,
        host,
        metrics_port,
    )
    await stop.wait()
    await health.enter_graceful_shutdown()
    await readiness.stop()
    pruning.cancel()
    await asyncio.gather(server.stop(SHUTDOWN_GRACE_S), flight.stop(SHUTDOWN_GRACE_S))
    await asyncio.gather(clients.close(), refusals.drain())
    pipeline.close()
    await write_audit({"event": "stop"}, audit, metrics)
    audit.close()  # a last signed checkpoint
    log.info("broker stopped")
