"""The committed generated code is exactly what the committed protos produce."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord import protogen

PACKAGE = Path(protogen.__file__).parent


@pytest.mark.parametrize("package", ["v1", "flight"])
def test_generated_code_matches_the_protos(tmp_path, package):
    protogen.generate(tmp_path)
    fresh = sorted((tmp_path / "accord" / package).glob("*_pb2*"))
    assert fresh, "protoc generated nothing"
    generated = PACKAGE / package
    committed = sorted(generated.glob("*_pb2*"))
    assert [p.name for p in fresh] == [p.name for p in committed]
    for new in fresh:
        old = generated / new.name
        assert new.read_bytes() == old.read_bytes(), (
            f"{old} is stale: run `make protos` and commit the result"
        )
