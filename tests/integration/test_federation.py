"""End to end: partner -> broker -> six adapters -> SQLite, all over mTLS.

Every answer is compared with an independent oracle: DuckDB run directly
over the union of the six sources' generated logical data.
"""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from accord.v1 import broker_pb2
from tests.integration.conftest import rows

pytestmark = pytest.mark.integration

ALL_SOURCES = ["BC", "CA-CSC", "ON", "QC", "SK", "YT"]

ORACLE_QUERIES = {
    "count per source": (
        "SELECT source, count(*) AS n FROM offenders GROUP BY source ORDER BY source"
    ),
    "filter on codes": (
        "SELECT source, source_person_id, fps_number, surname, status FROM offenders "
        "WHERE status = 'UAL' ORDER BY ALL"
    ),
    "filter on dates and names": (
        "SELECT source, source_person_id, surname, given_names, birth_date FROM offenders "
        "WHERE birth_date BETWEEN DATE '1970-01-01' AND DATE '1979-12-31' "
        "AND (surname LIKE 'L%' OR surname LIKE 'G%') ORDER BY ALL"
    ),
    "not-equal and IS NULL": (
        "SELECT source, count(*) FROM offenders WHERE status <> 'ARCHIVED' "
        "AND fps_number IS NULL GROUP BY source ORDER BY source"
    ),
    "negated LIKE, IN and BETWEEN": (
        "SELECT source, source_person_id, surname, status FROM offenders "
        "WHERE surname NOT LIKE 'B%' AND status NOT IN ('ARCHIVED') "
        "AND birth_date NOT BETWEEN DATE '1970-01-01' AND DATE '1979-12-31' ORDER BY ALL"
    ),
    "every column of one source": (
        "SELECT * FROM offenders WHERE source = 'QC' ORDER BY source_person_id LIMIT 40"
    ),
    "cross-source join": (
        "SELECT f.fps_number, s.source, count(*) AS sentences FROM offenders f "
        "JOIN sentences s ON s.fps_number = f.fps_number "
        "WHERE f.source = 'CA-CSC' AND s.source <> 'CA-CSC' GROUP BY ALL ORDER BY ALL"
    ),
    "three-way join": (
        "SELECT o.source, a.alert_type, count(DISTINCT r.fps_number) FROM offenders o "
        "JOIN alerts a ON a.fps_number = o.fps_number "
        "JOIN releases r ON r.fps_number = o.fps_number "
        "WHERE a.alert_type IN ('HIGH_RISK', 'VIOLENCE') GROUP BY ALL ORDER BY ALL"
    ),
    "left join anti pattern": (
        "SELECT o.source, count(*) FROM offenders o LEFT JOIN alerts a "
        "ON a.fps_number = o.fps_number AND a.source = o.source "
        "WHERE a.fps_number IS NULL GROUP BY ALL ORDER BY ALL"
    ),
    "group by with aggregates": (
        "SELECT source, sentence_type, count(*), sum(length_days), "
        "round(avg(length_days), 6), min(sentence_date), max(sentence_date) "
        "FROM sentences GROUP BY ALL ORDER BY ALL"
    ),
    "order by and limit": (
        "SELECT surname, given_names, source, source_person_id FROM offenders "
        "ORDER BY surname, given_names, source, source_person_id LIMIT 25"
    ),
    "union": (
        "SELECT fps_number FROM alerts WHERE alert_type = 'HIGH_RISK' UNION "
        "SELECT fps_number FROM releases WHERE status = 'ACTIVE' ORDER BY 1 NULLS FIRST"
    ),
    "except": (
        "SELECT fps_number FROM offenders WHERE source = 'BC' EXCEPT "
        "SELECT fps_number FROM offenders WHERE source = 'CA-CSC' ORDER BY 1 NULLS FIRST"
    ),
    "exists subquery": (
        "SELECT o.source, o.source_person_id FROM offenders o WHERE EXISTS ("
        "SELECT 1 FROM incidents i WHERE i.fps_number = o.fps_number "
        "AND i.incident_type = 'ASSAULT') ORDER BY ALL"
    ),
    "in subquery": (
        "SELECT source, count(*) FROM sentences WHERE fps_number IN ("
        "SELECT fps_number FROM alerts WHERE alert_type = 'VIOLENCE') GROUP BY 1 ORDER BY 1"
    ),
    "scalar subquery and CTE": (
        "WITH recent AS (SELECT fps_number, max(sentence_date) AS last_sentence "
        "FROM sentences GROUP BY 1) "
        "SELECT o.source, o.source_person_id, (SELECT count(*) FROM alerts a "
        "WHERE a.fps_number = o.fps_number) AS alerts, r.last_sentence "
        "FROM offenders o JOIN recent r ON r.fps_number = o.fps_number "
        "WHERE o.status = 'IN_CUSTODY' ORDER BY ALL LIMIT 50"
    ),
    "window function": (
        "SELECT source, surname, row_number() OVER (PARTITION BY source "
        "ORDER BY birth_date, source_person_id) AS rn FROM offenders "
        "QUALIFY rn <= 3 ORDER BY ALL"
    ),
}


@pytest.mark.parametrize("name", sorted(ORACLE_QUERIES))
@pytest.mark.parametrize("deployment", ["running", "running_servers"])
def test_answer_equals_the_oracle(request, deployment, name):
    """Six SQLite systems, and OMS on PostgreSQL with CORNET on MariaDB."""
    running = request.getfixturevalue(deployment)
    sql = ORACLE_QUERIES[name]
    with running.client("crown_attorney", purpose="bail_hearing", case_ref="R-1") as crown:
        result = crown.query(sql)
    assert rows(result.table) == running.oracle().sql(sql).fetchall()
    assert not result.trailer.partial


