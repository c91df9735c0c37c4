"""Shared fixtures: a small federation config for unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from accord.federation import Federation, parse_federation

ROOT = Path(__file__).resolve().parent.parent


POLICY_FIXTURES = ROOT / "tests" / "fixtures" / "policy"


@pytest.fixture(scope="session")
def logical_model() -> dict[str, Any]:
    return load_logical_model()


@pytest.fixture(scope="session")
def small_federation() -> Federation:
    return make_small_federation()


def load_logical_model() -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "deploy" / "federation.yaml").read_text())
    model: dict[str, Any] = raw["logical_model"]
    return model


def not_held_unless_listed(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with every logical column a source's mapping omits listed as
    ``None`` (not held): an unlisted column would otherwise be stored under
    its own name."""
    model = raw["logical_model"]
    for source in raw["sources"]:
        for table, mapping in source.get("tables", {}).items():
            columns = mapping.setdefault("columns", {})
            for column in model[table]["columns"]:
                columns.setdefault(column, None)
    return raw


def make_small_federation() -> Federation:
    """Two sources with different physical schemas, codes and date formats;
    a column a source does not list it does not hold."""
    return parse_federation(
        not_held_unless_listed(
            {
                "federation": "unit",
                "logical_model": load_logical_model(),
                "sources": [
                    {
                        "code": "BC",
                        "system": "CORNET",
                        "backend": {"kind": "sqlite", "path": "bc.sqlite"},
                        "release": {"offenders": "all", "sentences": "all"},
                        "tables": {
                            "offenders": {
                                "physical_table": "CLIENT",
                                "columns": {
                                    "fps_number": "FPS_NUM",
                                    "surname": "LAST_NM",
                                    "birth_date": {"column": "BIRTH_DT", "date_format": "%d/%m/%Y"},
                                    "status": {
                                        "column": "STAT_CD",
                                        "codes": {"CU": "IN_CUSTODY", "CO": "SUPERVISED"},
                                    },
                                },
                            },
                            "sentences": {
                                "physical_table": "SENTENCE",
                                "columns": {
                                    "fps_number": "FPS_NUM",
                                    "length_days": "LEN_DAYS",
                                    "sentence_date": {"column": "SENT_DT", "date_format": "%Y%m%d"},
                                },
                            },
                        },
                    },
                    {
                        "code": "QC",
                        "system": "DACOR",
                        "backend": {"kind": "sqlite", "path": "qc.sqlite"},
                        "release": {"offenders": {"columns": "all", "except": ["birth_date"]}},
                        "tables": {
                            "offenders": {
                                "physical_table": "DOSSIER",
                                "columns": {
                                    "fps_number": "NO_SED",
                                    "surname": "NOM_FAMILLE",
                                    "birth_date": "DATE_NAISSANCE",
                                },
                            },
                        },
                    },
                ],
            }
        )
    )
