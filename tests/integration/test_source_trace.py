"""A trace at the source: each adapter keeps its own signed trail of the
scans it served, and `accord audit reconcile` matches it against the
broker's, so a scan made with the broker's key outside the broker stands out.

Over the session's federation, which other tests also query (some through
brokers of their own, whose scans reconcile rightly flags): each test looks
only at the query ids it made.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
import uuid
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from accord import tls
from accord.audit.search import search
from accord.v1 import adapter_pb2, adapter_pb2_grpc
from accord.workdir import Workdir
from adapters.callers import fingerprint
from app.cli import main
from tests.scans import read_scan

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

WITHIN_S = 10.0


def eventually(found: Callable[[], Any], what: str) -> Any:
    """``found()`` once it is truthy; fails after WITHIN_S. The adapter
    writes a scan's end after its last message, so the broker (and this
    test) may see the answer a moment before the record."""
    deadline = time.monotonic() + WITHIN_S
    while (value := found()) is None or value == []:
        assert time.monotonic() < deadline, f"no {what} within {WITHIN_S:.0f} s"
        time.sleep(0.02)
    return value


def scans_of(running: Running, source: str, query_id: str) -> list[dict[str, Any]]:
    """The ``scan`` records of ``query_id`` in ``source``'s trail, each with
    its ``scan_end`` as ``end``; [] until every one has ended."""
    records = list(search(running.workdir.adapter_audit_dir(source)))
    ends = {r["access_seq"]: r for r in records if r.get("event") == "scan_end"}
    scans = [r for r in records if r.get("event") == "scan" and r.get("query_id") == query_id]
    if not scans or any(s["seq"] not in ends for s in scans):
        return []
    return [{**s, "end": ends[s["seq"]]} for s in scans]


def reconciled(workdir: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    capsys.readouterr()
    status = main(["audit", "reconcile", "--format", "json", "--workdir", str(workdir)])
    return status, json.loads(capsys.readouterr().out)


def test_a_partner_query_leaves_matching_records_at_both_ends(running, crown, capsys):
    result = crown.query("SELECT surname, source FROM offenders WHERE status = 'UAL'")
    broker = [
        r for r in search(running.workdir.audit_dir()) if r.get("query_id") == result.query_id
    ]
    access = next(r for r in broker if r["event"] == "query")
    ended = next(r for r in broker if r["event"] == "query_end")
    sent = {s["source"]: s["rows"] for s in ended["sources"]}  # as the broker received them
    broker_cert = running.workdir.pki.broker_client()[0].read_bytes()
    assert access["sources_asked"] and set(access["sources_asked"]) == set(sent)
    for code in access["sources_asked"]:
        ended_scans = functools.partial(scans_of, running, code, result.query_id)
        (scan,) = eventually(ended_scans, f"{code} scan")
        assert scan["source"] == code and scan["outcome"] == "STARTED"
        assert scan["partner"] == "crown_attorney" and scan["end_user"] == "test-user"
        assert scan["table"] == "offenders" and "surname" in scan["columns"]
        assert scan["caller_sha256"] == fingerprint(broker_cert)
        assert scan["caller_cn"] and scan["caller_serial"]
        assert scan["end"]["outcome"] == "OK" and scan["end"]["rows"] == sent[code]
    assert sum(sent.values()) >= result.table.num_rows > 0
    _status, report = reconciled(running.workdir.path, capsys)
    assert result.query_id not in {u["query_id"] for u in report["unmatched"]}
    assert report["matched"] >= len(access["sources_asked"])


def test_an_explain_is_traced_as_explain_only_and_matched(running, crown, capsys):
    plan = crown.explain("SELECT surname FROM offenders WHERE status = 'UAL'")
    (scan,) = eventually(lambda: scans_of(running, "BC", plan.query_id), "explain scan")
    assert scan["explain_only"] is True and scan["end"]["rows"] == 0
    assert scan["partner"] == "crown_attorney"
    _status, report = reconciled(running.workdir.path, capsys)
    assert plan.query_id not in {u["query_id"] for u in report["unmatched"]}


def direct_scan(running: Running, request: adapter_pb2.ScanRequest, source: str = "BC") -> Any:
    """``request`` sent straight to an adapter with the broker's client key."""
    ca = running.workdir.pki.ca_cert()
    cert, key = running.workdir.pki.broker_client()
    address = running.launcher.adapter_addresses[source]
    with grpc.secure_channel(address, tls.channel_credentials(ca, cert, key)) as channel:
        return read_scan(adapter_pb2_grpc.AdapterStub(channel).Scan(request, timeout=10))


