"""The broker's /metrics: queries, sources, denials, circuits, certificates."""

from __future__ import annotations

import urllib.request
from typing import TYPE_CHECKING

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

#: (metric name, sorted label pairs) -> the sample's value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(running: Running, process: str = "broker") -> Samples:
    address = running.workdir.metrics_address_file(process).read_text().strip()
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_queries_sources_and_denials_are_counted(running, crown):
    before = scrape(running)
    crown.query("SELECT count(*) FROM offenders")
    with pytest.raises(grpc.RpcError):
        crown.query("SELECT address FROM offenders")
    after = scrape(running)
    ok = ("accord_queries_total", {"role": "crown_attorney", "outcome": "ok"})
    assert value(after, ok[0], **ok[1]) == value(before, ok[0], **ok[1]) + 1
    denied = {"role": "crown_attorney", "reason": "column"}
    assert (
        value(after, "accord_policy_denials_total", **denied)
        == value(before, "accord_policy_denials_total", **denied) + 1
    )
    scans = {"source": "QC", "outcome": "ok"}
    assert value(after, "accord_source_requests_total", **scans) > value(
        before, "accord_source_requests_total", **scans
    )
    assert value(after, "accord_query_duration_seconds_count", role="crown_attorney") >= 2
    assert value(after, "accord_inflight_queries") == 0
    assert (
        value(after, "accord_audit_records_total")
        >= value(before, "accord_audit_records_total") + 2
    )
    assert value(after, "accord_audit_write_failures_total") == 0


def test_circuits_and_certificates_are_visible(running):
    samples = scrape(running)
    for source in ("CA-CSC", "BC", "ON", "QC", "SK", "YT"):
        assert ("accord_circuit_state", (("source", source),)) in samples
    assert (
        value(samples, "accord_certificate_expiry_timestamp_seconds", subject="accord-broker")
        > 1.7e9
    )
    assert any(name == "accord_build_info" for name, _ in samples)


def test_labels_carry_no_query_text_or_person(running, crown):
    crown.query("SELECT surname FROM offenders WHERE fps_number = '1234567A'")
    for process in ("broker", "adapter-bc"):
        for _name, labels in scrape(running, process):
            for _, label_value in labels:
                assert "1234567A" not in label_value and "SELECT" not in label_value


def test_adapters_count_their_scans_rows_and_bytes(running, crown):
    before = scrape(running, "adapter-bc")
    result = crown.query("SELECT fps_number, surname FROM offenders WHERE source = 'BC'")
    after = scrape(running, "adapter-bc")
    ok = {"source": "BC", "table": "offenders", "outcome": "ok"}
    assert (
        value(after, "accord_adapter_scans_total", **ok)
        == value(before, "accord_adapter_scans_total", **ok) + 1
    )
    rows = {"source": "BC", "table": "offenders"}
    sent = value(after, "accord_adapter_rows_total", **rows) - value(
        before, "accord_adapter_rows_total", **rows
    )
    assert sent >= result.table.num_rows > 0  # the adapter also sends rows the policy hides
    assert value(after, "accord_adapter_bytes_total", source="BC") > value(
        before, "accord_adapter_bytes_total", source="BC"
    )
    assert (
        value(after, "accord_adapter_scan_duration_seconds_count", source="BC")
        == value(before, "accord_adapter_scan_duration_seconds_count", source="BC") + 1
    )
    assert value(after, "accord_adapter_inflight_scans", source="BC") == 0
    assert value(after, "accord_certificate_expiry_timestamp_seconds", subject="adapter-bc") > 1.7e9
    assert any(
        name == "accord_build_info" and dict(labels)["component"] == "adapter"
        for name, labels in after
    )


def test_adapters_count_callers_they_refuse(running):
    """A partner that reaches an adapter directly is refused, and counted."""
    from accord import tls
    from accord.v1 import adapter_pb2, adapter_pb2_grpc

    before = value(
        scrape(running, "adapter-bc"), "accord_adapter_refused_callers_total", source="BC"
    )
    ca, cert, key = running.workdir.partner_credentials("police")
    address = running.launcher.adapter_addresses["BC"]
    with grpc.secure_channel(address, tls.channel_credentials(ca, cert, key)) as channel:
        stub = adapter_pb2_grpc.AdapterStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            list(
                stub.Scan(
                    adapter_pb2.ScanRequest(table="offenders", columns=["surname"]), timeout=5
                )
            )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    after = value(
        scrape(running, "adapter-bc"), "accord_adapter_refused_callers_total", source="BC"
    )
    assert after == before + 1
