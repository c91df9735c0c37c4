"""One partner cannot starve the others, nor pin an answer by not reading it.

Its own federation (the six embedded systems) with a policy of its own:
the police role has a small quota, partner quebec_dpcp (crown attorney) may
have one query under way, and ACCORD_SLOW_READER_S is one second. Real
gRPC over real mutual TLS, real processes.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from accord import tls
from accord.audit.search import search
from accord.client import RetryLater
from accord.federation import load_federation
from accord.v1 import broker_pb2, broker_pb2_grpc
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import generate, write_federation_data
from app.commands import init_certs
from app.launcher import LocalFederation
from broker.policy.store import PolicySet
from tests.integration.conftest import SCALE, SEED, Running
from tests.integration.test_metrics import scrape, value

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.integration

POLICE_QUOTA = "quota: {concurrent_queries: 2, queries_per_second: 2, burst: 4}\n"
SLOW_READER_S = 1.0
FLOOD = 40  # police queries, all at once
CROWN = {"purpose": "bail_hearing", "case_ref": "R-2026-0042"}
#: An answer far larger than what gRPC's flow-control windows let through
#: to a client that does not read (~10 MB, measured).
LARGE = (
    "SELECT a.surname, a.given_names, b.surname AS s2 FROM offenders a, offenders b LIMIT 1500000"
)


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("accord-quota")
    policies = root / "policies"
    shutil.copytree(DEFAULT_POLICIES, policies)
    police = policies / "roles" / "police.yaml"
    police.write_text(police.read_text() + POLICE_QUOTA)
    partners = policies / "partners.yaml"
    text = partners.read_text()
    anchor = "    organization: Directeur des poursuites criminelles et pénales\n"
    assert anchor in text
    partners.write_text(text.replace(anchor, anchor + "    quota: {concurrent_queries: 1}\n"))
    workdir = Workdir(root / "work")
    init_certs(workdir, DEFAULT_FEDERATION, policies)
    federation = load_federation(DEFAULT_FEDERATION)
    write_federation_data(federation, workdir.path, seed=SEED, scale=SCALE)
    saved = os.environ.get("ACCORD_SLOW_READER_S")
    os.environ["ACCORD_SLOW_READER_S"] = str(SLOW_READER_S)  # the broker inherits it
    try:
        launcher = LocalFederation(workdir, DEFAULT_FEDERATION, policies)
        with launcher:
            yield Running(
                workdir,
                federation,
                launcher,
                generate(federation, seed=SEED, scale=SCALE),
                PolicySet.load(policies, federation),
            )
    finally:
        if saved is None:
            os.environ.pop("ACCORD_SLOW_READER_S", None)
        else:
            os.environ["ACCORD_SLOW_READER_S"] = saved


def channel(running: Running, partner: str) -> grpc.Channel:
    ca, cert, key = running.workdir.partner_credentials(partner)
    return grpc.secure_channel(
        running.address, tls.channel_credentials(ca, cert, key), options=tls.CHANNEL_OPTIONS
    )


def retry_delay(error: grpc.RpcError) -> float | None:
    """The RetryInfo delay of ``error`` (read here with grpcio-status, not the client)."""
    assert isinstance(error, grpc.Call)
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return float(info.retry_delay.ToMilliseconds() / 1000)
    return None


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Polls for an event (an audit record, a metric): no sleep stands in for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("the awaited event did not happen")


def records(running: Running, partner: str) -> list[dict[str, Any]]:
    return [r for r in search(running.workdir.audit_dir()) if r.get("partner") == partner]


def test_a_flooding_partner_is_refused_with_retry_info_while_another_is_answered(own):
    sql = "SELECT source, count(*) AS n FROM offenders GROUP BY source"
    before = len(records(own, "police"))
    outcomes: dict[str, list[Any]] = {"police": [], "crown": []}
    start = threading.Barrier(2)

    def flood() -> None:
        with channel(own, "police") as ch:
            stub = broker_pb2_grpc.BrokerStub(ch)
            request = broker_pb2.QueryRequest(sql=sql, purpose="investigation")
            start.wait()
            calls = [stub.Query(request, timeout=30) for _ in range(FLOOD)]
            for call in calls:
                try:
                    outcomes["police"].append(list(call)[-1].WhichOneof("payload"))
                except grpc.RpcError as exc:
                    outcomes["police"].append(exc)

    def other_partner() -> None:
        with own.client("ontario_courts_crown", **CROWN) as crown:
            start.wait()
            for _ in range(10):
                outcomes["crown"].append(crown.query(sql).trailer.rows)

    threads = [threading.Thread(target=flood), threading.Thread(target=other_partner)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    # Every query of the other partner answered, in full.
    assert outcomes["crown"] == [len(own.federation.sources)] * 10
    refused = [o for o in outcomes["police"] if isinstance(o, grpc.RpcError)]
    answered = [o for o in outcomes["police"] if o == "trailer"]
    assert len(refused) + len(answered) == FLOOD
    # at most the burst plus what the rate refilled meanwhile got through
    assert len(answered) < FLOOD / 2, outcomes["police"]
    for error in refused:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        message = error.details() or ""
        assert "concurrent_queries=2" in message or "queries_per_second=2" in message, message
        delay = retry_delay(error)
        assert delay is not None and 0 < delay <= 1.0, delay  # 1/rate at most, or a busy slot
    # Each refusal audited like any refusal, and counted by limit.
    audited = records(own, "police")[before:]
    refusals = [r for r in audited if r["outcome"] == "RESOURCE_EXHAUSTED"]
    assert len(refusals) == len(refused)
    assert all("quota" in r["error"] and r["sources"] == [] for r in refusals)
    samples = scrape(own)
    counted = sum(
        value(samples, "accord_admission_refusals_total", role="police", limit=limit)
        for limit in ("concurrent_queries", "queries_per_second")
    )
    assert counted >= len(refused)


def test_the_client_surfaces_the_retry_delay(own):
    with own.client("police", purpose="investigation") as police:
        errors: list[RetryLater] = []
        for _ in range(20):  # more than the burst, faster than the rate
            try:
                police.query("SELECT count(*) FROM offenders")
            except RetryLater as exc:
                errors.append(exc)
                break
    assert errors, "the burst never ran out"
    error = errors[0]
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert 0 < error.retry_after_s <= 1.0
    assert "retry after" in str(error) and "quota" in error.details()


def test_explain_is_held_to_the_same_quota(own):
    with own.client("police", purpose="investigation") as police:
        for _ in range(20):
            try:
                police.explain("SELECT count(*) FROM offenders")
            except RetryLater as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert 0 < exc.retry_after_s <= 1.0
                return
    raise AssertionError("20 explains in a row, with a burst of 4, were all admitted")


def test_a_client_that_stops_reading_is_cancelled_audited_and_released(own):
    partner = "quebec_dpcp"  # one query under way at most (its partner quota)
    before = len(records(own, partner))
    with channel(own, partner) as ch:
        stub = broker_pb2_grpc.BrokerStub(ch)
        call = stub.Query(
            broker_pb2.QueryRequest(
                sql=LARGE, purpose=CROWN["purpose"], case_ref=CROWN["case_ref"]
            ),
            timeout=120,
        )
        first = next(call)  # the answer is under way ...
        assert first.WhichOneof("payload") == "header"
        # ... and the client reads no more. The broker gives up within the bound:
        record = wait_until(
            lambda: next(
                (r for r in records(own, partner)[before:] if "too slowly" in r.get("error", "")),
                None,
            )
        )
        assert record["outcome"] == "RESOURCE_EXHAUSTED"
        assert f"waited {SLOW_READER_S:g} s" in record["error"]
        assert (
            record["rows_returned"] > 0
            and f"after {record['rows_returned']} rows" in record["error"]
        )
        # Its slot and bytes are free while the stalled call is still open:
        # the partner's next query is admitted and answered.
        with own.client(partner, **CROWN) as again:
            assert again.query("SELECT count(*) FROM offenders").table.num_rows == 1
        call.cancel()
    samples = wait_until(
        lambda: (
            (s := scrape(own))
            and value(s, "accord_slow_reader_cancels_total", role="crown_attorney")
            and s
        )
    )
    assert value(samples, "accord_slow_reader_cancels_total", role="crown_attorney") >= 1


def test_a_reload_carries_new_limits(own):
    partner = "bc_corrections"
    with own.client(partner, purpose="sentence_management") as client:
        client.query("SELECT count(*) FROM offenders")  # the default quota admits it
    partners = own.launcher.policies_dir / "partners.yaml"
    text = partners.read_text()
    anchor = "    organization: BC Corrections\n"
    quota = "    quota: {queries_per_second: 0.01, burst: 1}\n"

    def reloads() -> list[dict[str, Any]]:
        return [r for r in search(own.workdir.audit_dir()) if r.get("event") == "policy_reload"]

    seen = len(reloads())
    partners.write_text(text.replace(anchor, anchor + quota))
    try:
        own.launcher.processes["broker"].send_signal(signal.SIGHUP)
        assert wait_until(lambda: reloads()[seen:])[0]["outcome"] == "OK"
        with own.client(partner, purpose="sentence_management") as client:
            client.query("SELECT count(*) FROM offenders")  # the one token of the burst
            with pytest.raises(RetryLater, match=r"queries_per_second=0.01") as caught:
                client.query("SELECT count(*) FROM offenders")
        assert 50 < caught.value.retry_after_s <= 100
    finally:
        partners.write_text(text)
        own.launcher.processes["broker"].send_signal(signal.SIGHUP)
        wait_until(lambda: len(reloads()) >= seen + 2)
