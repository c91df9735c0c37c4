"""Every query, answered or refused, leaves one audit record before its answer
completes; the trail verifies; tampering with it is caught by `accord audit verify`."""

from __future__ import annotations

import json

import grpc
import pytest

from broker.audit import search, verify
from broker.cli import main

pytestmark = pytest.mark.integration


def records(running):
    return list(search(running.workdir.audit_dir()))


def test_answered_and_refused_queries_are_audited(running, crown):
    before = len(records(running))
    result = crown.query("SELECT count(*) FROM offenders WHERE fps_number = '9999999Z'")
    with pytest.raises(grpc.RpcError):
        crown.query("SELECT address FROM offenders")
    new = records(running)[before:]
    answered = next(r for r in new if r.get("query_id") == result.query_id)
    assert answered["outcome"] == "OK" and answered["partner"] == "crown_attorney"
    assert answered["purpose"] == "bail_hearing" and answered["case_ref"]
    assert answered["end_user"] == "test-user"
    assert answered["certificate_sha256"] and answered["rewritten_sql_sha256"]
    assert {s["source"] for s in answered["sources"]} == {"BC", "CA-CSC", "ON", "QC", "SK",
                                                         "YT"}
    assert answered["rows_returned"] == 1 and "offenders" in answered["tables"]
    refused = [r for r in new if r.get("outcome") == "PERMISSION_DENIED"]
    assert refused and "address" in refused[-1]["error"]
    assert "9999999Z" in answered["sql"]  # the query text, never result data
    assert not any("rows" in r and "table" in r for r in new)
    found = list(search(running.workdir.audit_dir(), fps="9999999Z"))
    assert [r["query_id"] for r in found] == [result.query_id]


def test_the_trail_verifies_and_tampering_is_caught(running, crown, tmp_path, capsys):
    crown.query("SELECT count(*) FROM offenders")
    assert verify(running.workdir.audit_dir()).ok
    assert main(["audit", "verify", "--workdir", str(running.workdir.path)]) == 0
    copy = tmp_path / "audit"
    copy.mkdir()
    for path in sorted(running.workdir.audit_dir().glob("*.jsonl")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            record = json.loads(line)
            if record.get("event") == "query" and record.get("partner") == "crown_attorney":
                record["partner"] = "police"  # an edited record
                lines[i] = json.dumps(record)
                break
        (copy / path.name).write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["audit", "verify", str(copy), "--workdir", str(running.workdir.path)]) == 1
    assert "TAMPERED" in capsys.readouterr().out
