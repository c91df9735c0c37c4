"""The Flight SQL endpoint, from a standard client in its own process:
ADBC's Flight SQL driver over mTLS as three partners, listing tables,
running statements and a prepared statement with a parameter, reading into
pandas, refused as Query refuses, and every call in the broker's audit."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pytest
from google.protobuf.message import Message

from accord import ipc, tls
from accord.audit.search import search
from accord.flight import Flight_pb2 as fl
from accord.flight import FlightSql_pb2 as sql
from broker.flight.arrow_data import read_table
from broker.flight.service import pack

pytestmark = pytest.mark.integration

CLIENT = Path(__file__).with_name("flight_client.py")

#: (partner, purpose, case reference) of each role the test acts as.
ROLES = {
    "crown_attorney": ("bail_hearing", "R-2026-0042"),
    "police": ("investigation", ""),
    "statistics": ("annual_statistics", ""),
}


def flight(running, partner: str, steps: list[dict[str, Any]], tmp_path: Path, **headers: str):
    """Runs ``steps`` in a separate process as ``partner``; their results."""
    ca, cert, key = running.workdir.partner_credentials(partner)
    purpose, case_ref = ROLES[partner]
    sent = {"x-accord-purpose": purpose, "x-accord-end-user": f"flight-{partner}"}
    if case_ref:
        sent["x-accord-case-ref"] = case_ref
    spec = {
        "address": running.launcher.flight_address,
        "ca": str(ca),
        "cert": str(cert),
        "key": str(key),
        "headers": {**sent, **headers},
        "steps": steps,
    }
    path = tmp_path / f"{partner}.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, str(CLIENT), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def broker(running, partner: str):
    purpose, case_ref = ROLES[partner]
    return running.client(partner, end_user=f"grpc-{partner}", purpose=purpose, case_ref=case_ref)


def refusal(running, partner: str, sql: str) -> tuple[grpc.StatusCode, str]:
    """What Query answers ``sql`` with: its status and message, query id cut."""
    with broker(running, partner) as client, pytest.raises(grpc.RpcError) as refused:
        client.query(sql)
    return refused.value.code(), without_query_id(refused.value.details() or "")


def without_query_id(message: str) -> str:
    return re.sub(r" \(query id [0-9a-f-]+\)", "", message)


def denied_column(running, partner: str, table: str):
    """A column of the logical model the partner's role may not see."""
    with broker(running, partner) as client:
        seen = {c.name for t in client.catalog().tables if t.name == table for c in t.columns}
    return sorted(set(running.federation.tables[table].columns) - seen)[0]


def flight_records(running, partner: str, after: int = 0) -> list[dict[str, Any]]:
    """The partner's Flight SQL records, from the ``after``-th record of the
    trail on (the federation is shared: earlier tests wrote records too)."""
    return [
        r
        for r in list(search(running.workdir.audit_dir()))[after:]
        if r.get("partner") == partner and r.get("interface") == "flight_sql"
    ]


def test_three_roles_over_flight_sql_see_and_get_what_query_gives(running, tmp_path):
    earlier = len(list(search(running.workdir.audit_dir())))
    with broker(running, "crown_attorney") as crown:
        sample = crown.query(
            "SELECT fps_number, surname FROM offenders WHERE fps_number IS NOT NULL "
            "ORDER BY fps_number, source LIMIT 1"
        ).table.to_pylist()[0]
        by_source = crown.query(
            "SELECT source, count(*) AS files FROM offenders GROUP BY source ORDER BY source"
        ).table.to_pylist()
    person = "SELECT surname FROM offenders WHERE fps_number = ? ORDER BY source"
    police_denied = denied_column(running, "police", "offenders")
    results: dict[str, list[dict[str, Any]]] = {}
    for partner in ROLES:
        results[partner] = flight(
            running,
            partner,
            [
                {"do": "tables"},
                {
                    "do": "statement",
                    "sql": "SELECT source, count(*) AS files FROM offenders "
                    "GROUP BY source ORDER BY source",
                },
                {"do": "query", "sql": person, "parameters": [sample["fps_number"]]},
                {"do": "query", "sql": f"SELECT {police_denied} FROM offenders"},
                {"do": "statement", "sql": "SELECT * FROM health_notes"},
            ],
            tmp_path,
        )
    # Each role lists exactly the tables its catalog holds.
    for partner, (tables, *_) in results.items():
        with broker(running, partner) as client:
            assert tables == {"tables": sorted(t.name for t in client.catalog().tables)}
        assert "health_notes" not in tables["tables"]
    assert len({tuple(r[0]["tables"]) for r in results.values()}) > 1  # roles differ

    _, crown_counts, crown_person, _, crown_health = results["crown_attorney"]
    # A statement read into pandas: the same answer as Query's.
    assert crown_counts["columns"] == ["source", "files"]
    assert crown_counts["rows"] == [[r["source"], r["files"]] for r in by_source]
    # A prepared statement with a parameter, bound as a literal: the person's rows.
    assert crown_person["columns"] == ["surname"]
    assert crown_person["rows"] and all(r == [sample["surname"]] for r in crown_person["rows"])

    # The police may not read that column: the very refusal Query gives.
    status, message = refusal(running, "police", f"SELECT {police_denied} FROM offenders")
    police_error = results["police"][3]
    assert status == grpc.StatusCode.PERMISSION_DENIED or status == grpc.StatusCode.INVALID_ARGUMENT
    assert message in police_error["error"], police_error
    assert re.search(r"\(query id [0-9a-f-]+\)", police_error["error"])
    # Aggregate-only statistics: a row-level query is refused as Query refuses it.
    status, message = refusal(running, "statistics", person.replace("?", "'X'"))
    assert message in results["statistics"][2]["error"], results["statistics"][2]
    # No role may read health notes, over either endpoint.
    status, message = refusal(running, "crown_attorney", "SELECT * FROM health_notes")
    assert message in crown_health["error"]

    # The audit shows each: the schema asked, the query run (access, then
    # end), the catalog commands, the refusals; under each partner's name.
    crown_records = flight_records(running, "crown_attorney", earlier)
    events = [(r["event"], r["outcome"]) for r in crown_records]
    assert ("query", "STARTED") in events and ("query_end", "OK") in events
    assert ("schema", "OK") in events
    bound = [r for r in crown_records if r["event"] == "query" and "fps_number =" in r["sql"]]
    assert bound and all(repr(sample["fps_number"]) in r["sql"] for r in bound)
    catalog = [
        r
        for r in search(running.workdir.audit_dir())
        if r.get("event") == "catalog" and r.get("interface") == "flight_sql"
    ]
    assert {r["partner"] for r in catalog} >= set(ROLES)
    assert {r["command"] for r in catalog} >= {"CommandGetTables"}
    police = flight_records(running, "police", earlier)
    assert any(
        r["outcome"] in ("PERMISSION_DENIED", "INVALID_ARGUMENT")
        and police_denied in r.get("sql", "")
        for r in police
    )
    assert all(r["end_user"] == "flight-police" for r in police)
    statistics = flight_records(running, "statistics", earlier)
    assert any(r["outcome"] != "OK" and "fps_number" in r.get("sql", "") for r in statistics)


