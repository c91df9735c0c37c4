"""One malformed stored date in a row the partner may not see: the query is
answered, the source counts one bad value (trailer, metrics, audit, the
adapter's log) and the value itself reaches nobody.

Its own federation, so the corrupted row never meets the other tests."""

from __future__ import annotations

import sqlite3
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from accord.audit.search import search
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import generate, write_federation_data
from app.commands import init_certs
from app.launcher import LocalFederation
from app.render import render_warnings
from broker.policy.store import PolicySet
from tests.integration.conftest import SCALE, SEED, Running

if TYPE_CHECKING:
    from collections.abc import Iterator

    from accord.client import QueryResult

pytestmark = pytest.mark.integration

BAD = "12/05/1993"  # CA-CSC stores dates of birth as %Y%m%d
MARKER = "Badvalue"  # the corrupted row's surname
BAD_ID = "BADROW"  # its OFFENDER_ID: no alert names CA-CSC:BADROW


def corrupt(workdir: Workdir) -> None:
    """One CA-CSC person in custody, unknown to every alert, gets a malformed
    date of birth; border services (current NO_TRAVEL holders only) may not
    see the row, but the adapter reads it for them (the alert match is the
    broker's)."""
    federation = load_federation(DEFAULT_FEDERATION)
    source = federation.sources["CA-CSC"]
    mapping = source.tables["offenders"]
    col = {c: mapping.columns[c].physical for c in mapping.columns}
    assert source.backend.path is not None
    with sqlite3.connect(workdir.path / source.backend.path) as conn:
        (rowid,) = conn.execute(
            f'SELECT rowid FROM "{mapping.physical_table}" WHERE "{col["status"]}" = ? LIMIT 1',
            ["C"],
        ).fetchone()
        conn.execute(
            f'UPDATE "{mapping.physical_table}" SET "{col["birth_date"]}" = ?, '
            f'"{col["surname"]}" = ?, "{col["fps_number"]}" = NULL, '
            f'"{col["source_person_id"]}" = ? WHERE rowid = ?',
            [BAD, MARKER, BAD_ID, rowid],
        )


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    workdir = Workdir(tmp_path_factory.mktemp("accord-bad"))
    init_certs(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES)
    federation = load_federation(DEFAULT_FEDERATION)
    write_federation_data(federation, workdir.path, seed=SEED, scale=SCALE)
    corrupt(workdir)
    generated = generate(federation, seed=SEED, scale=SCALE)
    policy = PolicySet.load(DEFAULT_POLICIES, federation)
    with LocalFederation(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES) as launcher:
        yield Running(workdir, federation, launcher, generated, policy)


def scrape(running: Running, process: str, name: str, **labels: str) -> float:
    address = running.workdir.metrics_address_file(process).read_text().strip()
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and sample.labels == labels
    )


def bad_values(result: QueryResult) -> dict[str, int]:
    return {s.source: s.bad_values for s in result.trailer.sources}


def audit_entry(running: Running, query_id: str, source: str) -> dict[str, Any]:
    (record,) = [
        r
        for r in search(running.workdir.audit_dir())
        if r.get("query_id") == query_id and r["event"] == "query_end"
    ]
    entries: list[dict[str, Any]] = [s for s in record["sources"] if s["source"] == source]
    (entry,) = entries
    return entry


BORDER = dict(end_user="officer", purpose="border_interception")
LABELS = {"source": "CA-CSC", "table": "offenders", "column": "birth_date"}


@pytest.mark.parametrize("order", ["", " ORDER BY surname"], ids=["streamed", "merged"])
def test_a_bad_value_in_a_hidden_row_is_counted_and_leaks_nowhere(corrupted, order):
    # Before: the query failed, INTERNAL: "source CA-CSC table
    # offenders.birth_date: stored value '12/05/1993' does not fit ...".
    # The operators count it; the partner, whose view hides the row, is not
    # told that a hidden row exists (its trailer says 0).
    adapter = scrape(corrupted, "adapter-ca-csc", "accord_adapter_bad_values_total", **LABELS)
    broker = scrape(corrupted, "broker", "accord_source_bad_values_total", **LABELS)
    with corrupted.client("border_services", **BORDER) as client:
        result = client.query(f"SELECT surname, birth_date FROM offenders{order}")
    assert result.table.num_rows > 0
    assert MARKER not in result.table.column("surname").to_pylist()  # the row stays hidden
    assert set(bad_values(result).values()) == {0}
    assert (
        scrape(corrupted, "adapter-ca-csc", "accord_adapter_bad_values_total", **LABELS)
        == adapter + 1
    )
    assert scrape(corrupted, "broker", "accord_source_bad_values_total", **LABELS) == broker + 1
    entry = audit_entry(corrupted, result.query_id, "CA-CSC")
    assert entry["bad_values"] == {"offenders.birth_date": 1}
    assert not any("value" in w for w in render_warnings(result))

    # The value is nowhere: not in the trailer, the audit trail or any log.
    assert BAD not in str(result.trailer)
    for path in [
        *corrupted.workdir.audit_dir().glob("*.jsonl"),
        *corrupted.workdir.logs.glob("*.log"),
    ]:
        assert BAD not in path.read_text(), path
    adapter_log = (corrupted.workdir.logs / "adapter-ca-csc.log").read_text()
    warned = [
        line for line in adapter_log.splitlines() if result.query_id in line and "WARNING" in line
    ]
    assert len(warned) == 1 and "birth_date=1" in warned[0]


CROWN = dict(end_user="clerk", purpose="bail_hearing", case_ref="R-2026-0042")


@pytest.mark.parametrize("order", ["", " ORDER BY surname"], ids=["streamed", "merged"])
@pytest.mark.parametrize(
    "where",
    [
        "birth_date < DATE '2000-01-01'",  # pushed: the stored text passes in the database
        "NOT (birth_date >= DATE '2000-01-01')",
        "birth_date BETWEEN DATE '1000-01-01' AND DATE '2100-01-01'",
        "year(birth_date) < 2000",  # left to the broker
    ],
)
def test_a_bad_value_does_not_pass_a_filter_on_its_column(corrupted, where, order):
    with corrupted.client("crown_attorney", **CROWN) as client:
        result = client.query(
            f"SELECT surname, birth_date FROM offenders WHERE source = 'CA-CSC' AND {where}{order}"
        )
    assert MARKER not in result.table.column("surname").to_pylist()
    assert bad_values(result)["CA-CSC"] == 1


def test_a_row_with_a_bad_value_is_answered_with_null_there(corrupted):
    with corrupted.client("crown_attorney", **CROWN) as client:
        result = client.query(
            f"SELECT surname, birth_date FROM offenders WHERE surname = '{MARKER}'"
        )
    assert result.table.to_pylist() == [{"surname": MARKER, "birth_date": None}]
    assert bad_values(result)["CA-CSC"] == 1


@pytest.mark.parametrize("order", ["", " ORDER BY surname"], ids=["streamed", "merged"])
def test_a_bad_value_reads_as_null_in_a_filter_too(corrupted, order):
    """IS NULL holds for a value that arrives as NULL, wherever it is judged:
    pushed to the database (which sees the stored text) or in the broker."""
    with corrupted.client("crown_attorney", **CROWN) as client:
        result = client.query(
            "SELECT surname FROM offenders WHERE source = 'CA-CSC' AND birth_date IS NULL" + order
        )
    assert MARKER in result.table.column("surname").to_pylist()
