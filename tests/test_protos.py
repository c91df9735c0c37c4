"""The committed generated code is exactly what the committed protos produce."""

from __future__ import annotations

from pathlib import Path

from accord import protogen

GENERATED = Path(protogen.__file__).parent / "v1"


def test_generated_code_matches_the_protos(tmp_path):
    protogen.generate(tmp_path)
    fresh = sorted((tmp_path / "accord" / "v1").glob("*_pb2*"))
    assert fresh, "protoc generated nothing"
    committed = sorted(GENERATED.glob("*_pb2*"))
    assert [p.name for p in fresh] == [p.name for p in committed]
    for new in fresh:
        old = GENERATED / new.name
        assert new.read_bytes() == old.read_bytes(), (
            f"{old} is stale: run `make protos` and commit the result"
        )
