"""The operator's side of a process: the HTTP endpoints on the metrics port
(accord.telemetry), what a partner may see of a failed scan (broker.fanout),
and the log lines of a source's circuit (app.serve)."""

from __future__ import annotations

import itertools
import json
import logging
import socket
import urllib.error
import urllib.request

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.errors import SourceRefused, SourceTimedOut, SourceUnavailable
from accord.metadata import ADAPTER_ERROR_METADATA
from accord.telemetry import Check, ProcessMetrics
from app.serve import log_circuit_change
from broker.breaker import CircuitState
from broker.fanout import _source_error, scrub
from broker.metrics import BrokerMetrics


def get(port: int, path: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of GET ``path``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


@pytest.fixture
def checks() -> list[Check]:
    return [Check("audit", True, "writable"), Check("source/BC", False, "open", required=False)]


@pytest.fixture
def port(checks: list[Check]) -> int:
    metrics = BrokerMetrics()
    metrics.circuit_changed("BC", CircuitState.OPEN)
    return metrics.serve("127.0.0.1", 0, ready=lambda: checks)


def test_metrics_are_served_in_prometheus_text_format(port):
    status, kind, body = get(port, "/metrics")
    assert status == 200
    assert kind.startswith("text/plain; version=")
    assert b'accord_circuit_changes_total{source="BC",state="open"} 1.0' in body


def test_healthz_is_liveness(port):
    assert get(port, "/healthz")[:2] == (200, "text/plain; charset=utf-8")


def test_readyz_reports_each_check_and_a_source_down_does_not_decide(port, checks):
    status, kind, body = get(port, "/readyz")
    assert (status, kind) == (200, "application/json")
    report = json.loads(body)
    assert report["ready"] is True
    assert [(c["name"], c["ok"], c["required"]) for c in report["checks"]] == [
        ("audit", True, True),
        ("source/BC", False, False),
    ]
    checks[0] = Check("audit", False, "cannot write /audit: disk full")
    status, _, body = get(port, "/readyz")
    assert status == 503
    assert json.loads(body)["ready"] is False


def test_readyz_whose_check_raises_is_503_not_a_crash():
    def broken() -> list[Check]:
        raise RuntimeError("boom")

    port = ProcessMetrics("adapter").serve("127.0.0.1", 0, ready=broken)
    status, _, body = get(port, "/readyz")
    assert status == 503
    assert b"boom" not in body
    assert get(port, "/healthz")[0] == 200  # the server lives on


@pytest.mark.parametrize(
    "path", ["/", "/ready", "/health", "/metrics/x", "/readyz/", "/favicon.ico"]
)
def test_every_other_path_is_404(port, path):
    assert get(port, path)[0] == 404


def test_a_taken_metrics_port_falls_back_to_a_free_one():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        port = ProcessMetrics("adapter").serve("127.0.0.1", busy)
        assert port != busy
        assert get(port, "/healthz")[0] == 200


# -- what partners see of a failed scan --------------------------------------


def rpc_error(code: grpc.StatusCode, details: str, *, own: bool = True) -> grpc.aio.AioRpcError:
    """A failed scan call; ``own``: marked as the adapter's own error."""
    trailing = grpc.aio.Metadata((ADAPTER_ERROR_METADATA, "1")) if own else grpc.aio.Metadata()
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details, None)


CORE_UNAVAILABLE = (
    "failed to connect to all addresses; last error: UNKNOWN: "
    "ipv4:127.0.0.1:51062: Failed to connect to remote host: Connection refused"
)


def test_an_unreachable_adapter_is_named_without_its_address(caplog):
    caplog.set_level(logging.INFO, logger="accord.fanout")
    error = _source_error("BC", rpc_error(grpc.StatusCode.UNAVAILABLE, CORE_UNAVAILABLE, own=False))
    assert isinstance(error, SourceUnavailable)
    assert str(error) == "source BC: unavailable: its adapter cannot be reached"
    # The operators have it, in the log.
    assert any("ipv4:127.0.0.1:51062" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("code", "details", "kind", "message"),
    [
        (
            grpc.StatusCode.PERMISSION_DENIED,
            "source BC does not release rows to 10.2.3.4",
            SourceRefused,
            "source BC: refused: source BC does not release rows to <address>",
        ),
        (
            grpc.StatusCode.INVALID_ARGUMENT,
            "column x cannot be compared (db at pg.internal:5432)",
            None,
            "source BC: INVALID_ARGUMENT: column x cannot be compared (db at <address>)",
        ),
        (
            grpc.StatusCode.INTERNAL,
            'Traceback (most recent call last): File "/srv/adapter.py", line 3 at [::1]:50051',
            None,
            "source BC: INTERNAL: the scan failed; the operators have the details",
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            "its database file bc.sqlite is missing",
            SourceUnavailable,
            "source BC: unavailable: its database file bc.sqlite is missing",
        ),
        (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "Deadline Exceeded at ipv6:%5B::1%5D:50051",
            SourceTimedOut,
            "source BC: did not answer before the query's deadline",
        ),
    ],
)
def test_scan_errors_keep_the_adapters_words_but_no_address_or_stack(code, details, kind, message):
    error = _source_error("BC", rpc_error(code, details))
    assert str(error) == message
    if kind is not None:
        assert isinstance(error, kind)


octet = st.integers(0, 255).map(str)
ipv4 = st.tuples(octet, octet, octet, octet).map(".".join)
address = st.one_of(
    ipv4,
    st.tuples(ipv4, st.integers(1, 65535)).map(lambda a: f"{a[0]}:{a[1]}"),
    st.tuples(ipv4, st.integers(1, 65535)).map(lambda a: f"ipv4:{a[0]}:{a[1]}"),
    st.integers(1, 65535).map(lambda p: f"[::1]:{p}"),
    st.tuples(
        st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True),
        st.integers(10, 65535),
    ).map(lambda a: f"{a[0]}:{a[1]}"),
)
words = st.text(st.characters(whitelist_categories=("Ll", "Lu", "Zs")), max_size=20)


@given(st.lists(st.tuples(words, address), min_size=1, max_size=4), words)
def test_scrub_leaves_no_address_in_any_text(parts, tail):
    text = "".join(f"{w} {a} " for w, a in parts) + tail
    scrubbed = scrub(text)
    for _, a in parts:
        assert a not in scrubbed
    # The words around the addresses stay.
    assert scrubbed.count("<address>") == len(parts)


# -- the log of a source's circuit --------------------------------------------


def test_an_outage_is_two_warning_lines_however_many_probes_fail(caplog):
    caplog.set_level(logging.DEBUG, logger="accord.serve")
    closed, half, shut = CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN
    sequence = [closed, shut, half, shut, half, shut, half, closed]
    for before, state in itertools.pairwise(sequence):
        log_circuit_change("BC", before, state)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "source BC: circuit open: its scans fail at once until a probe passes",
        "source BC: circuit closed: it answers again",
    ]
    assert len(caplog.records) == len(sequence) - 1  # every change has its line


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT]
)
def test_words_the_adapter_did_not_mark_as_its_own_are_not_passed_on(code):
    """gRPC core, or a proxy in between, may use any code: without the
    adapter's mark the details stay in the log."""
    error = _source_error("BC", rpc_error(code, "upstream connect error 10.0.0.9", own=False))
    assert "upstream" not in str(error)
    assert "<address>" not in str(error)
