"""The FPS numbers a query's predicates resolve to are recorded, so that
`accord audit search --fps` finds the query however the number was written;
search normalizes a case reference and a purpose as admission does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlglot
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.audit.log import AuditLog
from accord.audit.lookups import fps_numbers, fps_numbers_in_sql
from accord.audit.search import search

FPS = "1051244T"
SPELLINGS = [
    "SELECT surname FROM offenders WHERE fps_number = '1051244T'",
    "SELECT surname FROM offenders WHERE fps_number = '1051' || '244T'",
    "SELECT surname FROM offenders WHERE fps_number = '10' || '51' || '244' || 'T'",
    "SELECT surname FROM offenders WHERE fps_number = CONCAT('1051', '244T')",
    "SELECT surname FROM offenders WHERE fps_number = CAST('1051244T' AS VARCHAR)",
    "SELECT surname FROM offenders WHERE fps_number = UPPER('1051244t')",
    "SELECT surname FROM offenders WHERE UPPER(fps_number) = UPPER(TRIM(' 1051' || '244t '))",
    "SELECT surname FROM offenders WHERE '1051' || '244T' = fps_number",
    "SELECT surname FROM offenders "
    "WHERE fps_number IN ('0000001A', CAST('1051' || '244T' AS TEXT))",
    "SELECT o.surname FROM offenders AS o JOIN (VALUES ('1051' || '244T')) AS v(f) "
    "ON o.fps_number = v.f",
    "WITH wanted AS (SELECT LOWER('1051244T') AS f) "
    "SELECT surname FROM offenders WHERE fps_number IN (SELECT f FROM wanted)",
    "SELECT s.offence_code FROM sentences AS s WHERE s.fps_number LIKE '1051' || '244T'",
]


@pytest.mark.parametrize("sql", SPELLINGS)
def test_every_spelling_resolves_to_the_number(sql):
    assert FPS in {n.upper() for n in fps_numbers_in_sql(sql)}


def test_what_is_not_a_lookup_is_not_recorded():
    sql = (
        "SELECT surname FROM offenders WHERE surname = 'Smith' AND fps_number LIKE '105%' "
        "AND fps_number = SUBSTRING('x1051244T', 2)"
    )
    # A pattern is not a number; a function this module does not fold is not
    # guessed at (the SQL text is kept, and searched, as well).
    assert fps_numbers(sqlglot.parse_one(sql, read="duckdb")) == []


def test_numbers_compared_with_fps_number_are_kept_whatever_their_shape():
    sql = "SELECT 1 FROM offenders WHERE fps_number IN ('LEGACY-77', 'x' || 'y')"
    assert fps_numbers_in_sql(sql) == ["LEGACY-77", "xy"]


def trail(directory: Path, records: list[dict[str, Any]]) -> None:
    with AuditLog(directory, Ed25519PrivateKey.generate(), checkpoint_every=3) as log:
        for record in records:
            log.append(record)


def test_search_by_fps_finds_the_query_however_it_was_written(tmp_path):
    records = [
        {"event": "query", "query_id": str(i), "sql": sql, "fps_numbers": fps_numbers_in_sql(sql)}
        for i, sql in enumerate(SPELLINGS)
    ]
    records.append({"event": "query", "query_id": "other", "sql": "SELECT 1", "fps_numbers": []})
    trail(tmp_path, records)
    for typed in (FPS, FPS.lower(), f" {FPS}\n"):
        found = [r["query_id"] for r in search(tmp_path, fps=typed)]
        assert found == [str(i) for i in range(len(SPELLINGS))]


@pytest.mark.parametrize(
    "typed", ["R-2026-0042", "R-2026-0042\n", " R-2026-0042 ", "\uff32-2026-0042"]
)
def test_search_by_case_ref_normalizes_like_admission(tmp_path, typed):
    trail(
        tmp_path,
        [
            {"event": "query", "query_id": "admitted", "case_ref": "R-2026-0042"},
            # written before admission normalized: the raw text as sent
            {"event": "query", "query_id": "older", "case_ref": "R-2026-0042\n"},
            {"event": "query", "query_id": "other", "case_ref": "R-2026-0043"},
        ],
    )
    found = [r["query_id"] for r in search(tmp_path, case_ref=typed)]
    assert found == ["admitted", "older"]


def test_a_look_alike_letter_is_another_case_reference(tmp_path):
    cyrillic = "\u0420-2026-0042"  # CYRILLIC CAPITAL LETTER ER, not R
    trail(
        tmp_path,
        [
            {"event": "query", "query_id": "latin", "case_ref": "R-2026-0042"},
            {"event": "query", "query_id": "refused", "case_ref": cyrillic},
        ],
    )
    assert [r["query_id"] for r in search(tmp_path, case_ref="R-2026-0042")] == ["latin"]
    assert [r["query_id"] for r in search(tmp_path, case_ref=cyrillic + "\n")] == ["refused"]


def test_search_by_purpose_normalizes_too(tmp_path):
    trail(tmp_path, [{"event": "query", "query_id": "q", "purpose": "bail_hearing"}])
    assert [r["query_id"] for r in search(tmp_path, purpose=" bail_hearing\n")] == ["q"]


def test_a_long_concatenation_folds_without_recursion():
    # Deeper than Python's recursion limit if folded recursively.
    sql = "SELECT 1 FROM offenders WHERE fps_number = " + " || ".join(["'1'"] * 2000)
    assert fps_numbers_in_sql(sql) == ["1" * 2000]
