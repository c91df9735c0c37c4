"""One backend test suite, run against SQLite, PostgreSQL and MariaDB.

The same source (OMS's physical schema, CA-CSC) is loaded into each database;
the same Scans must give the same logical rows from each, equal to an oracle
computed by DuckDB over the generated logical data. Where an adapter leaves
a conjunct to the broker (residual) or pushes it only as a superset, the test
applies it afterwards exactly as the broker would.

PostgreSQL and MariaDB run on this machine's loopback (see README); each test
class creates its own database and drops it afterwards. With CI=true an
unreachable server fails the run; elsewhere it skips with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import duckdb
import pyarrow as pa
import pytest

from accord import ipc
from accord.federation import load_federation
from accord.v1 import adapter_pb2
from accord.workdir import DEFAULT_FEDERATION
from adapters.datagen import generate, write_mysql, write_postgres, write_sqlite
from adapters.server import scan
from tests.integration.servers import (
    scratch_mariadb,
    scratch_postgres,
)
from tests.scans import read_scan

if TYPE_CHECKING:
    from adapters.backends.base import Backend

pytestmark = pytest.mark.integration

SOURCE = "CA-CSC"
SCALE = 0.05  # ~7k offenders, ~13k sentences: several Arrow batches
SEED = 5
FEDERATION = load_federation(DEFAULT_FEDERATION)


@pytest.fixture(scope="module")
def generated():
    return generate(FEDERATION, seed=SEED, scale=SCALE)[SOURCE]


@pytest.fixture(scope="module")
def oracle(generated):
    con = duckdb.connect()
    for name, table in generated.items():
        con.register(name, table)
    return con


CASES = [
    ("offenders", ["fps_number", "surname", "status"], "status = 'IN_CUSTODY'"),
    ("offenders", ["fps_number", "status"], "status <> 'ARCHIVED'"),
    ("offenders", ["fps_number", "status"], "status IN ('UAL', 'SUPERVISED')"),
    ("offenders", ["source_person_id", "surname", "given_names"], "surname LIKE 'B%'"),
    ("offenders", ["source_person_id", "surname"], "surname LIKE '%é%'"),
    ("offenders", ["source_person_id", "surname"], "surname = 'Côté'"),
    ("offenders", ["source_person_id", "surname"], "surname > 'M' AND surname < 'N'"),
    ("offenders", ["source_person_id", "birth_date"], "birth_date > DATE '1985-01-01'"),
    (
        "offenders",
        ["source_person_id", "birth_date"],
        "birth_date BETWEEN DATE '1970-01-01' AND DATE '1970-12-31'",
    ),
    ("offenders", ["source_person_id", "fps_number", "address"], "fps_number IS NULL"),
    # the broker always fetches the columns its re-checks need
    (
        "offenders",
        ["source_person_id", "photo_ref", "status"],
        "NOT (status = 'UAL') OR photo_ref IS NULL",
    ),
    ("offenders", ["source_person_id", "surname"], "surname = 'no such person'"),
    ("offenders", list(FEDERATION.tables["offenders"].columns), ""),
    ("offenders", ["fps_number"], ""),  # one column with NULLs: a NULL row is an empty line
    ("aliases", ["alias_given_names"], "alias_given_names IS NULL OR alias_given_names = ''"),
    ("sentences", ["source_person_id", "length_days", "sentence_date"], "length_days > 365"),
    ("sentences", ["source_person_id", "offence_description"], ""),  # several batches
    ("incidents", ["source_person_id", "summary", "occurred_on"], "occurred_on IS NOT NULL"),
]


class BackendSuite:
    """The contract every backend meets; subclasses provide ``backend``."""

    kind: ClassVar[str]
    #: Whether a LIMIT over an equality on a coded text column reaches the database.
    limit_pushed: ClassVar[bool]

    def run_scan(
        self, backend: Backend, table: str, columns: list[str], predicate: str, limit: int = 0
    ) -> tuple[adapter_pb2.ScanHeader, pa.Table]:
        request = adapter_pb2.ScanRequest(
            table=table, columns=columns, predicate=predicate, limit=limit, query_id="suite"
        )
        source = FEDERATION.sources[SOURCE]
        answer = read_scan(scan(FEDERATION, source, backend, request, "suite:1", timeout_s=30))
        # Every generated value fits the logical model.
        assert dict(answer.trailer.bad_values) == {}
        return answer.header, answer.table

    def broker_view(
        self, header: adapter_pb2.ScanHeader, table: pa.Table, columns: list[str]
    ) -> pa.Table:
        """What the broker keeps: residual and superset conjuncts applied."""
        recheck = [*header.residual_predicates, *header.superset_predicates]
        if not recheck:
            return table
        con = duckdb.connect()
        con.register("t", table)
        cols = ", ".join(f'"{c}"' for c in columns)
        return con.sql(f"SELECT {cols} FROM t WHERE {' AND '.join(recheck)}").to_arrow_table()

    @pytest.mark.parametrize(("table", "columns", "predicate"), CASES)
    def test_scan_equals_the_oracle(self, backend, oracle, table, columns, predicate):
        header, result = self.run_scan(backend, table, columns, predicate)
        result = self.broker_view(header, result, columns)
        cols = ", ".join(f'"{c}"' for c in columns)
        where = f" WHERE {predicate}" if predicate else ""
        expected = oracle.sql(f"SELECT {cols} FROM {table}{where}").to_arrow_table()
        assert result.schema.equals(expected.schema)
        key = [(c, "ascending") for c in columns]
        assert result.sort_by(key).equals(expected.sort_by(key)), header.physical_sql

    def test_large_results_stream_in_several_batches(self, backend, generated):
        _, result = self.run_scan(backend, "sentences", ["source_person_id"], "")
        assert result.num_rows == generated["sentences"].num_rows > ipc.BATCH_ROWS
        assert len(result.to_batches()) >= 2

    def test_limit(self, backend, oracle):
        columns = ["source_person_id", "status"]
        header, result = self.run_scan(backend, "offenders", columns, "status = 'ARCHIVED'", 13)
        kept = self.broker_view(header, result, columns)
        archived = oracle.sql(
            "SELECT source_person_id, status FROM offenders WHERE status = 'ARCHIVED'"
        ).to_arrow_table()
        assert archived.num_rows > 13
        every = set(zip(*archived.to_pydict().values(), strict=True))
        got = list(zip(*kept.to_pydict().values(), strict=True))
        assert set(got) <= every and len(set(got)) == len(got)
        assert header.limit_pushed is self.limit_pushed
        if self.limit_pushed:
            # exact pushdown: the database stops at 13 rows
            assert not header.superset_predicates and result.num_rows == 13
        else:
            # a superset push (case-insensitive collation): no LIMIT may go with it;
            # every match comes back, and the broker applies the limit after re-checking
            assert header.superset_predicates
            assert kept.num_rows == archived.num_rows

    def test_pushed_sql_binds_every_literal(self, backend):
        header, _ = self.run_scan(
            backend, "offenders", ["surname"], "surname = 'O''Brien' OR surname LIKE 'x%'"
        )
        assert "O'Brien" not in header.physical_sql and "Brien" not in header.physical_sql

    def test_long_text_and_accents_round_trip(self, backend, generated):
        _, result = self.run_scan(backend, "incidents", ["summary"], "")
        longest = max(
            (s for s in generated["incidents"].column("summary").to_pylist() if s), key=len
        )
        assert longest in result.column("summary").to_pylist()


class TestSqlite(BackendSuite):
    kind = "sqlite"
    limit_pushed = True

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, generated, tmp_path_factory):
        from adapters.backends.sqlite import SqliteBackend

        path = tmp_path_factory.mktemp("suite") / "oms.sqlite"
        write_sqlite(FEDERATION, SOURCE, generated, path)
        backend = SqliteBackend(SOURCE, path)
        yield backend
        backend.close()


class TestPostgres(BackendSuite):
    kind = "postgresql"
    limit_pushed = True

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, generated):
        from adapters.backends.postgres import PostgresBackend

        with scratch_postgres("accord_suite") as dsn:
            write_postgres(FEDERATION, SOURCE, generated, dsn)
            backend = PostgresBackend(SOURCE, dsn)
            yield backend
            backend.close()


class TestMariaDB(BackendSuite):
    kind = "mysql"
    limit_pushed = False

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, generated):
        from adapters.backends.mysql import MysqlBackend

        with scratch_mariadb("accord_suite") as dsn:
            write_mysql(FEDERATION, SOURCE, generated, dsn)
            backend = MysqlBackend(SOURCE, dsn)
            yield backend
            backend.close()
