"""Prometheus pieces the broker and the adapters share: the latency buckets,
build info, certificate expiry, and the operator's HTTP endpoints on their
own port (never the partners'):

* ``/metrics``: Prometheus' text format;
* ``/healthz``: liveness, 200 while the process answers at all;
* ``/readyz``: readiness, 200 when every required check passes, else 503,
  with each check as JSON (``{"ready": .., "checks": [{"name", "ok", "detail",
  "required"}]}``); a check that is not required (a source's circuit at the
  broker) is reported without deciding;
* anything else: 404.

Each process keeps its metrics in a registry of its own (no global state),
so tests can run several in one interpreter.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import threading
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.x509.oid import NameOID
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Info, generate_latest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

log = logging.getLogger("accord.telemetry")

#: Seconds; from a cached policy decision up to the longest deadline allowed.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def accord_version() -> str:
    try:
        return version("accord")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Check:
    """One line of /readyz: what was checked, whether it passed, and why not."""

    name: str
    ok: bool
    detail: str = ""
    #: Whether a failure makes the process not ready (else it is only reported).
    required: bool = True


def readiness_report(checks: Iterable[Check]) -> tuple[bool, dict[str, object]]:
    """(ready, the JSON body of /readyz).

    >>> readiness_report([Check("audit", True), Check("source/BC", False, "open", False)])[0]
    True
    >>> readiness_report([Check("audit", False, "disk full")])[0]
    False
    """
    listed = list(checks)
    ready = all(c.ok for c in listed if c.required)
    return ready, {"ready": ready, "checks": [asdict(c) for c in listed]}


class ProcessMetrics:
    """A registry holding what every Accord process exports."""

    def __init__(self, component: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.build = Info("accord_build", "The running Accord version.", registry=r)
        self.build.info({"version": accord_version(), "component": component})
        self.certificate_expiry = Gauge(
            "accord_certificate_expiry_timestamp_seconds",
            "When a certificate this process uses expires.",
            ["subject"],
            registry=r,
        )

    def watch_certificates(self, paths: Iterable[Path]) -> None:
        """Records (again, after a reload) when each certificate expires."""
        for path in paths:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            subject = str(names[0].value) if names else path.stem
            expiry = cert.not_valid_after_utc.replace(tzinfo=dt.UTC).timestamp()
            self.certificate_expiry.labels(subject).set(expiry)

    def serve(self, host: str, port: int, ready: Callable[[], list[Check]] | None = None) -> int:
        """Starts the operator endpoints (see the module doc) on their own
        port, on a thread; ``ready`` gives /readyz its checks. Returns the
        port bound."""
        checks = ready or (lambda: [])
        try:
            server = OperatorServer((host, port), self.registry, checks)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or port == 0:
                raise
            # A restart asks for its old port, which a connection may have
            # taken meanwhile (it was an ephemeral one): metrics are not
            # worth refusing to serve, the address file says where they went.
            log.warning("metrics port %d is taken; serving metrics on a free one", port)
            server = OperatorServer((host, 0), self.registry, checks)
        threading.Thread(target=server.serve_forever, name="operator-http", daemon=True).start()
        return int(server.server_port)


class OperatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        ready: Callable[[], list[Check]],
    ) -> None:
        self.registry = registry
        self.ready = ready
        super().__init__(address, _OperatorHandler)


class _OperatorHandler(BaseHTTPRequestHandler):
    server: OperatorServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(self.server.registry))
        elif path == "/healthz":
            self._send(HTTPStatus.OK, "text/plain; charset=utf-8", b"ok\n")
        elif path == "/readyz":
            try:
                ready, body = readiness_report(self.server.ready())
            except Exception:  # a failing check is an answer, not a crash of the endpoint
                log.exception("readiness check failed")
                ready, body = False, {"ready": False, "checks": [], "error": "check failed"}
            status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
            self._send(status, "application/json", json.dumps(body).encode() + b"\n")
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes every few seconds are not worth a log line each."""
