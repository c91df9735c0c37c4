"""Regenerates the Python code for the wire contract in ``protos/``.

The generated modules are committed; ``tests/test_protos.py`` regenerates
them into a temporary directory and fails on any difference.

    python -m accord.protogen          # rewrite accord/v1/*_pb2*.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"


def proto_files() -> list[Path]:
    return sorted((PROTO_DIR / "accord" / "v1").glob("*.proto"))


def generate(out_dir: Path) -> None:
    """Runs protoc (from grpcio-tools) over every proto into ``out_dir``."""
    from grpc_tools import protoc  # dev dependency only

    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p.relative_to(PROTO_DIR)) for p in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")


if __name__ == "__main__":
    generate(ROOT)
    sys.exit(0)
