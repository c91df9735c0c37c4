"""Prometheus pieces the broker and the adapters share: the latency buckets,
build info, certificate expiry, and the /metrics endpoint on its own port.

Each process keeps its metrics in a registry of its own (no global state),
so tests can run several in one interpreter.
"""

from __future__ import annotations

import datetime as dt
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry, Gauge, Info, start_http_server

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

#: Seconds; from a cached policy decision up to the longest deadline allowed.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def accord_version() -> str:
    try:
        return version("accord")
    except PackageNotFoundError:
        return "unknown"


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

    def serve(self, host: str, port: int) -> int:
        """Starts /metrics on its own port; returns the port bound."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)
