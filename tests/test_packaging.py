"""An installed accord finds its default policies and federation file.

The wheel carries copies of the repository's policies/ and deploy/ as
accord/_data/ (setup.py); accord.workdir reads them from there, or from the
checkout when there is no copy (a checkout, an editable install).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, shipped

REPO = Path(__file__).resolve().parent.parent
# What setuptools needs to build the wheel (see pyproject.toml, setup.py, MANIFEST.in).
BUILD_INPUTS = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE"]
PACKAGES = ["accord", "app", "broker", "adapters", "certs"]


def files_under(folder: Path) -> set[str]:
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_defaults_resolve_to_existing_files() -> None:
    assert DEFAULT_FEDERATION.is_file()
    assert (DEFAULT_POLICIES / "partners.yaml").is_file()
    assert (DEFAULT_POLICIES / "purposes.yaml").is_file()
    assert list((DEFAULT_POLICIES / "roles").glob("*.yaml"))
    assert load_federation(DEFAULT_FEDERATION).sources


def test_a_checkout_reads_the_folders_in_place() -> None:
    assert shipped("policies") == REPO / "policies"
    assert shipped("deploy") == REPO / "deploy"


def test_an_installed_copy_is_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "_data" / "policies").mkdir(parents=True)
    monkeypatch.setattr(resources, "files", lambda _package: tmp_path)
    assert shipped("policies") == tmp_path / "_data" / "policies"
    assert shipped("deploy") == REPO / "deploy"  # no copy: the checkout's


def test_the_wheel_ships_policies_deploy_and_the_license(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in BUILD_INPUTS:
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_data")
    for name in [*PACKAGES, "policies", "deploy"]:
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    out = tmp_path / "dist"
    build = f"from setuptools import build_meta; print(build_meta.build_wheel({str(out)!r}))"
    result = subprocess.run(
        [sys.executable, "-c", build],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    wheel = out / result.stdout.strip().splitlines()[-1]
    names = set(zipfile.ZipFile(wheel).namelist())

    for folder in ("policies", "deploy"):
        expected = {f"accord/_data/{folder}/{name}" for name in files_under(REPO / folder)}
        assert expected <= names, sorted(expected - names)
    assert "accord/_data/deploy/federation.yaml" in names
    assert "accord/_data/policies/partners.yaml" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert "app/templates/brief.html.j2" in names  # the bail brief renders from it
    assert not any(name.startswith(("policies/", "deploy/", "tests/")) for name in names)
