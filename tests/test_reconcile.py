"""``accord audit reconcile`` over hand-built trails: a scan is matched only
by a broker record of its query id that asked its source, read its table and
was for its partner; anything else is UNMATCHED (exit 1); a trail that does
not verify stops it (exit 2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.audit.reconcile import reconcile
from accord.workdir import Workdir
from app.cli import main
from app.serve import open_adapter_audit, open_audit

if TYPE_CHECKING:
    from pathlib import Path

    from accord.audit.log import AuditLog

BROKER_SHA = "ab" * 32


def query(
    query_id: str,
    sources: list[str],
    *,
    tables: tuple[str, ...] = ("offenders",),
    partner: str = "police",
    ts: str = "2026-11-02T10:00:00.000Z",
) -> dict[str, Any]:
    """A broker access record as broker/record.py writes one."""
    return {
        "event": "query",
        "query_id": query_id,
        "partner": partner,
        "sources_asked": sources,
        "tables": {t: ["surname"] for t in tables},
        "outcome": "STARTED",
        "ts": ts,
    }


def scan(
    query_id: str,
    source: str,
    *,
    seq: int = 1,
    table: str = "offenders",
    partner: str = "police",
    ts: str = "2026-11-02T10:00:00.100Z",
) -> dict[str, Any]:
    """An adapter's scan record as adapters/trace.py writes one."""
    return {
        "event": "scan",
        "seq": seq,
        "source": source,
        "query_id": query_id,
        "partner": partner,
        "caller_cn": "accord-broker",
        "caller_sha256": BROKER_SHA,
        "table": table,
        "columns": ["surname"],
        "predicate": "status = 'UAL'",
        "outcome": "STARTED",
        "ts": ts,
    }


def ended(seq: int, rows: int) -> dict[str, Any]:
    return {"event": "scan_end", "access_seq": seq, "rows": rows, "outcome": "OK"}


def test_the_scans_of_a_broker_query_are_matched():
    found = reconcile(
        [query("q1", ["BC", "CA-CSC"])],
        {"bc": [scan("q1", "BC")], "ca-csc": [scan("q1", "CA-CSC")]},
    )
    assert (found.scans, found.matched, found.unmatched, found.missing) == (2, 2, [], [])
    assert found.broker_queries == 1


def test_the_scans_of_a_history_part_are_matched_by_the_history_record():
    """A history's parts are queries with no record of their own: the one
    ``history`` record lists them, and reconcile matches their scans through it."""
    part = {k: v for k, v in query("p1", ["BC"], tables=("sentences",)).items() if k != "partner"}
    history = {
        "event": "history",
        "query_id": "h1",
        "partner": "crown",
        "parts": [part],
        "ts": "2026-11-02T10:00:00.000Z",
    }
    matched = reconcile([history], {"bc": [scan("p1", "BC", table="sentences", partner="crown")]})
    assert (matched.matched, matched.unmatched, matched.broker_queries) == (1, [], 1)
    other = reconcile([history], {"bc": [scan("p1", "BC", table="sentences", partner="police")]})
    assert other.unmatched[0].reason == "the broker's query was for another partner"


@pytest.mark.parametrize(
    ("broker", "reason"),
    [
        ([], "no broker record of this query id"),
        ([query("q1", ["ON"])], "the broker's query did not ask BC"),
        (
            [query("q1", ["BC"], tables=("sentences",))],
            "the broker's query did not read this table",
        ),
        ([query("q1", ["BC"], partner="crown")], "the broker's query was for another partner"),
    ],
)
def test_a_scan_no_broker_record_accounts_for_is_unmatched(broker, reason):
    found = reconcile(broker, {"bc": [scan("q1", "BC", seq=7), ended(7, 41)]})
    (unmatched,) = found.unmatched
    assert unmatched.reason == reason and found.matched == 0
    assert (unmatched.source, unmatched.query_id, unmatched.table) == ("BC", "q1", "offenders")
    assert unmatched.caller_sha256 == BROKER_SHA and unmatched.rows == 41
    assert unmatched.predicate == "status = 'UAL'" and unmatched.outcome == "OK"


