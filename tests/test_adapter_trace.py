"""The adapter's own trail (adapters/trace.py) through its servicer, without
gRPC: the access record is durable before the header leaves, the end record
counts the rows sent and says how the scan ended, a refused caller is
recorded, and a scan whose access cannot be recorded is not answered."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, cast

import grpc
import pytest
from cryptography import x509

from accord.audit.keys import load_public_key
from accord.audit.log import AuditLog
from accord.audit.search import search
from accord.audit.verify import verify
from accord.errors import AuditWriteError, ConfigError
from accord.federation import load_federation
from accord.v1 import adapter_pb2
from accord.workdir import DEFAULT_FEDERATION, Workdir
from adapters import server
from adapters.backends import open_backend
from adapters.callers import CallerGate, fingerprint
from adapters.datagen import write_federation_data
from adapters.metrics import AdapterMetrics
from adapters.server import SERVICE_NAME, AdapterService, refusal_recorder
from adapters.trace import ScanTrace
from app.serve import open_adapter_audit
from certs import init_pki
from tests.scans import read_scan

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator
    from pathlib import Path

    from accord.pki import PkiLayout

FEDERATION = load_federation(DEFAULT_FEDERATION)
SOURCE = FEDERATION.source("BC")
UNRELEASED = next(
    c
    for c in FEDERATION.tables["offenders"].columns
    if c not in SOURCE.release["offenders"].columns
)


class Aborted(Exception):
    """What a servicer context's abort raises (gRPC raises its own)."""


class Context:
    """The parts of a gRPC servicer context the adapter uses; the peer is
    the certificate at ``pem``."""

    def __init__(self, common_name: str, pem: bytes) -> None:
        self._auth = {"x509_common_name": [common_name.encode()], "x509_pem_cert": [pem]}
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise Aborted(details)

    def set_trailing_metadata(self, metadata: Any) -> None:
        self.trailing_metadata = metadata

    def add_callback(self, callback: Any) -> bool:
        return True

    def time_remaining(self) -> float:
        return 30.0

    def is_active(self) -> bool:
        return True


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return init_pki(tmp_path_factory.mktemp("pki"), partners={"police": "Police"}, adapters=["BC"])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("data")
    write_federation_data(FEDERATION, directory, seed=5, scale=0.002)
    return directory


@pytest.fixture
def workdir(tmp_path: Path) -> Workdir:
    (tmp_path / "wd" / "certs").mkdir(parents=True)  # as `accord certs init` leaves it
    return Workdir(tmp_path / "wd")


@pytest.fixture
def audit(workdir: Workdir) -> Iterator[AuditLog]:
    with open_adapter_audit(workdir, "BC", "adapter-BC@test") as trail:
        yield trail


def service(pki: PkiLayout, data: Path, audit: AuditLog) -> AdapterService:
    return AdapterService(
        FEDERATION, SOURCE, open_backend(SOURCE, data), trace=ScanTrace(audit, "BC")
    )


def gate(pki: PkiLayout, audit: AuditLog) -> CallerGate:
    """The adapter's caller check, recording refusals in ``audit`` as the server does."""
    broker = x509.load_pem_x509_certificate(pki.broker_client()[0].read_bytes())
    return CallerGate(
        "BC",
        SERVICE_NAME,
        FEDERATION.broker_identities,
        [broker],
        None,
        AdapterMetrics("BC"),
        on_refused=refusal_recorder(ScanTrace(audit, "BC")),
    )


def broker_context(pki: PkiLayout) -> Context:
    return Context("accord-broker", pki.broker_client()[0].read_bytes())


def records(workdir: Workdir) -> list[dict[str, Any]]:
    return list(search(workdir.adapter_audit_dir("BC")))


REQUEST = adapter_pb2.ScanRequest(
    table="offenders",
    columns=["surname", "fps_number"],
    predicate="status = 'UAL'",
    limit=0,
    query_id="q-1",
    partner="crown_attorney",
    end_user="clerk 7",
)


