"""The person-level release on SQLite, PostgreSQL and MariaDB, against DuckDB.

The federal OMS (CA-CSC) is loaded into each database with cases the
generated data lacks: files without an FPS number (their records link by
file number), a second file under one FPS number with another status, and
records whose FPS number or file number differs from a file's only in case
or a trailing blank, or that have no file at all. Every child table follows
the person file; hypothesis draws the file's row filter. On each backend the
adapter either refuses the agreement (ConfigError, and then refuses every
scan too) or keeps exactly the rows DuckDB keeps, evaluating the same
agreement over the logical data with a person key of its own
(``tests.integration.oracle.person_of``), not the adapter's semi-join.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from accord.errors import ConfigError
from accord.federation import Federation, parse_federation
from accord.v1 import adapter_pb2
from accord.workdir import DEFAULT_FEDERATION
from adapters.datagen import generate, write_mysql, write_postgres, write_sqlite
from adapters.release import release_problems
from adapters.server import scan
from tests.integration.oracle import person_of
from tests.integration.servers import (
    scratch_mariadb,
    scratch_postgres,
)
from tests.scans import read_scan

if TYPE_CHECKING:
    from collections.abc import Iterator

    from adapters.backends.base import Backend

pytestmark = pytest.mark.integration

SOURCE = "CA-CSC"
SEED = 5
SCALE = 0.005
RAW: dict[str, Any] = yaml.safe_load(DEFAULT_FEDERATION.read_text(encoding="utf-8"))
CHILDREN = ("aliases", "sentences", "releases", "incidents", "alerts")
COLUMNS = ["source_person_id", "fps_number"]

#: Conditions on the person file; some translate exactly on every database,
#: some only where text compares bytewise.
ATOMS = [
    "status = 'WARRANT_EXPIRED'",
    "status <> 'ARCHIVED'",
    "status IN ('IN_CUSTODY', 'UAL', 'SUPERVISED')",
    "status IS NULL",
    "photo_ref IS NULL",
    "address IS NOT NULL",
    "warrant_expiry_date IS NOT NULL",
    "planned_release_date IS NULL",
    "fps_number IS NULL",
    "birth_date > DATE '1975-06-30'",
    "surname LIKE 'M%'",
    "security_level = 'MAXIMUM'",
]
#: One filter every backend applies, and one only the bytewise ones do.
EVERYWHERE = "warrant_expiry_date IS NOT NULL AND NOT (photo_ref IS NULL)"
BYTEWISE = "status IS NULL OR status <> 'WARRANT_EXPIRED'"


def federation_with(row_filter: str) -> Federation:
    raw = copy.deepcopy(RAW)
    source = next(s for s in raw["sources"] if s["code"] == SOURCE)
    source["release"] = {
        "offenders": {"columns": "all", "row_filter": row_filter},
        **{t: {"columns": "all", "follows": "offenders"} for t in CHILDREN},
    }
    return parse_federation(raw)


BASE = federation_with("TRUE")


def with_edge_cases(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """The generated OMS plus the person-link cases it lacks."""
    rng = random.Random(SEED)
    files = tables["offenders"].to_pylist()
    keyless = {f["source_person_id"] for f in rng.sample(files, 40)}
    for f in files:
        if f["source_person_id"] in keyless:
            f["fps_number"] = None
    flip = {"WARRANT_EXPIRED": "IN_CUSTODY", "IN_CUSTODY": "WARRANT_EXPIRED"}
    keyed = [f for f in files if f["fps_number"] is not None]
    for i, f in enumerate(rng.sample(keyed, 25)):  # a second file, another status
        second = dict(f, source_person_id=f"D{i:04d}")
        second["status"] = flip.get(f["status"], "WARRANT_EXPIRED")
        files.append(second)
    out = {"offenders": pa.Table.from_pylist(files, schema=tables["offenders"].schema)}
    by_id = {f["source_person_id"]: f for f in files}
    for name in CHILDREN:
        records = tables[name].to_pylist()
        for r in records:
            if r["source_person_id"] in keyless:
                r["fps_number"] = None
        extra = []
        for r in rng.sample(records, min(30, len(records))):
            fps, pid = r["fps_number"], r["source_person_id"]
            if fps is not None:
                extra.append(dict(r, fps_number=fps.lower()))  # case differs
                extra.append(dict(r, fps_number=fps + " "))  # a trailing blank
                extra.append(dict(r, fps_number=None))  # its file has an FPS number
            else:
                extra.append(dict(r, source_person_id=pid + " "))
                extra.append(dict(r, source_person_id=pid.lower() + "x"))
            assert pid in by_id
        extra.append(dict(records[0], fps_number="NOFILE1", source_person_id="NOFILE"))
        extra.append(dict(records[0], fps_number=None, source_person_id="NOFILE"))
        out[name] = pa.Table.from_pylist(records + extra, schema=tables[name].schema)
    return out


@pytest.fixture(scope="module")
def logical() -> dict[str, pa.Table]:
    return with_edge_cases(generate(BASE, seed=SEED, scale=SCALE)[SOURCE])


@pytest.fixture(scope="module")
def duck(logical: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name, table in logical.items():
        con.register(name, table)
    return con


def expected(con: duckdb.DuckDBPyConnection, table: str, row_filter: str) -> Counter[Any]:
    cols = ", ".join(COLUMNS)
    released = f"SELECT {person_of('fps_number')} FROM offenders WHERE {row_filter}"
    if table == "offenders":
        sql = f"SELECT {cols} FROM offenders WHERE {row_filter}"
    else:
        sql = f"SELECT {cols} FROM {table} WHERE {person_of('fps_number')} IN ({released})"
    return Counter(con.sql(sql).fetchall())


def scanned(federation: Federation, backend: Backend, table: str) -> Counter[Any]:
    request = adapter_pb2.ScanRequest(table=table, columns=COLUMNS, query_id="release")
    result = read_scan(
        scan(federation, federation.sources[SOURCE], backend, request, "release:1", timeout_s=30)
    ).table
    return Counter(zip(*(c.to_pylist() for c in result.columns), strict=True))


def check(backend: Backend, duck: duckdb.DuckDBPyConnection, row_filter: str) -> bool:
    """True when the backend applied the agreement (and kept exactly DuckDB's
    rows), False when it refused it (and refused every scan)."""
    federation = federation_with(row_filter)
    problems = release_problems(federation, federation.sources[SOURCE], backend.dialect)
    if problems:
        for table in ("offenders", *CHILDREN):
            with pytest.raises(ConfigError, match=f"release filter|source {SOURCE} release of"):
                scanned(federation, backend, table)
        assert all(p.startswith(f"source {SOURCE} release of ") for p in problems), problems
        return False
    for table in ("offenders", *CHILDREN):
        assert scanned(federation, backend, table) == expected(duck, table, row_filter), (
            backend.dialect,
            table,
            row_filter,
        )
    return True


def test_the_edge_cases_are_there(duck):
    """Each kind of case the differential test relies on is in the data."""
    assert duck.sql("SELECT count(*) FROM offenders WHERE fps_number IS NULL").fetchall()[0][0] > 30
    dup = "SELECT count(*) FROM (SELECT fps_number FROM offenders GROUP BY 1 HAVING count(*) > 1)"
    assert duck.sql(dup).fetchall()[0][0] >= 20
    near = (
        "SELECT count(*) FROM sentences "
        "WHERE fps_number LIKE '% ' OR fps_number <> upper(fps_number)"
    )
    assert duck.sql(near).fetchall()[0][0] > 0
    # the agreement the test checks by hand withholds some records and keeps some
    everything = sum(expected(duck, "sentences", "TRUE").values())
    kept = sum(expected(duck, "sentences", BYTEWISE).values())
    assert 0 < kept < everything


filters = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["AND", "OR"]), inner).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"
        ),
        inner.map(lambda f: f"NOT ({f})"),
    ),
    max_leaves=3,
)

EXAMPLES = 12


class ReleaseSuite:
    """The person-level release on one backend; subclasses provide ``backend``."""

    #: Whether the backend compares text bytewise, so coded filters translate.
    bytewise: bool

    def test_a_filter_every_database_applies(self, backend, duck):
        assert check(backend, duck, EVERYWHERE)

    def test_yukons_kind_of_filter(self, backend, duck):
        assert check(backend, duck, BYTEWISE) is self.bytewise

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        # one test per backend class: derandomized, no database, so reproducible
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(row_filter=filters)
    def test_kept_rows_equal_duckdb(self, backend, duck, row_filter):
        event("applied" if check(backend, duck, row_filter) else "refused")


class TestSqlite(ReleaseSuite):
    bytewise = True

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, logical, tmp_path_factory) -> Iterator[Backend]:
        from adapters.backends.sqlite import SqliteBackend

        path = tmp_path_factory.mktemp("release") / "oms.sqlite"
        write_sqlite(BASE, SOURCE, logical, path)
        backend = SqliteBackend(SOURCE, path)
        yield backend
        backend.close()


class TestPostgres(ReleaseSuite):
    bytewise = True

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, logical) -> Iterator[Backend]:
        from adapters.backends.postgres import PostgresBackend

        with scratch_postgres("accord_release") as dsn:
            write_postgres(BASE, SOURCE, logical, dsn)
            backend = PostgresBackend(SOURCE, dsn)
            yield backend
            backend.close()


class TestMariaDB(ReleaseSuite):
    bytewise = False

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, logical) -> Iterator[Backend]:
        from adapters.backends.mysql import MysqlBackend

        with scratch_mariadb("accord_release") as dsn:
            write_mysql(BASE, SOURCE, logical, dsn)
            backend = MysqlBackend(SOURCE, dsn)
            yield backend
            backend.close()