def test_one_matching_record_among_several_of_a_query_id_is_enough():
    broker = [query("q1", ["ON"]), query("q1", ["BC"])]
    assert reconcile(broker, {"bc": [scan("q1", "BC")]}).unmatched == []


def test_a_scan_whose_end_was_never_recorded_says_so():
    (unmatched,) = reconcile([], {"bc": [scan("q1", "BC")]}).unmatched
    assert unmatched.rows is None and unmatched.outcome == "NO END RECORD"


def test_a_source_asked_but_never_scanned_is_reported_apart_unless_never_contacted():
    ended_query = {
        "event": "query_end",
        "query_id": "q1",
        "sources": [{"source": "YT", "outcome": "circuit_open"}],
    }
    found = reconcile([query("q1", ["BC", "ON", "YT"]), ended_query], {"bc": [scan("q1", "BC")]})
    assert found.unmatched == []
    assert [(m.source, m.query_id, m.partner) for m in found.missing] == [("ON", "q1", "police")]


def test_since_limits_the_report_not_the_broker_records_read():
    early = "2026-11-01T09:00:00.000Z"
    broker = [query("q1", ["BC"], ts=early)]
    adapters = {"bc": [scan("old", "BC", seq=1, ts=early), scan("q1", "BC", seq=2)]}
    found = reconcile(broker, adapters, since=datetime(2026, 11, 2, tzinfo=UTC))
    assert (found.scans, found.matched, found.unmatched) == (1, 1, [])
    assert found.broker_queries == 0 and found.missing == []


QUERY_IDS = st.sampled_from(["q1", "q2", "q3", ""])
SOURCES = st.sampled_from(["BC", "ON"])
TABLES = st.sampled_from(["offenders", "sentences"])
PARTNERS = st.sampled_from(["police", "crown", ""])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(QUERY_IDS, st.sets(SOURCES), TABLES, PARTNERS), max_size=5),
    st.lists(st.tuples(QUERY_IDS, SOURCES, TABLES, PARTNERS), max_size=8),
)
def test_unmatched_is_exactly_the_scans_no_broker_record_names(queries, scans):
    """The report agrees with the rule read literally, scan by scan."""
    broker = [query(q, sorted(s), tables=(t,), partner=p) for q, s, t, p in queries]
    adapters: dict[str, list[dict[str, Any]]] = {"bc": [], "on": []}
    for seq, (q, source, table, partner) in enumerate(scans, 1):
        adapters[source.lower()].append(scan(q, source, seq=seq, table=table, partner=partner))
    found = reconcile(broker, adapters)

    def accounted(q: str, source: str, table: str, partner: str) -> bool:
        return any(
            q and bq == q and source in bs and bt == table and (not partner or bp == partner)
            for bq, bs, bt, bp in queries
        )

    expected = sorted((q, s, t) for q, s, t, p in scans if not accounted(q, s, t, p))
    assert sorted((u.query_id, u.source, u.table) for u in found.unmatched) == expected
    assert found.matched + len(found.unmatched) == found.scans == len(scans)


# -- the command over a work dir's trails


@pytest.fixture
def workdir(tmp_path: Path) -> Workdir:
    (tmp_path / "certs").mkdir()
    return Workdir(tmp_path)


def write(audit: AuditLog, *records: dict[str, Any]) -> None:
    with audit:
        for record in records:
            audit.append({k: v for k, v in record.items() if k not in {"seq", "ts"}})


def trails(workdir: Workdir, broker: list[dict[str, Any]], **adapters: list[dict[str, Any]]):
    write(open_audit(workdir, "broker@test"), *broker)
    for code, records in adapters.items():
        write(open_adapter_audit(workdir, code, f"adapter-{code}@test"), *records)


