"""No stored value in an error: a query that makes DuckDB fail on a stored
value (``CAST(surname || birth_date AS INTEGER)``) gets INVALID_ARGUMENT
naming the kind of failure, over real gRPC, and neither the caller, nor the
query's audit record, nor any log line about it carries the value.

Before, DuckDB's message went through whole: ``Could not convert string
'<surname><birth date>' to INT32`` reached the caller, the trail and the log.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import grpc
import pytest

from accord.audit.search import search
from accord.errors import without_query_id

if TYPE_CHECKING:
    from pathlib import Path

    from accord.client import BrokerClient
    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

#: (select list, what the scrubbed message still says); each fails on the
#: first stored value it meets. ``ORDER BY`` merges whole, the rest stream.
ATTACKS = [
    ("CAST(surname || birth_date AS INTEGER)", "Could not convert string '…' to INT32"),
    ("CAST(surname || birth_date AS INTEGER) ORDER BY 1", "Could not convert string '…'"),
    ("CAST(fps_number AS INTEGER)", "Could not convert string '…' to INT32"),
    ("CAST(surname AS DATE)", "Conversion Error"),
    ("CAST(given_names || surname AS TIMESTAMP)", "Conversion Error"),
]


def stored_values(running: Running) -> set[str]:
    """What the attacks could quote: every name, birth date and FPS number
    the caller's view holds (values of four characters or more)."""
    rows = (
        running.oracle("crown_attorney")
        .sql("SELECT surname, given_names, CAST(birth_date AS VARCHAR), fps_number FROM offenders")
        .fetchall()
    )
    return {str(v) for row in rows for v in row if v is not None and len(str(v)) >= 4}


def lines_about(paths: list[Path], query_id: str) -> list[str]:
    return [line for p in paths for line in p.read_text().splitlines() if query_id in line]


@pytest.mark.parametrize(("select", "said"), ATTACKS)
def test_a_merge_error_carries_no_stored_value(
    running: Running, crown: BrokerClient, select: str, said: str
) -> None:
    marker = f"probe_{uuid.uuid4().hex[:12]}"  # finds this query's record
    column, _, order = select.partition(" ORDER BY ")
    sql = f"SELECT {column} AS {marker} FROM offenders" + (f" ORDER BY {order}" if order else "")
    with pytest.raises(grpc.RpcError) as caught:
        crown.query(sql)
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    message = error.details() or ""
    assert "failed while merging (Conversion" in message and said in message, message

    (asked,) = [r for r in search(running.workdir.audit_dir()) if marker in r.get("sql", "")]
    query_id = asked["query_id"]
    # One record when it failed before its answer began (merged), else the
    # access record and its query_end (streamed): the last says how it ended.
    records = [r for r in search(running.workdir.audit_dir()) if r.get("query_id") == query_id]
    assert len(records) in (1, 2)
    record = records[-1]
    assert record["outcome"] == "INVALID_ARGUMENT"
    assert record["error"] == without_query_id(message)  # the caller's text, less its id
    assert message.endswith(f"(query id {query_id})")
    log_lines = lines_about(sorted(running.workdir.logs.glob("*.log")), query_id)
    assert any("merge failed: Conversion" in line for line in log_lines), log_lines
    audit_lines = lines_about(sorted(running.workdir.audit_dir().glob("audit-*.jsonl")), query_id)
    assert len(audit_lines) == len(records)

    values = stored_values(running)
    assert len(values) > 100
    for text in (message, *audit_lines, "\n".join(log_lines)):
        assert sorted(v for v in values if v in text) == []


def test_a_failure_that_quotes_no_value_still_says_what_failed(
    running: Running, crown: BrokerClient
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        crown.query("SELECT length(surname) // (length(surname) - length(surname)) FROM offenders")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Division by zero" in (caught.value.details() or "")
