"""Every query is audited: an answered one by an access record durable before
its first message leaves and a completion record before its trailer; a
refused one by one record. The trail verifies; tampering with it is caught
by `accord audit verify`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from accord.audit.keys import load_public_key
from accord.audit.search import search
from accord.audit.verify import verify
from app.cli import main
from tests.integration.conftest import broker_over

if TYPE_CHECKING:
    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration


def records(running: Running) -> list[dict[str, Any]]:
    return list(search(running.workdir.audit_dir()))


def ended(running: Running, query_id: str) -> dict[str, Any]:
    """The completion record of an answered query."""
    return next(
        r
        for r in records(running)
        if r.get("query_id") == query_id and r.get("event") == "query_end"
    )


def test_answered_and_refused_queries_are_audited(running, crown):
    before = len(records(running))
    result = crown.query("SELECT count(*) FROM offenders WHERE fps_number = '9999999Z'")
    with pytest.raises(grpc.RpcError):
        crown.query("SELECT address FROM offenders")
    new = records(running)[before:]
    access, answered = (r for r in new if r.get("query_id") == result.query_id)
    assert access["event"] == "query" and access["outcome"] == "STARTED"
    assert access["partner"] == "crown_attorney"
    assert access["purpose"] == "bail_hearing" and access["case_ref"]
    assert access["end_user"] == "test-user" == answered["end_user"]
    assert access["certificate_sha256"] and access["rewritten_sql_sha256"]
    assert "offenders" in access["tables"]
    assert answered["event"] == "query_end" and answered["outcome"] == "OK"
    assert answered["partner"] == "crown_attorney" and "sql" not in answered
    assert {s["source"] for s in answered["sources"]} == {"BC", "CA-CSC", "ON", "QC", "SK", "YT"}
    assert answered["rows_returned"] == 1
    refused = [r for r in new if r.get("outcome") == "PERMISSION_DENIED"]
    assert refused and "address" in refused[-1]["error"]
    assert "9999999Z" in access["sql"]  # the query text, never result data
    assert not any("rows" in r and "table" in r for r in new)
    found = list(search(running.workdir.audit_dir(), fps="9999999Z"))
    assert [r["query_id"] for r in found] == [result.query_id]
    # What each source sent (hidden rows included) is the operators' to know.
    for source in answered["sources"]:
        assert source["outcome"] == "ok" and source["scans"] == 1
        assert source["rows"] == 0 and source["visible_rows"] == 0


def test_each_source_sent_what_its_audit_entry_says(running, crown):
    """The record's per-source counts agree with the answer: rows visible sum
    to the rows returned, a source never shows more than it sent, and one
    that sent rows sent bytes."""
    result = crown.query("SELECT surname, source FROM offenders WHERE status = 'UAL'")
    answered = ended(running, result.query_id)
    sources = {s["source"]: s for s in answered["sources"]}
    trailer = {s.source: s.rows for s in result.trailer.sources}
    assert {code: s["visible_rows"] for code, s in sources.items()} == trailer
    assert sum(trailer.values()) == answered["rows_returned"] == result.table.num_rows > 0
    per_source = result.table.group_by("source").aggregate([([], "count_all")])
    counted = per_source.to_pydict()
    assert dict(zip(counted["source"], counted["count_all"], strict=True)) == {
        code: n for code, n in trailer.items() if n
    }
    for source in sources.values():
        assert source["rows"] >= source["visible_rows"]
        assert (source["bytes"] > 0) == (source["rows"] > 0)


def test_explain_and_catalog_are_audited(running, crown):
    before = len(records(running))
    plan = crown.explain("SELECT surname FROM offenders WHERE status = 'UAL'")
    crown.catalog()
    with pytest.raises(grpc.RpcError):
        crown.explain("SELECT address FROM offenders")
    new = records(running)[before:]
    explained = next(r for r in new if r.get("query_id") == plan.query_id)
    assert explained["event"] == "explain" and explained["outcome"] == "OK"
    assert explained["rewritten_sql_sha256"] and "offenders" in explained["tables"]
    assert [r["event"] for r in new if r["event"] == "catalog"] == ["catalog"]
    refused = [r for r in new if r["event"] == "explain" and r["outcome"] != "OK"]
    assert refused and refused[0]["outcome"] == "PERMISSION_DENIED"


def test_the_trail_verifies_and_tampering_is_caught(running, crown, tmp_path, capsys):
    crown.query("SELECT count(*) FROM offenders")
    assert verify(running.workdir.audit_dir(), load_public_key(running.workdir.audit_key_pin())).ok
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


def test_a_query_that_cannot_be_audited_is_not_answered(running, tmp_path):
    """A broker whose audit trail refuses writes answers no query, and its
    health goes NOT_SERVING at once; once the trail is writable again, it
    serves again."""
    import asyncio
    import time

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from accord import tls
    from accord.audit.keys import load_or_create_signing_key
    from accord.audit.log import AuditLog
    from accord.client import BrokerClient
    from accord.errors import AccordError, AuditWriteError

    class BrokenDisk(AuditLog):
        broken = False

        def append(self, record):
            if self.broken:
                raise AuditWriteError("the audit trail cannot be written")
            return super().append(record)

        def probe(self, min_free_bytes=0):
            return "disk full" if self.broken else super().probe(min_free_bytes)

    audit = BrokenDisk(tmp_path / "audit", load_or_create_signing_key(tmp_path / "k.pem"))
    partner = running.workdir.partner_credentials("crown_attorney")
    partner_ca, partner_cert, partner_key = partner
    seen: dict[str, Any] = {}

    def ask(port: int) -> object:
        with BrokerClient(
            f"localhost:{port}",
            partner_ca,
            partner_cert,
            partner_key,
            purpose="bail_hearing",
            case_ref="R-1",
        ) as client:
            try:
                return client.query("SELECT count(*) FROM offenders")
            except (grpc.RpcError, RuntimeError, AccordError) as exc:
                return exc

    def health_until(port, wanted, within_s=5.0):
        with grpc.secure_channel(f"localhost:{port}", tls.channel_credentials(*partner)) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + within_s
            while True:
                statuses = {
                    name: stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
                    for name in ("", "accord.v1.Broker")
                }
                if set(statuses.values()) == {wanted} or time.monotonic() > deadline:
                    return statuses
                time.sleep(0.05)

    async def scenario() -> None:
        async with broker_over(running, audit) as (port, readiness):
            seen["healthy"] = await asyncio.to_thread(health_until, port, SERVING)
            audit.broken = True
            seen["refused"] = await asyncio.to_thread(ask, port)
            seen["after_failure"] = await asyncio.to_thread(health_until, port, NOT_SERVING)
            audit.broken = False
            readiness.audit_failed()  # stands in for the next periodic probe
            seen["repaired"] = await asyncio.to_thread(health_until, port, SERVING)
            seen["answer"] = await asyncio.to_thread(ask, port)

    SERVING = health_pb2.HealthCheckResponse.SERVING
    NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
    asyncio.run(scenario())
    assert set(seen["healthy"].values()) == {SERVING}
    assert isinstance(seen["refused"], grpc.RpcError)
    assert seen["refused"].code() == grpc.StatusCode.UNAVAILABLE
    assert set(seen["after_failure"].values()) == {NOT_SERVING}
    assert set(seen["repaired"].values()) == {SERVING}
    assert seen["answer"].table.num_rows == 1


def test_no_result_data_reaches_the_audit_trail_or_the_logs(running, crown):
    """The values answered (names, birth dates) appear neither in the query's
    audit record nor in any process's log lines about it. (Only this query's
    own lines are read: other tests put generated names in their SQL.)"""
    result = crown.query(
        "SELECT surname, given_names, birth_date FROM offenders "
        "WHERE source = 'BC' ORDER BY surname LIMIT 50"
    )
    values = {
        str(v)
        for column in result.table.columns
        for v in column.to_pylist()
        if v is not None and len(str(v)) >= 4
    }
    assert len(values) > 20
    audit_text = "\n".join(
        line
        for p in sorted(running.workdir.audit_dir().glob("audit-*.jsonl"))
        for line in p.read_text().splitlines()
        if result.query_id in line
    )
    log_text = "\n".join(
        line
        for p in sorted(running.workdir.logs.glob("*.log"))
        for line in p.read_text().splitlines()
        if result.query_id in line
    )
    # access and completion records; broker and BC log lines
    assert audit_text.count("\n") == 1 and log_text.count("\n") >= 1
    assert sorted(v for v in values if v in audit_text) == []
    assert sorted(v for v in values if v in log_text) == []


def test_audit_search_finds_an_fps_number_however_it_was_written(running, crown, capsys):
    written = crown.query(
        "SELECT count(*) FROM offenders WHERE fps_number IN ('4051' || '244T', "
        "UPPER(CAST('4051245t' AS VARCHAR)))"
    )
    capsys.readouterr()
    workdir = str(running.workdir.path)
    for fps in ("4051244T", "4051245T"):
        assert main(["audit", "search", "--workdir", workdir, "--fps", fps]) == 0
        found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["query_id"] for r in found] == [written.query_id]
        assert found[0]["fps_numbers"] == ["4051244T", "4051245T"]


def test_audit_search_by_case_ref_finds_what_the_user_typed(running, capsys):
    with running.client(
        "crown_attorney", purpose="bail_hearing", case_ref="R-2026-7777\n"
    ) as client:
        answered = client.query("SELECT count(*) FROM offenders")
    capsys.readouterr()
    typed = "R-2026-7777\n"  # as the user wrote it, newline and all
    assert (
        main(["audit", "search", "--workdir", str(running.workdir.path), "--case-ref", typed]) == 0
    )
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["query_id"] for r in found] == [answered.query_id]
    assert found[0]["case_ref"] == "R-2026-7777"
