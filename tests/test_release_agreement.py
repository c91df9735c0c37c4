"""Release agreements: how they are written, checked, and refused.

The shipped federation file is the base; each case edits one source's
agreement and expects the parse (``accord.federation``), the adapter's
planning (``adapters.release``) or ``accord policy check`` to say what is
wrong, naming the source, the table and the part.
"""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from accord.errors import ConfigError
from accord.federation import parse_federation
from accord.workdir import DEFAULT_FEDERATION
from adapters.dialects import RULES, DialectRules
from adapters.release import check_federation, check_release, release_conditions
from adapters.server import create_server
from adapters.translate import plan_scan
from app.cli import main

RAW: dict[str, Any] = yaml.safe_load(DEFAULT_FEDERATION.read_text(encoding="utf-8"))
CHILDREN = ("sentences", "releases", "incidents", "alerts")


def raw_with(code: str, **changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    source = next(s for s in raw["sources"] if s["code"] == code)
    for key, value in changes.items():
        if value is None:
            source.pop(key, None)
        else:
            source[key] = value
    return raw


def yukon_release(**tables: Any) -> dict[str, Any]:
    release: dict[str, Any] = copy.deepcopy(
        next(s for s in RAW["sources"] if s["code"] == "YT")["release"]
    )
    release.update(tables)
    return release


# -- parsing -------------------------------------------------------------------


def test_yukon_withholds_the_whole_person():
    federation = parse_federation(RAW)
    yukon = federation.sources["YT"]
    assert yukon.release["offenders"].row_filter
    assert yukon.release["offenders"].follows is None
    for table in CHILDREN:
        assert yukon.release[table].follows == "offenders", table
    # nobody else follows: their agreements are unchanged
    for code, source in federation.sources.items():
        if code != "YT":
            assert all(r.follows is None for r in source.release.values()), code


@pytest.mark.parametrize(
    ("release", "message"),
    [
        (
            {"sentences": {"follows": "sentences"}},
            "release.sentences: a table cannot follow itself",
        ),
        ({"sentences": {"follows": "aliases"}}, "follows 'aliases', which this source does not"),
        ({"offenders": {"columns": "all", "follows": "alerts"}}, "which itself follows"),
        ({"sentences": {"follows": "offenders", "when": "x"}}, "unknown keys ['when']"),
    ],
)
def test_follows_must_name_a_released_person_file(release, message):
    with pytest.raises(ConfigError, match="source YT") as caught:
        parse_federation(raw_with("YT", release=yukon_release(**release)))
    assert message in str(caught.value)


def test_follows_a_table_the_source_does_not_release():
    release = yukon_release(sentences={"follows": "offenders"})
    del release["offenders"]
    with pytest.raises(ConfigError, match="follows 'offenders', which this source does not"):
        parse_federation(raw_with("YT", release=release))


def test_person_columns_must_be_stored_plainly():
    raw = raw_with("YT", release=yukon_release())
    yukon = next(s for s in raw["sources"] if s["code"] == "YT")
    yukon["tables"]["sentences"]["columns"]["fps_number"] = {"column": "FPS", "codes": {"X": "Y"}}
    with pytest.raises(ConfigError, match=r"sentences\.fps_number links persons"):
        parse_federation(raw)


def test_persons_must_be_linkable():
    raw = raw_with("YT", release=yukon_release())
    yukon = next(s for s in raw["sources"] if s["code"] == "YT")
    for column in ("fps_number", "source_person_id"):
        yukon["tables"]["alerts"]["columns"][column] = None
    with pytest.raises(ConfigError, match="no person column in both alerts and offenders"):
        parse_federation(raw)


def test_the_person_file_needs_a_person_key():
    raw = raw_with("YT", release=yukon_release())
    del raw["logical_model"]["offenders"]["person_key"]
    with pytest.raises(ConfigError, match="logical table offenders has no person_key"):
        parse_federation(raw)


def test_a_source_without_a_release_section_is_an_error():
    with pytest.raises(ConfigError, match="source SK: no release agreement"):
        parse_federation(raw_with("SK", release=None))


def test_a_misspelt_release_section_is_an_error():
    sk = next(s for s in RAW["sources"] if s["code"] == "SK")
    with pytest.raises(ConfigError, match=r"source SK: unknown keys \['releases'\]"):
        parse_federation(raw_with("SK", releases=sk["release"]))


def test_an_explicitly_empty_release_shares_nothing():
    federation = parse_federation(raw_with("SK", release={}))
    assert federation.sources["SK"].release == {}
    assert all(s.code != "SK" for s in federation.sources_serving("offenders"))


# -- the adapter's planning ----------------------------------------------------


def test_unfollowed_tables_add_nothing():
    federation = parse_federation(RAW)
    assert release_conditions(federation, federation.sources["BC"], "sentences", "sqlite") == (
        [],
        [],
    )


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_the_person_link_is_a_semi_join_on_the_source_person_file(dialect):
    federation = parse_federation(RAW)
    yukon = federation.sources["YT"]
    table = federation.tables["sentences"]
    scan = plan_scan(
        table,
        yukon.tables["sentences"],
        ["offence_code"],
        "",
        0,
        dialect,
        None,
        release_conditions(federation, yukon, "sentences", dialect),
    )
    assert scan.sql.count('FROM "OFFENDER_FILE" AS "__accord_file"') == 2
    assert "EXISTS" not in scan.sql  # uncorrelated: no per-row subquery (or its cache)
    # the file's filter travels as parameters, in each of the two subqueries:
    # the code it names, and twice among the known codes that guard a stored
    # code the mapping does not know (IS NULL and <> each test for one)
    assert scan.params.count("EXPRD") == 6
    assert "EXPRD" not in scan.sql


def test_the_person_link_keeps_exactly_the_released_persons_on_sqlite():
    """A hand-made case the generated data lacks: an FPS number differing in
    case, an orphan row, rows without an FPS number linked by file number."""
    federation = parse_federation(RAW)
    yukon = federation.sources["YT"]
    con = sqlite3.connect(":memory:")
    con.execute('CREATE TABLE "OFFENDER_FILE" ("FILE_NO" TEXT, "FPS" TEXT, "FILE_STATUS" TEXT)')
    con.execute('CREATE TABLE "FLAG_REC" ("FILE_NO" TEXT, "FPS" TEXT, "FLAG_NOTE" TEXT)')
    con.executemany(
        'INSERT INTO "OFFENDER_FILE" VALUES (?, ?, ?)',
        [
            ("1", "111A", "INCUS"),  # released
            ("2", "222B", "EXPRD"),  # withheld
            ("3", None, "INCOM"),  # released, no FPS number
            ("4", None, "EXPRD"),  # withheld, no FPS number
            ("5", "555E", None),  # released: no status
        ],
    )
    flags = [
        ("1", "111A", "kept"),
        ("2", "222B", "withheld"),
        ("9", "111a", "withheld: another case is another person"),
        ("9", "111A ", "withheld: a trailing blank is another person"),
        ("3", None, "kept: by file number"),
        ("4", None, "withheld: by file number"),
        ("2", None, "withheld: file 2 has an FPS number"),
        ("7", None, "withheld: no file"),
        ("8", "888H", "withheld: no file"),
        ("5", "555E", "kept"),
        ("6", "111A", "kept: the person has a released file"),
    ]
    con.executemany('INSERT INTO "FLAG_REC" VALUES (?, ?, ?)', flags)
    scan = plan_scan(
        federation.tables["alerts"],
        yukon.tables["alerts"],
        ["notes"],
        "",
        0,
        "sqlite",
        None,
        release_conditions(federation, yukon, "alerts", "sqlite"),
    )
    kept = sorted(r[0] for r in con.execute(scan.sql, scan.params))
    assert kept == sorted(n for _, _, n in flags if n.startswith("kept"))


def test_a_dialect_without_byte_equality_cannot_link_persons(monkeypatch):
    federation = parse_federation(RAW)
    monkeypatch.setitem(RULES, "sqlite", DialectRules("sqlite"))
    with pytest.raises(ConfigError, match="source YT release of sentences") as caught:
        check_release(federation, federation.sources["YT"], "sqlite")
    assert "persons cannot be linked exactly" in str(caught.value)


def test_an_agreement_the_database_cannot_apply_stops_the_adapter(tmp_path: Path):
    """Yukon's agreement on MariaDB (case-insensitive collation): the filter
    on the file cannot run there exactly, so the adapter never listens."""
    federation = parse_federation(RAW)

    class MariaDB:
        dialect = "mysql"

    missing = tmp_path / "never-read.pem"
    with pytest.raises(ConfigError) as caught:
        create_server(
            federation,
            federation.sources["YT"],
            MariaDB(),  # type: ignore[arg-type]
            ca=missing,
            cert=missing,
            key=missing,
            broker_certs=[missing],
        )
    message = str(caught.value)
    assert message.startswith("source YT release of offenders: release filter")
    assert "'WARRANT_EXPIRED'" in message and "cannot be applied faithfully" in message


# -- accord policy check --------------------------------------------------------


def test_the_shipped_federations_are_clean():
    for path in (DEFAULT_FEDERATION, DEFAULT_FEDERATION.parent / "federation.example.yaml"):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if "extends" in raw:
            from accord.federation import load_federation

            federation = load_federation(path)
        else:
            federation = parse_federation(raw)
        assert check_federation(federation) == ([], []), path


def write(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "federation.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_policy_check_reports_an_agreement_no_adapter_could_apply(tmp_path, capsys):
    raw = raw_with("YT", backend={"kind": "mysql", "dsn": "env:ACCORD_YT_DSN"})
    assert main(["policy", "check", "--federation", str(write(tmp_path, raw))]) == 1
    out = capsys.readouterr().out
    assert "source YT release of offenders: release filter" in out


def test_policy_check_warns_of_a_source_that_releases_nothing(tmp_path, capsys):
    path = write(tmp_path, raw_with("SK", release={}))
    assert main(["policy", "check", "--federation", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: source SK releases nothing" in out
    assert out.count("warning") == 1
