"""Plain queries over one table stream through batch by batch; the answer is
still exactly the entitled one."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import grpc
import pytest

from accord import ipc, tls
from accord.v1 import broker_pb2, broker_pb2_grpc
from tests.integration.conftest import rows

if TYPE_CHECKING:
    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

SESSIONS = {
    "crown_attorney": ("bail_hearing", "R-1"),
    "police": ("investigation", ""),
    "passport_canada": ("passport_decisions", ""),
}


def raw_stream(running: Running, partner: str, sql: str) -> list[broker_pb2.QueryResponse]:
    purpose, case_ref = SESSIONS[partner]
    ca, cert, key = running.workdir.partner_credentials(partner)
    with grpc.secure_channel(
        running.address, tls.channel_credentials(ca, cert, key), options=tls.CHANNEL_OPTIONS
    ) as channel:
        request = broker_pb2.QueryRequest(sql=sql, purpose=purpose, case_ref=case_ref)
        messages: list[broker_pb2.QueryResponse] = list(
            broker_pb2_grpc.BrokerStub(channel).Query(request, timeout=30)
        )
        return messages


@pytest.mark.parametrize(
    ("partner", "sql"),
    [
        ("crown_attorney", "SELECT source, surname, status FROM offenders WHERE status = 'UAL'"),
        ("police", "SELECT source, surname, upper(given_names) AS g, address FROM offenders"),
        ("passport_canada", "SELECT fps_number, surname FROM offenders WHERE surname LIKE 'B%'"),
        (
            "crown_attorney",
            "SELECT fps_number, length_days * 2 AS twice FROM sentences WHERE length_days > 100",
        ),
    ],
)
def test_a_streamed_answer_is_the_entitled_one(running, partner, sql):
    messages = raw_stream(running, partner, sql)
    kinds = [m.WhichOneof("payload") for m in messages]
    assert kinds[0] == "header" and kinds[-1] == "trailer"
    batches = [ipc.batch_from_bytes(m.arrow_batch) for m in messages if m.arrow_batch]
    got = Counter(r for b in batches for r in zip(*(c.to_pylist() for c in b.columns), strict=True))
    assert got == Counter(running.oracle(partner).sql(sql).fetchall())
    assert messages[-1].trailer.rows == sum(got.values())


def test_batches_go_out_as_sources_send_them(running):
    """Not merged into one answer first: at least one batch per source."""
    messages = raw_stream(running, "crown_attorney", "SELECT source, offence_code FROM sentences")
    sources = {s.source for s in messages[-1].trailer.sources}
    assert len([m for m in messages if m.arrow_batch]) >= len(sources) == 6


def test_a_limit_stops_the_stream(running):
    messages = raw_stream(
        running,
        "crown_attorney",
        "SELECT surname FROM sentences s JOIN offenders o USING (fps_number) LIMIT 3",
    )  # not streamable
    streamed = raw_stream(running, "crown_attorney", "SELECT offence_code FROM sentences LIMIT 5")
    total = sum(ipc.batch_from_bytes(m.arrow_batch).num_rows for m in streamed if m.arrow_batch)
    assert total == 5 == streamed[-1].trailer.rows
    assert not streamed[-1].trailer.partial
    assert messages[-1].trailer.rows == 3


def test_ordered_and_aggregated_queries_still_merge_whole(running, crown):
    sql = "SELECT source, count(*) FROM offenders GROUP BY source ORDER BY source"
    assert rows(crown.query(sql).table) == running.oracle().sql(sql).fetchall()
