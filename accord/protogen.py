"""Regenerates the Python code for the wire contract in ``protos/``.

The generated modules are committed; ``tests/test_protos.py`` regenerates
them into a temporary directory and fails on any difference.

    python -m accord.protogen          # rewrite accord/v1/*_pb2*.py, accord/flight/*_pb2*.py

Accord's own contract (``protos/accord/v1``) gets messages and gRPC stubs.
Arrow Flight and Flight SQL (``protos/arrow/flight``) get messages only, in
``accord/flight``: the broker registers its Flight handlers itself
(``broker/flight/service.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"


FLIGHT_PROTO_DIR = PROTO_DIR / "arrow" / "flight"
#: Where the Flight messages go, relative to the output directory.
FLIGHT_PACKAGE = Path("accord") / "flight"


def proto_files() -> list[Path]:
    return sorted((PROTO_DIR / "accord" / "v1").glob("*.proto"))


def flight_proto_files() -> list[Path]:
    return sorted(FLIGHT_PROTO_DIR.glob("*.proto"))


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
    _protoc(protoc, args)
    # protoc's own well-known types (google/protobuf/timestamp.proto)
    well_known = Path(protoc.__file__).parent / "_proto"
    flight_out = out_dir / FLIGHT_PACKAGE
    flight_out.mkdir(parents=True, exist_ok=True)
    _protoc(
        protoc,
        [
            "protoc",
            f"-I{FLIGHT_PROTO_DIR}",
            f"-I{well_known}",
            f"--python_out={flight_out}",
            f"--pyi_out={flight_out}",
            *(p.name for p in flight_proto_files()),
        ],
    )


def _protoc(protoc: Any, args: list[str]) -> None:
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")


if __name__ == "__main__":
    generate(ROOT)
    sys.exit(0)
