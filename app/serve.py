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
from typing import TYPE_CHECKING

from grpc_health.v1 import health_pb2

from accord import corelog
from accord.errors import AuditWriteError
from accord.federation import load_federation
from accord.tls import ReloadableServerCredentials
from accord.workdir import write_text_atomically
from adapters.backends import open_backend
from adapters.metrics import AdapterMetrics
from adapters.server import create_server as create_adapter_server
from broker.audit.keys import load_or_create_signing_key, pin_public_key
from broker.audit.log import AuditLog
from broker.breaker import Breakers, CircuitState
from broker.budget import PrivacyLedger
from broker.fanout import AdapterClients
from broker.metrics import BrokerMetrics
from broker.pipeline import QueryPipeline
from broker.record import write_audit
from broker.refusals import HandshakeRefusals
from broker.reload import Reloader, certificate_details, load_policy
from broker.server import create_server as create_broker_server
from broker.settings import load_audit_settings, load_handshake_window_s, load_min_timeout_s

if TYPE_CHECKING:
    from pathlib import Path

    from accord.workdir import Workdir

log = logging.getLogger("accord.serve")

#: Seconds in-flight calls get to finish on shutdown.
SHUTDOWN_GRACE_S = 5.0
#: Seconds between two passes of audit retention.
PRUNE_EVERY_S = 24 * 3600.0


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
    server, bound, health = create_adapter_server(
        federation,
        source,
        backend,
        ca=workdir.pki.ca_cert(),
        cert=cert,
        key=key,
        broker_certs=[workdir.pki.broker_client()[0]],
        address=f"{host}:{port}",
        metrics=metrics,
    )
    metrics_port = metrics.serve(host, metrics_port)
    write_address(workdir.metrics_address_file(f"adapter-{source.code}"), host, metrics_port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
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
    stop.wait()
    health.enter_graceful_shutdown()
    backend_done = server.stop(SHUTDOWN_GRACE_S)
    backend_done.wait()
    log.info("adapter %s stopped", source.code)


def broker_instance(host: str, port: int) -> str:
    """The audit records' ``instance``: host and port, or, for a port picked
    at random, the process."""
    where = f"{host}:{port}" if port else f"pid-{os.getpid()}"
    return f"broker@{socket.gethostname()}/{where}"


def open_audit(workdir: Workdir, instance: str) -> AuditLog:
    """The work dir's audit trail, with the ACCORD_AUDIT_* settings; its key
    pinned on first use (a key that differs from the pin: no start)."""
    kept = load_audit_settings()
    key = load_or_create_signing_key(workdir.audit_key())
    pin_public_key(workdir.audit_key_pin(), key.public_key())
    return AuditLog(
        workdir.audit_dir(),
        key,
        instance=instance,
        retention_days=kept.retention_days,
        checkpoint_every=kept.checkpoint_records,
        checkpoint_seconds=kept.checkpoint_s,
        max_file_bytes=kept.file_bytes,
    )


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


def serve_broker(
    workdir: Workdir,
    federation_path: Path,
    policies_dir: Path,
    host: str,
    port: int,
    endpoints: dict[str, tuple[str, ...]],
    port_file: Path | None,
    metrics_port: int = 0,
) -> None:
    asyncio.run(
        _serve_broker(
            workdir, federation_path, policies_dir, host, port, endpoints, port_file, metrics_port
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
) -> None:
    federation = load_federation(federation_path).with_endpoints(endpoints)
    policies, policy_sha256 = load_policy(policies_dir, federation)  # any error: no start
    client_cert, client_key = workdir.pki.broker_client()
    metrics = BrokerMetrics()
    server_cert, server_key = workdir.pki.broker_server()
    credentials = ReloadableServerCredentials(workdir.pki.ca_cert(), server_cert, server_key)
    certificates = [workdir.pki.ca_cert(), server_cert, client_cert]
    metrics.watch_certificates(certificates)
    breakers = Breakers(min_timeout_s=load_min_timeout_s())
    clients = AdapterClients(
        federation, workdir.pki.ca_cert(), client_cert, client_key, breakers, metrics
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
    server, bound, readiness = await create_broker_server(
        pipeline,
        credentials.credentials,
        address=f"{host}:{port}",
        metrics=metrics,
        audit=audit,
    )
    health = readiness.health
    reloader = Reloader(
        policies_dir, federation, pipeline, credentials, certificates, audit, metrics, readiness
    )
    metrics_port = metrics.serve(host, metrics_port)
    write_address(workdir.metrics_address_file("broker"), host, metrics_port)
    # Each source has a health entry that follows its circuit breaker:
    # NOT_SERVING while its circuit is open.
    for code in federation.sources:
        await health.set(source_health_name(code), health_pb2.HealthCheckResponse.SERVING)
        metrics.circuit_changed(code, CircuitState.CLOSED)
    loop = asyncio.get_running_loop()
    updates: set[asyncio.Task[None]] = set()

    def follow(source: str, state: CircuitState) -> None:
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
        "broker serving on %s:%d for %d sources; metrics on http://%s:%d/metrics",
        host,
        bound,
        len(federation.sources),
        host,
        metrics_port,
    )
    await stop.wait()
    await health.enter_graceful_shutdown()
    await readiness.stop()
    pruning.cancel()
    await server.stop(SHUTDOWN_GRACE_S)
    await asyncio.gather(clients.close(), refusals.drain())
    pipeline.close()
    await write_audit({"event": "stop"}, audit, metrics)
    audit.close()  # a last signed checkpoint
    log.info("broker stopped")