def run(workdir: Workdir, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["audit", *args, "--workdir", str(workdir.path)])
    return status, capsys.readouterr().out


def test_reconcile_exits_0_when_every_scan_is_matched(workdir, capsys):
    # Each trail's seq starts at 1: the scan_end names its scan's seq.
    trails(workdir, [query("q1", ["BC"])], BC=[scan("q1", "BC"), ended(1, 3)])
    status, out = run(workdir, capsys, "reconcile")
    assert status == 0 and "1 scans, 1 matched" in out and "UNMATCHED" not in out


def test_reconcile_exits_1_and_names_each_unmatched_scan(workdir, capsys):
    trails(
        workdir,
        [query("q1", ["BC", "ON"])],
        BC=[scan("q1", "BC"), ended(1, 3), scan("rogue", "BC"), ended(3, 12)],
    )
    status, out = run(workdir, capsys, "reconcile")
    assert status == 1
    assert "UNMATCHED" in out and "rogue" in out and BROKER_SHA in out
    assert "offenders (surname)" in out and "status = 'UAL'" in out and "12 rows" in out
    assert "no scan recorded" in out and "asked ON" in out
    status, out = run(workdir, capsys, "reconcile", "--format", "json")
    report = json.loads(out)
    assert status == 1 and [u["query_id"] for u in report["unmatched"]] == ["rogue"]
    assert report["unmatched"][0]["rows"] == 12 and report["matched"] == 1


def test_search_finds_an_fps_number_in_an_adapters_predicate(workdir, capsys):
    looked_up = {**scan("q1", "BC"), "predicate": "fps_number = '1234567A'"}
    trails(workdir, [], BC=[scan("q0", "BC"), looked_up])
    status, out = run(workdir, capsys, "search", "--trail", "adapter:BC", "--fps", "1234567A")
    assert status == 0 and [json.loads(line)["query_id"] for line in out.splitlines()] == ["q1"]


def test_a_trail_that_does_not_verify_stops_reconcile_with_2(workdir, capsys):
    trails(workdir, [query("q1", ["BC"])], BC=[scan("q1", "BC"), ended(1, 3)])
    (path,) = workdir.adapter_audit_dir("BC").glob("audit-*.jsonl")
    path.write_bytes(path.read_bytes().replace(b'"rows":3', b'"rows":0'))
    status, out = run(workdir, capsys, "reconcile", "--format", "json")
    assert status == 2 and "adapter:BC" in json.loads(out)["tampered"]
    workdir.adapter_audit_key_pin("BC").unlink()
    status, _ = run(workdir, capsys, "reconcile")
    assert status == 2  # no pin: nothing to call it intact against


def test_verify_and_search_take_an_adapters_trail(workdir, capsys):
    trails(workdir, [query("q1", ["BC"])], BC=[scan("q1", "BC"), ended(1, 3)])
    status, out = run(workdir, capsys, "verify", "--trail", "adapter:BC")
    assert status == 0 and "intact" in out and "audit-key-adapter-bc.pin" in out
    status, out = run(workdir, capsys, "search", "--trail", "adapter:bc", "--partner", "police")
    assert status == 0 and [json.loads(line)["event"] for line in out.splitlines()] == ["scan"]
    status, out = run(workdir, capsys, "search", "--trail", "adapter:BC", "--fps", "1234567A")
    assert status == 0 and out == ""
    status, out = run(workdir, capsys, "search")  # the broker's, by default
    assert [json.loads(line)["event"] for line in out.splitlines()] == ["query"]


@pytest.mark.parametrize("trail", ["adapter:../../etc", "adapter:", "partner:BC", "BC"])
def test_a_trail_that_is_neither_the_broker_nor_an_adapter_is_refused(workdir, capsys, trail):
    capsys.readouterr()
    assert main(["audit", "verify", "--trail", trail, "--workdir", str(workdir.path)]) == 2
    assert "use broker or adapter:CODE" in capsys.readouterr().err