def test_the_access_is_durable_before_the_header_and_the_end_counts_the_rows(
    pki, data, workdir, audit
):
    context = broker_context(pki)
    stream = service(pki, data, audit).Scan(REQUEST, context)  # type: ignore[arg-type]
    header = next(stream)
    assert header.WhichOneof("payload") == "header"
    (access,) = records(workdir)  # before anything but the header left
    assert access["event"] == "scan" and access["outcome"] == "STARTED"
    assert access["query_id"] == "q-1" and access["partner"] == "crown_attorney"
    assert access["end_user"] == "clerk 7" and access["source"] == "BC"
    assert access["table"] == "offenders" and access["columns"] == ["surname", "fps_number"]
    assert access["predicate"] == "status = 'UAL'" and access["explain_only"] is False
    assert access["caller_cn"] == "accord-broker"
    assert access["caller_sha256"] == fingerprint(pki.broker_client()[0].read_bytes())
    assert access["caller_serial"].isdigit()
    answer = read_scan([header, *stream])
    assert context.aborted is None
    _, end = records(workdir)
    assert end["event"] == "scan_end" and end["access_seq"] == access["seq"]
    assert end["outcome"] == "OK" and end["rows"] == answer.table.num_rows > 0
    assert end["duration_ms"] >= 0 and "error" not in end
    assert "surname" not in str(end)  # counts only, never the values sent