def test_not_like_returns_the_rows_like_does_not(crown, running):
    """NOT LIKE reached the sources as LIKE (sqlglot keeps it one node with a
    flag), so it returned none of the rows it names."""
    sql = "SELECT source, source_person_id FROM offenders WHERE surname NOT LIKE 'B%' ORDER BY ALL"
    expected = running.oracle().sql(sql).fetchall()
    assert len(expected) > 100
    assert rows(crown.query(sql).table) == expected


def test_a_query_spans_all_six_sources(crown):
    result = crown.query("SELECT DISTINCT source FROM offenders ORDER BY 1")
    assert [r[0] for r in rows(result.table)] == ALL_SOURCES
    statuses = {s.source: s for s in result.trailer.sources}
    assert sorted(statuses) == ALL_SOURCES
    assert all(s.state == broker_pb2.SOURCE_STATE_OK and s.rows > 0 for s in statuses.values())
    assert result.trailer.rows == 6 and result.query_id


def test_limit_without_order_returns_that_many_rows(crown):
    result = crown.query("SELECT surname FROM offenders WHERE status = 'SUPERVISED' LIMIT 7")
    assert result.table.num_rows == 7
    # Each source was asked for at most 7 rows.
    assert all(s.rows <= 7 for s in result.trailer.sources)


def test_explain_shows_the_pushdown_in_each_dialect(crown):
    plan = crown.explain(
        "SELECT surname FROM offenders WHERE status = 'UAL' AND birth_date >= DATE '1980-01-01'"
    )
    assert "ref" in plan.merge_sql
    assert sorted(s.source for s in plan.scans) == ALL_SOURCES
    for scan in plan.scans:
        assert scan.columns == ["surname", "birth_date", "status"]
        assert "status = 'UAL'" in scan.pushed_predicates
        assert scan.dialect == "sqlite"
        assert "SELECT" in scan.physical_sql and "offenders" not in scan.physical_sql.lower()
        # only the needed columns travel: three projections
        select_list = scan.physical_sql.split(" FROM ")[0]
        assert select_list.count(",") == 2
        # a range on dates narrows the scan only where the stored text sorts like
        # the dates (and only narrows: text that is not a date reads as NULL)
        narrowed = "birth_date >= CAST('1980-01-01' AS DATE)" in scan.superset_predicates
        assert narrowed != bool(scan.residual_predicates)


def test_explain_of_a_cross_source_join_pushes_each_side(crown):
    plan = crown.explain(
        "SELECT f.surname, s.offence_code FROM offenders f JOIN sentences s "
        "ON s.fps_number = f.fps_number WHERE f.source = 'CA-CSC' AND s.length_days > 365"
    )
    by_ref: dict[str, list[broker_pb2.SourceScan]] = {}
    for scan in plan.scans:
        by_ref.setdefault(scan.reference, []).append(scan)
    assert [s.source for s in by_ref["f"]] == ["CA-CSC"]
    assert all(s.predicate == "(length_days > 365)" for s in by_ref["s"])
    assert all(s.columns == ["fps_number", "offence_code", "length_days"] for s in by_ref["s"])


def test_catalog_lists_tables_with_their_sources(crown):
    catalog = crown.catalog()
    tables = {t.name: t for t in catalog.tables}
    assert {"offenders", "sentences", "releases", "alerts"} <= set(tables)
    assert sorted(tables["offenders"].sources) == ALL_SOURCES
    assert "health_notes" not in tables  # CSC does not release it
    assert "summary" in [c.name for c in tables["incidents"].columns]  # CSC, ON, SK, YT do
    assert "source" in [c.name for c in tables["offenders"].columns]
    assert catalog.partner == "crown_attorney"


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELECT * FROM offenders; DROP TABLE offenders", "exactly one statement"),
        ("DELETE FROM offenders", "DELETE"),
        ("ATTACH '/tmp/x.db' AS x", "ATTACH"),
        ("COPY offenders TO '/tmp/x.csv'", "COPY"),
        ("PRAGMA database_list", "PRAGMA"),
        ("SET threads = 1", "SET"),
        ("INSTALL httpfs", "INSTALL"),
        ("LOAD httpfs", "LOAD"),
        ("SELECT * FROM read_csv('/etc/passwd')", "not allowed"),
        ("SELECT * FROM '/etc/passwd'", "unknown table"),
        ("SELECT * FROM duckdb_settings()", "not allowed"),
        ("SELECT nope FROM offenders", "'nope'"),
        ("SELECT * FROM nowhere", "unknown table 'nowhere'"),
        ("SELEC 1", "syntax error"),
    ],
)
def test_bad_input_is_refused_and_named(crown, sql, fragment):
    with pytest.raises(grpc.RpcError) as caught:
        crown.query(sql)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment.lower() in (caught.value.details() or "").lower()


def test_runtime_errors_in_the_merge_are_the_callers(crown):
    with pytest.raises(grpc.RpcError) as caught:
        crown.query("SELECT CAST(surname AS INTEGER) FROM offenders")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_health_and_reflection_are_served(running):
    ca, cert, key = running.workdir.partner_credentials("police")
    from accord import tls

    channel = grpc.secure_channel(running.address, tls.channel_credentials(ca, cert, key))
    try:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="accord.v1.Broker"), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        services = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=5)))
        names = {s.name for s in services.list_services_response.service}
        assert "accord.v1.Broker" in names
    finally:
        channel.close()
