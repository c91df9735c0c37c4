"""docs/ARCHITECTURE.md stays true: it names every module of the packages.

A module added without a line in the architecture document fails here, so
the map a new engineer reads cannot fall behind the code.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("accord", "app", "broker", "adapters", "certs")


def modules() -> list[Path]:
    return sorted(
        path.relative_to(ROOT)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__init__.py" and "v1" not in path.parts and "_pb2" not in path.stem
    )


def test_every_module_is_named_in_the_architecture_document():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    words = set(re.findall(r"[A-Za-z_][\w]*", text))
    missing = [str(m) for m in modules() if m.stem not in words]
    assert modules(), "no modules found: the package list is out of date"
    assert missing == [], f"docs/ARCHITECTURE.md does not name: {missing}"


def test_every_folder_of_a_package_is_named_in_the_architecture_document():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    folders = {m.parent for m in modules()}
    missing = [str(f) for f in sorted(folders) if f"{f.name}/" not in text]
    assert missing == [], f"docs/ARCHITECTURE.md does not name the folders: {missing}"