class Full(AuditLog):
    """A trail that cannot take a record (every write, single or batched, goes here)."""

    def append_many(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise AuditWriteError("the audit trail is unavailable")


def test_a_scan_whose_access_cannot_be_recorded_is_refused_unavailable(pki, data, workdir):
    full = Full(workdir.adapter_audit_dir("BC"), _key(workdir))
    context = broker_context(pki)
    with pytest.raises(Aborted):
        next(service(pki, data, full).Scan(REQUEST, context))  # type: ignore[arg-type]
    assert context.aborted is not None and context.aborted[0] == grpc.StatusCode.UNAVAILABLE
    assert records(workdir) == []


def test_a_batch_whose_accesses_cannot_be_recorded_runs_no_scan(pki, data, workdir):
    full = Full(workdir.adapter_audit_dir("BC"), _key(workdir))
    context = broker_context(pki)
    batch = adapter_pb2.ScanBatchRequest(scans=[REQUEST, REQUEST])
    with pytest.raises(Aborted):
        next(service(pki, data, full).ScanBatch(batch, context))  # type: ignore[arg-type]
    assert context.aborted is not None and context.aborted[0] == grpc.StatusCode.UNAVAILABLE
    assert records(workdir) == []


def test_a_batch_records_every_access_before_its_first_header(pki, data, workdir, audit):
    denied = adapter_pb2.ScanRequest(table="offenders", columns=[UNRELEASED], query_id="q-2")
    batch = adapter_pb2.ScanBatchRequest(scans=[REQUEST, denied, REQUEST])
    context = broker_context(pki)
    stream = service(pki, data, audit).ScanBatch(batch, context)  # type: ignore[arg-type]
    first = next(stream)
    assert first.items[0].scan == 0 and first.items[0].response.HasField("header")
    accesses = records(workdir)
    assert [r["event"] for r in accesses] == ["scan"] * 3  # all three, before anything ran
    assert [r["query_id"] for r in accesses] == ["q-1", "q-2", "q-1"]
    items = [*first.items, *(item for message in stream for item in message.items)]
    assert context.aborted is None
    answers = [read_scan(i.response for i in items if i.scan == n) for n in (0, 2)]
    (error,) = [i.error for i in items if i.scan == 1]
    assert error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    ends = {r["access_seq"]: r for r in records(workdir) if r["event"] == "scan_end"}
    assert [ends[a["seq"]]["outcome"] for a in accesses] == ["OK", "DENIED", "OK"]
    assert [ends[accesses[n]["seq"]]["rows"] for n in (0, 2)] == [a.table.num_rows for a in answers]


def test_a_batch_left_midway_records_the_rest_as_cancelled(pki, data, workdir, audit, monkeypatch):
    monkeypatch.setattr(server, "PACKED_BYTES", 1)  # each item its own message
    batch = adapter_pb2.ScanBatchRequest(scans=[REQUEST, REQUEST, REQUEST])
    stream = cast(
        "Generator[adapter_pb2.ScanBatchResponse, None, None]",
        service(pki, data, audit).ScanBatch(batch, broker_context(pki)),  # type: ignore[arg-type]
    )
    (item,) = next(stream).items
    assert item.scan == 0 and item.response.HasField("header")
    stream.close()  # the call ended under the batch (the broker went away)
    accesses = [r for r in records(workdir) if r["event"] == "scan"]
    ends = {r["access_seq"]: r for r in records(workdir) if r["event"] == "scan_end"}
    assert len(accesses) == 3
    assert [ends[a["seq"]]["outcome"] for a in accesses] == ["CANCELLED"] * 3


def _key(workdir: Workdir) -> Any:
    from accord.audit.keys import load_or_create_signing_key

    return load_or_create_signing_key(workdir.path / "k.key")


def test_a_denied_scan_is_recorded_and_ends_denied(pki, data, workdir, audit):
    request = adapter_pb2.ScanRequest(table="offenders", columns=[UNRELEASED], query_id="q-2")
    context = broker_context(pki)
    with pytest.raises(Aborted):
        list(service(pki, data, audit).Scan(request, context))  # type: ignore[arg-type]
    assert context.aborted is not None
    assert context.aborted[0] == grpc.StatusCode.PERMISSION_DENIED
    access, end = records(workdir)
    assert access["columns"] == [UNRELEASED] and end["access_seq"] == access["seq"]
    assert end["outcome"] == "DENIED" and end["rows"] == 0 and UNRELEASED in end["error"]


def test_a_scan_the_caller_stops_reading_ends_cancelled(pki, data, workdir, audit):
    stream = cast(
        "Generator[adapter_pb2.ScanResponse, None, None]",
        service(pki, data, audit).Scan(REQUEST, broker_context(pki)),  # type: ignore[arg-type]
    )
    next(stream)
    stream.close()  # a response generator gRPC drops is closed so when collected
    _, end = records(workdir)
    assert end["outcome"] == "CANCELLED" and end["rows"] == 0


def test_a_refused_caller_gets_one_record_and_no_scan(pki, data, workdir, audit):
    partner_pem = pki.partner("police")[0].read_bytes()
    context = Context("police", partner_pem)
    with pytest.raises(Aborted):
        gate(pki, audit).authorize(f"/{SERVICE_NAME}/Scan", REQUEST, context)  # type: ignore[arg-type]
    assert context.aborted is not None
    assert context.aborted[0] == grpc.StatusCode.PERMISSION_DENIED
    (refused,) = records(workdir)
    assert refused["event"] == "scan_refused" and refused["caller_cn"] == "police"
    assert refused["caller_sha256"] == fingerprint(partner_pem)
    assert refused["query_id"] == "q-1" and refused["table"] == "offenders"


def test_what_the_caller_sent_is_kept_bounded(pki, data, workdir, audit):
    request = adapter_pb2.ScanRequest(
        table="offenders",
        columns=["surname"] * 1000,
        predicate="surname = '" + "x" * 100_000 + "'",
        query_id="q" * 5000,
        partner="p" * 5000,
    )
    with contextlib.suppress(Aborted):  # answered or refused: recorded either way
        list(service(pki, data, audit).Scan(request, broker_context(pki)))  # type: ignore[arg-type]
    access, end = records(workdir)
    assert set(access["truncated"]) == {"columns", "predicate", "query_id", "partner"}
    assert access["truncated"]["predicate"] > 100_000 and len(access["columns"]) == 256
    assert all(
        len(path.read_bytes()) < 64_000 for path in workdir.adapter_audit_dir("BC").iterdir()
    )
    assert end["query_id"] == access["query_id"] and end["access_seq"] == access["seq"]


def test_the_trail_verifies_against_its_pin_and_a_new_key_is_refused(pki, data, workdir, audit):
    list(service(pki, data, audit).Scan(REQUEST, broker_context(pki)))  # type: ignore[arg-type]
    audit.close()
    pin = load_public_key(workdir.adapter_audit_key_pin("BC"))
    report = verify(workdir.adapter_audit_dir("BC"), pin)
    assert report.ok and report.records == 2 and report.checkpoints == 1
    assert workdir.adapter_audit_key_pin("BC") != workdir.audit_key_pin()
    workdir.adapter_audit_key("BC").unlink()  # a replaced key must not sign this trail
    with pytest.raises(ConfigError, match="pinned"):
        open_adapter_audit(workdir, "BC", "adapter-BC@test")


def test_an_adapter_that_starts_first_leaves_the_trail_directory_private(workdir, audit):
    assert workdir.audit_dir().stat().st_mode & 0o777 == 0o700
    assert workdir.adapter_audit_dir("BC").stat().st_mode & 0o777 == 0o700
