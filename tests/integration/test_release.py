"""Each adapter enforces its jurisdiction's release agreement, whatever it is asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import grpc
import pytest

from accord import ipc, tls
from accord.v1 import adapter_pb2, adapter_pb2_grpc
from tests.disclosure_bounds import tolerance
from tests.integration.conftest import rows

if TYPE_CHECKING:
    import pyarrow as pa

    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration


def scan(
    running: Running, source: str, table: str, columns: list[str], predicate: str = ""
) -> tuple[adapter_pb2.ScanHeader, list[pa.RecordBatch]]:
    cert, key = running.workdir.pki.broker_client()
    credentials = tls.channel_credentials(running.workdir.pki.ca_cert(), cert, key)
    channel = grpc.secure_channel(running.launcher.adapter_addresses[source], credentials)
    try:
        stub = adapter_pb2_grpc.AdapterStub(channel)
        request = adapter_pb2.ScanRequest(table=table, columns=columns, predicate=predicate)
        messages: list[adapter_pb2.ScanResponse] = list(stub.Scan(request, timeout=10))
    finally:
        channel.close()
    header = messages[0].header
    assert messages[-1].WhichOneof("payload") == "trailer"
    batches = [ipc.batch_from_bytes(m.arrow_batch) for m in messages[1:-1]]
    return header, batches


@pytest.mark.parametrize(
    ("source", "table", "columns", "predicate", "named"),
    [
        ("BC", "offenders", ["surname", "address"], "", "column 'address'"),
        ("BC", "offenders", ["surname"], "address LIKE '1%'", "column 'address'"),
        ("QC", "incidents", ["summary"], "", "column 'summary'"),
        ("CA-CSC", "health_notes", ["note"], "", "table 'health_notes'"),
    ],
)
def test_unreleased_data_is_refused_even_to_the_broker(
    running, source, table, columns, predicate, named
):
    with pytest.raises(grpc.RpcError) as caught:
        scan(running, source, table, columns, predicate)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert named in (caught.value.details() or "")


def test_release_row_filter_applies_to_every_scan(running):
    header, batches = scan(running, "YT", "offenders", ["status"])
    statuses = {s for b in batches for s in b.column(0).to_pylist()}
    assert "WARRANT_EXPIRED" not in statuses and "ARCHIVED" in statuses
    assert header.physical_sql.count("?") >= 1  # the filter is in the database query


def test_broker_fills_unreleased_columns_with_null(running, crown):
    result = crown.query("SELECT source, count(summary) FROM incidents GROUP BY 1 ORDER BY 1")
    counts = dict(rows(result.table))
    assert counts["BC"] == 0 and counts["QC"] == 0 and counts["ON"] > 0


# -- person-level release: Yukon withholds a WARRANT_EXPIRED file entirely ------


def withheld_files(running: Running) -> set[str]:
    """Yukon's own ids of the person files its agreement withholds, straight
    from the generated data and the agreement's offenders filter."""
    agreement = running.federation.sources["YT"].release["offenders"]
    assert agreement.row_filter, "Yukon's agreement withholds some person files"
    con = duckdb.connect()
    con.register("offenders", running.generated["YT"]["offenders"])
    kept = f"coalesce(({agreement.row_filter}), false)"
    files = con.sql(
        f"SELECT source_person_id, fps_number FROM offenders WHERE NOT {kept}"
    ).fetchall()
    # No FPS number has both a withheld and a released file in Yukon, so the
    # file ids name the withheld persons exactly.
    fps = {f for _, f in files if f is not None}
    shared = con.sql(f"SELECT fps_number FROM offenders WHERE {kept}").fetchall()
    assert not fps & {f for (f,) in shared}
    return {pid for pid, _ in files}


def yukon_rows_of(running: Running, table: str, files: set[str]) -> int:
    """Generated Yukon rows of ``table`` that belong to the given files."""
    ids = running.generated["YT"][table].column("source_person_id").to_pylist()
    return sum(1 for pid in ids if pid in files)


def partners_by_role(running: Running) -> list[str]:
    policy = running.policy
    return sorted(
        name
        for name, partner in policy.registry.partners.items()
        if name == partner.role and policy.roles[partner.role].tables
    )


def client_for(running: Running, partner: str):
    role = running.policy.roles[running.policy.registry.partners[partner].role]
    return running.client(
        partner,
        end_user="release-test",
        purpose=sorted(role.purposes)[0],
        case_ref="R-2026-0042" if role.case_reference_required else "",
    )


def test_the_generated_data_has_rows_of_withheld_yukon_persons(running):
    """The data the next tests check does exercise the rule."""
    files = withheld_files(running)
    assert files
    assert sum(yukon_rows_of(running, t, files) for t in ("sentences", "releases", "alerts")) > 0


def test_no_row_of_a_withheld_yukon_person_reaches_any_partner(running):
    """Every role, every table it is granted: Yukon's rows are exactly the
    entitled view of the oracle (which applies the person-level release
    independently), that view holds none of a withheld person's rows and all
    of everyone else's, and where the role sees Yukon's person ids, none is
    a withheld file's."""
    files = withheld_files(running)
    leaked: dict[tuple[str, str], int] = {}
    differ: list[tuple[str, str]] = []
    checked = 0
    for partner in partners_by_role(running):
        role = running.policy.roles[running.policy.registry.partners[partner].role]
        oracle = running.oracle(partner)
        with client_for(running, partner) as client:
            for table, grant in role.tables.items():
                if table not in running.generated["YT"]:
                    continue
                in_raw = oracle.sql(
                    f"SELECT source_person_id FROM raw.{table} WHERE source = 'YT'"
                ).fetchall()
                assert not {pid for (pid,) in in_raw} & files, table
                total = running.generated["YT"][table].num_rows
                if table != "offenders":  # offenders also has the file's own filter
                    assert len(in_raw) == total - yukon_rows_of(running, table, files), table
                visible = [
                    c for c in running.federation.released_columns(table) if c in grant.columns
                ]
                if role.aggregate_only:
                    # no source dimension: the count over every source,
                    # released rounded (broker.policy.disclosure)
                    sql = f"SELECT count(*) FROM {table}"
                    answer = rows(client.query(sql).table)
                    expected = oracle.sql(sql).fetchall()
                    if len(answer) == len(expected) == 1:
                        ((got,), (true,)) = answer[0], expected[0]
                        if got % role.rounding_base == 0 and abs(got - true) <= tolerance(
                            role, table
                        ):
                            answer = expected
                else:
                    # a role denied `source` cannot ask for Yukon's rows: all of them, then
                    yukon = " WHERE source = 'YT'" if "source" in grant.columns else ""
                    sql = f"SELECT {', '.join(visible)} FROM {table}{yukon}"
                    answer = rows(client.query(sql).table)
                    expected = oracle.sql(sql).fetchall()
                if sorted(map(repr, answer)) != sorted(map(repr, expected)):
                    differ.append((partner, sql))
                checked += 1
                if "source_person_id" in visible and grant.columns["source_person_id"] is None:
                    index = visible.index("source_person_id")
                    found = sum(1 for r in answer if r[index] in files)
                    if found:
                        leaked[(partner, table)] = found
    assert not leaked, f"rows of withheld Yukon persons reached partners: {leaked}"
    assert not differ, f"answers differ from the entitled view: {differ}"
    assert checked > 20
