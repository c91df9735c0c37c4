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


def test_a_query_that_cannot_be_audited_is_not_answered(running, tmp_path):
    """A broker whose audit trail refuses writes answers no query."""
    import asyncio

    from accord.errors import AccordError
    from broker.audit import AuditLog, AuditWriteError, load_or_create_signing_key
    from broker.client import BrokerClient
    from broker.fanout import AdapterClients
    from broker.pipeline import QueryPipeline
    from broker.server import create_server

    class BrokenDisk(AuditLog):
        def append(self, record):
            raise AuditWriteError("the audit trail cannot be written")

    federation = running.federation.with_endpoints(running.launcher.adapter_addresses)
    pki = running.workdir.pki
    ca, (cert, key) = pki.ca_cert(), pki.broker_client()
    audit = BrokenDisk(tmp_path / "audit", load_or_create_signing_key(tmp_path / "k.pem"))
    result: dict = {}

    async def scenario():
        clients = AdapterClients(federation, ca, cert, key)
        pipeline = QueryPipeline(federation, clients, running.policy,
                                 running.workdir.mask_secret())
        server_cert, server_key = pki.broker_server()
        server, port, _ = await create_server(running.policy.registry, pipeline, ca=ca,
                                              cert=server_cert, key=server_key, audit=audit)

        def ask():
            partner = running.workdir.partner_credentials("crown_attorney")
            with BrokerClient(f"localhost:{port}", *partner, purpose="bail_hearing",
                              case_ref="R-1") as client:
                try:
                    result["answer"] = client.query("SELECT count(*) FROM offenders")
                except (grpc.RpcError, RuntimeError, AccordError) as exc:
                    result["error"] = exc

        await asyncio.to_thread(ask)
        await server.stop(None)
        await clients.close()

    asyncio.run(scenario())
    assert "answer" not in result
    assert isinstance(result["error"], grpc.RpcError)
    assert result["error"].code() == grpc.StatusCode.UNAVAILABLE