class RawFlight:
    """The FlightService over grpcio, message by message, as one partner."""

    def __init__(self, running, partner: str) -> None:
        ca, cert, key = running.workdir.partner_credentials(partner)
        self.channel = grpc.secure_channel(
            running.launcher.flight_address,
            tls.channel_credentials(ca, cert, key),
            options=tls.CHANNEL_OPTIONS,
        )
        purpose, case_ref = ROLES[partner]
        self.metadata = (("x-accord-purpose", purpose), ("x-accord-case-ref", case_ref))

    def call(self, kind: str, method: str, request, response):
        stub = getattr(self.channel, kind)(
            f"/arrow.flight.protocol.FlightService/{method}",
            request_serializer=lambda m: m if isinstance(m, bytes) else m.SerializeToString(),
            response_deserializer=response.FromString,
        )
        return stub(request, metadata=self.metadata, timeout=60)

    def info(self, command: Message) -> fl.FlightInfo:
        descriptor = fl.FlightDescriptor(type=fl.FlightDescriptor.CMD, cmd=pack(command))
        info: fl.FlightInfo = self.call("unary_unary", "GetFlightInfo", descriptor, fl.FlightInfo)
        return info

    def get(self, ticket: fl.Ticket) -> pa.Table:
        return read_table(self.call("unary_stream", "DoGet", ticket, fl.FlightData))

    def refused(self, call) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.RpcError) as refused:
            result = call()
            if not isinstance(result, Message):  # a stream: its status comes as it is read
                list(result)
        error = refused.value
        details = error.details() or ""
        assert re.search(r"\(query id [0-9a-f-]+\)$", details), details
        return error.code(), details

    def close(self) -> None:
        self.channel.close()


def test_tickets_are_the_callers_and_refusals_are_clear(running):
    crown, police = RawFlight(running, "crown_attorney"), RawFlight(running, "police")
    try:
        query = "SELECT status, count(*) AS n FROM offenders GROUP BY status ORDER BY status"
        info = crown.info(sql.CommandStatementQuery(query=query))
        ticket = info.endpoint[0].ticket
        assert query.encode() not in ticket.ticket  # nothing to tamper with
        # Another partner's certificate cannot redeem it; its holder can, once.
        code, message = police.refused(lambda: police.get(ticket))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert "another certificate" in message
        with broker(running, "crown_attorney") as client:
            expected = client.query(query).table
        answer = crown.get(ticket)
        assert answer.equals(expected)
        assert ipc.schema_from_bytes(info.schema) == answer.schema  # known before it ran
        code, message = crown.refused(lambda: crown.get(ticket))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "single-use" in message

        # A Flight SQL command the broker does not serve, and one that is garbage.
        code, message = crown.refused(lambda: crown.info(sql.CommandGetXdbcTypeInfo()))
        assert code == grpc.StatusCode.UNIMPLEMENTED
        assert "CommandGetXdbcTypeInfo is not served" in message
        garbage = fl.FlightDescriptor(type=fl.FlightDescriptor.CMD, cmd=b"\xff\x00garbage")
        code, message = crown.refused(
            lambda: crown.call("unary_unary", "GetFlightInfo", garbage, fl.FlightInfo)
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        code, _ = crown.refused(
            lambda: crown.call("unary_unary", "GetFlightInfo", b"\xff\xff\xff", fl.FlightInfo)
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT  # not even a FlightDescriptor
        action = fl.Action(type="BeginTransaction")
        code, message = crown.refused(
            lambda: crown.call("unary_stream", "DoAction", action, fl.Result)
        )
        assert code == grpc.StatusCode.UNIMPLEMENTED
        assert "CreatePreparedStatement" in message
        code, message = crown.refused(
            lambda: crown.info(sql.CommandStatementUpdate(query="DELETE FROM offenders"))
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "read-only" in message
    finally:
        crown.close()
        police.close()
    refused = [
        r
        for r in search(running.workdir.audit_dir())
        if r.get("event") == "refused" and r.get("interface") == "flight_sql"
    ]
    assert any(r["partner"] == "police" and r["method"] == "DoGet" for r in refused)
    assert any(r["outcome"] == "UNIMPLEMENTED" for r in refused)
