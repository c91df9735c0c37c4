"""Synthetic data generation: logical tables, physical SQLite files, realism."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import sqlite3
import subprocess
import sys
import unicodedata
from pathlib import Path

import pyarrow as pa
import pytest

from accord.errors import ConfigError
from accord.federation import Federation, TableMapping, load_federation
from adapters.datagen import REFERENCE_DATE, generate, write_federation_data, write_sqlite
from tests.readback import rows_to_logical

REPO = Path(__file__).resolve().parent.parent
FEDERATION_FILE = REPO / "deploy" / "federation.yaml"
SCALE = 0.005


@pytest.fixture(scope="module")
def federation() -> Federation:
    return load_federation(FEDERATION_FILE)


@pytest.fixture(scope="module")
def data(federation):
    return generate(federation, seed=7, scale=SCALE)


@pytest.fixture(scope="module")
def written(federation, data, tmp_path_factory):
    """Every source written to its own SQLite file."""
    root = tmp_path_factory.mktemp("datagen")
    paths = {}
    for code, tables in data.items():
        path = root / f"{code.lower()}.sqlite"
        write_sqlite(federation, code, tables, path)
        paths[code] = path
    return paths


# -- an independent reader: physical file + mapping -> logical table ----------


def read_logical(federation: Federation, code: str, table: str, path: Path) -> pa.Table:
    logical = federation.tables[table]
    mapping: TableMapping = federation.sources[code].tables[table]
    held = [c for c in logical.columns if c in mapping.columns]
    select = ", ".join(f'"{mapping.columns[c].physical}"' for c in held)
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            f'SELECT {select} FROM "{mapping.physical_table}" ORDER BY rowid'
        ).fetchall()
    return rows_to_logical(federation, code, table, held, rows, native_dates=False)


def fold(text: str | None) -> str | None:
    if text is None:
        return None
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


# -- the federation file ------------------------------------------------------------


def test_federation_file_loads_with_six_systems(federation):
    assert list(federation.sources) == ["CA-CSC", "BC", "ON", "QC", "SK", "YT"]
    systems = {code: s.system for code, s in federation.sources.items()}
    assert systems["CA-CSC"] == "OMS"
    assert systems["BC"] == "CORNET"
    assert systems["ON"] == "OTIS"
    assert systems["QC"] == "DACOR"
    for code, source in federation.sources.items():
        assert source.backend.kind == "sqlite"
        assert source.backend.path == f"data/{code.lower()}.sqlite"
        assert source.jurisdiction == code


def test_every_system_has_its_own_physical_schema(federation):
    seen: dict[str, str] = {}
    for code, source in federation.sources.items():
        for mapping in source.tables.values():
            assert mapping.physical_table not in seen, (
                f"{code} and {seen.get(mapping.physical_table)} share {mapping.physical_table}"
            )
            seen[mapping.physical_table] = code
            for col in mapping.columns.values():
                assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", col.physical)
    # no two systems spell the offender file the same way
    offender_columns = [
        frozenset(c.physical for c in s.tables["offenders"].columns.values())
        for s in federation.sources.values()
    ]
    for i, a in enumerate(offender_columns):
        for b in offender_columns[i + 1 :]:
            assert len(a & b) <= 4


def test_dacor_schema_is_in_french(federation):
    qc = federation.sources["QC"]
    offenders = qc.tables["offenders"]
    assert offenders.physical_table == "DOSSIER_CONTREVENANT"
    physical = {c.logical: c.physical for c in offenders.columns.values()}
    assert physical["surname"] == "NOM_FAMILLE"
    assert physical["given_names"] == "PRENOMS"
    assert physical["birth_date"] == "DATE_NAISSANCE"
    assert qc.tables["sentences"].physical_table == "PEINE"
    assert qc.tables["releases"].physical_table == "LIBERATION"
    assert offenders.columns["status"].codes["DET"] == "IN_CUSTODY"
    assert offenders.columns["gender"].codes["H"] == "M"


def test_served_tables_codes_and_formats_vary(federation):
    oms = federation.sources["CA-CSC"]
    assert set(oms.tables) == set(federation.tables)
    provinces = [s for code, s in federation.sources.items() if code != "CA-CSC"]
    for source in provinces:
        assert {"offenders", "sentences", "releases", "incidents", "alerts"} <= set(source.tables)
        assert "health_notes" not in source.tables
    with_aliases = [s.code for s in provinces if "aliases" in s.tables]
    assert 0 < len(with_aliases) < len(provinces)
    assert any("photo_ref" not in s.tables["offenders"].columns for s in provinces)
    assert any("security_level" not in s.tables["offenders"].columns for s in provinces)
    formats = {
        s.tables["offenders"].columns["birth_date"].date_format for s in federation.sources.values()
    }
    assert formats == {"%Y%m%d", "%Y/%m/%d", "%m/%d/%Y", "%d/%m/%Y", "%Y-%m-%d", None}
    status_codes = {
        frozenset(s.tables["offenders"].columns["status"].codes)
        for s in federation.sources.values()
    }
    assert len(status_codes) == len(federation.sources)
    enum_like = {
        "offenders": ("status", "gender", "security_level"),
        "sentences": ("sentence_type",),
        "releases": ("release_type", "status"),
        "incidents": ("incident_type",),
        "alerts": ("alert_type",),
    }
    for source in federation.sources.values():
        for table, columns in enum_like.items():
            for column in columns:
                held = source.tables[table].columns.get(column)
                assert held is None or held.codes, f"{source.code}.{table}.{column}"


# -- generate() ------------------------------------------------------------------


def test_generate_gives_exactly_the_logical_schema(federation, data):
    assert set(data) == set(federation.sources)
    for code, tables in data.items():
        source = federation.sources[code]
        assert set(tables) == set(source.tables)
        for name, table in tables.items():
            logical = federation.tables[name]
            assert table.schema == logical.arrow_schema(), (code, name)
            assert table.num_rows > 0
            for column in logical.columns:
                if column not in source.tables[name].columns:
                    assert table.column(column).null_count == table.num_rows, (code, name, column)


def test_generate_is_deterministic(federation, data):
    again = generate(federation, seed=7, scale=SCALE)
    for code, tables in data.items():
        for name, table in tables.items():
            assert again[code][name].equals(table), (code, name)
    other = generate(federation, seed=8, scale=SCALE)
    assert not other["CA-CSC"]["offenders"].equals(data["CA-CSC"]["offenders"])


DIGEST_SCRIPT = """
import hashlib, sys
from accord.federation import load_federation
from adapters.datagen import generate
fed = load_federation(sys.argv[1])
h = hashlib.sha256()
for code, tables in generate(fed, seed=3, scale=0.002).items():
    for name, table in sorted(tables.items()):
        h.update(f"{code}.{name}".encode())
        h.update(repr(table.to_pylist()).encode())
