"""The configuration reference, the README and the operations guide say what
the code does: they cannot drift from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from accord import errors
from app.advice import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
)
from app.cli import build_parser
from broker.settings import SETTINGS, markdown_table

ROOT = Path(__file__).parent.parent
CONFIGURATION = (ROOT / "docs" / "CONFIGURATION.md").read_text()
OPERATIONS = (ROOT / "docs" / "OPERATIONS.md").read_text()
README = (ROOT / "README.md").read_text()
PROTO = (ROOT / "protos" / "accord" / "v1" / "broker.proto").read_text()


@pytest.mark.parametrize("document", ["README.md", "docs/CONFIGURATION.md"])
def test_the_settings_table_is_the_one_the_code_makes(document):
    """Regenerate with `python -m broker.settings` when a setting changes."""
    assert markdown_table() in (ROOT / document).read_text()


def test_every_setting_is_read_by_the_broker():
    """No documented variable the code does not read, none read undocumented."""
    documented = set(re.findall(r"`(ACCORD_[A-Z_]+)`", markdown_table()))
    assert documented == {s.env for s in SETTINGS}


def test_every_dsn_variable_of_the_shipped_federations_is_documented():
    files = [*(ROOT / "deploy").glob("*.yaml"), ROOT / "tests/fixtures/tpch/federation.yaml"]
    names = {n for f in files for n in re.findall(r"env:([A-Z_][A-Z0-9_]*)", f.read_text())}
    assert names
    assert [n for n in sorted(names) if f"`{n}`" not in CONFIGURATION] == []


def test_every_exit_status_is_documented():
    statuses = [EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE]
    table = OPERATIONS.split("## The command line's exit status")[1].split("##")[0]
    assert sorted(int(n) for n in re.findall(r"^\| (\d+) \|", table, flags=re.MULTILINE)) == sorted(
        statuses
    )


def test_every_command_is_in_the_readme():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert commands
    assert [c for c in commands if f"accord {c}" not in README] == []


def test_every_error_reason_is_in_the_proto():
    """The ErrorInfo reasons a caller can get, one per class of the tree."""
    reasons = {
        errors.error_reason(cls.__new__(cls))
        for cls in errors.ERROR_TABLE
        if issubclass(cls, errors.AccordError)
    }
    reasons |= {"SOURCES_MISSING", "INTERNAL", "CONFIG_ERROR"}
    assert [r for r in sorted(reasons) if r not in PROTO] == []


def test_every_metadata_key_is_in_the_proto():
    from accord import metadata

    keys = [v for k, v in vars(metadata).items() if k.endswith("_METADATA")]
    assert keys
    assert [k for k in keys if k not in PROTO] == []


def test_every_field_of_the_contract_is_documented():
    """Each field line of broker.proto has a comment above it, or belongs to
    a run of fields under one comment."""
    undocumented = []
    lines = PROTO.splitlines()
    field = re.compile(r"^\s+(?:repeated\s+)?[\w.]+\s+\w+\s*=\s*\d+")
    for i, line in enumerate(lines):
        if not field.match(line) or "oneof" in line:
            continue
        j = i - 1
        while j >= 0 and field.match(lines[j]):
            j -= 1
        if not lines[j].strip().startswith("//"):
            undocumented.append(line.strip())
    assert undocumented == []
