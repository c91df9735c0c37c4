"""The Flight SQL endpoint's parts without a server: parameters bound as
literals (checked against DuckDB), FlightData framing, handles, metadata."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord import ipc
from accord.errors import InvalidQuery, PolicyDenied, ResourceExhausted
from accord.flight import FlightSql_pb2 as sql
from accord.v1 import broker_pb2
from broker.flight import metadata, params
from broker.flight.arrow_data import batch_messages, read_table, schema_message, table_messages
from broker.flight.handles import Handles, PreparedStatement
from broker.flight.service import pack, unpack
from broker.identity import Partner, Principal
from broker.settings import FlightSettings

DUCKDB = duckdb.connect()  # no table: the values only
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
    st.dates(min_value=dt.date(1, 1, 1)),
)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(VALUES, min_size=1, max_size=4))
def test_bound_parameters_are_the_values_duckdb_reads(values):
    """Bound through sqlglot, each value comes back from DuckDB unchanged:
    whatever its text, it is a literal, never SQL."""
    placeholders = ", ".join(f"? AS c{i}" for i in range(len(values)))
    bound = params.bind(f"SELECT {placeholders}", values)
    assert DUCKDB.execute(bound).fetchall() == [tuple(values)]


def test_numbered_parameters_and_their_count():
    assert params.placeholders("SELECT 1 WHERE $1 = $2 OR $1 IS NULL") == 2
    assert params.bind("SELECT $2, $1, $2", ["a", "b"]) == "SELECT 'b', 'a', 'b'"
    with pytest.raises(InvalidQuery, match="takes 1 parameters; 2 were bound"):
        params.bind("SELECT ?", [1, 2])
    with pytest.raises(InvalidQuery, match="not named, not mixed"):
        params.placeholders("SELECT a FROM t WHERE a = :name")
    with pytest.raises(InvalidQuery, match="not named, not mixed"):
        params.placeholders("SELECT $2")  # $1 never used
    with pytest.raises(InvalidQuery, match="cannot be bound"):
        params.literal(b"bytes")
    with pytest.raises(InvalidQuery, match="one row of parameters"):
        params.row_values(pa.table({"a": [1, 2]}))


@pytest.mark.parametrize(
    "sql",
    [
        # not tokenizable: what a C client sends of 'a<NUL>b' (the text ends at the NUL)
        "SELECT surname FROM offenders WHERE surname = 'a",
        "SELECT " + "(" * 3000 + "1" + ")" * 3000,
        "SELECT FROM WHERE",
    ],
)
def test_a_statement_that_does_not_read_as_sql_is_invalid_argument(sql):
    """Counting the placeholders reads the SQL before the query path does: what
    it cannot read is the caller's INVALID_ARGUMENT, never an unexpected error."""
    with pytest.raises(InvalidQuery, match="not valid SQL"):
        params.placeholders(sql)


def test_flight_data_round_trips_a_table_and_the_query_path_messages():
    table = pa.table({"n": [1, None, 3], "s": ["a", "b", None], "d": [dt.date(2026, 1, 1)] * 3})
    assert read_table(table_messages(table)).equals(table)
    # What the Query path sends (a schema, then one stream per batch) as one Flight stream.
    batches = table.to_batches(max_chunksize=2)
    data = [schema_message(ipc.schema_to_bytes(table.schema))]
    for batch in batches:
        data += batch_messages(ipc.batch_to_bytes(batch))
    assert read_table(data).equals(table)
    with pytest.raises(InvalidQuery, match="not an Arrow IPC stream"):
        read_table([data[0].__class__(data_header=b"\x01\x02\x03")])


def _principal(name: str, fingerprint: str) -> Principal:
    partner = Partner(name, "Org", "role", "CA")
    return Principal(partner, fingerprint, 1, dt.datetime.now(dt.UTC))


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_tickets_are_bound_single_use_and_expire():
    clock = Clock()
    handles = Handles(FlightSettings(ticket_s=10, statement_idle_s=100, handles=3), clock)
    crown, police = _principal("crown", "aa"), _principal("police", "bb")
    request = broker_pb2.QueryRequest(sql="SELECT 1")
    ticket = handles.ticket(crown, request)
    with pytest.raises(PolicyDenied, match="another certificate"):
        handles.redeem(ticket, police)
    assert handles.redeem(ticket, crown) == request
    with pytest.raises(InvalidQuery, match="unknown or expired ticket"):
        handles.redeem(ticket, crown)  # single-use
    late = handles.ticket(crown, request)
    clock.now = 10.0
    with pytest.raises(InvalidQuery, match="unknown or expired ticket"):
        handles.redeem(late, crown)
    # A certificate renewed (another fingerprint) is another holder, too.
    statement = handles.prepare(crown, PreparedStatement("SELECT ?", 1))
    with pytest.raises(PolicyDenied):
        handles.statement(statement, _principal("crown", "cc"))
    clock.now = 100.0
    assert handles.statement(statement, crown).sql == "SELECT ?"  # idle time starts over
    clock.now = 199.0
    handles.statement(statement, crown)
    for _ in range(2):
        handles.ticket(crown, request)
    with pytest.raises(ResourceExhausted, match="ACCORD_FLIGHT_HANDLES"):
        handles.ticket(crown, request)
    handles.ticket(police, request)  # another partner's bound is its own
    handles.close(statement, crown)
    with pytest.raises(InvalidQuery, match="unknown or expired prepared statement"):
        handles.statement(statement, crown)


def test_commands_unpack_or_are_refused_clearly():
    command = sql.CommandGetTables(include_schema=True)
    assert unpack(pack(command), "command") == command
    with pytest.raises(InvalidQuery, match="not a packed Flight SQL message"):
        unpack(b"\xff\xff", "command")
    with pytest.raises(Exception, match="is not served") as refused:
        unpack(pack(sql.CommandGetXdbcTypeInfo()), "command")
    assert type(refused.value).__name__ == "Unimplemented"


def test_tables_are_the_catalogs_and_match_the_filters():
    catalog = broker_pb2.CatalogResponse(
        tables=[
            broker_pb2.CatalogTable(
                name="offenders",
                columns=[
                    broker_pb2.CatalogColumn(name="surname", type="VARCHAR"),
                    broker_pb2.CatalogColumn(name="birth_date", type="DATE"),
                ],
            ),
            broker_pb2.CatalogTable(name="alerts", columns=[]),
        ]
    )
    found = metadata.tables(sql.CommandGetTables(include_schema=True), catalog)
    assert found.column("table_name").to_pylist() == ["alerts", "offenders"]
    schema = ipc.schema_from_bytes(found.column("table_schema")[1].as_py())
    assert schema == pa.schema([("surname", pa.string()), ("birth_date", pa.date32())])
    named = metadata.tables(sql.CommandGetTables(table_name_filter_pattern="off%"), catalog)
    assert named.column("table_name").to_pylist() == ["offenders"]
    assert metadata.tables(sql.CommandGetTables(catalog="other"), catalog).num_rows == 0
    assert metadata.tables(sql.CommandGetTables(table_types=["VIEW"]), catalog).num_rows == 0
    info = metadata.sql_info([0, 3]).to_pylist()
    assert info == [{"info_name": 0, "value": "Accord"}, {"info_name": 3, "value": True}]
