"""What an adapter takes again on SIGHUP, without a restart: its certificate,
the broker identities it serves (names, and the pin of the broker's
certificate: a new one is added, the old kept until it expires or is
revoked) and the revocation list.

Each part is all or nothing: a certificate that is not valid now or does not
match its key, a federation file that does not load, or a revocation list
the CA did not sign is refused and what is in force stays. Every attempt is
logged and counted (``accord_adapter_reloads_total``), and returned as a
record for the adapter's own trail.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from accord.errors import AccordError
from accord.federation import load_federation
from adapters.callers import read_certificates

if TYPE_CHECKING:
    from pathlib import Path

    from accord.revocation import RevocationList
    from adapters.metrics import AdapterMetrics
    from adapters.server import RunningAdapter

log = logging.getLogger("accord.adapter.reload")


def reload_adapter(
    running: RunningAdapter,
    federation_path: Path,
    broker_certs: list[Path],
    revocations: RevocationList,
    metrics: AdapterMetrics,
) -> list[dict[str, Any]]:
    """Reloads each part; one record per part, with its outcome."""
    return [
        _attempt("certificate", metrics, lambda: _certificate(running)),
        _attempt(
            "broker_identities",
            metrics,
            lambda: _identities(running, federation_path, broker_certs),
        ),
        _attempt("revocation_list", metrics, lambda: _revocations(revocations)),
    ]


def _certificate(running: RunningAdapter) -> dict[str, Any]:
    cert = running.credentials.reload()  # the next handshake presents it
    return {
        "certificate_serial": str(cert.serial_number),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def _identities(
    running: RunningAdapter, federation_path: Path, broker_certs: list[Path]
) -> dict[str, Any]:
    """The names from the federation file and the pins from the broker's
    certificate file, both read before either is used: all or nothing."""
    names = load_federation(federation_path).broker_identities
    certificates = read_certificates(broker_certs)
    running.gate.use_broker_identities(names)
    added = running.gate.pin(certificates)
    return {
        "broker_identities": list(names),
        "pins_added": added,
        "pins": sorted(running.gate.pins),
    }


def _revocations(revocations: RevocationList) -> dict[str, Any]:
    return {"changed": revocations.reload(), **revocations.summary()}


def _attempt(kind: str, metrics: AdapterMetrics, run: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"event": f"{kind}_reload"}
    try:
        record.update(outcome="OK", **run())
    except (AccordError, ValueError, OSError) as exc:
        record.update(outcome="FAILED", error=str(exc))
        log.error("%s reload refused; what is in force stays: %s", kind, exc)
    else:
        log.info("%s reloaded: %s", kind, {k: v for k, v in record.items() if k != "event"})
    metrics.reloads.labels(metrics.source, kind, record["outcome"].lower()).inc()
    return record
