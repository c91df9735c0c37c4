"""No record, no answer: a query's access is durable in the trail before the
first message of its answer leaves, and its end is recorded however the
call ends, a client that cancels at any point of the stream included.

Each case reads the answer message by message over real mTLS, cancels after
``k`` messages for every ``k`` the answer has, and then finds in the trail,
in chain order: the access record (``STARTED``) whenever the client saw a
message, and one closing record whose row count covers what the client
received.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from accord import ipc, tls
from accord.audit.search import search
from accord.metadata import END_USER_METADATA, QUERY_ID_METADATA
from accord.v1 import broker_pb2, broker_pb2_grpc
from tests.integration.conftest import broker_over

if TYPE_CHECKING:
    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

#: A streamed answer (one table, no join): a header, one batch per source
#: batch, a trailer.
STREAMED = "SELECT surname, source FROM offenders"
#: A merged answer (a join, ordered): the broker holds it whole, then sends
#: it in batches (more rows than one batch holds).
MERGED = (
    "SELECT a.surname, b.source FROM offenders a JOIN offenders b ON a.source = b.source "
    "ORDER BY 1, 2 LIMIT 20000"
)


def trail_of(running: Running, end_user: str) -> list[dict[str, Any]]:
    return [r for r in search(running.workdir.audit_dir()) if r.get("end_user") == end_user]


def closed(records: list[dict[str, Any]]) -> bool:
    """Whether the query's last record is written: its completion, or its
    one record when nothing of it left."""
    return any(r["event"] == "query_end" for r in records) or any(
        r["event"] == "query" and r["outcome"] != "STARTED" for r in records
    )


def wait_for_closing(
    running: Running, end_user: str, within_s: float = 20.0
) -> list[dict[str, Any]]:
    """The query's records once its closing record is in the trail (the
    broker writes it when it learns of the cancel, a moment after it)."""
    deadline = time.monotonic() + within_s
    while not closed(found := trail_of(running, end_user)):
        assert time.monotonic() < deadline, f"no closing record for {end_user}: {found}"
        time.sleep(0.02)
    return found


def read_then_cancel(running: Running, sql: str, k: int) -> tuple[str, int, int]:
    """Reads ``k`` messages of the answer, then cancels; (end user marker,
    messages read, rows read). With ``k`` 0 it cancels once the broker has
    the call (its initial metadata, sent before any work, has arrived)."""
    end_user = f"cancel-{uuid.uuid4().hex[:10]}"
    ca, cert, key = running.workdir.partner_credentials("crown_attorney")
    request = broker_pb2.QueryRequest(
        sql=sql, purpose="bail_hearing", case_ref="R-CANCEL-1", timeout_ms=30_000
    )
    messages = rows = 0
    with grpc.secure_channel(
        running.address, tls.channel_credentials(ca, cert, key), options=tls.CHANNEL_OPTIONS
    ) as channel:
        call = broker_pb2_grpc.BrokerStub(channel).Query(
            request, timeout=35, metadata=((END_USER_METADATA, end_user),)
        )
        schema = None
        assert dict(call.initial_metadata())[QUERY_ID_METADATA]
        try:
            while messages < k:
                message = next(call)
                messages += 1
                kind = message.WhichOneof("payload")
                if kind == "header":
                    schema = ipc.schema_from_bytes(message.header.arrow_schema)
                elif kind == "arrow_batch":
                    rows += ipc.batch_from_bytes(message.arrow_batch, schema).num_rows
        except StopIteration:
            pass
        call.cancel()
    return end_user, messages, rows


def whole_answer(running: Running, sql: str) -> tuple[int, int]:
    """How many messages and rows the whole answer has."""
    _, messages, rows = read_then_cancel(running, sql, 10_000)
    return messages, rows


@pytest.mark.parametrize("sql", [STREAMED, MERGED], ids=["streamed", "merged"])
def test_a_client_cancelling_at_every_point_leaves_a_complete_record(running, sql):
    total, total_rows = whole_answer(running, sql)
    assert total >= 4  # header, at least two batches, trailer
    for k in range(total + 1):
        end_user, messages, rows = read_then_cancel(running, sql, k)
        records = wait_for_closing(running, end_user)
        context = (k, messages, rows, records)
        assert len({r["query_id"] for r in records}) == 1, context
        if messages:
            # The client saw part of the answer: its access was recorded first.
            access, end = records
            assert (access["event"], access["outcome"]) == ("query", "STARTED"), context
            assert access["sql"] == sql and "surname" in access["tables"]["offenders"]
            assert end["event"] == "query_end" and end["seq"] > access["seq"], context
            assert end["rows_returned"] >= rows, context  # counted as handed over
            if messages == total:  # it read the trailer: the answer was whole
                assert end["outcome"] == "OK", context
            elif end["outcome"] == "CANCELLED":
                assert end["cancelled_after_rows"] == end["rows_returned"], context
            else:  # the broker handed over its last message before it saw the cancel
                assert end["outcome"] == "OK" and end["rows_returned"] == total_rows, context
        else:
            # Cancelled before any message: a cancel the broker saw before it
            # started the answer leaves its one record; one it saw later, the
            # pair (and one it saw after its last write, an answer whole).
            outcomes = [(r["event"], r["outcome"]) for r in records]
            assert outcomes in (
                [("query", "CANCELLED")],
                [("query", "STARTED"), ("query_end", "CANCELLED")],
                [("query", "STARTED"), ("query_end", "OK")],
            ), context


def test_an_answer_whose_access_cannot_be_recorded_is_not_sent(running, tmp_path):
    """The trail refuses the access record: the client gets no message at
    all; it refuses the completion record: the client has the rows but no
    trailer, and an error instead of a whole answer."""
    from accord.audit.keys import load_or_create_signing_key
    from accord.audit.log import AuditLog
    from accord.errors import AuditWriteError

    class FailingAt(AuditLog):
        """Refuses the first record whose event is ``fail_event``."""

        fail_event = ""

        def append(self, record):
            if record.get("event") == self.fail_event and record.get("end_user") == "fail":
                self.fail_event = ""
                raise AuditWriteError("the audit trail cannot be written")
            return super().append(record)

    audit = FailingAt(tmp_path / "audit", load_or_create_signing_key(tmp_path / "k.pem"))
    partner_ca, partner_cert, partner_key = running.workdir.partner_credentials("crown_attorney")
    seen: dict[str, Any] = {}

    def ask(port: int) -> tuple[list[str], grpc.StatusCode | None]:
        request = broker_pb2.QueryRequest(
            sql=STREAMED, purpose="bail_hearing", case_ref="R-1", timeout_ms=20_000
        )
        kinds: list[str] = []
        with grpc.secure_channel(
            f"localhost:{port}",
            tls.channel_credentials(partner_ca, partner_cert, partner_key),
            options=tls.CHANNEL_OPTIONS,
        ) as channel:
            call = broker_pb2_grpc.BrokerStub(channel).Query(
                request, timeout=25, metadata=((END_USER_METADATA, "fail"),)
            )
            try:
                kinds.extend(str(m.WhichOneof("payload")) for m in call)
            except grpc.RpcError as exc:
                return kinds, exc.code()
        return kinds, None

    async def scenario() -> None:
        async with broker_over(running, audit) as (port, _):
            audit.fail_event = "query"
            seen["access"] = await asyncio.to_thread(ask, port)
            audit.fail_event = "query_end"
            seen["completion"] = await asyncio.to_thread(ask, port)

    asyncio.run(scenario())
    assert seen["access"] == ([], grpc.StatusCode.UNAVAILABLE)
    kinds, status = seen["completion"]
    assert status == grpc.StatusCode.UNAVAILABLE
    assert kinds[0] == "header" and "arrow_batch" in kinds and "trailer" not in kinds
