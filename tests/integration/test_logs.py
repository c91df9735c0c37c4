"""Structured logs: every line a JSON object carrying the query it belongs to,
in the broker and in the adapters, so one grep follows a query across them."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

import grpc
import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

FIELDS = {"time", "level", "logger", "service", "query_id", "message"}


#: A line gRPC's C core writes to stderr (absl format), e.g. after a refused
#: TLS handshake: ``I1201 10:31:56.154180    1649 ssl_transport_security.cc:2563]
#: Handshake failed ...``. It shares the process's log file but is not Accord's
#: logging; it appears only once some test has had a handshake refused, so
#: reading it as a failure would make these tests depend on what ran before.
GRPC_CORE_LINE = re.compile(r"[DIWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w./-]+:\d+\] ")


def log_lines(running: Running, name: str) -> list[dict[str, Any]]:
    """Accord's log lines of one process, each parsed (it must be JSON)."""
    path = running.workdir.logs / f"{name}.log"
    return [
        json.loads(line)
        for line in path.read_text().splitlines()
        if line.strip() and not GRPC_CORE_LINE.match(line)
    ]


def test_grpc_core_lines_are_told_apart_from_accord_lines():
    core = (
        "I1201 10:31:56.154180    1649 ssl_transport_security.cc:2563] Handshake failed with "
        "error SSL_ERROR_SSL: CERTIFICATE_VERIFY_FAILED: certificate has expired"
    )
    assert GRPC_CORE_LINE.match(core)
    assert not GRPC_CORE_LINE.match('{"time": "2026-12-01T10:31:56+00:00", "level": "INFO"}')
    assert not GRPC_CORE_LINE.match("Traceback (most recent call last):")


def lines_of(
    running: Running, name: str, query_id: str, within_s: float = 5.0
) -> list[dict[str, Any]]:
    """The lines of one process about one query (waiting for them to be flushed)."""
    deadline = time.monotonic() + within_s
    while True:
        found = [line for line in log_lines(running, name) if line["query_id"] == query_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_every_line_is_json_with_the_query_id(running, crown):
    result = crown.query("SELECT source, count(*) AS n FROM offenders GROUP BY source")
    query_id = result.query_id
    assert len(query_id) == 32
    broker = lines_of(running, "broker", query_id)
    assert broker and all(line["service"] == "broker" for line in broker)
    assert any("answered crown_attorney" in line["message"] for line in broker)
    # Each adapter logged its scan under the broker's query id.
    for code in running.federation.sources:
        name = f"adapter-{code.lower()}"
        scans = lines_of(running, name, query_id)
        assert scans, f"{name} logged nothing for query {query_id}"
        assert all(line["service"] == f"adapter-{code}" for line in scans)
        assert any(line["message"].startswith("scan of offenders: ") for line in scans)
    for name in ["broker", *(f"adapter-{c.lower()}" for c in running.federation.sources)]:
        for line in log_lines(running, name):  # every line parses, and has every field
            assert line.keys() >= FIELDS, line
            assert line["time"].endswith("+00:00"), line  # UTC


def test_a_refusal_is_logged_under_its_query_id(running, crown):
    with pytest.raises(grpc.RpcError):
        crown.query("SELECT address FROM offenders")
    refusals = [
        line
        for line in log_lines(running, "broker")
        if line["message"].startswith("query refused: PERMISSION_DENIED")
    ]
    assert refusals and all(len(line["query_id"]) == 32 for line in refusals)
    # A query id is that query's own: no two refusals share one.
    ids = [line["query_id"] for line in refusals]
    assert len(ids) == len(set(ids))
