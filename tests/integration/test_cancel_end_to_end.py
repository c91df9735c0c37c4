"""Cancellation reaches the database end to end: when one source fails and
the query does not accept a partial answer, the broker cancels the other
scans, and their statements disappear from PostgreSQL's pg_stat_activity
instead of running on.

Two sources: the OMS on PostgreSQL, whose offenders table is made slow (a
view that sleeps 60 s), and CORNET on a SQLite file that does not exist.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

import grpc
import psycopg
import pytest
import yaml

from accord.client import BrokerClient
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import generate, write_postgres
from app.commands import init_certs
from app.launcher import LocalFederation
from tests.integration.servers import PG_SERVER, require_servers

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration


def active_oms_statements() -> int:
    with psycopg.connect(f"{PG_SERVER}/postgres") as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            "AND application_name = 'accord-adapter-ca-csc'"
        ).fetchone()
    assert row is not None  # count(*) always answers one row
    count: int = row[0]
    return count


@pytest.fixture
def slow_and_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Workdir, LocalFederation]]:
    require_servers()
    name = f"accord_cancel_{uuid.uuid4().hex[:8]}"
    dsn = f"{PG_SERVER}/{name}"
    raw = yaml.safe_load(DEFAULT_FEDERATION.read_text())
    raw["sources"] = [s for s in raw["sources"] if s["code"] in ("CA-CSC", "BC")]
    for source in raw["sources"]:
        if source["code"] == "CA-CSC":
            source["backend"] = {"kind": "postgresql", "dsn": "env:ACCORD_SLOW_OMS_DSN"}
        else:
            source["backend"] = {"kind": "sqlite", "path": "data/missing.sqlite"}
    federation_path = tmp_path / "federation.yaml"
    federation_path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    federation = load_federation(federation_path)
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        data = generate(federation, seed=3, scale=0.002)["CA-CSC"]
        write_postgres(federation, "CA-CSC", {"offenders": data["offenders"]}, dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute('ALTER TABLE "OMS_OFFENDER" RENAME TO "OMS_OFFENDER_DATA"')
            conn.execute(
                'CREATE VIEW "OMS_OFFENDER" AS SELECT d.* FROM "OMS_OFFENDER_DATA" d '
                "CROSS JOIN pg_sleep(60)"
            )
        monkeypatch.setenv("ACCORD_SLOW_OMS_DSN", dsn)
        workdir = Workdir(tmp_path / "work")
        init_certs(workdir, federation_path, DEFAULT_POLICIES)
        with LocalFederation(workdir, federation_path, DEFAULT_POLICIES) as launcher:
            yield workdir, launcher
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_failed_source_cancels_the_others_in_their_database(slow_and_broken):
    workdir, launcher = slow_and_broken
    ca, cert, key = workdir.partner_credentials("crown_attorney")
    client = BrokerClient(
        launcher.broker_address, ca, cert, key, purpose="bail_hearing", case_ref="R-1"
    )
    started = time.monotonic()
    with client, pytest.raises(grpc.RpcError) as caught:
        client.query("SELECT count(*) FROM offenders", timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "BC" in (caught.value.details() or "")
    assert time.monotonic() - started < 10  # not the 60 s the OMS statement would take
    deadline = time.monotonic() + 10
    while active_oms_statements() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert active_oms_statements() == 0, "the OMS statement is still running"


def test_the_deadline_ends_a_slow_statement_in_its_database(slow_and_broken):
    workdir, launcher = slow_and_broken
    ca, cert, key = workdir.partner_credentials("crown_attorney")
    started = time.monotonic()
    with BrokerClient(
        launcher.broker_address, ca, cert, key, purpose="bail_hearing", case_ref="R-1"
    ) as client:
        result = client.query(
            "SELECT count(*) FROM offenders WHERE source = 'CA-CSC'", timeout=2, allow_partial=True
        )
    assert time.monotonic() - started < 8
    (status,) = result.trailer.sources
    assert status.source == "CA-CSC" and status.error
    assert result.trailer.partial
    deadline = time.monotonic() + 10
    while active_oms_statements() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert active_oms_statements() == 0


def test_a_client_that_goes_away_cancels_the_statement(slow_and_broken):
    """The partner cancels mid-query: broker, adapter and database all let go."""
    from accord import tls
    from accord.v1 import broker_pb2, broker_pb2_grpc

    workdir, launcher = slow_and_broken
    ca, cert, key = workdir.partner_credentials("crown_attorney")
    channel = grpc.secure_channel(launcher.broker_address, tls.channel_credentials(ca, cert, key))
    try:
        call = broker_pb2_grpc.BrokerStub(channel).Query(
            broker_pb2.QueryRequest(
                sql="SELECT count(*) FROM offenders WHERE source = 'CA-CSC'",
                purpose="bail_hearing",
                case_ref="R-1",
                timeout_ms=60_000,
            ),
            timeout=70,
        )
        deadline = time.monotonic() + 10
        while not active_oms_statements() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert active_oms_statements() == 1, "the OMS statement never started"
        call.cancel()
        deadline = time.monotonic() + 10
        while active_oms_statements() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert active_oms_statements() == 0, "the OMS statement outlived its client"
    finally:
        channel.close()
