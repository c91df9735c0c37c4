"""Every field a partner sends is bounded, refused early and never echoed:
an oversized purpose, case reference, SQL or end user is refused with a
short message naming the field and its limit; its audit record stays small;
a corrupt or non-UTF-8 request body is INVALID_ARGUMENT, never UNKNOWN; and
case references and purposes are normalized (NFKC, trimmed) before
admission, so `accord audit search --case-ref` finds what was admitted."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from accord import tls
from accord.audit.search import search
from app.cli import main

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

REFUSALS = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)
SQL = "SELECT count(*) FROM offenders"
#: The most a refusal's record may take in the trail.
RECORD_BYTES = 4096


def marker() -> str:
    return f"fields-{uuid.uuid4().hex[:12]}"


def records_of(running: Running, end_user: str) -> list[dict[str, Any]]:
    return [r for r in search(running.workdir.audit_dir()) if r.get("end_user") == end_user]


def the_record(running: Running, end_user: str) -> dict[str, Any]:
    (record,) = records_of(running, end_user)
    assert len(json.dumps(record).encode()) < RECORD_BYTES
    return record


def refusal(
    running: Running,
    end_user: str,
    *,
    sql: str = SQL,
    purpose: str = "bail_hearing",
    case_ref: str = "R-2026-0042",
) -> grpc.RpcError:
    with (
        running.client("crown_attorney", end_user=end_user) as client,
        pytest.raises(grpc.RpcError) as caught,
    ):
        client.query(sql, purpose=purpose, case_ref=case_ref)
    return caught.value


@pytest.mark.parametrize(
    ("field", "size", "limit"),
    [
        ("purpose", 100 * 1024, "64 characters"),
        ("case_ref", 100 * 1024, "64 characters"),
        ("sql", 900 * 1024, "100000 bytes"),
    ],
)
def test_an_oversized_field_is_refused_by_name_and_never_echoed(running, field, size, limit):
    who = marker()
    error = refusal(running, who, **{field: "x" * size})
    details = error.details() or ""
    assert error.code() in REFUSALS, (error.code(), details[:200])
    assert len(details) < 300 and "xxxxxxxxxx" not in details
    assert limit in details
    assert {"purpose": "purpose", "case_ref": "case reference", "sql": "sql"}[field] in details
    record = the_record(running, who)
    assert record["outcome"] == error.code().name
    assert record["truncated"] == {field: size}
    assert record[field].startswith("xxx") and record[field].endswith("[truncated]")


def test_an_end_user_longer_than_its_limit_is_refused(running):
    who = marker()
    long_user = who + "-" + "u" * 300
    error = refusal(running, long_user)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error.details() or ""
    assert "end user" in details and "200 characters" in details and who not in details
    (record,) = [r for r in search(running.workdir.audit_dir()) if who in str(r.get("end_user"))]
    assert record["outcome"] == "INVALID_ARGUMENT"
    assert record["truncated"] == {"end_user": len(long_user)}


@pytest.fixture
def raw_channel(running: Running) -> Iterator[grpc.Channel]:
    ca, cert, key = running.workdir.partner_credentials("crown_attorney")
    channel = grpc.secure_channel(
        running.address, tls.channel_credentials(ca, cert, key), options=tls.CHANNEL_OPTIONS
    )
    yield channel
    channel.close()


CORRUPT = {
    "corrupt wire format": b"\xff\xff\xff",
    "sql not UTF-8": b"\x0a\x02\xff\xfe",
    "purpose not UTF-8": b"\x0a\x08SELECT 1\x12\x03\xc3\x28\xa0",
    "truncated field": b"\x0a\x40SELECT",
}


@pytest.mark.parametrize("body", CORRUPT.values(), ids=CORRUPT.keys())
@pytest.mark.parametrize("method", ["Query", "Explain"])
def test_a_corrupt_request_body_is_invalid_argument(running, raw_channel, method, body):
    who = marker()
    metadata = (("x-accord-end-user", who),)
    path = f"/accord.v1.Broker/{method}"
    with pytest.raises(grpc.RpcError) as caught:
        if method == "Query":
            list(raw_channel.unary_stream(path)(body, timeout=10, metadata=metadata))
        else:
            raw_channel.unary_unary(path)(body, timeout=10, metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert "QueryRequest" in (caught.value.details() or "")
    record = the_record(running, who)
    assert record["outcome"] == "INVALID_ARGUMENT" and record["event"] == method.lower()


def test_a_corrupt_catalog_request_is_invalid_argument(raw_channel):
    with pytest.raises(grpc.RpcError) as caught:
        raw_channel.unary_unary("/accord.v1.Broker/GetCatalog")(b"\xff\xff\xff", timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("sent", "admitted"),
    [
        ("{ref}\n", "{ref}"),
        ("  {ref}\t", "{ref}"),
        ("{ref}".replace("R", "\uff32"), "{ref}"),  # fullwidth R: NFKC makes it R
    ],
    ids=["trailing newline", "surrounding blanks", "fullwidth letter"],
)
def test_a_case_reference_is_normalized_and_found_as_admitted(running, capsys, sent, admitted):
    ref = f"R-{uuid.uuid4().hex[:10].upper()}"
    with running.client("crown_attorney", end_user="fields", purpose="bail_hearing") as client:
        result = client.query(SQL, case_ref=sent.format(ref=ref))
    found = list(search(running.workdir.audit_dir(), case_ref=admitted.format(ref=ref)))
    assert [r["query_id"] for r in found] == [result.query_id]
    assert main(["audit", "search", str(running.workdir.audit_dir()), "--case-ref", ref]) == 0
    assert result.query_id in capsys.readouterr().out


@pytest.mark.parametrize(
    "case_ref",
    [
        "R-2026-00\u04202",
        "\u0420-2026-0042",
        "R-2026-0042\x00",
        "R-2026\n-0042",
        "R-2026-0042\u200b",
    ],
    ids=["cyrillic er", "cyrillic first", "NUL", "inner newline", "zero-width space"],
)
def test_a_lookalike_case_reference_is_refused_without_echo(running, case_ref):
    who = marker()
    error = refusal(running, who, case_ref=case_ref)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    details = error.details() or ""
    assert "case reference" in details and case_ref not in details
    assert details.isascii()
    assert the_record(running, who)["outcome"] == "PERMISSION_DENIED"


def test_a_purpose_is_normalized_and_a_lookalike_refused(running):
    with running.client("crown_attorney", end_user="fields", case_ref="R-1") as client:
        result = client.query(SQL, purpose="bail_hearing\n")
    (record,) = [
        r
        for r in search(running.workdir.audit_dir())
        if r.get("query_id") == result.query_id and r["event"] == "query"
    ]
    assert record["purpose"] == "bail_hearing"
    who = marker()
    error = refusal(running, who, purpose="b\u0430il_hearing")  # Cyrillic a
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    details = error.details() or ""
    assert "purpose" in details and details.isascii()