print(h.hexdigest())
"""


def test_generate_does_not_depend_on_hash_seed(federation):
    """Same seed and scale give the same data in another process, too."""
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", DIGEST_SCRIPT, str(FEDERATION_FILE)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(out.stdout.strip())
    h = hashlib.sha256()
    for code, tables in generate(federation, seed=3, scale=0.002).items():
        for name, table in sorted(tables.items()):
            h.update(f"{code}.{name}".encode())
            h.update(repr(table.to_pylist()).encode())
    digests.add(h.hexdigest())
    assert len(digests) == 1


def test_scale_must_be_positive(federation):
    with pytest.raises(ValueError, match="scale"):
        generate(federation, scale=0)


def test_ids_unique_and_children_point_at_files(data):
    for code, tables in data.items():
        ids = tables["offenders"].column("source_person_id").to_pylist()
        assert None not in ids
        assert len(set(ids)) == len(ids), code
        known = set(ids)
        for name, table in tables.items():
            assert set(table.column("source_person_id").to_pylist()) <= known, (code, name)
    formats = {
        code: re.sub(r"\d", "9", t["offenders"]["source_person_id"][0].as_py())
        for code, t in data.items()
    }
    assert len(set(formats.values())) == len(formats)


def test_every_nullable_column_holds_a_null(federation, data):
    required = {
        ("offenders", "source_person_id"),
        ("offenders", "surname"),
        ("offenders", "status"),
        # a victim case names its registration and a sentence; the FPS number
        # is the sentence's, and few drawn cases may all carry one
        ("victim_cases", "victim_registration"),
        ("victim_cases", "offence_code"),
        ("victim_cases", "sentence_date"),
    }
    for code, tables in data.items():
        source = federation.sources[code]
        for name, table in tables.items():
            for column in source.tables[name].columns:
                if (name, column) == ("victim_cases", "fps_number"):
                    continue
                if (name, column) in required or column == "source_person_id":
                    assert table.column(column).null_count == 0, (code, name, column)
                else:
                    assert table.column(column).null_count > 0, (code, name, column)


def test_edge_values_in_every_source(data):
    obrien_fps = set()
    for code, tables in data.items():
        off = tables["offenders"].to_pylist()
        surnames = {r["surname"] for r in off}
        assert "O'Brien" in surnames, code
        assert any("-" in s for s in surnames), code
        assert any(r["given_names"] and "-" in r["given_names"] for r in off), code
        assert any(r["birth_date"] == dt.date(1988, 2, 29) for r in off), code
        obrien_fps |= {r["fps_number"] for r in off if r["given_names"] == "Seán Patrick"}
    assert len(obrien_fps) == 1  # one person, known to every system


def test_accented_french_names_especially_in_quebec(data):
    qc = data["QC"]["offenders"].to_pylist()
    accented = [r for r in qc if any(ord(ch) > 127 for ch in r["surname"])]
    assert len(accented) > len(qc) // 10
    french = {"Bélanger", "Gagné", "Côté", "Lévesque", "Tremblay", "Gagnon"}
    assert french & {r["surname"] for r in qc}


def test_fps_presence_and_people_across_systems(data):
    fps_by_source = {}
    for code, tables in data.items():
        fps = tables["offenders"].column("fps_number").to_pylist()
        with_fps = [f for f in fps if f is not None]
        assert with_fps and len(with_fps) < len(fps), code
        assert all(re.fullmatch(r"\d{7}[A-Z]", f) for f in with_fps), code
        assert len(set(with_fps)) == len(with_fps), code  # one file per person per system
        if code != "CA-CSC":
            missing = 1 - len(with_fps) / len(fps)
            assert 0.08 < missing < 0.35, (code, missing)
        fps_by_source[code] = set(with_fps)
    federal = fps_by_source.pop("CA-CSC")
    for code, fps in fps_by_source.items():
        assert federal & fps, f"nobody in both OMS and {code}"
    provincial = list(fps_by_source.values())
    assert any(a & b for i, a in enumerate(provincial) for b in provincial[i + 1 :])


def test_some_links_need_name_and_birth_date(data):
    """Provincial files without FPS (or with a variant spelling) still match
    an OMS file on normalized name and birth date."""
    oms = {
        (fold(r["surname"]), fold(r["given_names"]), r["birth_date"]): r
        for r in data["CA-CSC"]["offenders"].to_pylist()
    }
    no_fps_links = variant_links = 0
    for code in ("BC", "ON", "QC"):
        for r in data[code]["offenders"].to_pylist():
            match = oms.get((fold(r["surname"]), fold(r["given_names"]), r["birth_date"]))
            if match is None:
                continue
            if r["fps_number"] is None:
                no_fps_links += 1
            elif r["surname"] != match["surname"]:
                variant_links += 1
    assert no_fps_links > 0
    assert variant_links > 0


def test_status_mix_and_plausible_dates(data):
    oms = data["CA-CSC"]["offenders"].to_pylist()
    status = {
        s: sum(r["status"] == s for r in oms)
        for s in ("IN_CUSTODY", "SUPERVISED", "UAL", "WARRANT_EXPIRED", "ARCHIVED")
    }
    assert status["IN_CUSTODY"] > status["SUPERVISED"] > status["UAL"] > 0
    assert status["ARCHIVED"] + status["WARRANT_EXPIRED"] > 4 * (
        status["IN_CUSTODY"] + status["SUPERVISED"]
    )
    for code, tables in data.items():
        for r in tables["offenders"].to_pylist():
            if r["birth_date"] is not None:
                assert dt.date(1940, 1, 1) <= r["birth_date"] <= dt.date(2006, 12, 31)
            if r["status"] == "IN_CUSTODY" and r["planned_release_date"] is not None:
                assert r["planned_release_date"] > REFERENCE_DATE, code
            if r["supervising_jurisdiction"] is not None:
                assert r["supervising_jurisdiction"] in {
                    "BC",
                    "ON",
                    "QC",
                    "SK",
                    "YT",
                    "AB",
                    "MB",
                    "NS",
                    "NB",
                    "NL",
                    "PE",
                    "NT",
                    "NU",
                }
        for r in tables["sentences"].to_pylist():
            if r["sentence_date"] is not None:
                assert dt.date(1990, 1, 1) <= r["sentence_date"] <= REFERENCE_DATE, code
        for name, share in (("alerts", (0.03, 0.25)), ("aliases", (0.08, 0.25))):
            if name in tables:
                people = len(set(tables[name].column("source_person_id").to_pylist()))
                ratio = people / tables["offenders"].num_rows
                assert share[0] < ratio < share[1], (code, name, ratio)
        per_person = (
            tables["sentences"]
            .group_by("source_person_id")
            .aggregate([("source_person_id", "count")])
        )
        assert max(per_person.column("source_person_id_count").to_pylist()) <= 4


# -- write_sqlite() ---------------------------------------------------------------


def test_physical_tables_columns_and_indexes(federation, written):
    for code, path in written.items():
        source = federation.sources[code]
        with sqlite3.connect(path) as conn:
            tables = {
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master "
                    "WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                )
            }
            assert tables == {m.physical_table for m in source.tables.values()}, code
            for name, mapping in source.tables.items():
                info = conn.execute(f'PRAGMA table_info("{mapping.physical_table}")').fetchall()
                columns = {row[1]: row[2] for row in info}
                expected = {
                    c.physical: "INTEGER"
                    if federation.tables[name].columns[c.logical] == "BIGINT"
                    else "TEXT"
                    for c in mapping.columns.values()
                }
                assert columns == expected, (code, name)
                indexed = set()
                for index in conn.execute(
                    f'PRAGMA index_list("{mapping.physical_table}")'
                ).fetchall():
                    cols = tuple(r[2] for r in conn.execute(f'PRAGMA index_info("{index[1]}")'))
                    indexed.add(cols)
                assert (mapping.columns["fps_number"].physical,) in indexed, (code, name)
                person = mapping.columns["source_person_id"].physical
                assert any(cols[0] == person for cols in indexed), (code, name)
            offenders = source.tables["offenders"].columns
            with_names = (offenders["surname"].physical, offenders["given_names"].physical)
            index_sql = " ".join(
                r[0]
                for r in conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                )
            )
            assert f'("{with_names[0]}", "{with_names[1]}")' in index_sql, code


@pytest.mark.parametrize(
    ("code", "column", "expected"),
    [
        ("QC", "DATE_NAISSANCE", "29/02/1988"),
        ("ON", "DATE_OF_BIRTH", "02/29/1988"),
        ("CA-CSC", "DOB", "19880229"),
        ("BC", "BIRTH_DT", "1988/02/29"),
        ("SK", "BIRTH_DATE", "1988-02-29"),
        ("YT", "DOB", "1988-02-29"),
    ],
)
def test_dates_stored_in_each_systems_format(federation, written, code, column, expected):
    table = federation.sources[code].tables["offenders"].physical_table
    with sqlite3.connect(written[code]) as conn:
        values = [r[0] for r in conn.execute(f'SELECT "{column}" FROM "{table}"')]
    assert expected in values
    pattern = {
        "QC": r"\d\d/\d\d/\d{4}",
        "ON": r"\d\d/\d\d/\d{4}",
        "CA-CSC": r"\d{8}",
        "BC": r"\d{4}/\d\d/\d\d",
        "SK": r"\d{4}-\d\d-\d\d",
        "YT": r"\d{4}-\d\d-\d\d",
    }
    assert all(re.fullmatch(pattern[code], v) for v in values if v is not None)


def test_codes_stored_physically(federation, written):
    for code, path in written.items():
        mapping = federation.sources[code].tables["offenders"]
        status = mapping.columns["status"]
        with sqlite3.connect(path) as conn:
            stored = {
                r[0]
                for r in conn.execute(
                    f'SELECT DISTINCT "{status.physical}" FROM "{mapping.physical_table}"'
                )
            }
        assert stored == set(status.codes), code
    with sqlite3.connect(written["QC"]) as conn:
        row = conn.execute(
            "SELECT SEXE, CODE_STATUT FROM DOSSIER_CONTREVENANT WHERE NOM_FAMILLE = 'Roy-Tremblay'"
        ).fetchone()
    assert row == ("F", "DET")


def test_physical_files_read_back_to_the_logical_tables(federation, data, written):
    for code, tables in data.items():
        for name, table in tables.items():
            back = read_logical(federation, code, name, written[code])
            assert back.equals(table), (code, name)


def test_write_sqlite_replaces_atomically(federation, data, tmp_path):
    path = tmp_path / "qc.sqlite"
    path.write_bytes(b"not a database")
    first = write_sqlite(federation, "QC", data["QC"], path)
    second = write_sqlite(federation, "QC", data["QC"], path)
    assert first == second == {name: t.num_rows for name, t in data["QC"].items()}
    assert [p.name for p in tmp_path.iterdir()] == ["qc.sqlite"]  # no temp files left
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM DOSSIER_CONTREVENANT").fetchone()[0] == (
            data["QC"]["offenders"].num_rows
        )


def test_write_sqlite_refuses_a_table_the_source_does_not_serve(federation, data, tmp_path):
    with pytest.raises(ConfigError, match="health_notes"):
        write_sqlite(
            federation,
            "BC",
            {"health_notes": data["CA-CSC"]["health_notes"]},
            tmp_path / "bc.sqlite",
        )
    assert not (tmp_path / "bc.sqlite").exists()


def test_write_federation_data(federation, tmp_path):
    counts = write_federation_data(federation, tmp_path, seed=5, scale=0.002)
    expected = generate(federation, seed=5, scale=0.002)
    assert counts == {
        code: {name: t.num_rows for name, t in tables.items()} for code, tables in expected.items()
    }
    for code, source in federation.sources.items():
        path = tmp_path / source.backend.path
        assert path.is_file()
        back = read_logical(federation, code, "offenders", path)
        assert back.equals(expected[code]["offenders"])


def test_example_federation_extends_the_embedded_one():
    from accord.federation import load_federation

    base = load_federation("deploy/federation.yaml")
    example = load_federation("deploy/federation.example.yaml")
    assert example.sources["CA-CSC"].backend.kind == "postgresql"
    assert example.sources["BC"].backend.dsn == "env:ACCORD_CORNET_DSN"
    assert example.sources["ON"].backend == base.sources["ON"].backend
    assert example.sources["QC"].tables == base.sources["QC"].tables
    assert example.sources["BC"].release == base.sources["BC"].release