def test_a_scan_made_with_the_brokers_key_outside_the_broker_is_flagged(running, crown, capsys):
    rogue = f"rogue-{uuid.uuid4().hex[:8]}"
    request = adapter_pb2.ScanRequest(
        table="offenders",
        columns=["surname", "fps_number"],
        predicate="status = 'UAL'",
        query_id=rogue,
        partner="police",
    )
    answer = direct_scan(running, request)
    assert answer.table.num_rows > 0  # the key alone gets the rows: hence the trace
    # A real query id replayed for a table that query never read.
    real = crown.query("SELECT count(*) FROM offenders")
    replayed = adapter_pb2.ScanRequest(
        table="sentences",
        columns=["offence_code"],
        query_id=real.query_id,
        partner="crown_attorney",
    )
    direct_scan(running, replayed)
    eventually(lambda: scans_of(running, "BC", rogue), "rogue scan")
    eventually(
        lambda: [s for s in scans_of(running, "BC", real.query_id) if s["table"] == "sentences"],
        "replayed scan",
    )

    status, report = reconciled(running.workdir.path, capsys)
    assert status == 1
    flagged = {(u["query_id"], u["table"]): u for u in report["unmatched"]}
    found = flagged[(rogue, "offenders")]
    assert found["source"] == "BC" and found["partner"] == "police"
    assert found["caller_sha256"] == fingerprint(
        running.workdir.pki.broker_client()[0].read_bytes()
    )
    assert found["columns"] == ["surname", "fps_number"]
    assert found["predicate"] == "status = 'UAL'"
    assert found["rows"] == answer.table.num_rows and found["outcome"] == "OK"
    assert found["reason"] == "no broker record of this query id"
    assert flagged[(real.query_id, "sentences")]["reason"] == (
        "the broker's query did not read this table"
    )
    assert (real.query_id, "offenders") not in flagged  # the broker's own scan of it matches
    capsys.readouterr()
    assert main(["audit", "reconcile", "--workdir", str(running.workdir.path)]) == 1
    text = capsys.readouterr().out
    assert "UNMATCHED" in text and rogue in text and "status = 'UAL'" in text


def test_a_refused_caller_is_recorded_at_the_adapter(running):
    ca, cert, key = running.workdir.partner_credentials("police")
    query_id = f"refused-{uuid.uuid4().hex[:8]}"
    address = running.launcher.adapter_addresses["BC"]
    with grpc.secure_channel(address, tls.channel_credentials(ca, cert, key)) as channel:
        stub = adapter_pb2_grpc.AdapterStub(channel)
        request = adapter_pb2.ScanRequest(table="offenders", columns=["surname"], query_id=query_id)
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.Scan(request, timeout=5))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    records = list(search(running.workdir.adapter_audit_dir("BC")))
    (record,) = [r for r in records if r.get("query_id") == query_id]
    assert record["event"] == "scan_refused" and record["caller_cn"] == "police"
    assert record["caller_sha256"] == fingerprint(cert.read_bytes())


def test_the_adapter_trail_verifies_and_a_flipped_byte_fails(running, crown, tmp_path, capsys):
    result = crown.query("SELECT count(*) FROM offenders")  # merged whole, not streamed
    (scan,) = eventually(lambda: scans_of(running, "CA-CSC", result.query_id), "CA-CSC scan")
    assert scan["partner"] == "crown_attorney" and scan["end"]["outcome"] == "OK"
    workdir = running.workdir
    assert (
        main(["audit", "verify", "--trail", "adapter:CA-CSC", "--workdir", str(workdir.path)]) == 0
    )
    assert "intact" in capsys.readouterr().out

    # A copy of the work dir's trails and pins, one adapter's trail with one byte changed.
    copy = Workdir(tmp_path / "copy")
    shutil.copytree(workdir.audit_dir(), copy.audit_dir())
    for pin in workdir.path.glob("audit-key*.pin"):
        shutil.copy(pin, copy.path / pin.name)
    path = sorted(copy.adapter_audit_dir("CA-CSC").glob("audit-*.jsonl"))[0]
    data = bytearray(path.read_bytes())
    at = data.index(b'"table":"offenders"') + len(b'"table":"')
    data[at] = ord("O")
    path.write_bytes(bytes(data))
    capsys.readouterr()
    args = ["audit", "verify", "--trail", "adapter:CA-CSC", "--workdir", str(copy.path)]
    assert main(args) == 1
    assert "TAMPERED" in capsys.readouterr().out
    status, report = reconciled(copy.path, capsys)
    assert status == 2 and "adapter:CA-CSC" in report["tampered"]
